//! `kind: Database`: a PostgreSQL container per project, with a generated password, a host port
//! kept across recreations, a data volume that outlives it, and readiness proven by a real login.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::Context;
use crate::engine::labels;
use crate::engine::{
    ContainerOptions, ContainerSpec, Mount, PortBinding, SecretEnv, ServiceOptions,
};
use crate::engine::{EngineError, Observed, State};
use crate::lifecycle::Lifecycle;
use crate::manifest::database::{DatabaseSpec, DeletionPolicy};
use crate::manifest::fields::{engine_limits, Protocol, PullPolicy};
use crate::manifest::server::RestartPolicy;
use crate::manifest::{Kind, Object, ObjectKey, Phase, Spec};
use crate::plan::{Desired, Plan, Readiness};
use crate::store::{generate_secret, DatabaseSecret, Status, Store, StoreError};

/// Host ports dockhand picks from when a manifest leaves the port open.
pub const PORT_RANGE: RangeInclusive<u16> = 5433..=6000;

/// The port PostgreSQL listens on inside its container.
pub const CONTAINER_PORT: u16 = 5432;

/// Where the data lives in images that follow the official postgres contract.
pub const DATA_DIR: &str = "/var/lib/postgresql/data";

/// The first port in `PORT_RANGE` that is neither `taken` nor in use on the host.
pub fn allocate_port(taken: &BTreeSet<u16>, is_free: impl Fn(u16) -> bool) -> Option<u16> {
    PORT_RANGE
        .into_iter()
        .find(|p| !taken.contains(p) && is_free(*p))
}

/// Whether nothing listens on `port` on this host (all addresses).
pub fn host_port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// The host port a database is published on.
pub fn port(spec: &DatabaseSpec, secret: &DatabaseSecret) -> u16 {
    if spec.port.0 != 0 {
        spec.port.0
    } else {
        secret.port
    }
}

pub fn database_name(object: &Object, spec: &DatabaseSpec) -> String {
    spec.database
        .as_ref()
        .map_or_else(|| object.name.clone(), |d| d.0.clone())
}

pub fn user_name(object: &Object, spec: &DatabaseSpec) -> String {
    spec.user
        .as_ref()
        .map_or_else(|| object.name.clone(), |u| u.0.clone())
}

/// The data volume: `dh_<instance>_<name>-data`.
pub fn volume_name(instance: &str, name: &str) -> String {
    labels::volume_name(instance, &format!("{name}-data"))
}

/// The volume a database's data is on: the default one, or where its last major version
/// upgrade moved it.
pub fn data_volume(instance: &str, name: &str, secret: Option<&DatabaseSecret>) -> String {
    secret
        .and_then(|s| s.volume.clone())
        .unwrap_or_else(|| volume_name(instance, name))
}

/// How to reach a database.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl Connection {
    pub fn new(host: &str, object: &Object, spec: &DatabaseSpec, secret: &DatabaseSecret) -> Self {
        Self {
            host: host.to_owned(),
            port: port(spec, secret),
            database: database_name(object, spec),
            user: user_name(object, spec),
        }
    }

    /// How containers on a network it joins reach it: by its name, on PostgreSQL's own port.
    pub fn on_network(object: &Object, spec: &DatabaseSpec, secret: &DatabaseSecret) -> Self {
        Self {
            host: object.name.clone(),
            port: CONTAINER_PORT,
            ..Self::new("", object, spec, secret)
        }
    }

    /// How this host reaches it: the published port on the address it is published on
    /// (loopback unless `hostIp` says otherwise).
    pub fn from_host(object: &Object, spec: &DatabaseSpec, secret: &DatabaseSecret) -> Self {
        Self::new(&spec.host_address(), object, spec, secret)
    }

    /// How dockhand logs in with `password` (its statements never logged).
    fn login(&self, password: &str) -> sqlx::postgres::PgConnectOptions {
        use sqlx::ConnectOptions;
        sqlx::postgres::PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(password)
            .database(&self.database)
            .disable_statement_logging()
    }

    /// `postgres://user:PASSWORD@host:port/db`, with the password shown only when given.
    pub fn url(&self, password: Option<&str>) -> String {
        // An IPv6 address is bracketed in a URL.
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user,
            password.unwrap_or("***"),
            host,
            self.port,
            self.database
        )
    }
}

