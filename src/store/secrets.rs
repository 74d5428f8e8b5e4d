//! What dockhand generated for each managed database: password, port, whether it was
//! initialised. The file is 0600 because of this table.

use sqlx::Row;

use super::{query, Store, StoreError};

/// What dockhand generated for one managed database.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSecret {
    pub name: String,
    pub password: String,
    /// The host port allocated for it (used when its manifest leaves the port to dockhand).
    pub port: u16,
    pub initialized: bool,
    /// The data volume, when a major version upgrade moved it off the default one.
    pub volume: Option<String>,
    /// The volume it ran on before its last upgrade, kept until `db upgrade --finish`.
    pub old_volume: Option<String>,
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches logs, not even through a debug print.
        f.debug_struct("DatabaseSecret")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("initialized", &self.initialized)
            .field("volume", &self.volume)
            .field("old_volume", &self.old_volume)
            .finish_non_exhaustive()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A secret from the kernel's CSPRNG: 32 characters of [A-Za-z0-9] (about 190 bits), for
/// database passwords, API tokens and the state file's identity.
pub fn generate_secret() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    use std::io::Read;
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        urandom.read_exact(&mut buf)?;
        // Rejection sampling keeps every character equally likely.
        for b in buf {
            if (b as usize) < 256 - 256 % ALPHABET.len() && out.len() < 32 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

impl Store {
    /// Every managed database's secret, across all instances (ports are allocated host-wide).
    pub async fn database_secrets(&self) -> Result<Vec<(String, DatabaseSecret)>, StoreError> {
        let rows = sqlx::query("SELECT instance, name, password, port, initialized, volume, old_volume FROM databases ORDER BY instance, name")
            .fetch_all(&self.pool)
            .await
            .map_err(query("databases"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get(0),
                    DatabaseSecret {
                        name: r.get(1),
                        password: r.get(2),
                        port: r.get::<i64, _>(3) as u16,
                        initialized: r.get::<i64, _>(4) != 0,
                        volume: r.get(5),
                        old_volume: r.get(6),
                    },
                )
            })
            .collect())
    }

    /// Records a new database's secret; an existing one is kept (its data uses that password).
    pub async fn insert_database_secret(
        &self,
        instance: &str,
        secret: &DatabaseSecret,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO databases (instance, name, password, port, initialized) VALUES (?, ?, ?, ?, ?)")
            .bind(instance)
            .bind(&secret.name)
            .bind(&secret.password)
            .bind(i64::from(secret.port))
            .bind(i64::from(secret.initialized))
            .execute(&self.pool)
            .await
            .map_err(query("insert database"))?;
        Ok(())
    }

    pub async fn mark_database_initialized(
        &self,
        instance: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE databases SET initialized = 1 WHERE instance = ? AND name = ? AND initialized = 0")
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("mark database initialized"))?;
        Ok(())
    }

    /// Records a database's password as its Secret now gives it (the state file keeps what
    /// `db url` and `--show-secrets` show).
    pub async fn set_database_password(
        &self,
        instance: &str,
        name: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE databases SET password = ? WHERE instance = ? AND name = ? AND password != ?",
        )
        .bind(password)
        .bind(instance)
        .bind(name)
        .bind(password)
        .execute(&self.pool)
        .await
        .map_err(query("set database password"))?;
        Ok(())
    }

    /// Records the data volume a database runs on and the one it ran on before.
    pub async fn set_database_volumes(
        &self,
        instance: &str,
        name: &str,
        volume: Option<&str>,
        old_volume: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE databases SET volume = ?, old_volume = ? WHERE instance = ? AND name = ?",
        )
        .bind(volume)
        .bind(old_volume)
        .bind(instance)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(query("set database volumes"))?;
        Ok(())
    }

    /// The spec (hash) whose major version upgrade failed, and why.
    pub async fn upgrade_failed(
        &self,
        instance: &str,
        name: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let v: Option<Option<String>> = sqlx::query_scalar(
            "SELECT upgrade_failed FROM databases WHERE instance = ? AND name = ?",
        )
        .bind(instance)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("upgrade failed"))?;
        Ok(v.flatten().and_then(|s| {
            let (hash, why) = s.split_once('\t')?;
            Some((hash.to_owned(), why.to_owned()))
        }))
    }

    pub async fn set_upgrade_failed(
        &self,
        instance: &str,
        name: &str,
        failed: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE databases SET upgrade_failed = ? WHERE instance = ? AND name = ?")
            .bind(failed.map(|(h, w)| format!("{h}\t{w}")))
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("set upgrade failed"))?;
        Ok(())
    }

    /// Moves a database to another allocated host port.
    pub async fn set_database_port(
        &self,
        instance: &str,
        name: &str,
        port: u16,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE databases SET port = ? WHERE instance = ? AND name = ?")
            .bind(i64::from(port))
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("set database port"))?;
        Ok(())
    }

    pub async fn delete_database_secret(
        &self,
        instance: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM databases WHERE instance = ? AND name = ?")
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("delete database"))?;
        Ok(())
    }
}
