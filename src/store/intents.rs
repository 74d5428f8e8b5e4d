//! Operator intents: an object stopped until started again, and the last restart asked for.
//! They are desired state the manifests do not carry, so they live beside the objects and
//! survive every reload of the sources.

use std::collections::HashMap;

use super::{query, Store, StoreError};
use crate::manifest::{Kind, ObjectKey};

/// What an operator asked of one object (or of one replica).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    /// When it was stopped; it stays stopped until `start`.
    pub stopped_at: Option<String>,
    /// The last `restart`: its containers are replaced once for each new value.
    pub restarted_at: Option<String>,
    /// A rollout that failed and was rolled back.
    pub rollback: Option<Rollback>,
}

/// While the object's spec hash is `from`, the revision with spec hash `to` runs instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    pub from: String,
    pub to: String,
    /// Why: the failed revision, and how it failed.
    pub reason: String,
}

impl Store {
    /// Every intent of `instance`, by the key it was given for.
    pub async fn intents(&self, instance: &str) -> Result<HashMap<ObjectKey, Intent>, StoreError> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT kind, name, stopped_at, restarted_at, rollback_from, rollback_to, rollback_reason
             FROM intents WHERE instance = ?",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("intents"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, name, stopped_at, restarted_at, from, to, reason)| {
                let key = ObjectKey::new(Kind::parse(&kind)?, name);
                let rollback = match (from, to) {
                    (Some(from), Some(to)) => Some(Rollback {
                        from,
                        to,
                        reason: reason.unwrap_or_default(),
                    }),
                    _ => None,
                };
                Some((
                    key,
                    Intent {
                        stopped_at,
                        restarted_at,
                        rollback,
                    },
                ))
            })
            .collect())
    }

    /// Marks objects stopped (`true`) or running again (`false`), in one transaction.
    /// Returns the keys whose mark changed.
    pub async fn set_stopped(
        &self,
        instance: &str,
        keys: &[ObjectKey],
        stopped: bool,
    ) -> Result<Vec<ObjectKey>, StoreError> {
        let mut tx = self.write().await?;
        let mut changed = Vec::new();
        for key in keys {
            let sql = if stopped {
                "INSERT INTO intents (instance, kind, name, stopped_at)
                 VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 ON CONFLICT (instance, kind, name) DO UPDATE
                 SET stopped_at = excluded.stopped_at WHERE stopped_at IS NULL"
            } else {
                "UPDATE intents SET stopped_at = NULL
                 WHERE instance = ? AND kind = ? AND name = ? AND stopped_at IS NOT NULL"
            };
            let done = sqlx::query(sql)
                .bind(instance)
                .bind(key.kind.label())
                .bind(&key.name)
                .execute(&mut *tx)
                .await
                .map_err(query("set stopped"))?;
            if done.rows_affected() > 0 {
                changed.push(key.clone());
            }
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(changed)
    }

    /// Asks for the objects' containers to be replaced (with the same spec); returns the
    /// restart's time, which becomes part of their spec hash.
    pub async fn request_restart(
        &self,
        instance: &str,
        keys: &[ObjectKey],
    ) -> Result<String, StoreError> {
        let mut tx = self.write().await?;
        let at: String = sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
            .fetch_one(&mut *tx)
            .await
            .map_err(query("now"))?;
        for key in keys {
            sqlx::query(
                "INSERT INTO intents (instance, kind, name, restarted_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (instance, kind, name) DO UPDATE SET restarted_at = excluded.restarted_at",
            )
            .bind(instance)
            .bind(key.kind.label())
            .bind(&key.name)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(query("request restart"))?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(at)
    }
}

impl Store {
    /// Records a rolled-back rollout of `key` (a server's name covers its replicas).
    pub async fn set_rollback(
        &self,
        instance: &str,
        key: &ObjectKey,
        rollback: &Rollback,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO intents (instance, kind, name, rollback_from, rollback_to, rollback_reason)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (instance, kind, name) DO UPDATE SET rollback_from = excluded.rollback_from,
               rollback_to = excluded.rollback_to, rollback_reason = excluded.rollback_reason",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .bind(&rollback.from)
        .bind(&rollback.to)
        .bind(&rollback.reason)
        .execute(&self.pool)
        .await
        .map_err(query("set rollback"))?;
        Ok(())
    }

    /// The newest revision of `key` whose spec hash is `hash`.
    pub async fn revision_with_hash(
        &self,
        instance: &str,
        key: &ObjectKey,
        hash: &str,
    ) -> Result<Option<(i64, crate::manifest::Object)>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT revision, object FROM revisions
             WHERE instance = ? AND kind = ? AND name = ? AND spec_hash = ?
             ORDER BY revision DESC LIMIT 1",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("revision"))?;
        row.map(|(n, json)| {
            serde_json::from_str(&json)
                .map(|o| (n, o))
                .map_err(|e| StoreError::Corrupt {
                    what: "revision",
                    message: e.to_string(),
                })
        })
        .transpose()
    }
}