/// How a server reaches a database it takes values from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// On a network both join: by the database's name, on PostgreSQL's own port.
    Network,
    /// From the host's own network stack (`network: host`): the published port, as this
    /// host reaches it.
    Host,
    /// From a network the database does not join: the published port on the engine's host
    /// gateway (`host.docker.internal`), where the database is published as well.
    Gateway,
}

/// How server `server_name` reaches database `db`.
pub fn reach(
    server_name: &str,
    server: &crate::manifest::server::ServerSpec,
    db: &Object,
    spec: &DatabaseSpec,
) -> Reach {
    use crate::manifest::server::{Joins, NETWORK_HOST};
    let joins = server.joins(server_name);
    if matches!(&joins, Joins::Mode(m) if m == NETWORK_HOST) {
        return Reach::Host;
    }
    let shared = spec
        .joins(&db.name)
        .networks()
        .iter()
        .any(|d| joins.networks().iter().any(|j| j.network == d.network));
    if shared {
        Reach::Network
    } else {
        Reach::Gateway
    }
}

/// The databases some server reaches through the engine's host gateway: these are published
/// there too (a port published on loopback only is out of a container's reach).
pub fn reached_through_gateway(objects: &[Object]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in objects {
        let Spec::Server(s) = &o.spec else { continue };
        for name in s.env.values().filter_map(|v| v.database()) {
            let db = objects.iter().find_map(|x| match &x.spec {
                Spec::Database(d) if x.name == name => Some((x, d)),
                _ => None,
            });
            if let Some((db, spec)) = db {
                if reach(&o.name, s, db, spec) == Reach::Gateway {
                    out.insert(db.name.clone());
                }
            }
        }
    }
    out
}

/// The host addresses a database's port is published on: `hostIp` (loopback by default), and
/// the host gateway when servers reach it from there. A swarm publishes on every address of
/// the node (it binds no address).
pub fn publish_ips(
    spec: &DatabaseSpec,
    gateway: Option<std::net::IpAddr>,
    swarm: bool,
) -> Vec<Option<String>> {
    if swarm {
        return vec![None];
    }
    let ip = spec.publish_ip();
    let mut out = vec![Some(ip.to_string())];
    if let Some(g) = gateway.filter(|g| !ip.is_unspecified() && *g != ip) {
        out.push(Some(g.to_string()));
    }
    out
}

/// The PostgreSQL container a Database object asks for, published on `publish` (see
/// `publish_ips`).
pub fn container_spec(
    instance: &str,
    state_id: &str,
    object: &Object,
    spec: &DatabaseSpec,
    spec_hash: &str,
    secret: &DatabaseSecret,
    publish: &[Option<String>],
) -> ContainerSpec {
    let mut container_labels = labels::for_object(instance, state_id, object, spec_hash);
    let volume = data_volume(instance, &object.name, Some(secret));
    if spec.deletion_policy == DeletionPolicy::Delete {
        container_labels.insert(labels::DELETE_VOLUME.into(), volume.clone());
    }
    let (memory, nano_cpus) = engine_limits(spec.resources.as_ref());
    ContainerSpec {
        name: labels::container_name(instance, Kind::Database, &object.name),
        image: spec.image(),
        pull_policy: PullPolicy::IfNotPresent,
        command: None,
        entrypoint: None,
        env: vec![
            format!("POSTGRES_USER={}", user_name(object, spec)),
            format!("POSTGRES_DB={}", database_name(object, spec)),
        ],
        secret_files: Vec::new(),
        secret_env: vec![SecretEnv {
            var: "POSTGRES_PASSWORD".into(),
            value: secret.password.clone(),
        }],
        working_dir: None,
        user: None,
        ports: publish
            .iter()
            .map(|ip| PortBinding {
                container: CONTAINER_PORT,
                host: port(spec, secret),
                host_ip: ip.clone(),
                protocol: Protocol::Tcp,
                // On a swarm, published where it runs: the node its data is on.
                host_mode: true,
            })
            .collect(),
        mounts: vec![Mount {
            volume: true,
            source: volume,
            target: DATA_DIR.into(),
            read_only: false,
            relabel: None,
        }],
        memory,
        nano_cpus,
        memory_reservation: None,
        cpu_reservation: None,
        // One task, kept on the node its volume was made on (see `ServiceOptions::pinned`).
        service: ServiceOptions {
            replicas: 1,
            pinned: true,
            ..ServiceOptions::default()
        },
        stop_timeout: Some(30),
        labels: container_labels,
        healthcheck: None,
        // PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        stop_signal: Some("SIGINT".into()),
        extra_hosts: Vec::new(),
        network_mode: None,
        endpoints: Vec::new(),
        options: ContainerOptions::default(),
        build: None,
    }
}

