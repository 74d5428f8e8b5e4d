-- Per managed database: the generated password (never shown unless asked), the host port
-- allocated when the manifest left it to dockhand, and whether its data volume was ever
-- initialised (a volume that was never initialised may be removed after a failed start).
-- Kept under deletionPolicy Retain, so re-adding the manifest finds the data's password again.
CREATE TABLE databases (
    instance     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    password     TEXT    NOT NULL,
    port         INTEGER NOT NULL,
    initialized  INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, name)
);
