//! The state file: desired objects (with the last good spec of broken files), status and events.
//!
//! SQLite in WAL mode through sqlx, schema in `migrations/`. Queries are checked at run time so
//! the crate builds without a database. A pass that changes nothing writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::engine::PublishedPort;
use crate::lifecycle::Lifecycle;
use crate::manifest::{Kind, ManifestError, Object, ObjectKey};

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
    #[error("state file holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
}

fn query(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// An object as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredObject {
    pub object: Object,
    pub generation: i64,
    pub spec_hash: String,
    pub last_error: Option<String>,
}

/// Observed state of one object, as the last pass saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(skip)]
    pub key: Option<ObjectKey>,
    pub phase: String,
    pub container_id: Option<String>,
    pub observed_generation: i64,
    pub message: Option<String>,
    pub ports: Vec<PublishedPort>,
    pub updated_at: String,
    #[serde(skip)]
    pub lifecycle: Lifecycle,
}

impl Status {
    /// The status of an object no pass has looked at yet.
    pub fn pending(key: ObjectKey) -> Self {
        Status {
            key: Some(key),
            phase: "Pending".into(),
            container_id: None,
            observed_generation: 0,
            message: None,
            ports: Vec::new(),
            updated_at: String::new(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// Equal in everything but the time it was written.
    pub fn same_as(&self, other: &Status) -> bool {
        let mut a = self.clone();
        a.updated_at.clone_from(&other.updated_at);
        a == *other
    }
}

/// What dockhand generated for one managed database.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSecret {
    pub name: String,
    pub password: String,
    /// The host port allocated for it (used when its manifest leaves the port to dockhand).
    pub port: u16,
    pub initialized: bool,
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches logs, not even through a debug print.
        f.debug_struct("DatabaseSecret")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("initialized", &self.initialized)
            .finish_non_exhaustive()
    }
}

/// One row of the event log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: i64,
    pub time: String,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub reason: String,
    pub message: String,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub key: Option<ObjectKey>,
    pub reason: &'static str,
    pub message: String,
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

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Woken after events are appended, for followers in this process (the API's stream).
    appended: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the state file.
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
        let guard = tokio::task::spawn_blocking(move || setup_lock(&lock_path))
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
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
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
        drop(guard);
        Ok(Self {
            pool,
            appended: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub async fn objects(&self, instance: &str) -> Result<Vec<StoredObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT object, generation, spec_hash, last_error FROM objects WHERE instance = ? ORDER BY kind, name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("objects"))?;
        rows.into_iter()
            .map(|r| {
                let json: String = r.get(0);
                let object: Object =
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
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

    /// Begins a write transaction holding SQLite's write lock from the start.
    ///
    /// A deferred transaction that reads before it writes cannot wait for a concurrent writer
    /// in WAL mode (SQLite reports "database is locked" at once, ignoring the busy timeout);
    /// `BEGIN IMMEDIATE` waits for the lock instead.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(query("begin"))
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

    /// Writes the statuses that differ from `current` (what `statuses` returned at the start of
    /// the pass), in one transaction, and returns the objects whose status changed.
    pub async fn record_status(
        &self,
        instance: &str,
        current: &HashMap<ObjectKey, Status>,
        statuses: &[Status],
    ) -> Result<std::collections::HashSet<ObjectKey>, StoreError> {
        let changed: Vec<&Status> = statuses
            .iter()
            .filter(|s| {
                let Some(key) = &s.key else { return false };
                match current.get(key) {
                    Some(c) => !c.same_as(s),
                    None => true,
                }
            })
            .collect();
        let keys = changed.iter().filter_map(|s| s.key.clone()).collect();
        if changed.is_empty() {
            return Ok(keys);
        }
        let mut tx = self.write().await?;
        for s in changed {
            let Some(key) = &s.key else { continue };
            let ports = serde_json::to_string(&s.ports).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO status (instance, kind, name, phase, container_id, observed_generation, message, ports, lifecycle)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (instance, kind, name) DO UPDATE SET phase = excluded.phase,
                   container_id = excluded.container_id, observed_generation = excluded.observed_generation,
                   message = excluded.message, ports = excluded.ports, lifecycle = excluded.lifecycle,
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(instance)
            .bind(key.kind.label())
            .bind(&key.name)
            .bind(&s.phase)
            .bind(&s.container_id)
            .bind(s.observed_generation)
            .bind(&s.message)
            .bind(ports)
            .bind(serde_json::to_string(&s.lifecycle).unwrap_or_else(|_| "{}".into()))
            .execute(&mut *tx)
            .await
            .map_err(query("upsert status"))?;
        }
        tx.commit().await.map_err(query("commit"))?;
        Ok(keys)
    }

    pub async fn statuses(&self, instance: &str) -> Result<Vec<Status>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, phase, container_id, observed_generation, message, ports, updated_at, lifecycle
             FROM status WHERE instance = ? ORDER BY kind, name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("statuses"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let kind: String = r.get(0);
                let ports: String = r.get(6);
                Status {
                    key: Kind::parse(&kind).map(|k| ObjectKey::new(k, r.get::<String, _>(1))),
                    phase: r.get(2),
                    container_id: r.get(3),
                    observed_generation: r.get(4),
                    message: r.get(5),
                    ports: serde_json::from_str(&ports).unwrap_or_default(),
                    updated_at: r.get(7),
                    lifecycle: serde_json::from_str(&r.get::<String, _>(8)).unwrap_or_default(),
                }
            })
            .collect())
    }

    pub async fn append_events(
        &self,
        instance: &str,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO events (instance, kind, name, reason, message) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(instance)
            .bind(e.key.as_ref().map(|k| k.kind.label()))
            .bind(e.key.as_ref().map(|k| k.name.as_str()))
            .bind(e.reason)
            .bind(&e.message)
            .execute(&mut *tx)
            .await
            .map_err(query("append event"))?;
        }
        tx.commit().await.map_err(query("commit"))?;
        self.appended.notify_waiters();
        Ok(())
    }

