"""The SQLite schema, as numbered migrations applied in order at start-up.

Add a new migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: users, chats, jobs, the quota ledger
    """
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        platform      TEXT NOT NULL,
        ext_id        TEXT NOT NULL,
        display_name  TEXT NOT NULL DEFAULT '',
        language      TEXT,
        settings      TEXT NOT NULL DEFAULT '{}',
        created_at    REAL NOT NULL,
        UNIQUE (platform, ext_id)
    );
    CREATE TABLE chats (
        platform      TEXT NOT NULL,
        chat_id       TEXT NOT NULL,
        settings      TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (platform, chat_id)
    );
    CREATE TABLE jobs (
        id                  TEXT PRIMARY KEY,
        user_id             INTEGER NOT NULL REFERENCES users(id),
        kind                TEXT NOT NULL,
        backend             TEXT NOT NULL,
        spec                TEXT NOT NULL,
        state               TEXT NOT NULL CHECK (state IN
                              ('queued','running','delivering','done','failed','cancelled')),
        platform            TEXT NOT NULL,
        chat_id             TEXT NOT NULL,
        thread_id           TEXT,
        is_private          INTEGER NOT NULL DEFAULT 1,
        request_message_id  TEXT,
        status_message_id   TEXT,
        requester_mention   TEXT NOT NULL DEFAULT '',
        language            TEXT NOT NULL DEFAULT 'en',
        cost_per_image      INTEGER NOT NULL DEFAULT 1,
        results             TEXT NOT NULL DEFAULT '[]',
        delivered           INTEGER NOT NULL DEFAULT 0,
        checkpoint          TEXT NOT NULL DEFAULT '{}',
        notes               TEXT NOT NULL DEFAULT '[]',
        error_key           TEXT,
        error_args          TEXT,
        parent_job          TEXT,
        attempts            INTEGER NOT NULL DEFAULT 0,
        created_at          REAL NOT NULL,
        updated_at          REAL NOT NULL,
        finished_at         REAL
    );
    CREATE INDEX jobs_by_state ON jobs(state);
    CREATE INDEX jobs_by_user ON jobs(user_id, created_at);
    CREATE INDEX jobs_by_result_message ON jobs(platform, chat_id);
    CREATE TABLE job_messages (
        platform    TEXT NOT NULL,
        chat_id     TEXT NOT NULL,
        message_id  TEXT NOT NULL,
        job_id      TEXT NOT NULL REFERENCES jobs(id),
        PRIMARY KEY (platform, chat_id, message_id)
    );
    -- Append-only. A reserve holds credits; commit records one delivered image; refund
    -- returns what was held but not committed. idem_key makes every write idempotent.
    CREATE TABLE ledger (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id),
        job_id      TEXT,
        entry       TEXT NOT NULL CHECK (entry IN ('grant','reserve','commit','refund')),
        pool        TEXT NOT NULL CHECK (pool IN ('free','credit','spent')),
        amount      INTEGER NOT NULL,
        day         TEXT NOT NULL,
        note        TEXT NOT NULL DEFAULT '',
        idem_key    TEXT UNIQUE,
        created_at  REAL NOT NULL
    );
    CREATE INDEX ledger_by_user ON ledger(user_id, pool, day);
    CREATE INDEX ledger_by_job ON ledger(job_id);
    """,
    # 2: running totals, so a balance or a reservation costs the same after 100k ledger rows
    """
    CREATE TABLE accounts (
        user_id    INTEGER PRIMARY KEY REFERENCES users(id),
        credits    INTEGER NOT NULL DEFAULT 0,
        -- free pictures held or spent on free_day (UTC); another day starts from zero
        free_day   TEXT NOT NULL DEFAULT '',
        free_used  INTEGER NOT NULL DEFAULT 0,
        -- held by open jobs: reserved, not yet committed or refunded
        held       INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO accounts (user_id, credits, free_day, free_used, held)
    SELECT u.id,
           COALESCE((SELECT SUM(amount) FROM ledger WHERE user_id = u.id AND pool = 'credit'), 0),
           strftime('%Y-%m-%d', 'now'),
           -COALESCE((SELECT SUM(amount) FROM ledger WHERE user_id = u.id AND pool = 'free'
                      AND day = strftime('%Y-%m-%d', 'now')), 0),
           -COALESCE((SELECT SUM(l.amount) FROM ledger l JOIN jobs j ON j.id = l.job_id
                      WHERE l.user_id = u.id AND l.entry IN ('reserve', 'refund')
                      AND j.state IN ('queued', 'running', 'delivering')), 0)
           - COALESCE((SELECT SUM(l.amount) FROM ledger l JOIN jobs j ON j.id = l.job_id
                      WHERE l.user_id = u.id AND l.entry = 'commit'
                      AND j.state IN ('queued', 'running', 'delivering')), 0)
    FROM users u;
    -- Who holds a job's money: the requester, or a group's shared pool.
    ALTER TABLE jobs ADD COLUMN payer_id INTEGER;
    UPDATE jobs SET payer_id = (SELECT user_id FROM ledger WHERE job_id = jobs.id AND entry = 'reserve' LIMIT 1);
    CREATE INDEX jobs_open_by_user ON jobs(user_id, state);
    -- The space above the chat (a Discord guild), for replies and guild-wide defaults.
    ALTER TABLE jobs ADD COLUMN space_id TEXT;
    """,
    # 3: small facts the process keeps between runs (e.g. the hash of the Discord commands last synced)
    """
    CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
]


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the database to the newest schema; returns the version it is at."""
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    async with db.execute("SELECT MAX(version) FROM schema_version") as cur:
        row = await cur.fetchone()
    current = row[0] or 0 if row else 0
    for version, sql in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        await db.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_version VALUES ({version});\nCOMMIT;")
        current = version
    return current
