-- Facts about the state file itself. `identity` is generated once; every container this state
-- file's controller creates carries it as the label `dockhand.state-id`, so that two controllers
-- on one instance (two state files) never remove or replace each other's containers.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