    /// Every managed database's secret, across all instances (ports are allocated host-wide).
    pub async fn database_secrets(&self) -> Result<Vec<(String, DatabaseSecret)>, StoreError> {
        let rows = sqlx::query("SELECT instance, name, password, port, initialized FROM databases ORDER BY instance, name")
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

    /// Events oldest first: the newest `limit` ones, or with `after`, those past that id.
    /// Only those of `key` when given.
    pub async fn events(
        &self,
        instance: &str,
        key: Option<&ObjectKey>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, kind, name, reason, message FROM events
             WHERE instance = ? AND (? IS NULL OR (kind = ? AND name = ?)) AND id > ?
             ORDER BY id DESC LIMIT ?",
        )
        .bind(instance)
        .bind(key.map(|k| k.kind.label()))
        .bind(key.map(|k| k.kind.label()))
        .bind(key.map(|k| k.name.as_str()))
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query("events"))?;
        let mut events: Vec<Event> = rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                time: r.get(1),
                kind: r.get(2),
                name: r.get(3),
                reason: r.get(4),
                message: r.get(5),
            })
            .collect();
        events.reverse();
        Ok(events)
    }
}

impl Store {
    /// Rows of the `manifests` table for `instance`: (name, yaml).
    pub async fn manifest_rows(&self, instance: &str) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as("SELECT name, yaml FROM manifests WHERE instance = ? ORDER BY name")
            .bind(instance)
            .fetch_all(&self.pool)
            .await
            .map_err(query("manifests"))
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

    /// Engine per-client routes of `instance`: route name → (client, target).
    pub async fn route_clients(
        &self,
        instance: &str,
    ) -> Result<BTreeMap<String, Vec<ClientRoute>>, StoreError> {
        let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT route, client, server, port, updated_at FROM route_clients WHERE instance = ? ORDER BY route, client",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("route clients"))?;
        let mut out: BTreeMap<String, Vec<ClientRoute>> = BTreeMap::new();
        for (route, client, server, port, updated_at) in rows {
            let Ok(client) = client.parse() else { continue };
            out.entry(route).or_default().push(ClientRoute {
                client,
                server,
                port: port as u16,
                updated_at,
            });
        }
        Ok(out)
    }

