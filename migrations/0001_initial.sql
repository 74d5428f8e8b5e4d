-- Desired objects, as last read from a source. A broken file leaves its rows untouched, so they
-- hold the last good spec; last_error says why the newer text was not applied.
CREATE TABLE objects (
    instance    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    object      TEXT    NOT NULL,          -- JSON of manifest::Object (spec, labels, source, line)
    source      TEXT    NOT NULL,
    generation  INTEGER NOT NULL DEFAULT 1, -- bumped whenever spec_hash changes
    spec_hash   TEXT    NOT NULL,
    last_error  TEXT,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, kind, name)
);

-- Observed state per object, written by every reconcile pass.
CREATE TABLE status (
    instance             TEXT    NOT NULL,
    kind                 TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    phase                TEXT    NOT NULL,
    container_id         TEXT,
    observed_generation  INTEGER NOT NULL DEFAULT 0,
    message              TEXT,
    ports                TEXT    NOT NULL DEFAULT '[]', -- JSON list of {container, protocol, host}
    updated_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, kind, name)
);

-- Append-only history of what dockhand did and saw.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    instance  TEXT NOT NULL,
    time      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    kind      TEXT,
    name      TEXT,
    reason    TEXT NOT NULL,
    message   TEXT NOT NULL
);
CREATE INDEX events_by_object ON events (instance, kind, name, id);

-- Errors of the sources' current contents (one row per problem), replaced on every load.
CREATE TABLE source_errors (
    instance  TEXT    NOT NULL,
    file      TEXT    NOT NULL,
    line      INTEGER NOT NULL,
    col       INTEGER NOT NULL,
    field     TEXT    NOT NULL,
    message   TEXT    NOT NULL
);
CREATE INDEX source_errors_by_instance ON source_errors (instance);
