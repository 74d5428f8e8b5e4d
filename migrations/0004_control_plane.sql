-- A source of desired state that any program may write: one row per document (a row may hold
-- several YAML documents separated by `---`). Rows are validated exactly like files; a row that
-- fails keeps its objects' last good spec. The controller notices changes within a second.
--   INSERT INTO manifests (name, yaml) VALUES ('web', 'apiVersion: dockhand/v1 ...');
-- `instance` defaults to 'default', the instance of a controller started without --instance.
CREATE TABLE manifests (
    instance    TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    yaml        TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, name)
);

-- Objects applied through the API or `dockhand apply`: their own source, one object per row.
CREATE TABLE applied (
    instance    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    yaml        TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, kind, name)
);

-- Bumped by triggers on every write to the two tables above, so a watcher that sees
-- `PRAGMA data_version` move (any write to the file) can tell a source change from a status write.
CREATE TABLE source_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO source_version (id, version) VALUES (1, 0);
CREATE TRIGGER manifests_insert AFTER INSERT ON manifests BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER manifests_update AFTER UPDATE ON manifests BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER manifests_delete AFTER DELETE ON manifests BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER applied_insert AFTER INSERT ON applied BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER applied_update AFTER UPDATE ON applied BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER applied_delete AFTER DELETE ON applied BEGIN UPDATE source_version SET version = version + 1; END;

-- What a workload reports about itself (players, matches, anything JSON): Potassium's registry.
CREATE TABLE reports (
    instance    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    report      TEXT NOT NULL DEFAULT '{}',
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, kind, name)
);

-- Runtime per-client routes (Peel's set/delete/list): a client address of a route goes to a
-- server's port, ahead of the manifest's rules, applied live by `dockhand up`.
CREATE TABLE route_clients (
    instance    TEXT NOT NULL,
    route       TEXT NOT NULL,
    client      TEXT NOT NULL,
    server      TEXT NOT NULL,
    port        INTEGER NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, route, client)
);
