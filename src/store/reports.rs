//! What workloads report about themselves, kept as JSON and changed by merge patch.

use std::collections::HashMap;

use super::{query, Store, StoreError};
use crate::manifest::{Kind, ObjectKey};

/// The most a workload's report may hold, as JSON.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;

impl Store {
    /// Every report of `instance`'s objects, by object.
    pub async fn reports(
        &self,
        instance: &str,
    ) -> Result<HashMap<ObjectKey, serde_json::Value>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT kind, name, report FROM reports WHERE instance = ?")
                .bind(instance)
                .fetch_all(&self.pool)
                .await
                .map_err(query("reports"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, name, report)| {
                let key = ObjectKey::new(Kind::parse(&kind)?, name);
                Some((key, serde_json::from_str(&report).ok()?))
            })
            .collect())
    }

    /// Merges `patch` into an object's report (RFC 7386: `null` removes a field) and returns
    /// the result.
    pub async fn patch_report(
        &self,
        instance: &str,
        key: &ObjectKey,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let mut tx = self.write().await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT report FROM reports WHERE instance = ? AND kind = ? AND name = ?",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("report"))?;
        let mut report: serde_json::Value = old
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        merge_patch(&mut report, patch);
        let size = report.to_string().len();
        if size > MAX_REPORT_BYTES {
            return Err(StoreError::ReportTooLarge {
                size,
                limit: MAX_REPORT_BYTES,
            });
        }
        sqlx::query(
            "INSERT INTO reports (instance, kind, name, report) VALUES (?, ?, ?, ?)
             ON CONFLICT (instance, kind, name) DO UPDATE SET report = excluded.report,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(instance)
        .bind(key.kind.label())
        .bind(&key.name)
        .bind(report.to_string())
        .execute(&mut *tx)
        .await
        .map_err(query("patch report"))?;
        tx.commit().await.map_err(query("commit"))?;
        Ok(report)
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    if let serde_json::Value::Object(t) = target {
        for (k, v) in fields {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}
