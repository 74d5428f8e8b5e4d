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

/// A published port: `{container, host, hostIp, protocol}`, or Compose's short form
/// `[HOST_IP:][HOST:]CONTAINER[/PROTOCOL]` (`127.0.0.1:8080:80`, `53:53/udp`, `80`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, try_from = "PortForm")]
pub struct PortSpec {
    pub container: ContainerPort,
    /// 0 or omitted: the engine picks a free port, and the status shows it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub host: HostPort,
    /// The host address to publish on (default: every address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: Protocol,
    /// On a swarm: `ingress` (every node answers, the default) or `host` (the nodes that run a
    /// task). A single host publishes on itself either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PublishMode>,
}

/// Where a swarm publishes a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// The routing mesh: every node forwards the port to a task.
    Ingress,
    /// Each node that runs a task publishes it there.
    Host,
}

/// How a port is read: the short form, or the mapping (which is `PortSpec` itself).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PortMap {
    container: ContainerPort,
    /// 0 or omitted: the engine picks a free port, and the status shows it.
    #[serde(default)]
    host: HostPort,
    /// The host address to publish on (default: every address).
    #[serde(default)]
    host_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    protocol: Protocol,
    /// On a swarm: `ingress` (default) or `host`.
    #[serde(default)]
    mode: Option<PublishMode>,
}

impl super::scalar::MapForm for PortMap {
    const EXPECTING: &'static str =
        "a port like 8080:80, 127.0.0.1:8080:80 or 53/udp, or {container, host, hostIp, protocol, mode}";
}

struct PortForm(super::scalar::ScalarOrMap<PortMap>);

impl schemars::JsonSchema for PortForm {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {
                    "type": ["string", "integer"],
                    "pattern": "^(([0-9.]+|\\[[0-9a-fA-F:]+\\]):)?([0-9]*:)?[0-9]+(/(tcp|udp))?$",
                    "description": "[HOST_IP:][HOST:]CONTAINER[/tcp|udp], like 127.0.0.1:8080:80"
                },
                g.subschema_for::<PortMap>()
            ]
        })
    }
}

impl<'de> Deserialize<'de> for PortForm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::scalar::ScalarOrMap::deserialize(d).map(PortForm)
    }
}

impl TryFrom<PortForm> for PortSpec {
    type Error = String;

    fn try_from(f: PortForm) -> Result<Self, String> {
        match f.0 {
            super::scalar::ScalarOrMap::Map(m) => Ok(PortSpec {
                container: m.container,
                host: m.host,
                host_ip: m.host_ip,
                protocol: m.protocol,
                mode: m.mode,
            }),
            super::scalar::ScalarOrMap::Scalar(s) => PortSpec::parse_short(&s),
        }
    }
}

impl PortSpec {
    /// Compose's short form: `[HOST_IP:][HOST:]CONTAINER[/PROTOCOL]`, IPv6 in brackets.
    pub fn parse_short(s: &str) -> Result<PortSpec, String> {
        let bad = |why: &str| {
            format!("invalid port {s:?}: {why} (expected [HOST_IP:][HOST:]CONTAINER[/tcp|udp], like 127.0.0.1:8080:80)")
        };
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some(_) => return Err(bad("the protocol is tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        let (ip, ports) = if let Some(v6) = rest.strip_prefix('[') {
            let (ip, after) = v6.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (Some(ip), after)
        } else if rest.matches(':').count() == 2 {
            let (ip, after) = rest.split_once(':').unwrap_or_default();
            (Some(ip), after)
        } else {
            (None, rest)
        };
        let host_ip = ip
            .map(|ip| ip.parse::<std::net::IpAddr>())
            .transpose()
            .map_err(|_| bad("the host address is not an IP address"))?;
        let number = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| bad("ports are numbers from 0 to 65535"))
        };
        let (host, container) = match ports.split_once(':') {
            Some((h, c)) => (if h.is_empty() { 0 } else { number(h)? }, number(c)?),
            None => (0, number(ports)?),
        };
        if container == 0 {
            return Err(bad("the container port is 1 to 65535"));
        }
        Ok(PortSpec {
            container: ContainerPort(container),
            host: HostPort(host),
            host_ip,
            protocol,
            mode: None,
        })
    }
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
    /// The most memory it may use (killed beyond it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// The most CPU time it may use, in CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// What it is guaranteed: a swarm places a task only on a node with this much free; a
    /// single host makes `memory` a soft limit (reclaimed first under pressure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Reservations>,
}

/// Resources set aside for a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reservations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
}

/// The engine's reserved memory (bytes) and CPUs (nano-CPUs).
pub fn engine_reservations(r: Option<&Resources>) -> (Option<i64>, Option<i64>) {
    let r = r.and_then(|r| r.reservations.as_ref());
    let memory = r.and_then(|r| r.memory).map(|m| m.0 as i64);
    let cpus = r.and_then(|r| r.cpus).map(|c| c.nano());
    (memory, cpus)
}