/// A Database as the planner sees it: always restarted, and ready only once dockhand logged in;
/// the container is known once its secret is.
pub fn desired(
    o: &Object,
    d: &DatabaseSpec,
    ctx: &Context<'_>,
    lifecycle: Lifecycle,
) -> (Desired, Option<ContainerSpec>) {
    let key = o.key();
    let gateway = ctx
        .host_gateway
        .filter(|_| ctx.through_gateway.contains(&o.name));
    let publish = publish_ips(d, gateway, ctx.swarm);
    // Where it is published is part of what runs: a new address recreates it.
    let addresses: Vec<&str> = publish.iter().flatten().map(String::as_str).collect();
    let hash = crate::manifest::short_hash(
        format!("{}|publish:{}", o.container_hash(), addresses.join(",")).as_bytes(),
    );
    let hash = ctx.with_restarts(&o.key(), hash);
    let secret = ctx.secrets.get(&o.name);
    let joins = d.joins(&o.name);
    let container = secret.map(|secret| {
        let mut c = container_spec(ctx.instance, ctx.state_id, o, d, &hash, secret, &publish);
        (c.network_mode, c.endpoints) = ctx.networks.endpoints(&joins);
        c
    });
    let never_initialised = secret.is_some_and(|s| !s.initialized);
    let desired = Desired {
        readiness: Some(Readiness {
            ready: ctx.ready.contains_key(&key),
            found: ctx.ready.get(&key).cloned().flatten(),
            timeout: d.ready_timeout,
            disposable_volume: never_initialised
                .then(|| data_volume(ctx.instance, &o.name, secret)),
        }),
        key,
        spec_hash: hash,
        restart: RestartPolicy::Always,
        max_restarts: None,
        restart_unhealthy: false,
        start_first: false,
        hold: None,
        stopped: None,
        revision: o.spec_hash(),
        rollback_after: None,
        rolled_back: None,
        deps: Vec::new(),
        lifecycle,
    };
    (desired, container)
}

/// Why a database whose data volume outlived its state file is held, and how to recover.
pub fn stranded_message(instance: &str, name: &str) -> String {
    let volume = volume_name(instance, name);
    format!(
        "data volume {volume} exists but this state file holds no password for it (was the state file lost or replaced?); \
         nothing is created or removed until you recover: `dockhand db adopt {name} --password-file FILE` with the password it was created with, \
         or remove the volume yourself if its data is not needed"
    )
}

/// The desired databases that have no secret yet.
pub fn without_secret<'a>(
    desired: &'a [Object],
    secrets: &'a HashMap<String, DatabaseSecret>,
) -> impl Iterator<Item = &'a Object> {
    desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Database(_)) && !secrets.contains_key(&o.name))
}