    pub async fn set_route_client(
        &self,
        instance: &str,
        route: &str,
        client: &ClientRoute,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO route_clients (instance, route, client, server, port) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (instance, route, client) DO UPDATE SET server = excluded.server,
               port = excluded.port, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(instance)
        .bind(route)
        .bind(client.client.to_string())
        .bind(&client.server)
        .bind(i64::from(client.port))
        .execute(&self.pool)
        .await
        .map_err(query("set route client"))?;
        Ok(())
    }

    /// Removes a per-client route; returns whether there was one.
    pub async fn delete_route_client(
        &self,
        instance: &str,
        route: &str,
        client: std::net::Ipv4Addr,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM route_clients WHERE instance = ? AND route = ? AND client = ?",
        )
        .bind(instance)
        .bind(route)
        .bind(client.to_string())
        .execute(&self.pool)
        .await
        .map_err(query("delete route client"))?;
        Ok(r.rows_affected() > 0)
    }

    /// Resolves after the next `append_events` of this process (or after `within`).
    pub async fn events_appended(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.appended.notified()).await;
    }
}

/// A runtime per-client route: this client address goes to a server's port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRoute {
    pub client: std::net::Ipv4Addr,
    pub server: String,
    pub port: u16,
    pub updated_at: String,
}

impl ClientRoute {
    /// A route for `client` to `server`'s `port`, stamped now; the API and the CLI check their
    /// input here alike.
    pub fn new(client: &str, server: &str, port: u16) -> Result<Self, String> {
        let client = Self::parse_client(client)?;
        crate::manifest::check_dns_label(server).map_err(|e| format!("server: {e}"))?;
        if port == 0 {
            return Err("port: expected 1-65535".into());
        }
        Ok(Self {
            client,
            server: server.to_owned(),
            port,
            updated_at: crate::lifecycle::rfc3339(crate::lifecycle::now_millis()),
        })
    }

    pub fn parse_client(client: &str) -> Result<std::net::Ipv4Addr, String> {
        client.parse().map_err(|_| {
            format!("invalid client address {client:?}: expected an IPv4 address like 192.168.1.50")
        })
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

/// Blocks until this process alone may set up the state file; released when dropped.
fn setup_lock(path: &Path) -> std::io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".setup-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))?;
    file.lock()?;
    Ok(file)
}

/// Creates the state file readable by its owner only; it will hold generated secrets.
fn create_private(path: &Path) -> std::io::Result<()> {
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
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn objects(text: &str, file: &str) -> Vec<Object> {
        parse_str(text, file, None).expect("parses")
    }

    async fn apply(store: &Store, desired: &[Object], prune: bool) -> ApplyReport {
        let existing = store.objects("i").await.expect("reads");
        store
            .apply_desired("i", &existing, desired, &[], prune)
            .await
            .expect("applies")
    }

    const WEB: &str =
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec: {image: busybox}\n";

    #[tokio::test]
    async fn state_file_is_private_and_objects_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let store = Store::open(&path).await.expect("opens");
        use std::os::unix::fs::PermissionsExt;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("journal mode");
        assert_eq!(journal, "wal");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let web = objects(WEB, "a.yaml");
        let r = apply(&store, &web, true).await;
        assert_eq!(r.changed.len(), 1);
        let again = apply(&store, &web, true).await;
        assert_eq!(
            again,
            ApplyReport::default(),
            "a no-op apply changes nothing"
        );
        let changed = objects(&WEB.replace("busybox", "busybox:2"), "a.yaml");
        let r = apply(&store, &changed, true).await;
        assert_eq!(r.changed[0].1, 2, "generation bumps on a spec change");
        assert_eq!(store.objects("other").await.expect("reads").len(), 0);
    }

