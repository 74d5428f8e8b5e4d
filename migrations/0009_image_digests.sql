-- The registry digest each image-polling server runs (`update.image: Poll`, `pullPolicy:
-- Always`): its image reference is pinned to it, so a moved tag is a new revision (rolled out,
-- and rolled back, like any spec change) and a rollback runs the old image, not the tag's new one.
CREATE TABLE image_digests (
    instance   TEXT NOT NULL,
    name       TEXT NOT NULL,
    image      TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (instance, name)
);
