//! The record of database backups: what `describe`, `/metrics` and the backup scheduler read.

use sqlx::Row;

use super::{query, Store, StoreError};

/// One backup attempt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    pub name: String,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub duration_ms: i64,
    /// Where it went: `volume:<engine volume>/<file>`, a host path, or a local file.
    pub file: String,
    pub size_bytes: i64,
    /// Why it failed; `None` for a verified backup.
    pub error: Option<String>,
}

impl BackupRecord {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

fn record(r: &sqlx::sqlite::SqliteRow) -> BackupRecord {
    BackupRecord {
        name: r.get(0),
        started_at: r.get(1),
        duration_ms: r.get(2),
        file: r.get(3),
        size_bytes: r.get(4),
        error: r.get(5),
    }
}

impl Store {
    pub async fn add_backup(&self, instance: &str, b: &BackupRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO backups (instance, name, started_at, duration_ms, file, size_bytes, error)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(instance)
        .bind(&b.name)
        .bind(b.started_at)
        .bind(b.duration_ms)
        .bind(&b.file)
        .bind(b.size_bytes)
        .bind(&b.error)
        .execute(&self.pool)
        .await
        .map_err(query("record backup"))?;
        Ok(())
    }

    /// A database's backups, newest first, at most `limit`.
    pub async fn backups(
        &self,
        instance: &str,
        name: &str,
        limit: i64,
    ) -> Result<Vec<BackupRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, started_at, duration_ms, file, size_bytes, error FROM backups
             WHERE instance = ? AND name = ? ORDER BY started_at DESC, id DESC LIMIT ?",
        )
        .bind(instance)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query("backups"))?;
        Ok(rows.iter().map(record).collect())
    }

    /// Each database's newest backup and newest successful one.
    pub async fn last_backups(
        &self,
        instance: &str,
    ) -> Result<Vec<(BackupRecord, Option<BackupRecord>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, started_at, duration_ms, file, size_bytes, error FROM backups b
             WHERE instance = ? AND id = (SELECT MAX(id) FROM backups WHERE instance = b.instance AND name = b.name)
             ORDER BY name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("last backups"))?;
        let mut out = Vec::new();
        for last in rows.iter().map(record) {
            let ok = if last.succeeded() {
                Some(last.clone())
            } else {
                sqlx::query(
                    "SELECT name, started_at, duration_ms, file, size_bytes, error FROM backups
                     WHERE instance = ? AND name = ? AND error IS NULL ORDER BY id DESC LIMIT 1",
                )
                .bind(instance)
                .bind(&last.name)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("last backup"))?
                .as_ref()
                .map(record)
            };
            out.push((last, ok));
        }
        Ok(out)
    }
}
