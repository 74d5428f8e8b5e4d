//! `kind: Server`: one container workload. Field names are the public contract.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use super::build::Build;
use super::depends::Dependency;
use super::fields::{
    is_default, AbsPath, EnvName, Hostname, Image, PortSpec, PullPolicy, Resources,
};
use super::health::HealthCheck;
use super::options::{
    Capability, Device, EnvFile, HostAddress, HostKey, OneOrMany, SecurityOpt, Signal, SysctlName,
    Tmpfs, Ulimit, UlimitName,
};
use super::quantity::Size;
use super::ScalarString;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["image"]}, {"required": ["build"]}]))]
pub struct ServerSpec {
    /// The image to run; with `build`, the built image is also tagged with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Build the image from source (instead of, or as, `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, EnvValue>,
    /// Secrets given as files under /run/secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::secret::SecretMount>,
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
    /// The one network to join, by name: one a Network manifest declares, an existing engine
    /// network, or a plain bridge network dockhand creates for it; `host` shares the host's
    /// network stack (host policy), `none` has no network. Without `network` and `networks`, the
    /// instance's default network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<super::Name>,
    /// A static address on `network`; it must lie in the declared network's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Several networks to join (instead of `network`), each with its own address and aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkJoin>,
    /// More names the server answers to on every network it joins (its own name always).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Hostname>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    /// How long a swarm waits before restarting a task that exited (Swarm's default 5s).
    #[schemars(with = "Option<crate::manifest::schema::DurationText>")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_delay: Option<Duration>,
    /// The window `maxRestarts` counts restarts in, on a swarm (unbounded when omitted).
    #[schemars(with = "Option<crate::manifest::schema::DurationText>")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_window: Option<Duration>,
    /// Where a swarm may run its tasks; a single host ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How a swarm service is found by name on its networks: `vip` (one virtual address, the
    /// default) or `dnsrr` (the name resolves to every task); a single host ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<EndpointMode>,
    /// Containers that run this spec alike (default 1, at most 64; 0 stops the server, which
    /// stays listed as `Stopped`). Replica 0 is named after the server and the others `NAME.1`,
    /// `NAME.2`…, so scaling never renames or recreates one.
    #[schemars(range(min = 0, max = 64))]
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
    /// The signal that stops the container (the image's, else SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
    /// The container's own host name (default: its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    /// More `/etc/hosts` entries: name → address, or `host-gateway` for the engine's host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<HostKey, HostAddress>,
    /// Files of `KEY=VALUE` lines (relative to the manifest) merged under `env`: a name in
    /// `env` wins, and a later file wins over an earlier one. Their content counts in the spec.
    #[schemars(with = "super::options::OneOrManyText")]
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub env_file: OneOrMany<EnvFile>,
    /// Capabilities beyond the engine's defaults (host policy: `--allow-capability`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<Capability>,
    /// Every capability and every device: root on the host (host policy: `--allow-privileged`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub privileged: bool,
    /// Host devices, `HOST[:CONTAINER[:rwm]]` (host policy: `--allow-device PREFIX`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Namespaced kernel parameters, like `net.core.somaxconn: 1024`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<SysctlName, ScalarString>,
    /// The size of `/dev/shm` (the engine's default is 64m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Size>,
    /// In-memory file systems, `PATH[:OPTIONS]` like `/run:size=64m,mode=1777`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    /// Resource limits by name (`nofile: 65536`, or `{soft, hard}`; -1 is unlimited).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<UlimitName, Ulimit>,
    /// Run an init process as PID 1 that reaps zombies and forwards signals.
    #[serde(default, skip_serializing_if = "is_default")]
    pub init: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub read_only_root_filesystem: bool,
    /// `no-new-privileges`, `apparmor=…`, `label=…`; the unconfined ones need the host policy's
    /// `--allow-unconfined`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<SecurityOpt>,
    /// A terminal for the main process (`dockhand attach` then speaks to it).
    #[serde(default, skip_serializing_if = "is_default")]
    pub tty: bool,
    /// Keep the main process's stdin open (for `dockhand attach`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub stdin: bool,
    /// The most processes (and threads) the container may run at once; -1 is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Name servers the container asks instead of the engine's (`1.1.1.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
    /// Domains a short name is tried in (`example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<super::options::DnsName>,
    /// resolv.conf options (`ndots:2`, `timeout:3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<super::options::DnsName>,
}

