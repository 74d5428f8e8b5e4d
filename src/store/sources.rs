//! The two source tables (`manifests`, written by anyone; `applied`, written through the
//! API) and the watch that tells their writes from dockhand's own.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;

use super::{query, Store, StoreError};
use crate::manifest::ObjectKey;

impl Store {
    /// Rows of the `manifests` table for `instance`: (name, yaml).
    /// The `manifests` rows of `instance`: (name, yaml). Any program may write the table, so a
    /// row whose `yaml` is not text, or is larger than a manifest may be, reads as `Err` with
    /// what it holds instead, and never spoils the other rows.
    pub async fn manifest_rows(
        &self,
        instance: &str,
    ) -> Result<Vec<(String, Result<String, String>)>, StoreError> {
        let rows: Vec<(String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT CASE WHEN typeof(name) = 'text' THEN name ELSE quote(name) END,
                    CASE WHEN typeof(yaml) = 'text' AND length(CAST(yaml AS BLOB)) <= ? THEN yaml END,
                    typeof(yaml), length(CAST(yaml AS BLOB))
             FROM manifests WHERE instance = ? ORDER BY name",
        )
        .bind(crate::manifest::parse::MAX_MANIFEST_BYTES as i64)
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("manifests"))?;
        Ok(rows
            .into_iter()
            .map(|(name, yaml, kind, len)| {
                let yaml = yaml.ok_or_else(|| match kind.as_str() {
                    "text" => format!("yaml is {len} bytes, more than a manifest may hold"),
                    other => format!("yaml is {other}, expected text"),
                });
                (name, yaml)
            })
            .collect())
    }

    /// Objects applied through the API: (kind, name, yaml).
    pub async fn applied_rows(
        &self,
        instance: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT kind, name, yaml FROM applied WHERE instance = ? ORDER BY kind, name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("applied"))
    }

    /// Stores an applied object's text; returns whether it was new.
    pub async fn put_applied(
        &self,
        instance: &str,
        key: &ObjectKey,
        yaml: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT yaml FROM applied WHERE instance = ? AND kind = ? AND name = ?",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("applied"))?;
        if old.as_deref() != Some(yaml) {
            sqlx::query(
                "INSERT INTO applied (instance, kind, name, yaml) VALUES (?, ?, ?, ?)
                 ON CONFLICT (instance, kind, name) DO UPDATE SET yaml = excluded.yaml,
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(instance)
            .bind(key.kind.label())
            .bind(&key.name)
            .bind(yaml)
            .execute(&mut *tx)
            .await
            .map_err(query("apply"))?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(old.is_none())
    }

    /// Removes an applied object; returns whether there was one.
    pub async fn delete_applied(
        &self,
        instance: &str,
        key: &ObjectKey,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM applied WHERE instance = ? AND kind = ? AND name = ?")
            .bind(instance)
            .bind(key.kind.label())
            .bind(&key.name)
            .execute(&self.pool)
            .await
            .map_err(query("delete applied"))?;
        Ok(r.rows_affected() > 0)
    }
}

/// A connection of its own that tells when another process (or connection) wrote the file.
pub struct VersionWatch {
    conn: sqlx::SqliteConnection,
}

impl VersionWatch {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        use sqlx::Connection;
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .busy_timeout(Duration::from_secs(1));
        let conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .map_err(open_err)?;
        Ok(Self { conn })
    }

    /// Moves whenever another connection commits; costs no page read.
    pub async fn data_version(&mut self) -> Result<i64, StoreError> {
        sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await
            .map_err(query("data version"))
    }

    /// Bumped by triggers on every write to the source tables.
    pub async fn source_version(&mut self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT version FROM source_version WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await
            .map_err(query("source version"))
    }
}
