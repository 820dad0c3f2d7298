"""The state file's schema, as numbered migrations.

Migration ``n`` (1-based) takes a file from ``PRAGMA user_version = n - 1`` to ``n``.
Steps are only ever appended: a released step is never edited, so every state file in
the field reaches the same schema by replaying the steps it has not seen yet.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: where each log source stopped reading (a file position or a journald cursor).
    (
        """
        CREATE TABLE log_positions (
            source     TEXT PRIMARY KEY,
            position   TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) STRICT
        """,
    ),
    # 2: the last MTA-STS policy seen per domain, to notice a policy changed under an
    # unchanged _mta-sts id (exporters/smtp/mta_sts.py).
    (
        """
        CREATE TABLE mta_sts_policies (
            domain           TEXT PRIMARY KEY,
            policy_id        TEXT NOT NULL,
            sha256           TEXT NOT NULL,
            changed_under_id TEXT,
            updated_at       REAL NOT NULL
        ) STRICT
        """,
    ),
    # 3: DMARC aggregate, TLS-RPT and feedback reports, and every item (file or mail) seen.
    (
        """
        CREATE TABLE dmarc_reports (
            id        INTEGER PRIMARY KEY,
            kind      TEXT NOT NULL,
            key       TEXT NOT NULL,
            org       TEXT NOT NULL,
            report_id TEXT NOT NULL,
            begin     INTEGER NOT NULL,
            "end"     INTEGER NOT NULL,
            domain    TEXT NOT NULL,
            sha256    TEXT NOT NULL,
            kept_path TEXT NOT NULL,
            at        REAL NOT NULL,
            UNIQUE (kind, key)
        ) STRICT
        """,
        "CREATE UNIQUE INDEX dmarc_reports_sha256 ON dmarc_reports (kind, sha256)",
        """
        CREATE TABLE dmarc_items (
            sha256  TEXT PRIMARY KEY,
            origin  TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason  TEXT NOT NULL,
            detail  TEXT NOT NULL,
            report  INTEGER REFERENCES dmarc_reports (id),
            at      REAL NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE dmarc_records (
            report            INTEGER NOT NULL REFERENCES dmarc_reports (id),
            source_ip         TEXT NOT NULL,
            count             INTEGER NOT NULL,
            disposition       TEXT NOT NULL,
            dkim_aligned      INTEGER NOT NULL,
            spf_aligned       INTEGER NOT NULL,
            overrides         TEXT NOT NULL,
            override_comments TEXT NOT NULL,
            header_from       TEXT NOT NULL,
            envelope_from     TEXT NOT NULL,
            dkim_domains      TEXT NOT NULL,
            spf_domain        TEXT NOT NULL,
            begin             INTEGER NOT NULL,
            "end"             INTEGER NOT NULL
        ) STRICT
        """,
        "CREATE INDEX dmarc_records_report ON dmarc_records (report)",
        """
        CREATE TABLE dmarc_tls_policies (
            report      INTEGER NOT NULL REFERENCES dmarc_reports (id),
            domain      TEXT NOT NULL,
            policy_type TEXT NOT NULL,
            successful  INTEGER NOT NULL,
            failed      INTEGER NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE dmarc_tls_failures (
            report       INTEGER NOT NULL REFERENCES dmarc_reports (id),
            domain       TEXT NOT NULL,
            result_type  TEXT NOT NULL,
            sessions     INTEGER NOT NULL,
            sending_ip   TEXT NOT NULL,
            receiving_mx TEXT NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE dmarc_feedback (
            report          INTEGER NOT NULL REFERENCES dmarc_reports (id),
            feedback_type   TEXT NOT NULL,
            reporter        TEXT NOT NULL,
            reported_domain TEXT NOT NULL,
            auth_failure    TEXT NOT NULL,
            source_ip       TEXT NOT NULL,
            arrival         INTEGER NOT NULL
        ) STRICT
        """,
    ),
    # 4: the canary ledger: every canary sent, until it ends in one outcome
    # (exporters/canary/ledger.py).
    (
        """
        CREATE TABLE canary_ledger (
            id          TEXT PRIMARY KEY,
            route       TEXT NOT NULL,
            message_id  TEXT NOT NULL,
            sent_at     REAL NOT NULL,
            deadline    REAL NOT NULL,
            lost_at     REAL NOT NULL,
            state       TEXT NOT NULL,
            finished_at REAL,
            detail      TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX canary_ledger_open ON canary_ledger (state, route)",
    ),
)
