//! `kind: Server`: one container workload. Field names are the public contract.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::quantity::{Cpus, Memory};
use super::ScalarString;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    pub image: Image,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, EnvValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<AbsPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ScalarString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub restart_policy: RestartPolicy,
    /// Give up (phase Failed) after this many restarts; unlimited when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// A network by name: one a Network manifest declares, an existing engine network, or a
    /// plain bridge network dockhand creates for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<super::Name>,
    /// A static address on `network`; it must lie in the declared network's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    /// Containers that run this spec alike (default 1, at most 64). Replica 0 is named after the
    /// server and the others `NAME.1`, `NAME.2`…, so scaling never renames or recreates one.
    #[schemars(range(min = 1, max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// How long the engine waits after SIGTERM before SIGKILL when stopping (default 10s).
    #[schemars(with = "Option<crate::manifest::schema::DurationText>")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_grace_period: Option<Duration>,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// The most replicas a server may ask for.
pub const MAX_REPLICAS: u32 = 64;

impl ServerSpec {
    /// How many containers run this spec.
    pub fn replica_count(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }

    /// Whether a spec change starts the new container before the old one stops.
    pub fn start_first(&self) -> bool {
        self.update
            .as_ref()
            .is_some_and(|u| u.order == UpdateOrder::StartFirst)
    }

    /// Checks that need more than one field; runs after the fields themselves parsed.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.ip.is_some() && self.network.is_none() {
            return Err(("spec.ip".into(), "a static ip needs a network".into()));
        }
        let replicas = self.replica_count();
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err((
                "spec.replicas".into(),
                format!(
                    "expected 1 to {MAX_REPLICAS}, found {replicas} (to stop a server, remove it)"
                ),
            ));
        }
        if replicas > 1 {
            if self.ip.is_some() {
                return Err((
                    "spec.replicas".into(),
                    format!("{replicas} replicas cannot share one static ip: remove spec.ip"),
                ));
            }
            if let Some(i) = self.ports.iter().position(|p| p.host.0 != 0) {
                return Err((
                    format!("spec.ports[{i}].host"),
                    format!(
                        "{replicas} replicas cannot all publish host port {}: omit host for a port the engine picks per replica, or put a Route in front",
                        self.ports[i].host.0
                    ),
                ));
            }
        }
        if self.start_first() {
            if self.ip.is_some() {
                return Err((
                    "spec.update.order".into(),
                    "StartFirst cannot keep a static ip: two containers would hold it at once"
                        .into(),
                ));
            }
            if let Some(i) = self.ports.iter().position(|p| p.host.0 != 0) {
                return Err((
                    format!("spec.ports[{i}].host"),
                    "StartFirst cannot keep a fixed host port: two containers would publish it at once".into(),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if !seen.insert((p.container.0, p.protocol)) {
                return Err((
                    format!("spec.ports[{i}]"),
                    format!(
                        "container port {}/{} is listed twice",
                        p.container.0,
                        p.protocol.as_str()
                    ),
                ));
            }
        }
        let mut targets = std::collections::BTreeSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            if !targets.insert(v.target.0.as_str()) {
                return Err((
                    format!("spec.volumes[{i}].target"),
                    format!("target {} is mounted twice", v.target.0),
                ));
            }
        }
        Ok(())
    }
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
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Whether a container that exited with `code` should be started again.
    pub fn restarts_after(self, code: Option<i64>) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != Some(0),
            RestartPolicy::Never => false,
        }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Volume,
    Bind,
}

/// A mount. Named volumes are namespaced per instance; bind sources resolve against the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", try_from = "RawVolume")]
pub struct VolumeSpec {
    #[serde(rename = "type")]
    pub kind: VolumeType,
    pub source: String,
    pub target: AbsPath,
    #[serde(default, skip_serializing_if = "is_default")]
    pub read_only: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVolume {
    #[serde(rename = "type", default = "default_volume_type")]
    kind: VolumeType,
    source: String,
    target: AbsPath,
    #[serde(default)]
    read_only: bool,
}

fn default_volume_type() -> VolumeType {
    VolumeType::Volume
}

impl TryFrom<RawVolume> for VolumeSpec {
    type Error = String;

