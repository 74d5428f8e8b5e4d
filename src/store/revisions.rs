//! Every spec an object has had: `rollout history` reads it, `rollout undo` applies one again.

use sqlx::Row;

use super::{query, Store, StoreError};
use crate::manifest::{Object, ObjectKey};

/// One generation of an object.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: i64,
    pub object: Object,
    pub source: String,
    pub spec_hash: String,
    pub created_at: String,
}

impl Store {
    /// An object's revisions, oldest first.
    pub async fn revisions(
        &self,
        instance: &str,
        key: &ObjectKey,
    ) -> Result<Vec<Revision>, StoreError> {
        let rows = sqlx::query(
            "SELECT revision, object, source, spec_hash, created_at FROM revisions
             WHERE instance = ? AND kind = ? AND name = ? ORDER BY revision",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .fetch_all(&self.pool)
        .await
        .map_err(query("revisions"))?;
        rows.into_iter()
            .map(|r| {
                let json: String = r.get(1);
                Ok(Revision {
                    revision: r.get(0),
                    object: serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        what: "revision",
                        message: e.to_string(),
                    })?,
                    source: r.get(2),
                    spec_hash: r.get(3),
                    created_at: r.get(4),
                })
            })
            .collect()
    }
}
