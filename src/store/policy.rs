//! The host policy each instance's controller last ran with, for the verbs that act on its
//! manifests' host paths outside a pass (`db backup` and `db restore` to and from the
//! manifest's `backup.to.path`): they check what the controller would check, not less.

use super::{query, Store, StoreError};

impl Store {
    /// Records the policy (as `policy::RecordedPolicy` JSON) when it differs from the one
    /// recorded; an unchanged policy writes nothing.
    pub async fn record_host_policy(&self, instance: &str, json: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value != excluded.value",
        )
        .bind(format!("host-policy/{instance}"))
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(query("record host policy"))?;
        Ok(())
    }

    /// The policy last recorded for `instance`, if a controller ever ran it.
    pub async fn host_policy(&self, instance: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(format!("host-policy/{instance}"))
            .fetch_optional(&self.pool)
            .await
            .map_err(query("read host policy"))
    }
}