    fn try_from(r: RawVolume) -> Result<Self, String> {
        match r.kind {
            VolumeType::Volume => {
                let ok = r.source.bytes().enumerate().all(|(i, b)| {
                    b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'_' | b'.' | b'-'))
                });
                if r.source.is_empty() || !ok {
                    return Err(format!(
                        "invalid volume source {:?}: expected a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*); use type: bind for a host path",
                        r.source
                    ));
                }
            }
            VolumeType::Bind => {
                if r.source.is_empty() {
                    return Err("invalid bind source \"\": expected a host path".into());
                }
            }
        }
        Ok(VolumeSpec {
            kind: r.kind,
            source: r.source,
            target: r.target,
            read_only: r.read_only,
        })
    }
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

/// How the engine decides whether a running container is healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", try_from = "RawHealthCheck")]
pub struct HealthCheck {
    pub probe: Probe,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: u32,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

/// The probe: a command in the container, an HTTP GET or a TCP connect to a container port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Probe {
    Exec(Vec<String>),
    Http { port: ContainerPort, path: String },
    Tcp { port: ContainerPort },
}

impl Probe {
    /// The engine's healthcheck test. HTTP and TCP probes run inside the container with the
    /// image's `wget` (or `curl`) and `nc`. The engine enforces the timeout itself, so `wget`
    /// gets no `-T` (Debian's static busybox crashes on it).
    pub fn engine_test(&self, timeout: Duration) -> Vec<String> {
        let secs = timeout.as_secs().max(1);
        match self {
            Probe::Exec(cmd) => std::iter::once("CMD".to_owned()).chain(cmd.iter().cloned()).collect(),
            Probe::Http { port, path } => {
                let url = format!("http://127.0.0.1:{}{}", port.0, path);
                vec![
                    "CMD-SHELL".into(),
                    format!("wget -q -O /dev/null '{url}' || curl -fsS -m {secs} -o /dev/null '{url}'"),
                ]
            }

            Probe::Tcp { port } => vec![
                "CMD-SHELL".into(),
                format!("nc -z -w {secs} 127.0.0.1 {p} 2>/dev/null || nc -w {secs} 127.0.0.1 {p} </dev/null", p = port.0),
            ],
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum OnUnhealthy {
    /// Restart the container once it is unhealthy (default).
    #[default]
    Restart,
    /// Only report it.
    None,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default)]
    exec: Option<Vec<String>>,
    #[serde(default)]
    http: Option<RawHttp>,
    #[serde(default)]
    tcp: Option<RawTcp>,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default = "default_interval", with = "humantime_serde")]
    interval: Duration,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default, with = "humantime_serde")]
    start_period: Duration,
    #[serde(default)]
    on_unhealthy: OnUnhealthy,
    /// The stored (normalized) form of the probe.
    #[serde(default)]
    probe: Option<Probe>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    port: ContainerPort,
    #[serde(default = "default_path")]
    path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    port: ContainerPort,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_retries() -> u32 {
    3
}
fn default_path() -> String {
    "/".into()
}

impl TryFrom<RawHealthCheck> for HealthCheck {
    type Error = String;

    fn try_from(r: RawHealthCheck) -> Result<Self, String> {
        let mut probes = Vec::new();
        if let Some(cmd) = r.exec {
            if cmd.is_empty() {
                return Err("healthCheck.exec must name a command".into());
            }
            probes.push(Probe::Exec(cmd));
        }
        if let Some(h) = r.http {
            if !h.path.starts_with('/') || h.path.contains('\'') {
                return Err(format!(
                    "invalid healthCheck.http.path {:?}: expected a path starting with /",
                    h.path
                ));
            }
            probes.push(Probe::Http {
                port: h.port,
                path: h.path,
            });
        }
        if let Some(t) = r.tcp {
            probes.push(Probe::Tcp { port: t.port });
        }
        probes.extend(r.probe);
        if probes.len() != 1 {
            return Err("a healthCheck needs exactly one of exec, http or tcp".into());
        }
        if r.retries == 0 {
            return Err("healthCheck.retries must be at least 1".into());
        }
        for (name, d) in [("interval", r.interval), ("timeout", r.timeout)] {
            if d < Duration::from_millis(1) {
                return Err(format!("healthCheck.{name} must be at least 1ms"));
            }
        }
        Ok(HealthCheck {
            probe: probes.remove(0),
            interval: r.interval,
            timeout: r.timeout,
            retries: r.retries,
            start_period: r.start_period,
            on_unhealthy: r.on_unhealthy,
        })
    }
}

