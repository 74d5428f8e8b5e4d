-- Run history per object (restart count, crash streak, backoff deadline, last exit, completion),
-- as JSON of lifecycle::Lifecycle. Kept with the status so backoff survives a controller restart.
ALTER TABLE status ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '{}';