/// The most replicas a server may ask for.
pub const MAX_REPLICAS: u32 = 64;

impl ServerSpec {
    /// How many containers run this spec.
    pub fn replica_count(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }

    /// How long a new spec may take to become Ready before it is rolled back, when it is.
    pub fn rollback_after(&self) -> Option<Duration> {
        let u = self.update.as_ref()?;
        (u.failure_action == Some(FailureAction::Rollback))
            .then(|| u.monitor.unwrap_or(DEFAULT_MONITOR))
    }

    /// Whether it sets anything that is not part of one container: replicas, what a failed
    /// rollout leads to, or what only a swarm reads.
    pub fn has_host_independent_fields(&self) -> bool {
        self.replicas.is_some()
            || self.restart_delay.is_some()
            || self.restart_window.is_some()
            || self.placement.is_some()
            || self.endpoint_mode.is_some()
            || self.ports.iter().any(|p| p.mode.is_some())
            || self.update.as_ref().is_some_and(|u| {
                u.failure_action.is_some()
                    || u.monitor.is_some()
                    || u.parallelism.is_some()
                    || u.delay.is_some()
                    || u.image.is_some()
            })
    }

    /// The spec without those fields: what one container on one host is made of.
    pub fn single_container_view(&self) -> ServerSpec {
        ServerSpec {
            replicas: None,
            restart_delay: None,
            restart_window: None,
            placement: None,
            endpoint_mode: None,
            ports: self
                .ports
                .iter()
                .map(|p| super::fields::PortSpec {
                    mode: None,
                    ..p.clone()
                })
                .collect(),
            update: self.update.as_ref().map(|u| Update {
                failure_action: None,
                monitor: None,
                parallelism: None,
                delay: None,
                image: None,
                ..u.clone()
            }),
            ..self.clone()
        }
    }

    /// The image reference whose registry digest this server follows (`update.image: Poll`,
    /// or `pullPolicy: Always` unless `update.image: Never`); none for a built image or one
    /// the manifest pins by digest.
    pub fn polled_image(&self) -> Option<&str> {
        let image = self.image.as_ref()?.0.as_str();
        (self.follows_tag() && !image.contains('@')).then_some(image)
    }

    /// Whether its policy follows the image's tag (whatever the image is, pinned or not).
    pub fn follows_tag(&self) -> bool {
        let polls = match self.update.as_ref().and_then(|u| u.image) {
            Some(p) => p == ImagePolicy::Poll,
            None => self.pull_policy == PullPolicy::Always,
        };
        polls && self.build.is_none()
    }

    /// Whether a spec change starts the new container before the old one stops.
    pub fn start_first(&self) -> bool {
        self.update
            .as_ref()
            .is_some_and(|u| u.order == UpdateOrder::StartFirst)
    }

    /// The networks the object `name` (a replica's name included) joins, with the names it
    /// answers to on each: the server's name first, then the replica's own.
    pub fn joins(&self, name: &str) -> Joins {
        let base = super::replicas::replica_of(name);
        let aliases = |extra: &[Hostname]| -> Vec<String> {
            let mut out = vec![base.to_owned()];
            if name != base {
                out.push(name.to_owned());
            }
            for a in self.aliases.iter().chain(extra) {
                if !out.contains(&a.0) {
                    out.push(a.0.clone());
                }
            }
            out
        };
        match &self.network {
            Some(n) if n.0 == NETWORK_HOST || n.0 == NETWORK_NONE => Joins::Mode(n.0.clone()),
            Some(n) => Joins::Networks(vec![Join {
                network: n.0.clone(),
                ip: self.ip,
                aliases: aliases(&[]),
            }]),
            None if self.networks.is_empty() => Joins::Networks(vec![Join {
                network: DEFAULT_NETWORK.into(),
                ip: None,
                aliases: aliases(&[]),
            }]),
            None => Joins::Networks(
                self.networks
                    .iter()
                    .map(|j| Join {
                        network: j.name.0.clone(),
                        ip: j.ip,
                        aliases: aliases(&j.aliases),
                    })
                    .collect(),
            ),
        }
    }

