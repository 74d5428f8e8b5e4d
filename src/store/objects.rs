//! Desired objects as the store keeps them, with the last good spec of broken files, and
//! the problems the sources have right now.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{query, Store, StoreError};
use crate::manifest::{Kind, ManifestError, Object, ObjectKey};

/// An object as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredObject {
    pub object: Object,
    pub generation: i64,
    pub spec_hash: String,
    pub last_error: Option<String>,
}

/// What `apply_desired` changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyReport {
    /// Objects that are new or whose spec changed, with their new generation.
    pub changed: Vec<(ObjectKey, i64)>,
    /// Objects deleted because no source defines them any more.
    pub deleted: Vec<ObjectKey>,
    /// Whether the set of source errors differs from the one stored before.
    pub errors_changed: bool,
}

impl Store {
    pub async fn objects(&self, instance: &str) -> Result<Vec<StoredObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT object, generation, spec_hash, last_error FROM objects WHERE instance = ? ORDER BY kind, name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("objects"))?;
        decode_objects(rows)
    }

    /// The instance's objects of one kind only (by the primary key: the other kinds are not
    /// read, let alone decoded).
    pub async fn objects_of_kind(
        &self,
        instance: &str,
        kind: crate::manifest::Kind,
    ) -> Result<Vec<StoredObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT object, generation, spec_hash, last_error FROM objects WHERE instance = ? AND kind = ? ORDER BY name",
        )
        .bind(instance)
        .bind(kind.label())
        .fetch_all(&self.pool)
        .await
        .map_err(query("objects"))?;
        decode_objects(rows)
    }

    /// Whether the store holds this object (without reading every object's spec).
    pub async fn has_object(&self, instance: &str, key: &ObjectKey) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM objects WHERE instance = ? AND kind = ? AND name = ?",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("object"))?;
        Ok(found.is_some())
    }

    /// Makes the stored objects equal `desired` in one transaction.
    ///
    /// Objects whose source file has errors get that error as `last_error`. Stored objects that
    /// `desired` lacks are deleted only when `prune` is true.
    /// `existing` is what `objects` returned at the start of the pass.
    pub async fn apply_desired(
        &self,
        instance: &str,
        existing: &[StoredObject],
        desired: &[Object],
        errors: &[ManifestError],
        prune: bool,
    ) -> Result<ApplyReport, StoreError> {
        let existing: HashMap<ObjectKey, &StoredObject> =
            existing.iter().map(|s| (s.object.key(), s)).collect();
        let mut first_error: BTreeMap<&str, String> = BTreeMap::new();
        for e in errors {
            first_error
                .entry(e.file.as_str())
                .or_insert_with(|| e.to_string());
        }
        let mut report = ApplyReport::default();
        let mut tx = self.write().await?;
        let mut wanted = std::collections::HashSet::new();
        for o in desired {
            let key = o.key();
            wanted.insert(key.clone());
            let hash = o.spec_hash();
            let error = first_error.get(o.source.as_str()).cloned();
            let json = serde_json::to_string(o).map_err(|e| StoreError::Corrupt {
                what: "object",
                message: e.to_string(),
            })?;
            match existing.get(&key) {
                None => {
                    sqlx::query(
                        "INSERT INTO objects (instance, kind, name, object, source, spec_hash, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(instance)
                    .bind(key.kind.label())
                    .bind(&key.name)
                    .bind(&json)
                    .bind(&o.source)
                    .bind(&hash)
                    .bind(&error)
                    .execute(&mut *tx)
                    .await
                    .map_err(query("insert object"))?;
                    record_revision(&mut tx, instance, o, &json, &hash, 1).await?;
                    report.changed.push((key, 1));
                }
                Some(old)
                    if old.spec_hash != hash || old.object != *o || old.last_error != error =>
                {
                    let generation = old.generation + i64::from(old.spec_hash != hash);
                    sqlx::query(
                        "UPDATE objects SET object = ?, source = ?, spec_hash = ?, generation = ?, last_error = ?,
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                         WHERE instance = ? AND kind = ? AND name = ?",
                    )
                    .bind(&json)
                    .bind(&o.source)
                    .bind(&hash)
                    .bind(generation)
                    .bind(&error)
                    .bind(instance)
                    .bind(key.kind.label())
                    .bind(&key.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(query("update object"))?;
                    if generation != old.generation {
                        record_revision(&mut tx, instance, o, &json, &hash, generation).await?;
                        report.changed.push((key, generation));
                    }
                }
                Some(_) => {}
            }
        }
        if prune {
            for key in existing.keys().filter(|k| !wanted.contains(*k)) {
                for table in [
                    "DELETE FROM objects",
                    "DELETE FROM status",
                    "DELETE FROM reports",
                    "DELETE FROM intents",
                    "DELETE FROM revisions",
                ] {
                    sqlx::query(&format!(
                        "{table} WHERE instance = ? AND kind = ? AND name = ?"
                    ))
                    .bind(instance)
                    .bind(key.kind.label())
                    .bind(&key.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(query("delete object"))?;
                }
                if key.kind == Kind::Route {
                    sqlx::query("DELETE FROM route_clients WHERE instance = ? AND route = ?")
                        .bind(instance)
                        .bind(&key.name)
                        .execute(&mut *tx)
                        .await
                        .map_err(query("delete route clients"))?;
                }
                report.deleted.push(key.clone());
            }
        }
        let stored_errors = self.source_errors(instance).await?;
        if stored_errors != errors {
            report.errors_changed = true;
            sqlx::query("DELETE FROM source_errors WHERE instance = ?")
                .bind(instance)
                .execute(&mut *tx)
                .await
                .map_err(query("clear source errors"))?;
            for e in errors {
                sqlx::query(
                    "INSERT INTO source_errors (instance, file, line, col, field, message) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(instance)
                .bind(&e.file)
                .bind(e.line as i64)
                .bind(e.column as i64)
                .bind(&e.field)
                .bind(&e.message)
                .execute(&mut *tx)
                .await
                .map_err(query("insert source error"))?;
            }
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(report)
    }

    pub async fn source_errors(&self, instance: &str) -> Result<Vec<ManifestError>, StoreError> {
        let rows = sqlx::query(
            "SELECT file, line, col, field, message FROM source_errors WHERE instance = ? ORDER BY rowid",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("source errors"))?;
        Ok(rows
            .into_iter()
            .map(|r| ManifestError {
                file: r.get(0),
                line: r.get::<i64, _>(1) as u64,
                column: r.get::<i64, _>(2) as u64,
                field: r.get(3),
                message: r.get(4),
            })
            .collect())
    }
}

/// Keeps one generation's spec in the object's history (`rollout history`).
async fn record_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    instance: &str,
    o: &Object,
    json: &str,
    hash: &str,
    revision: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO revisions (instance, kind, name, revision, object, source, spec_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(instance)
    .bind(o.spec.kind().label())
    .bind(&o.name)
    .bind(revision)
    .bind(json)
    .bind(&o.source)
    .bind(hash)
    .execute(&mut **tx)
    .await
    .map_err(query("record revision"))?;
    Ok(())
}

/// Stored objects from rows of (object JSON, generation, spec hash, last error).
fn decode_objects(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<StoredObject>, StoreError> {
    rows.into_iter()
        .map(|r| {
            let json: String = r.get(0);
            let object: Object = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                what: "object",
                message: e.to_string(),
            })?;
            Ok(StoredObject {
                object,
                generation: r.get(1),
                spec_hash: r.get(2),
                last_error: r.get(3),
            })
        })
        .collect()
}
