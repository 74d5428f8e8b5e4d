//! `kind: Database`: a managed PostgreSQL per project. Field names are the public contract.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::fields::{is_default, HostPort, Image, Resources};
use super::ScalarString;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseSpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub engine: Engine,
    /// Major version; the default image is `postgres:<version>`.
    #[serde(default = "default_version")]
    pub version: ScalarString,
    /// An image following the official postgres image's env contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Host port; 0 or omitted: the first free port in 5433-6000, kept across recreations.
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: HostPort,
    /// The host address the port is published on (default 127.0.0.1: this host only).
    /// `0.0.0.0` publishes it on every address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Identifier>,
    /// The password: a Secret's value (`{fromSecret: NAME}`); generated and kept in the state
    /// file when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<super::secret::FromSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub deletion_policy: DeletionPolicy,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(
        default = "default_ready_timeout",
        with = "humantime_serde",
        skip_serializing_if = "is_default_ready_timeout"
    )]
    pub ready_timeout: Duration,
    /// Networks it joins, answering to its name on each (default: the instance's default
    /// network). Servers on one of them reach it by name on port 5432.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<super::Name>,
    /// Scheduled backups: `pg_dump` in custom format, verified, the oldest pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Seeds a new database (one that never held data) from a backup: `latest` (the newest in
    /// `backup.to`) or a dump file on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backup {
    /// When, in UTC (cron's five fields, or @daily and the like).
    pub schedule: super::cron::Cron,
    /// How many backups to keep; older ones are removed after a verified new one.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Where they go.
    pub to: BackupTarget,
}

fn default_keep() -> u32 {
    7
}

/// A named volume of the instance (`dh_<instance>_<volume>`, kept whatever happens to the
/// database), or a directory on the host (the host policy applies, as to a bind mount).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<super::Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `latest`, or the path of a dump file on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct RestoreFrom(pub String);

impl RestoreFrom {
    pub fn is_latest(&self) -> bool {
        self.0 == "latest"
    }
}

impl<'de> Deserialize<'de> for RestoreFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s != "latest" && !s.starts_with('/') {
            return Err(serde::de::Error::custom(format!(
                "invalid restoreFrom {s:?}: expected latest (the newest backup in backup.to) or the absolute path of a dump file"
            )));
        }
        Ok(RestoreFrom(s))
    }
}

fn default_version() -> ScalarString {
    ScalarString("16".into())
}

fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}

fn is_default_ready_timeout(d: &Duration) -> bool {
    *d == default_ready_timeout()
}

impl DatabaseSpec {
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(b) = &self.backup {
            match (&b.to.volume, &b.to.path) {
                (Some(_), None) => {}
                (None, Some(p)) if p.starts_with('/') => {}
                (None, Some(p)) => {
                    return Err((
                        "spec.backup.to.path".into(),
                        format!("{p} is not an absolute path"),
                    ))
                }
                _ => {
                    return Err((
                        "spec.backup.to".into(),
                        "expected exactly one of volume or path".into(),
                    ))
                }
            }
            if b.keep == 0 {
                return Err(("spec.backup.keep".into(), "keep at least 1 backup".into()));
            }
        }
        if self
            .restore_from
            .as_ref()
            .is_some_and(RestoreFrom::is_latest)
            && self.backup.is_none()
        {
            return Err((
                "spec.restoreFrom".into(),
                "latest needs spec.backup.to to look in".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in self.networks.iter().enumerate() {
            if n.0 == super::server::NETWORK_HOST || n.0 == super::server::NETWORK_NONE {
                return Err((
                    format!("spec.networks[{i}]"),
                    format!("a database joins networks, not the network mode {}", n.0),
                ));
            }
            if !seen.insert(n.0.as_str()) {
                return Err((
                    format!("spec.networks[{i}]"),
                    format!("network {} is listed twice", n.0),
                ));
            }
        }
        Ok(())
    }

    /// What depends on the database's own name: its backups never go to a volume of its own
    /// data (which a `Delete` policy or an upgrade's `--finish` removes).
    pub fn check_named(&self, name: &str) -> Result<(), (String, String)> {
        let Some(v) = self.backup.as_ref().and_then(|b| b.to.volume.as_ref()) else {
            return Ok(());
        };
        let own = v.0 == format!("{name}-data")
            || v.0 == format!("{name}-upgrade")
            || v.0.starts_with(&format!("{name}-data-pg"));
        if own {
            return Err((
                "spec.backup.to.volume".into(),
                format!("{} is a volume of database {name}'s own data; backups go to a volume of their own", v.0),
            ));
        }
        Ok(())
    }

    /// The networks the database `name` joins (default: the default network), answering to
    /// its name on each.
    pub fn joins(&self, name: &str) -> super::server::Joins {
        let networks: Vec<String> = if self.networks.is_empty() {
            vec![super::server::DEFAULT_NETWORK.to_owned()]
        } else {
            self.networks.iter().map(|n| n.0.clone()).collect()
        };
        super::server::Joins::Networks(
            networks
                .into_iter()
                .map(|network| super::server::Join {
                    network,
                    ip: None,
                    aliases: vec![name.to_owned()],
                })
                .collect(),
        )
    }

    /// The address the port is published on.
    pub fn publish_ip(&self) -> std::net::IpAddr {
        self.host_ip
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    }

    /// How this host reaches the published port: the address it is published on, or the
    /// loopback address when published on every address.
    pub fn host_address(&self) -> String {
        match self.publish_ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => "::1".to_owned(),
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            ip => ip.to_string(),
        }
    }

    pub fn image(&self) -> String {
        match &self.image {
            Some(i) => i.0.clone(),
            None => format!("postgres:{}", self.version.0),
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Postgres,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// The data volume outlives the manifest (default).
    #[default]
    Retain,
    /// The data volume is removed with the manifest.
    Delete,
}

/// A PostgreSQL role or database name: letters, digits, `_` and `-`, at most 63 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Identifier(pub String);

impl<'de> Deserialize<'de> for Identifier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && s.as_bytes()[0].is_ascii_alphabetic();
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "invalid name {s:?}: expected a letter, then letters, digits, '_' or '-' (at most 63)"
            )));
        }
        Ok(Identifier(s))
    }
}