    /// The addresses this server asks for, with the field that asks.
    pub fn static_ips(&self) -> Vec<(String, &str, std::net::Ipv4Addr)> {
        let mut out = Vec::new();
        if let (Some(net), Some(ip)) = (&self.network, self.ip) {
            out.push(("spec.ip".to_owned(), net.0.as_str(), ip));
        }
        for (i, j) in self.networks.iter().enumerate() {
            if let Some(ip) = j.ip {
                out.push((format!("spec.networks[{i}].ip"), j.name.0.as_str(), ip));
            }
        }
        out
    }

    /// Checks that need more than one field; runs after the fields themselves parsed.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.image.is_none() && self.build.is_none() {
            return Err((
                "spec.image".into(),
                "missing: a server needs an image, or a build to make one".into(),
            ));
        }
        if self.update.as_ref().and_then(|u| u.image) == Some(ImagePolicy::Poll) {
            let why = if self.build.is_some() {
                Some("a built image has no registry tag to follow")
            } else if self.image.as_ref().is_some_and(|i| i.0.contains('@')) {
                Some("the image is pinned by digest, which never moves")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(("spec.update.image".into(), format!("Poll: {why}")));
            }
        }
        if self.ip.is_some() && self.network.is_none() {
            return Err((
                "spec.ip".into(),
                "a static ip needs a network (or use networks: [{name, ip}])".into(),
            ));
        }
        if self.network.is_some() && !self.networks.is_empty() {
            return Err((
                "spec.networks".into(),
                "use either network or networks, not both".into(),
            ));
        }
        let mode = self
            .network
            .as_ref()
            .filter(|n| n.0 == NETWORK_HOST || n.0 == NETWORK_NONE);
        if let Some(mode) = mode {
            if self.ip.is_some() {
                return Err((
                    "spec.ip".into(),
                    format!("network: {} has no addresses to choose", mode.0),
                ));
            }
            if !self.aliases.is_empty() {
                return Err((
                    "spec.aliases".into(),
                    format!("network: {} has no names to answer to", mode.0),
                ));
            }
        }
        let mut joined = std::collections::BTreeSet::new();
        for (i, j) in self.networks.iter().enumerate() {
            if j.name.0 == NETWORK_HOST || j.name.0 == NETWORK_NONE {
                return Err((
                    format!("spec.networks[{i}].name"),
                    format!(
                        "{} is a network mode: write network: {}",
                        j.name.0, j.name.0
                    ),
                ));
            }
            if !joined.insert(j.name.0.as_str()) {
                return Err((
                    format!("spec.networks[{i}].name"),
                    format!("network {} is listed twice", j.name.0),
                ));
            }
        }
        let replicas = self.replica_count();
        if replicas > MAX_REPLICAS {
            return Err((
                "spec.replicas".into(),
                format!("expected 0 to {MAX_REPLICAS}, found {replicas} (0 stops the server)"),
            ));
        }
        if replicas > 1 {
            if self.ip.is_some() || self.networks.iter().any(|j| j.ip.is_some()) {
                return Err((
                    "spec.replicas".into(),
                    format!("{replicas} replicas cannot share one static ip: remove spec.ip"),
                ));
            }
            // A swarm port (`mode`) is published once by the routing mesh, or per node.
            if let Some(i) = self
                .ports
                .iter()
                .position(|p| p.host.0 != 0 && p.mode.is_none())
            {
                return Err((
                    format!("spec.ports[{i}].host"),
                    format!(
                        "{replicas} replicas cannot all publish host port {}: omit host for a port the engine picks per replica, put a Route in front, or on a swarm give the port a mode (ingress, or host with one replica per node)",
                        self.ports[i].host.0
                    ),
                ));
            }
        }
        if let Some(u) = &self.update {
            if u.monitor.is_some_and(|m| m.is_zero()) {
                return Err((
                    "spec.update.monitor".into(),
                    "expected a duration above zero, like 30s".into(),
                ));
            }
        }
        if self.start_first() {
            if self.ip.is_some() || self.networks.iter().any(|j| j.ip.is_some()) {
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
            if !seen.insert((p.container.0, p.protocol, p.host_ip)) {
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
        super::options::check(self)?;
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

/// The network every object joins unless it names others: `dh_<instance>_default`.
pub const DEFAULT_NETWORK: &str = "default";
/// `network: host`: the host's network stack.
pub const NETWORK_HOST: &str = "host";
/// `network: none`: no network at all.
pub const NETWORK_NONE: &str = "none";

/// Where a container's network comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Joins {
    /// `host` or `none`: a network mode, no networks joined.
    Mode(String),
    Networks(Vec<Join>),
}

impl Joins {
    /// The networks joined (none for a mode).
    pub fn networks(&self) -> &[Join] {
        match self {
            Joins::Mode(_) => &[],
            Joins::Networks(n) => n,
        }
    }
}

/// One network joined: its manifest name, a static address, and the names answered to there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    pub network: String,
    pub ip: Option<std::net::Ipv4Addr>,
    pub aliases: Vec<String>,
}

/// One entry of `networks`: `back`, or `{name: back, ip: 10.0.0.5, aliases: [db-primary]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkJoin {
    pub name: super::Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Hostname>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawNetworkJoin {
    name: super::Name,
    #[serde(default)]
    ip: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    aliases: Vec<Hostname>,
}

impl super::scalar::MapForm for RawNetworkJoin {
    const EXPECTING: &'static str = "a network name, or {name, ip, aliases}";
}

impl schemars::JsonSchema for NetworkJoin {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NetworkJoin".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = g.subschema_for::<super::Name>();
        let full = g.subschema_for::<RawNetworkJoin>();
        schemars::json_schema!({
            "description": "a network's name, or {name, ip, aliases}",
            "anyOf": [name, full]
        })
    }
}

