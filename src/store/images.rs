//! The registry digests image-polling servers are pinned to.

use std::collections::HashMap;

use super::{query, Store, StoreError};

impl Store {
    /// Each server's pinned digest, with the image reference it was resolved for.
    pub async fn image_digests(
        &self,
        instance: &str,
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, image, digest FROM image_digests WHERE instance = ?")
                .bind(instance)
                .fetch_all(&self.pool)
                .await
                .map_err(query("image digests"))?;
        Ok(rows
            .into_iter()
            .map(|(name, image, digest)| (name, (image, digest)))
            .collect())
    }

    /// Pins server `name`'s `image` to `digest`.
    pub async fn set_image_digest(
        &self,
        instance: &str,
        name: &str,
        image: &str,
        digest: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO image_digests (instance, name, image, digest) VALUES (?, ?, ?, ?)
             ON CONFLICT (instance, name) DO UPDATE SET image = excluded.image, digest = excluded.digest,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(instance)
        .bind(name)
        .bind(image)
        .bind(digest)
        .execute(&self.pool)
        .await
        .map_err(query("set image digest"))?;
        Ok(())
    }
}
