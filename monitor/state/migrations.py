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
)