/// This instance's secrets among every instance's (`Store::database_secrets`), by name.
pub fn secrets_of(
    instance: &str,
    all: &[(String, DatabaseSecret)],
) -> HashMap<String, DatabaseSecret> {
    all.iter()
        .filter(|(i, _)| i == instance)
        .map(|(_, s)| (s.name.clone(), s.clone()))
        .collect()
}

/// Secrets for the desired databases that have none yet: a generated password, and a host port
/// from `PORT_RANGE` that no other database of any instance holds, no manifest fixes, and
/// nothing on the host listens on. None for the `stranded` ones, whose existing data a new
/// password could not open.
pub fn new_secrets(
    instance: &str,
    all: &[(String, DatabaseSecret)],
    desired: &[Object],
    stranded: &HashSet<String>,
) -> Result<Vec<DatabaseSecret>, EngineError> {
    let mut taken = taken_ports(all, desired);
    let mut out = Vec::new();
    for o in desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Database(_)))
    {
        let known = all.iter().any(|(i, s)| i == instance && s.name == o.name);
        if known || stranded.contains(&o.name) {
            continue;
        }
        let password = generate_secret().map_err(|e| EngineError::Engine {
            op: "generate password for",
            target: o.key().to_string(),
            message: e.to_string(),
        })?;
        let port = allocate_port(&taken, host_port_is_free).ok_or_else(|| EngineError::Engine {
            op: "allocate a port for",
            target: o.key().to_string(),
            message: "every port in 5433-6000 is taken".into(),
        })?;
        taken.insert(port);
        out.push(DatabaseSecret {
            name: o.name.clone(),
            password,
            port,
            initialized: false,
            volume: None,
            old_volume: None,
        });
    }
    Ok(out)
}

