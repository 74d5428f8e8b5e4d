//! The state file: desired objects (with the last good spec of broken files), status and events.
//!
//! SQLite in WAL mode through sqlx, schema in `migrations/`. Queries are checked at run time so
//! the crate builds without a database. A pass that changes nothing writes nothing.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

mod backups;
mod events;
mod images;
mod intents;
mod lock;
mod objects;
mod policy;
mod reports;
mod revisions;
mod route_clients;
mod secrets;
mod sources;
mod status;

pub use backups::BackupRecord;
pub use events::{Event, NewEvent};
pub use intents::{Intent, Rollback};
pub use lock::{lock_state, LockError, StateLock};
pub use objects::{ApplyReport, StoredObject};
pub use reports::{merge_patch, MAX_REPORT_BYTES};
pub use revisions::Revision;
pub use route_clients::{Client, ClientRoute};
pub use secrets::{constant_time_eq, generate_secret, DatabaseSecret};
pub use sources::VersionWatch;
pub use status::Status;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open state file {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot prepare state file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate state file: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("state query {op} failed: {source}")]
    Query {
        op: &'static str,
        source: sqlx::Error,
    },
    #[error("state file {path} was deleted or replaced while in use; the controller stops rather than run on a file no one else sees")]
    Vanished { path: PathBuf },
    #[error("the report would be {size} bytes; at most {limit} are kept per object")]
    ReportTooLarge { size: usize, limit: usize },
    #[error("state file holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
}

fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// This state file's identity (see `identity`).
    identity: std::sync::Arc<str>,
    /// Its path and the file it named when opened (device, inode), to notice it vanish.
    path: PathBuf,
    file_id: Option<(u64, u64)>,
    /// Woken after events are appended, for followers in this process (the API's stream).
    appended: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl StoreError {
    /// Whether another connection held the state file's lock past the busy timeout (another
    /// program writing the manifests table in one long transaction, say).
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Query {
                source: sqlx::Error::Database(e),
                ..
            } => {
                matches!(e.code().as_deref(), Some("5" | "6" | "261" | "517"))
                    || e.message().contains("database is locked")
            }
            _ => false,
        }
    }
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the state file.
    /// This state file's identity: random, made once. Containers carry it as
    /// `dockhand.state-id`; a controller leaves containers of another identity alone.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Gives the write-ahead log back to the main file and truncates it, so churn cannot grow
    /// the WAL without bound. Cheap when there is nothing to do; the controller calls it on
    /// every resync.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
            .map_err(query("checkpoint"))?;
        Ok(())
    }

    /// Fails if the state file was deleted or replaced since it was opened: this process would
    /// go on writing to a file no other process can see.
    pub fn check_file(&self) -> Result<(), StoreError> {
        if self.file_id.is_some() && file_id(&self.path) != self.file_id {
            return Err(StoreError::Vanished {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let create_err = |source| StoreError::Create {
            path: path.to_owned(),
            source,
        };
        create_private(path).map_err(create_err)?;
        // Setting up a state file (switching it to WAL, migrating) must happen in one process
        // at a time: sqlx's SQLite migrator takes no lock, and the switch to WAL needs an
        // exclusive lock that SQLite's busy timeout cannot wait for.
        let lock_path = path.to_owned();
        let guard = tokio::task::spawn_blocking(move || lock::setup_lock(&lock_path))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(create_err)?;
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            // Created above, private; a pool connection made later must never create it anew
            // (0644, empty) after someone deleted it.
            .create_if_missing(false)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection whose transaction could not be ended (a commit and its rollback
            // failing on a full disk) is closed, not handed to the next writer, which would
            // fail for good with "non-zero transaction depth".
            .after_release(|conn, _| {
                use sqlx::Connection;
                let healthy = !conn.is_in_transaction();
                Box::pin(async move { Ok(healthy) })
            })
            .before_acquire(|conn, _| {
                use sqlx::Connection;
                let healthy = !conn.is_in_transaction();
                Box::pin(async move { Ok(healthy) })
            })
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .map_err(query("journal mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(query("switch to WAL"))?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        let fresh = secrets::generate_secret().map_err(create_err)?;
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('identity', ?)")
            .bind(&fresh)
            .execute(&pool)
            .await
            .map_err(query("record identity"))?;
        let identity: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'identity'")
            .fetch_one(&pool)
            .await
            .map_err(query("read identity"))?;
        // A state file (and its WAL) made by an older dockhand, or by hand, may be readable by
        // others: it holds passwords, so it is made private.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            make_private(Path::new(&name)).map_err(create_err)?;
        }
        drop(guard);
        Ok(Self {
            pool,
            identity: identity.into(),
            path: path.to_owned(),
            file_id: file_id(path),
            appended: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Begins a write transaction holding SQLite's write lock from the start.
    ///
    /// A deferred transaction that reads before it writes cannot wait for a concurrent writer
    /// in WAL mode (SQLite reports "database is locked" at once, ignoring the busy timeout);
    /// `BEGIN IMMEDIATE` waits for the lock instead.
    pub(crate) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query("begin"))
    }
}

/// The device and inode a path names now, if it exists.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Takes group and other permissions away from an existing file (a missing one is fine);
/// says whether it had to.
pub fn make_private(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            let mode = m.permissions().mode() & 0o700;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the state file readable by its owner only; it will hold generated secrets.
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