    #[tokio::test]
    async fn concurrent_opens_of_a_new_state_file_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("race.db");
        let opens = (0..8).map(|_| {
            let path = path.clone();
            tokio::spawn(async move { Store::open(&path).await.map(|_| ()) })
        });
        for r in futures_util::future::join_all(opens).await {
            r.expect("task").expect("open");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut r = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(
            &mut r,
            &serde_json::json!({"a": null, "b": {"c": 5, "d": null}, "e": [1]}),
        );
        assert_eq!(r, serde_json::json!({"b": {"c": 5}, "e": [1]}));
    }

    #[tokio::test]
    async fn source_writes_bump_the_version_and_status_writes_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let store = Store::open(&path).await.expect("opens");
        let mut watch = VersionWatch::open(&path).await.expect("watch");
        let v0 = watch.source_version().await.expect("version");
        let d0 = watch.data_version().await.expect("data version");
        store
            .append_events(
                "i",
                &[NewEvent {
                    key: None,
                    reason: "x",
                    message: "y".into(),
                }],
            )
            .await
            .expect("event");
        assert_ne!(
            watch.data_version().await.expect("dv"),
            d0,
            "any commit moves data_version"
        );
        assert_eq!(
            watch.source_version().await.expect("v"),
            v0,
            "an event is not a source change"
        );
        let key = ObjectKey::new(Kind::Server, "web");
        assert!(store.put_applied("i", &key, WEB).await.expect("put"));
        assert!(!store.put_applied("i", &key, WEB).await.expect("put again"));
        let v1 = watch.source_version().await.expect("v");
        assert_eq!(v1, v0 + 1, "an unchanged put writes nothing");
        assert!(store.delete_applied("i", &key).await.expect("delete"));
        assert_eq!(watch.source_version().await.expect("v"), v1 + 1);
        // Per-client routes written by another process must wake `up` too.
        let r = ClientRoute::new("10.0.0.7", "web", 8080).expect("valid");
        store.set_route_client("i", "game", &r).await.expect("set");
        assert_eq!(watch.source_version().await.expect("v"), v1 + 2);
        let ip = r.client;
        assert!(store
            .delete_route_client("i", "game", ip)
            .await
            .expect("delete"));
        assert_eq!(watch.source_version().await.expect("v"), v1 + 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_read_then_write_transactions_never_fail_as_locked() {
        // A deferred transaction that reads and then writes cannot wait for another writer
        // in WAL mode: SQLite answers SQLITE_BUSY at once. Every such transaction here must
        // take the write lock up front so the busy timeout applies.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).await.expect("opens");
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..40 {
                    let key = ObjectKey::new(Kind::Server, format!("s{}", n % 5));
                    let yaml = WEB.replace("busybox", &format!("busybox:{t}-{n}"));
                    store.put_applied("i", &key, &yaml).await?;
                    store
                        .patch_report("i", &key, &serde_json::json!({ "n": n, "t": t }))
                        .await?;
                    store
                        .append_events(
                            "i",
                            &[NewEvent {
                                key: Some(key.clone()),
                                reason: "x",
                                message: "y".into(),
                            }],
                        )
                        .await?;
                }
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await
                .expect("joins")
                .expect("no transaction fails as locked");
        }
    }

    #[test]
    fn client_routes_check_address_server_and_port() {
        let r = ClientRoute::new("192.168.1.50", "skywars-1", 5520).expect("valid");
        assert_eq!(
            (r.client.to_string(), r.port),
            ("192.168.1.50".into(), 5520)
        );
        for (client, server, port, why) in [
            ("192.168.1", "web", 80, "invalid client address"),
            ("::1", "web", 80, "invalid client address"),
            ("10.0.0.1", "Web_1", 80, "server:"),
            ("10.0.0.1", "web", 0, "port: expected 1-65535"),
        ] {
            let e = ClientRoute::new(client, server, port).expect_err(client);
            assert!(e.contains(why), "{e}");
        }
    }

    #[tokio::test]
    async fn objects_are_deleted_only_when_pruning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).await.expect("opens");
        apply(&store, &objects(WEB, "a.yaml"), true).await;
        let r = apply(&store, &[], false).await;
        assert!(r.deleted.is_empty());
        let r = apply(&store, &[], true).await;
        assert_eq!(r.deleted.len(), 1);
    }
}
