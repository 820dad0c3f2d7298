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
)
