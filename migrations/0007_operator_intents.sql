-- What an operator asked of an object beyond its manifest, kept across source reloads:
-- `stopped_at` while it is stopped (`down`, `stop`; cleared by `start`), and `restarted_at`, the
-- last `restart` (part of its containers' spec hash, so a restart is a rollout of the same spec).
-- A failed rollout (`update.failureAction: Rollback`) is one too: while the object's spec hash
-- is `rollback_from`, the revision whose spec hash is `rollback_to` runs instead.
-- The name is an object's (`web`: every replica) or one replica's (`web.2`).
CREATE TABLE intents (
    instance         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    stopped_at       TEXT,
    restarted_at     TEXT,
    rollback_from    TEXT,
    rollback_to      TEXT,
    rollback_reason  TEXT,
    PRIMARY KEY (instance, kind, name)
);
-- A controller notices an intent as it notices a source change.
CREATE TRIGGER intents_insert AFTER INSERT ON intents BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER intents_update AFTER UPDATE ON intents BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER intents_delete AFTER DELETE ON intents BEGIN UPDATE source_version SET version = version + 1; END;

-- Every spec an object has had, one row per generation: `rollout history` and `rollout undo`.
CREATE TABLE revisions (
    instance    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    revision    INTEGER NOT NULL,           -- the object's generation
    object      TEXT    NOT NULL,           -- JSON of manifest::Object
    source      TEXT    NOT NULL,
    spec_hash   TEXT    NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, kind, name, revision)
);
-- Objects that exist now start their history at their current generation.
INSERT INTO revisions (instance, kind, name, revision, object, source, spec_hash)
    SELECT instance, kind, name, generation, object, source, spec_hash FROM objects;