impl<'de> Deserialize<'de> for NetworkJoin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use super::scalar::ScalarOrMap;
        Ok(match ScalarOrMap::<RawNetworkJoin>::deserialize(d)? {
            ScalarOrMap::Scalar(name) => {
                super::check_dns_label(&name).map_err(serde::de::Error::custom)?;
                NetworkJoin {
                    name: super::Name(name),
                    ip: None,
                    aliases: Vec::new(),
                }
            }
            ScalarOrMap::Map(r) => NetworkJoin {
                name: r.name,
                ip: r.ip,
                aliases: r.aliases,
            },
        })
    }
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
    /// SELinux relabelling of the source (Compose's `:z` and `:Z`), done by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<Relabel>,
}

/// How the engine relabels a mount's source for SELinux: `shared` (`:z`, every container may
/// use it) or `private` (`:Z`, this container only). Nothing happens on a host without SELinux.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Relabel {
    Shared,
    Private,
}

impl Relabel {
    /// The engine's bind option: `z` or `Z`.
    pub fn option(self) -> &'static str {
        match self {
            Relabel::Shared => "z",
            Relabel::Private => "Z",
        }
    }
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
    #[serde(default)]
    relabel: Option<Relabel>,
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
            relabel: r.relabel,
        })
    }
}

/// An environment value: a literal, a part of a managed database's connection, or a Secret's
/// value.
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
    #[serde(rename_all = "camelCase")]
    FromSecret {
        from_secret: String,
    },
}

impl EnvValue {
    /// The database this value comes from, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            EnvValue::FromDatabase { from_database, .. } => Some(from_database),
            EnvValue::Literal(_) | EnvValue::FromSecret { .. } => None,
        }
    }

    /// The Secret this value comes from, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            EnvValue::FromSecret { from_secret } => Some(from_secret),
            EnvValue::Literal(_) | EnvValue::FromDatabase { .. } => None,
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

// The `fromDatabase` form as the schema shows it (parsing reads it through `RawEnvRef`).
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawFromDatabase {
    from_database: super::Name,
    #[serde(default)]
    key: DbKey,
}

/// The mapping forms of an environment value, told apart by their keys.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEnvRef {
    #[serde(default)]
    from_database: Option<super::Name>,
    #[serde(default)]
    key: Option<DbKey>,
    #[serde(default)]
    from_secret: Option<super::Name>,
}