/// Logs in to every running database not yet proven ready for its current container; returns
/// the ones that are ready.
pub async fn probe_all(
    desired: &[Object],
    observed: &[Observed],
    statuses: &HashMap<ObjectKey, Status>,
    secrets: &HashMap<String, DatabaseSecret>,
) -> HashMap<ObjectKey, Option<String>> {
    let probes = desired.iter().filter_map(|o| {
        let Spec::Database(d) = &o.spec else {
            return None;
        };
        let key = o.key();
        let c = observed
            .iter()
            .find(|c| c.key.as_ref() == Some(&key) && c.state == State::Running)?;
        let verified = statuses
            .get(&key)
            .and_then(|s| s.lifecycle.ready_for.as_deref())
            == Some(c.run_id().as_str());
        let secret = secrets.get(&o.name)?;
        Some(async move {
            if verified {
                return Some((key, None));
            }
            let conn = Connection::from_host(o, d, secret);
            let version = probe(&conn, &secret.password).await.ok()?;
            Some((key, Some(format!("PostgreSQL {version}"))))
        })
    });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A database that accepted a login holds data from now on; one removed with its volume
/// (deletionPolicy Delete) gives up its secret.
pub async fn record(
    store: &Store,
    instance: &str,
    plan: &Plan,
    removed_with_volume: &[ObjectKey],
    secrets: &HashMap<String, DatabaseSecret>,
) -> Result<(), StoreError> {
    for (key, v) in &plan.verdicts {
        let fresh = secrets.get(&key.name).is_some_and(|s| !s.initialized);
        if key.kind == Kind::Database && fresh && v.phase == Phase::Ready {
            store.mark_database_initialized(instance, &key.name).await?;
        }
    }
    for key in removed_with_volume {
        if key.kind == Kind::Database {
            store.delete_database_secret(instance, &key.name).await?;
        }
    }
    Ok(())
}

/// The host ports a new allocation may not take: every database's of the state file, and every
/// port a manifest fixes.
fn taken_ports(all: &[(String, DatabaseSecret)], desired: &[Object]) -> BTreeSet<u16> {
    let mut taken: BTreeSet<u16> = all.iter().map(|(_, s)| s.port).collect();
    for o in desired {
        match &o.spec {
            Spec::Database(d) if d.port.0 != 0 => {
                taken.insert(d.port.0);
            }
            Spec::Server(s) => taken.extend(s.ports.iter().map(|p| p.host.0).filter(|p| *p != 0)),
            Spec::Route(r) => {
                taken.insert(r.listen.0.port());
            }
            Spec::Database(_) | Spec::Network(_) | Spec::Secret(_) => {}
        }
    }
    taken
}

/// Databases on an allocated port whose container could not start because another program
/// took that port since: each gets the next free port, recorded, and a restart of its object,
/// so the next pass recreates it there (and the servers that reach it through the host follow,
/// their connection's port having changed). A port the manifest fixes is the operator's to
/// change, and stays.
pub async fn move_taken_ports(
    store: &Store,
    instance: &str,
    desired: &[Object],
    outcomes: &[crate::reconcile::execute::Outcome],
) -> Result<Vec<crate::store::NewEvent>, StoreError> {
    let blocked: Vec<(&ObjectKey, u16, &str)> = outcomes
        .iter()
        .filter_map(|x| match (x.action.key(), &x.result) {
            (Some(k), Err(EngineError::PortInUse { port, holder, .. }))
                if k.kind == Kind::Database =>
            {
                Some((k, *port, holder.as_str()))
            }
            _ => None,
        })
        .filter(|(k, _, _)| {
            desired
                .iter()
                .any(|o| o.key() == **k && matches!(&o.spec, Spec::Database(d) if d.port.0 == 0))
        })
        .collect();
    if blocked.is_empty() {
        return Ok(Vec::new());
    }
    let all = store.database_secrets().await?;
    let mut taken = taken_ports(&all, desired);
    let mut events = Vec::new();
    for (key, port, holder) in blocked {
        let Some(new) = allocate_port(&taken, host_port_is_free) else {
            continue;
        };
        taken.insert(new);
        store.set_database_port(instance, &key.name, new).await?;
        store
            .request_restart(instance, std::slice::from_ref(key))
            .await?;
        events.push(crate::store::NewEvent {
            key: Some(key.clone()),
            reason: "port-moved",
            message: format!(
                "its port {port} was taken by {holder}; moved to {new} (servers reaching it through the host follow)"
            ),
        });
    }
    Ok(events)
}

/// Forgets the databases that are no longer desired, have no container, and never accepted a
/// login: no data can be in their volume, so the volume goes (when it is this instance's) and
/// then their password and port, which would otherwise stay reserved for good. A database
/// that ever held data is never touched here.
pub async fn forget_never_initialised<R: crate::engine::Engine>(
    engine: &R,
    store: &Store,
    instance: &str,
    desired: &[Object],
    observed: &[Observed],
    secrets: &HashMap<String, DatabaseSecret>,
) -> Result<Vec<String>, StoreError> {
    let mut forgotten = Vec::new();
    for (name, s) in secrets {
        let key = ObjectKey::new(Kind::Database, name.clone());
        let wanted = desired.iter().any(|o| o.key() == key);
        let running = observed.iter().any(|c| c.key.as_ref() == Some(&key));
        if s.initialized || wanted || running {
            continue;
        }
        let volume = data_volume(instance, name, Some(s));
        let gone = match engine.volume_labels(&volume).await {
            Ok(None) => true,
            Ok(Some(l)) => {
                labels::is_ours(&l, instance) && engine.remove_volume(&volume).await.is_ok()
            }
            Err(_) => false,
        };
        if gone {
            store.delete_database_secret(instance, name).await?;
            forgotten.push(name.clone());
        }
    }
    Ok(forgotten)
}

/// What databases' password Secrets ask of a pass.
#[derive(Debug, Default)]
pub struct SecretPasswords {
    /// Databases that must wait, and why (the Secret is undeclared, unreadable, or no text).
    pub holds: HashMap<ObjectKey, String>,
    /// Databases not yet initialised whose password is now the Secret's (to record).
    pub changed: Vec<String>,
    /// Initialised databases whose Secret holds a new password: the role is altered first (by
    /// `rotate`), and only then is the new one recorded and given to servers.
    pub rotations: Vec<(String, String)>,
}

/// Databases whose password is a Secret's value take it in place of the generated one; a
/// database that holds data already keeps its password until the role is rotated.
/// A password as both sides take it: a file's one trailing newline is not part of it (initdb
/// reads the first line of its password file, and a login with the newline never matched),
/// and a line break inside it is refused rather than cut.
fn one_line(text: &str) -> Result<String, String> {
    let t = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if t.contains(['\n', '\r']) {
        return Err("holds a line break inside it; a database password is one line (a single trailing newline is ignored)".into());
    }
    Ok(t.to_owned())
}

pub fn use_secret_passwords(
    desired: &[Object],
    values: &super::secret::Values,
    secrets: &mut HashMap<String, DatabaseSecret>,
) -> SecretPasswords {
    let mut out = SecretPasswords::default();
    for o in desired {
        let Spec::Database(d) = &o.spec else { continue };
        let Some(from) = &d.password else { continue };
        let name = from.from_secret.0.as_str();
        let value = match values.get(name) {
            None => Err(format!(
                "spec.password: secret {name} is not declared (kind: Secret); waiting for it"
            )),
            Some(Err(why)) => Err(format!("spec.password: secret {name}: {why}")),
            Some(Ok(v)) => v
                .text()
                .map_err(|why| format!("spec.password: secret {name}: {why}"))
                .and_then(|t| {
                    one_line(t).map_err(|why| format!("spec.password: secret {name}: {why}"))
                }),
        };
        match value {
            Ok(password) => match secrets.get_mut(&o.name).filter(|s| s.password != password) {
                Some(s) if s.initialized => out.rotations.push((o.name.clone(), password)),
                Some(s) => {
                    s.password = password;
                    out.changed.push(o.name.clone());
                }
                None => {}
            },
            Err(why) => {
                out.holds.insert(o.key(), why);
            }
        }
    }
    out
}

/// Changes the role's password from `old` to `new`, logged in as the role itself (a role may
/// change its own password). The new password is sent as a SCRAM-SHA-256 verifier made here, as
/// `psql`'s `\password` does, so it never reaches the server's statement log in clear.
pub async fn rotate(conn: &Connection, old: &str, new: &str) -> Result<(), String> {
    use sqlx::{ConnectOptions, Connection as _};
    let verifier = scram_verifier(new).map_err(|e| e.to_string())?;
    let opts = conn.login(old);
    let attempt = async {
        let mut c = opts.connect().await.map_err(|e| e.to_string())?;
        let statement: String = sqlx::query_scalar::<_, String>(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
        )
        .bind(conn.user.as_str())
        .bind(verifier.as_str())
        .fetch_one(&mut c)
        .await
        .map_err(|e| e.to_string())?;
        sqlx::query(&statement)
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let _ = c.close().await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677, 4096 iterations):
/// `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, all base64.
pub fn scram_verifier(password: &str) -> Result<String, std::io::Error> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type H = Hmac<Sha256>;
    const ITERATIONS: u32 = 4096;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(std::io::Error::other)?;
    let mac = |key: &[u8], data: &[u8]| -> [u8; 32] {
        let mut m = <H as Mac>::new_from_slice(key).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().into()
    };
    // PBKDF2-HMAC-SHA256 with one block: U1 = HMAC(P, salt || 1), Ui = HMAC(P, Ui-1).
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = mac(password.as_bytes(), &first);
    let mut salted = u;
    for _ in 1..ITERATIONS {
        u = mac(password.as_bytes(), &u);
        salted.iter_mut().zip(u).for_each(|(s, x)| *s ^= x);
    }
    let client_key = mac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    ))
}

