//! What the last pass saw of each object: phase, container, ports and run history.

use std::collections::HashMap;

use sqlx::Row;

use super::{query, Store, StoreError};
use crate::engine::{PublishedPort, TaskInfo};
use crate::lifecycle::Lifecycle;
use crate::manifest::{Kind, ObjectKey, Phase};

/// Observed state of one object, as the last pass saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(skip)]
    pub key: Option<ObjectKey>,
    pub phase: Phase,
    pub container_id: Option<String>,
    pub observed_generation: i64,
    pub message: Option<String>,
    pub ports: Vec<PublishedPort>,
    pub updated_at: String,
    /// A swarm service's current tasks (none for a container).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    #[serde(skip)]
    pub lifecycle: Lifecycle,
}

impl Status {
    /// The status of an object no pass has looked at yet.
    pub fn pending(key: ObjectKey) -> Self {
        Status {
            key: Some(key),
            phase: Phase::Pending,
            container_id: None,
            observed_generation: 0,
            message: None,
            ports: Vec::new(),
            updated_at: String::new(),
            tasks: Vec::new(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// Equal in everything but the time it was written.
    pub fn same_as(&self, other: &Status) -> bool {
        let mut a = self.clone();
        a.updated_at.clone_from(&other.updated_at);
        a == *other
    }
}

impl Store {
    /// Writes the statuses that differ from `current` (what `statuses` returned at the start of
    /// the pass), in one transaction, and returns the objects whose status changed.
    pub async fn record_status(
        &self,
        instance: &str,
        current: &HashMap<ObjectKey, Status>,
        statuses: &[Status],
    ) -> Result<std::collections::HashSet<ObjectKey>, StoreError> {
        let changed: Vec<&Status> = statuses
            .iter()
            .filter(|s| {
                let Some(key) = &s.key else { return false };
                match current.get(key) {
                    Some(c) => !c.same_as(s),
                    None => true,
                }
            })
            .collect();
        let keys = changed.iter().filter_map(|s| s.key.clone()).collect();
        if changed.is_empty() {
            return Ok(keys);
        }
        let mut tx = self.write().await?;
        for s in changed {
            let Some(key) = &s.key else { continue };
            // A workload's report speaks for the container that wrote it: a replaced or
            // restarted container starts with none (a game server's old match is not ready).
            let replaced = current.get(key).is_some_and(|c| {
                (c.container_id.is_some() && c.container_id != s.container_id)
                    || (c.lifecycle.started_at.is_some()
                        && c.lifecycle.started_at != s.lifecycle.started_at)
            });
            if replaced {
                sqlx::query("DELETE FROM reports WHERE instance = ? AND kind = ? AND name = ?")
                    .bind(instance)
                    .bind(key.kind.label())
                    .bind(&key.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(query("clear report"))?;
            }
            let ports = serde_json::to_string(&s.ports).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO status (instance, kind, name, phase, container_id, observed_generation, message, ports, lifecycle, tasks)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (instance, kind, name) DO UPDATE SET phase = excluded.phase,
                   container_id = excluded.container_id, observed_generation = excluded.observed_generation,
                   message = excluded.message, ports = excluded.ports, lifecycle = excluded.lifecycle,
                   tasks = excluded.tasks, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(instance)
            .bind(key.kind.label())
            .bind(&key.name)
            .bind(s.phase.as_str())
            .bind(&s.container_id)
            .bind(s.observed_generation)
            .bind(&s.message)
            .bind(ports)
            .bind(serde_json::to_string(&s.lifecycle).unwrap_or_else(|_| "{}".into()))
            .bind(serde_json::to_string(&s.tasks).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await
            .map_err(query("upsert status"))?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(keys)
    }

    pub async fn statuses(&self, instance: &str) -> Result<Vec<Status>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, phase, container_id, observed_generation, message, ports, updated_at, lifecycle, tasks
             FROM status WHERE instance = ? ORDER BY kind, name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("statuses"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let kind: String = r.get(0);
                let ports: String = r.get(6);
                Status {
                    key: Kind::parse(&kind).map(|k| ObjectKey::new(k, r.get::<String, _>(1))),
                    // A phase this build does not know reads as Pending: the next pass sets it.
                    phase: Phase::parse(&r.get::<String, _>(2)).unwrap_or(Phase::Pending),
                    container_id: r.get(3),
                    observed_generation: r.get(4),
                    message: r.get(5),
                    ports: serde_json::from_str(&ports).unwrap_or_default(),
                    updated_at: r.get(7),
                    lifecycle: serde_json::from_str(&r.get::<String, _>(8)).unwrap_or_default(),
                    tasks: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The statuses of `instance` by object (rows of kinds this build does not know are left
    /// out).
    pub async fn statuses_by_key(
        &self,
        instance: &str,
    ) -> Result<HashMap<ObjectKey, Status>, StoreError> {
        Ok(self
            .statuses(instance)
            .await?
            .into_iter()
            .filter_map(|s| Some((s.key.clone()?, s)))
            .collect())
    }
}