impl super::scalar::MapForm for RawEnvRef {
    const EXPECTING: &'static str = "a string, number or boolean, {fromDatabase: NAME, key: url|host|port|database|user|password} or {fromSecret: NAME}";
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use super::scalar::ScalarOrMap;
        Ok(match ScalarOrMap::<RawEnvRef>::deserialize(d)? {
            ScalarOrMap::Scalar(s) => EnvValue::Literal(ScalarString(s)),
            ScalarOrMap::Map(RawEnvRef {
                from_database: Some(db),
                key,
                from_secret: None,
            }) => EnvValue::FromDatabase {
                from_database: db.0,
                key: key.unwrap_or_default(),
            },
            ScalarOrMap::Map(RawEnvRef {
                from_database: None,
                key: None,
                from_secret: Some(s),
            }) => EnvValue::FromSecret { from_secret: s.0 },
            ScalarOrMap::Map(_) => {
                return Err(serde::de::Error::custom(
                    "expected {fromDatabase: NAME, key: url|host|port|database|user|password} or {fromSecret: NAME}",
                ))
            }
        })
    }
}

/// How a spec change replaces the running container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    #[serde(default)]
    pub order: UpdateOrder,
    /// What happens when a new spec's containers do not become Ready (health check included)
    /// within `monitor`: `Continue` leaves them failing (default), `Rollback` goes back to the
    /// last revision that was Ready and reports the rollout failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// How long a new spec has to become Ready before `failureAction` applies (default 30s).
    #[schemars(with = "Option<crate::manifest::schema::DurationText>")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub monitor: Option<Duration>,
    /// On a swarm: how many tasks are replaced at once (default 1; 0 is all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// `Poll`: follow the image tag's registry digest (default for `pullPolicy: Always`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImagePolicy>,
    /// On a swarm: how long to wait between replacing one batch of tasks and the next.
    #[schemars(with = "Option<crate::manifest::schema::DurationText>")]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
}

/// Where a swarm may run a server's tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Swarm constraints, like `node.role == worker` or `node.labels.disk == ssd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<PlacementConstraint>,
    /// Spread the tasks evenly over the values of a node attribute, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<Spread>,
    /// At most this many tasks on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

/// A placement preference: `{spread: node.labels.zone}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spread {
    pub spread: ScalarString,
}

/// A swarm constraint: `ATTRIBUTE == VALUE` or `ATTRIBUTE != VALUE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PlacementConstraint(pub String);

impl<'de> Deserialize<'de> for PlacementConstraint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = ScalarString::deserialize(d)?.0;
        let ok = ["==", "!="].iter().any(|op| {
            s.split_once(op)
                .is_some_and(|(a, v)| !a.trim().is_empty() && !v.trim().is_empty())
        });
        if ok {
            Ok(PlacementConstraint(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid constraint {s:?}: expected ATTRIBUTE == VALUE or ATTRIBUTE != VALUE, like node.role == worker"
            )))
        }
    }
}

/// How a swarm service's name resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

/// Whether a server follows its image's tag in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ImagePolicy {
    /// Check the tag's registry digest every --image-interval; when it moved, pull it and roll
    /// the server out (and back, with `failureAction: Rollback`, if it fails).
    Poll,
    /// Never (the default, but for `pullPolicy: Always`, which polls unless told this).
    Never,
}

/// What a rollout that does not become Ready in time leads to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FailureAction {
    /// Leave the new spec's containers as they are (failing, restarting, backing off).
    #[default]
    Continue,
    /// Run the last revision that was Ready again, until the spec changes.
    Rollback,
}

/// How long a rollout has by default to become Ready.
pub const DEFAULT_MONITOR: Duration = Duration::from_secs(30);

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

impl schemars::JsonSchema for EnvValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let literal = g.subschema_for::<ScalarString>();
        let from_db = g.subschema_for::<RawFromDatabase>();
        let from_secret = g.subschema_for::<super::secret::FromSecret>();
        schemars::json_schema!({"anyOf": [literal, from_db, from_secret]})
    }
}