/// What `/metrics` shows of a database: its connections and its size in bytes, asked with a
/// login of its own (which counts among the connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub connections: i64,
    pub size_bytes: i64,
}

/// Asks a running database for its `Stats`.
pub async fn stats(conn: &Connection, password: &str) -> Result<Stats, String> {
    use sqlx::{ConnectOptions, Connection as _};
    let opts = conn.login(password);
    let attempt = async {
        let mut c = opts.connect().await.map_err(|e| e.to_string())?;
        let (connections, size_bytes): (i64, i64) = sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), pg_database_size(current_database())",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| e.to_string())?;
        let _ = c.close().await;
        Ok(Stats {
            connections,
            size_bytes,
        })
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Ready means: a real login with the generated credentials, and a query; returns the
/// server's version (`15.18`), which the manifest's `version` may not match.
pub async fn probe(conn: &Connection, password: &str) -> Result<String, String> {
    use sqlx::{ConnectOptions, Connection as _};
    let opts = conn.login(password);
    let attempt = async {
        let mut c = opts.connect().await.map_err(|e| e.to_string())?;
        let version: String =
            sqlx::query_scalar::<_, String>("SELECT current_setting('server_version')")
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string())?;
        let _ = c.close().await;
        // `15.18 (Debian 15.18-0+deb12u1)`: the number is what matters.
        Ok(version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_files_trailing_newline_is_not_part_of_the_password() {
        assert_eq!(one_line("pw\n").as_deref(), Ok("pw"));
        assert_eq!(one_line("pw\r\n").as_deref(), Ok("pw"));
        assert_eq!(one_line("pw").as_deref(), Ok("pw"));
        assert!(one_line("p\nw\n").is_err());
    }

    #[test]
    fn editing_only_the_backup_or_restore_from_keeps_the_containers_hash() {
        let db = |extra: &str| {
            crate::manifest::parse_str(
                &format!("apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: d}}\nspec:\n  port: 5433\n{extra}"),
                "d.yaml",
                None,
            )
            .expect("parses")
            .remove(0)
        };
        let plain = db("").container_hash();
        let backed = db("  backup: {schedule: '@daily', to: {volume: b}}\n").container_hash();
        let moved = db(
            "  backup: {schedule: '@hourly', keep: 3, to: {volume: c}}\n  restoreFrom: latest\n",
        )
        .container_hash();
        assert_eq!(plain, backed);
        assert_eq!(backed, moved);
        assert_ne!(db("  resources: {memory: 512m}\n").container_hash(), plain);
    }

    #[test]
    fn a_scram_verifier_has_postgres_stored_form_and_a_fresh_salt() {
        let a = scram_verifier("pw").expect("random");
        let b = scram_verifier("pw").expect("random");
        assert_ne!(a, b, "salted");
        let (head, keys) = a
            .split_once('$')
            .and_then(|(h, rest)| Some((h, rest.split_once('$')?)))
            .map(|(h, (_, k))| (h, k))
            .expect("three parts");
        assert_eq!(head, "SCRAM-SHA-256");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        let (stored, server) = keys.split_once(':').expect("two keys");
        assert_eq!((stored.len(), server.len()), (44, 44), "{a}");
        assert!(!a.contains("pw:"));
    }

    #[test]
    fn passwords_are_long_random_and_url_safe() {
        let a = generate_secret().expect("urandom");
        let b = generate_secret().expect("urandom");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn port_allocation_skips_taken_and_busy_ports() {
        let taken = BTreeSet::from([5433]);
        assert_eq!(allocate_port(&taken, |p| p != 5434), Some(5435));
        assert_eq!(allocate_port(&BTreeSet::new(), |_| false), None);
    }

    #[test]
    fn the_url_hides_the_password_unless_asked() {
        let c = Connection {
            host: "127.0.0.1".into(),
            port: 5433,
            database: "orders".into(),
            user: "orders".into(),
        };
        assert_eq!(c.url(None), "postgres://orders:***@127.0.0.1:5433/orders");
        assert_eq!(
            c.url(Some("pw")),
            "postgres://orders:pw@127.0.0.1:5433/orders"
        );
    }
}
