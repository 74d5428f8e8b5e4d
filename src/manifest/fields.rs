//! Field types Server and Database share (images, paths, ports, env names, resources), each
//! checked as it is parsed so a bad value names its field.

use serde::{Deserialize, Deserializer, Serialize};

use super::quantity::{Cpus, Memory};
use super::ScalarString;

/// Serde's `skip_serializing_if` for fields left at their default.
pub(super) fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// An image reference: non-empty, no whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Image(pub String);

impl<'de> Deserialize<'de> for Image {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!(
                "invalid image {s:?}: expected a reference like busybox:1.36 or registry/name:tag"
            )));
        }
        Ok(Image(s))
    }
}

/// An environment variable name: non-empty, no `=`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EnvName(pub String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains('=') || s.contains('\0') {
            return Err(serde::de::Error::custom(format!(
                "invalid environment variable name {s:?}: expected a non-empty name without '='"
            )));
        }
        Ok(EnvName(s))
    }
}

/// A host name: dot-separated labels of letters, digits and '-' (case kept), at most 253
/// characters. Network aliases, `hostname` and `extraHosts` names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Hostname(pub String);

impl Hostname {
    pub fn check(s: &str) -> Result<(), String> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok) {
            Ok(())
        } else {
            Err(format!(
                "invalid host name {s:?}: expected labels of letters, digits and '-' separated by dots"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = super::scalar::exact(d)?;
        Hostname::check(&s).map_err(serde::de::Error::custom)?;
        Ok(Hostname(s))
    }
}

/// An absolute path inside the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AbsPath(pub String);

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') {
            return Err(serde::de::Error::custom(format!(
                "invalid path {s:?}: expected an absolute path inside the container"
            )));
        }
        Ok(AbsPath(s))
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    pub container: ContainerPort,
    /// 0 or omitted: the engine picks a free port, and the status shows it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub host: HostPort,
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: Protocol,
}

/// A container port, 1 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ContainerPort(pub u16);

impl<'de> Deserialize<'de> for ContainerPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match port_number(d)? {
            0 => Err(serde::de::Error::custom(
                "invalid port 0: expected a port number from 1 to 65535",
            )),
            p => Ok(ContainerPort(p)),
        }
    }
}

/// A host port, 0 (engine picks) to 65535.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HostPort(pub u16);

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        port_number(d).map(HostPort)
    }
}

fn port_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let s = ScalarString::deserialize(d)?.0;
    s.parse::<u16>().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid port {s:?}: expected a port number from 1 to 65535"
        ))
    })
}

/// The engine's memory (bytes) and CPU (nano-CPUs) limits for optional resources.
pub fn engine_limits(r: Option<&Resources>) -> (Option<i64>, Option<i64>) {
    let memory = r.and_then(|r| r.memory).map(|m| m.0 as i64);
    let cpus = r.and_then(|r| r.cpus).map(|c| c.nano());
    (memory, cpus)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
}
