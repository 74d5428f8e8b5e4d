//! `kind: Database`: a PostgreSQL container per project, with a generated password, a host port
//! kept across recreations, a data volume that outlives it, and readiness proven by a real login.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::engine::labels;
use crate::engine::{ContainerSpec, Mount, PortBinding};
use crate::manifest::database::{DatabaseSpec, DeletionPolicy};
use crate::manifest::server::{engine_limits, Protocol, PullPolicy};
use crate::manifest::{Kind, Object};
use crate::store::DatabaseSecret;

/// Host ports dockhand picks from when a manifest leaves the port open.
pub const PORT_RANGE: RangeInclusive<u16> = 5433..=6000;

/// Where the data lives in images that follow the official postgres contract.
pub const DATA_DIR: &str = "/var/lib/postgresql/data";

/// A password from the kernel's CSPRNG: 32 characters of [A-Za-z0-9] (about 190 bits).
pub fn generate_password() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
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

    /// `postgres://user:PASSWORD@host:port/db`, with the password shown only when given.
    pub fn url(&self, password: Option<&str>) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            self.user,
            password.unwrap_or("***"),
            self.host,
            self.port,
            self.database
        )
    }
}

/// The PostgreSQL container a Database object asks for.
pub fn container_spec(
    instance: &str,
    object: &Object,
    spec: &DatabaseSpec,
    spec_hash: &str,
    secret: &DatabaseSecret,
) -> ContainerSpec {
    let mut container_labels: HashMap<String, String> = object
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    container_labels.extend(crate::kinds::server::owner_labels(instance));
    container_labels.insert(labels::KIND.into(), Kind::Database.label().into());
    container_labels.insert(labels::NAME.into(), object.name.clone());
    container_labels.insert(labels::SPEC_HASH.into(), spec_hash.into());
    let volume = volume_name(instance, &object.name);
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
            format!("POSTGRES_PASSWORD={}", secret.password),
            format!("POSTGRES_USER={}", user_name(object, spec)),
            format!("POSTGRES_DB={}", database_name(object, spec)),
        ],
        working_dir: None,
        user: None,
        ports: vec![PortBinding {
            container: 5432,
            host: port(spec, secret),
            protocol: Protocol::Tcp,
        }],
        mounts: vec![Mount {
            volume: true,
            source: volume,
            target: DATA_DIR.into(),
            read_only: false,
        }],
        memory,
        nano_cpus,
        stop_timeout: Some(30),
        labels: container_labels,
        healthcheck: None,
        // PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        stop_signal: Some("SIGINT".into()),
        extra_hosts: Vec::new(),
        network: None,
        ip: None,
    }
}

/// Ready means: a real login with the generated credentials, and `SELECT 1`.
pub async fn probe(conn: &Connection, password: &str) -> Result<(), String> {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection as _};
    let opts = PgConnectOptions::new()
        .host(&conn.host)
        .port(conn.port)
        .username(&conn.user)
        .password(password)
        .database(&conn.database)
        .disable_statement_logging();
    let attempt = async {
        let mut c = opts.connect().await.map_err(|e| e.to_string())?;
        sqlx::query("SELECT 1")
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let _ = c.close().await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_url_safe() {
        let a = generate_password().expect("urandom");
        let b = generate_password().expect("urandom");
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
