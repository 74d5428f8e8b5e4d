-- Major version upgrades: the data volume a database runs on when it is not the default one
-- (`<name>-data`), the volume it ran on before its last upgrade (kept until `db upgrade
-- --finish`), and the spec whose upgrade failed (not tried again until the manifest changes).
ALTER TABLE databases ADD COLUMN volume TEXT;
ALTER TABLE databases ADD COLUMN old_volume TEXT;
ALTER TABLE databases ADD COLUMN upgrade_failed TEXT;
