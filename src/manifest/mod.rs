//! The public contract: `apiVersion: dockhand/v1` documents, their types and their validation.
//!
//! Validation happens while deserializing (newtypes reject bad values in place), so every error
//! carries the file, line, column and field path the YAML parser saw; nothing downstream has to
//! re-validate or guess where a value came from.

pub mod build;
pub mod cron;
pub mod database;
pub mod depends;
pub mod env_text;
pub mod fields;
pub mod graph;
pub mod health;
pub mod network;
pub mod options;
pub mod parse;
pub mod quantity;
pub mod replicas;
pub(crate) mod scalar;
pub mod schema;
pub mod secret;
pub mod server;
pub mod status;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

pub use database::DatabaseSpec;
pub use parse::{parse_str, ManifestError};
pub use server::ServerSpec;
pub use status::Phase;

/// The only API version this build understands.
pub const API_VERSION: &str = "dockhand/v1";

/// Kinds of object dockhand reconciles.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Kind {
    Server,
    Database,
    Network,
    Route,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Server,
        Kind::Database,
        Kind::Network,
        Kind::Route,
        Kind::Secret,
    ];

    /// The name used in manifests (`kind: Server`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "Server",
            Kind::Database => "Database",
            Kind::Network => "Network",
            Kind::Route => "Route",
            Kind::Secret => "Secret",
        }
    }

    /// The lowercase form used in labels, container names and the CLI.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Database => "database",
            Kind::Network => "network",
            Kind::Route => "route",
            Kind::Secret => "secret",
        }
    }

    /// Parses any form people and labels use: `Server`, `server`, `servers`, in any case.
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| s == k.label() || s.strip_suffix('s') == Some(k.label()))
    }

    /// Like `parse`, with the one error message every face shows.
    pub fn parse_or_err(s: &str) -> Result<Kind, UnknownKind> {
        Kind::parse(s).ok_or_else(|| UnknownKind(s.to_owned()))
    }

    /// The kind a manifest names, spelt exactly as `as_str` writes it (`kind: Server`).
    pub fn from_manifest(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A kind name that is none of dockhand's: one message for manifests, the CLI and the API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: expected one of Server, Database, Network, Route, Secret")]
pub struct UnknownKind(pub String);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object: unique per kind.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.label(), self.name)
    }
}

/// The spec of an object, one variant per kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
// One per object, never in hot collections: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    Server(ServerSpec),
    Database(DatabaseSpec),
    Network(network::NetworkSpec),
    Route(network::RouteSpec),
    Secret(secret::SecretSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Server(_) => Kind::Server,
            Spec::Database(_) => Kind::Database,
            Spec::Network(_) => Kind::Network,
            Spec::Route(_) => Kind::Route,
            Spec::Secret(_) => Kind::Secret,
        }
    }
}

/// One desired object, as read from a source and as kept in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Object {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub spec: Spec,
    /// Where the object was defined: a path relative to its source, for messages and ownership.
    pub source: String,
    /// Line of `metadata.name` in `source`.
    pub line: u64,
    /// The git commit its file was read at (git sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Object {
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.spec.kind(), self.name.clone())
    }

    /// Hash of everything that ends up in the container: the normalized spec and the labels.
    ///
    /// Unset optional fields are skipped when serializing, so a field added in a later release
    /// does not change the hash of manifests that do not use it (no mass recreation on upgrade).
    pub fn spec_hash(&self) -> String {
        // How many replicas run is not part of what a container is: scaling recreates nothing.
        // Nor is what a failed rollout leads to, nor what only a swarm reads.
        let unscaled;
        let spec = match &self.spec {
            Spec::Server(s) if s.has_host_independent_fields() => {
                unscaled = Spec::Server(s.single_container_view());
                &unscaled
            }
            other => other,
        };
        self.hash_with(spec)
    }

    /// The hash of what this object's container is: its spec hash, but for a Database without
    /// what only its jobs read (`backup`, `restoreFrom`), so editing a schedule or a backup
    /// target never recreates the database.
    pub fn container_hash(&self) -> String {
        match &self.spec {
            Spec::Database(d) if d.backup.is_some() || d.restore_from.is_some() => {
                let view = Spec::Database(database::DatabaseSpec {
                    backup: None,
                    restore_from: None,
                    ..d.clone()
                });
                self.hash_with(&view)
            }
            _ => self.spec_hash(),
        }
    }

    /// Hash of `spec` (this object's, or a view of it) with the object's labels.
    fn hash_with(&self, spec: &Spec) -> String {
        #[derive(Serialize)]
        struct Hashed<'a> {
            labels: &'a BTreeMap<String, String>,
            spec: &'a Spec,
        }
        let json = serde_json::to_vec(&Hashed {
            labels: &self.labels,
            spec,
        })
        .unwrap_or_default();
        short_hash(&json)
    }
}

impl Object {
    /// Hash of the whole spec, replicas and swarm fields included: a swarm service is updated
    /// in place (its tasks rolled by the swarm), so everything in it counts.
    pub fn service_hash(&self) -> String {
        self.hash_with(&self.spec)
    }
}

/// 16 hex digits of SHA-256: the form of every hash dockhand puts in a label.
pub fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A lowercase RFC 1123 DNS label: what object names and instances must be.
pub fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {s:?}: expected a lowercase DNS label (a-z, 0-9 and '-', at most 63 characters, starting and ending with a letter or digit)"
        ))
    }
}

/// An object name, checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_dns_label(&s).map_err(serde::de::Error::custom)?;
        Ok(Name(s))
    }
}

/// A string that YAML may also write as a number or a boolean (`user: 1000`, `PORT: 8080`),
/// kept exactly as written (`no`, `1.10`, `010`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ScalarString(pub String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar::exact(d).map(ScalarString)
    }
}

/// Prefix reserved for dockhand's own labels on the engine; user labels may not use it.
pub const RESERVED_PREFIX: &str = "dockhand.";

/// A user label key; `dockhand.` is reserved for dockhand's own labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabelKey(pub String);

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '=') {
            return Err(serde::de::Error::custom(format!(
                "invalid label key {s:?}: expected a non-empty key without spaces or '='"
            )));
        }
        if s.starts_with(RESERVED_PREFIX) {
            return Err(serde::de::Error::custom(format!(
                "label key {s:?} uses the reserved prefix \"dockhand.\""
            )));
        }
        Ok(LabelKey(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_checked() {
        assert!(check_dns_label("web-1").is_ok());
        for bad in ["", "Web", "-web", "web-", "we_b", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn kinds_parse_from_manifest_and_cli_forms() {
        assert_eq!(Kind::parse("Server"), Some(Kind::Server));
        assert_eq!(Kind::parse("server"), Some(Kind::Server));
        assert_eq!(Kind::parse("servers"), Some(Kind::Server));
        assert_eq!(Kind::parse("Pod"), None);
    }
}
