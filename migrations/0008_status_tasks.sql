-- A swarm service's tasks as the last pass saw them (node, state, error per slot), as JSON:
-- for `describe`, the API, and the events of task state changes.
ALTER TABLE status ADD COLUMN tasks TEXT NOT NULL DEFAULT '[]';
