//! The append-only event log, and a wake-up for followers in this process.

use std::time::Duration;

use sqlx::Row;

use super::{query, Store, StoreError};
use crate::manifest::ObjectKey;

/// One row of the event log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: i64,
    pub time: String,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub reason: String,
    pub message: String,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub key: Option<ObjectKey>,
    pub reason: &'static str,
    pub message: String,
}

/// How many of an instance's newest events the state file keeps by default
/// (`DOCKHAND_EVENT_RETENTION` sets another number); older ones are pruned as new ones are
/// appended, so the log cannot grow without bound.
pub const EVENT_RETENTION: i64 = 10_000;

/// The retention in effect: `DOCKHAND_EVENT_RETENTION`, or `EVENT_RETENTION`.
pub(super) fn retention() -> i64 {
    std::env::var("DOCKHAND_EVENT_RETENTION")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(EVENT_RETENTION)
}

impl Store {
    pub async fn append_events(
        &self,
        instance: &str,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO events (instance, kind, name, reason, message) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(instance)
            .bind(e.key.as_ref().map(|k| k.kind.label()))
            .bind(e.key.as_ref().map(|k| k.name.as_str()))
            .bind(e.reason)
            .bind(&e.message)
            .execute(&mut *tx)
            .await
            .map_err(query("append event"))?;
        }
        // Retention: the newest EVENT_RETENTION events of the instance are kept.
        sqlx::query(
            "DELETE FROM events WHERE instance = ? AND id <= (SELECT max(id) FROM events WHERE instance = ?) - ?",
        )
        .bind(instance)
        .bind(instance)
        .bind(retention())
        .execute(&mut *tx)
        .await
        .map_err(query("prune events"))?;
        tx.commit().await.map_err(query("commit"))?;
        self.appended.notify_waiters();
        Ok(())
    }

    /// Events oldest first: the newest `limit` ones, or with `after`, those past that id.
    /// Only those of `key` when given.
    pub async fn events(
        &self,
        instance: &str,
        key: Option<&ObjectKey>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, kind, name, reason, message FROM events
             WHERE instance = ? AND (? IS NULL OR (kind = ? AND name = ?)) AND id > ?
             ORDER BY id DESC LIMIT ?",
        )
        .bind(instance)
        .bind(key.map(|k| k.kind.label()))
        .bind(key.map(|k| k.kind.label()))
        .bind(key.map(|k| k.name.as_str()))
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query("events"))?;
        let mut events: Vec<Event> = rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                time: r.get(1),
                kind: r.get(2),
                name: r.get(3),
                reason: r.get(4),
                message: r.get(5),
            })
            .collect();
        events.reverse();
        Ok(events)
    }
}

impl Store {
    /// Resolves after the next `append_events` of this process (or after `within`).
    pub async fn events_appended(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.appended.notified()).await;
    }
}
