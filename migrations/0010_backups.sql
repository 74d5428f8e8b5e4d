-- Every backup of a managed database, kept or not: when, where, how big, how long, and how it
-- ended. The newest rows answer `describe`, `/metrics` and the scheduler (when it last ran).
CREATE TABLE backups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance    TEXT NOT NULL,
    name        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    file        TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX backups_by_database ON backups (instance, name, started_at);
