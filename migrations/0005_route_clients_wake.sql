-- Per-client routes written by another process (`dockhand clients set` on the state file, or any
-- program) wake a running controller the way source changes do, so they apply within a second.
CREATE TRIGGER route_clients_insert AFTER INSERT ON route_clients BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER route_clients_update AFTER UPDATE ON route_clients BEGIN UPDATE source_version SET version = version + 1; END;
CREATE TRIGGER route_clients_delete AFTER DELETE ON route_clients BEGIN UPDATE source_version SET version = version + 1; END;