/// What a dependency must reach before its dependent is started.
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
pub enum Condition {
    /// Its container is running.
    #[default]
    Started,
    /// Its health check passes.
    Healthy,
    /// It exited with code 0.
    Completed,
}

/// One entry of `dependsOn`: `api` (a Server, condition Started) or the full form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub kind: super::Kind,
    pub name: String,
    pub condition: Condition,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

impl Dependency {
    pub fn key(&self) -> super::ObjectKey {
        super::ObjectKey::new(self.kind, self.name.clone())
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    #[serde(default = "default_dep_kind")]
    kind: DepKind,
    name: super::Name,
    #[serde(default)]
    condition: Condition,
    #[serde(default)]
    restart: bool,
}

/// A kind as written in `dependsOn` (the manifest form).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
struct DepKind(String);

fn default_dep_kind() -> DepKind {
    DepKind("Server".into())
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Dependency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a server name, or {kind, name, condition, restart}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dependency, E> {
                super::check_dns_label(v).map_err(E::custom)?;
                Ok(Dependency {
                    kind: super::Kind::Server,
                    name: v.to_owned(),
                    condition: Condition::Started,
                    restart: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Dependency, A::Error> {
                let r =
                    RawDependency::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let kind = super::Kind::from_manifest(&r.kind.0)
                    .map_err(|e| serde::de::Error::custom(format!("dependsOn: {e}")))?;
                Ok(Dependency {
                    kind,
                    name: r.name.0,
                    condition: r.condition,
                    restart: r.restart,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An environment value: a literal, or a part of a managed database's connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    Literal(ScalarString),
    #[serde(rename_all = "camelCase")]
    FromDatabase {
        from_database: String,
        #[serde(skip_serializing_if = "is_default")]
        key: DbKey,
    },
}

impl EnvValue {
    /// The database this value comes from, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            EnvValue::FromDatabase { from_database, .. } => Some(from_database),
            EnvValue::Literal(_) => None,
        }
    }
}

/// Which part of a database's connection an environment value takes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DbKey {
    /// The full `postgres://` URL (default).
    #[default]
    Url,
    Host,
    Port,
    Database,
    User,
    Password,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFromDatabase {
    from_database: super::Name,
    #[serde(default)]
    key: DbKey,
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean, or {fromDatabase: NAME, key: url|host|port|database|user|password}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(ScalarString(v.to_owned())))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(ScalarString(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(ScalarString(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(ScalarString(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue::Literal(ScalarString(v.to_string())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<EnvValue, A::Error> {
                let r = RawFromDatabase::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(EnvValue::FromDatabase {
                    from_database: r.from_database.0,
                    key: r.key,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// How a spec change replaces the running container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    #[serde(default)]
    pub order: UpdateOrder,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum UpdateOrder {
    /// Stop and remove the old container, then create the new one (default).
    #[default]
    StopFirst,
    /// Create the new container beside the old one, wait until it is Ready, switch the routes
    /// to it, then stop and remove the old one.
    StartFirst,
}

impl schemars::JsonSchema for Dependency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Dependency".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = g.subschema_for::<super::Name>();
        let full = g.subschema_for::<RawDependency>();
        schemars::json_schema!({
            "description": "a Server's name (condition Started), or {kind, name, condition, restart}",
            "anyOf": [name, full]
        })
    }
}

impl schemars::JsonSchema for EnvValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let literal = g.subschema_for::<ScalarString>();
        let from_db = g.subschema_for::<RawFromDatabase>();
        schemars::json_schema!({"anyOf": [literal, from_db]})
    }
}
