//! A Compose project as dockhand manifests: one Server per service, one Network per declared
//! network. The result is manifest documents (JSON values), not objects: the compose source
//! reads them with the manifest parser, and `dockhand convert` writes them out, so the two can
//! never disagree, and every value passes the same validation as a hand-written manifest.
//!
//! Where Compose and dockhand differ by default the translation keeps Compose's meaning
//! (`restart` defaults to `no`, health checks to Compose's timings) and says so in a note.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::forms::{self, Mount, Port};
use super::model::{
    DependsLong, File, FileRef, ListOrMap, Service, ServiceNetwork, ShortOrLong, Str, StrOrList,
    VolumeLong,
};
use crate::manifest::{check_dns_label, Kind};

/// Label every object of a project carries: the project's name.
pub const PROJECT_LABEL: &str = "compose.project";
/// Label of a service's Server: the service's name as the file writes it.
pub const SERVICE_LABEL: &str = "compose.service";

/// What the translation needs besides the file.
pub struct Context<'a> {
    pub project: &'a str,
    /// The project directory: relative paths in the file are relative to it.
    pub dir: &'a Path,
    /// The environment, then the project's `.env` (for `environment: [KEY]`).
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub profiles: &'a BTreeSet<String>,
}

/// One manifest document made from the file.
#[derive(Clone, Debug)]
pub struct Doc {
    pub kind: Kind,
    pub name: String,
    /// The file's key it came from: `services.web` or `networks.back`.
    pub from: String,
    pub value: Value,
    /// Choices the translation made, for `convert`'s comments.
    pub notes: Vec<String>,
    /// A dockhand spec field (`ports`) → the file's key it came from (`services.web.ports`).
    pub origins: BTreeMap<String, String>,
}

/// A problem at a key of the file (`services.web.ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Output {
    pub docs: Vec<Doc>,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// The object name a Compose name becomes: lowercase, `_` and `.` as `-`.
pub fn object_name(compose: &str) -> String {
    compose
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect()
}

pub fn translate(file: &File, cx: &Context) -> Output {
    let mut out = Output::default();
    let active: BTreeMap<&str, &Service> = file
        .services
        .iter()
        .filter(|(_, s)| {
            let profiles = s.value.profiles.as_deref().unwrap_or_default();
            profiles.is_empty()
                || profiles
                    .iter()
                    .any(|p| cx.profiles.contains(&p.0) || cx.profiles.contains("*"))
        })
        .map(|(k, s)| (k.0.as_str(), &s.value))
        .collect();
    let networks = networks(file, cx, &mut out);
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for (key, svc) in &active {
        let name = object_name(key);
        if let Err(e) = check_dns_label(&name) {
            out.errors.push(Problem {
                path: format!("services.{key}"),
                message: format!("the service's name cannot name a dockhand object: {e}"),
            });
            continue;
        }
        if let Some(other) = names.insert(name.clone(), key) {
            out.errors.push(Problem {
                path: format!("services.{key}"),
                message: format!("services {other} and {key} would both be named {name}"),
            });
            continue;
        }
        let mut t = Service1 {
            key,
            name: name.clone(),
            cx,
            file,
            active: &active,
            networks: &networks,
            spec: Map::new(),
            notes: Vec::new(),
            origins: BTreeMap::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            labels: Map::new(),
            skip: false,
        };
        t.service(svc);
        out.errors.append(&mut t.errors);
        out.warnings.append(&mut t.warnings);
        if t.skip {
            continue;
        }
        let mut labels = t.labels;
        labels.insert(PROJECT_LABEL.into(), json!(cx.project));
        labels.insert(SERVICE_LABEL.into(), json!(key));
        out.docs.push(Doc {
            kind: Kind::Server,
            name: name.clone(),
            from: format!("services.{key}"),
            value: json!({
                "apiVersion": crate::manifest::API_VERSION,
                "kind": "Server",
                "metadata": {"name": name, "labels": labels},
                "spec": t.spec,
            }),
            notes: t.notes,
            origins: t.origins,
        });
    }
    for n in networks.values() {
        if let NetTarget::Declared { object, doc } = n {
            out.docs.push(Doc {
                kind: Kind::Network,
                name: object.clone(),
                from: doc.0.clone(),
                value: doc.1.clone(),
                notes: Vec::new(),
                origins: BTreeMap::new(),
            });
        }
    }
    out
}

/// Where a service joins when it names a network of the file.
#[derive(Clone, Debug)]
enum NetTarget {
    /// The instance's default network (the project's `default`).
    Default,
    /// A Network object of the project: its name, and its document (from-key, value).
    Declared {
        object: String,
        doc: (String, Value),
    },
    /// `external: true`: an engine network by name.
    External(String),
}

impl NetTarget {
    fn name(&self) -> &str {
        match self {
            NetTarget::Default => crate::manifest::server::DEFAULT_NETWORK,
            NetTarget::Declared { object, .. } => object,
            NetTarget::External(n) => n,
        }
    }
}

fn networks(file: &File, cx: &Context, out: &mut Output) -> BTreeMap<String, NetTarget> {
    let mut nets = BTreeMap::new();
    nets.insert("default".to_owned(), NetTarget::Default);
    for (key, net) in &file.networks {
        let path = format!("networks.{}", key.0);
        let net = net.clone().unwrap_or_default();
        let mut err = |message: String| {
            out.errors.push(Problem {
                path: path.clone(),
                message,
            })
        };
        if net.external.is_some_and(|b| b.0) {
            let name = net.name.as_ref().map_or(key.0.clone(), |n| n.0.clone());
            if let Err(e) = check_dns_label(&name) {
                err(format!(
                    "an external network's name must be a DNS label here: {e}"
                ));
                continue;
            }
            nets.insert(key.0.clone(), NetTarget::External(name));
            continue;
        }
        if net.name.is_some() {
            err("name: an engine-wide network name is not supported by dockhand (networks are namespaced per instance); use external: true for a network made elsewhere".into());
            continue;
        }
        let mut spec = Map::new();
        if let Some(d) = &net.driver {
            spec.insert("driver".into(), json!(d.0));
        }
        if net.internal.is_some_and(|b| b.0) {
            spec.insert("internal".into(), json!(true));
        }
        if let Some(o) = &net.driver_opts {
            let m: Map<String, Value> =
                o.0.iter()
                    .map(|(k, v)| (k.clone(), json!(v.clone().unwrap_or_default())))
                    .collect();
            spec.insert("options".into(), Value::Object(m));
        }
        if let Some(ipam) = &net.ipam {
            if ipam.driver.as_ref().is_some_and(|d| d.0 != "default") {
                err("ipam.driver: only the default IPAM driver is supported by dockhand".into());
                continue;
            }
            let configs = ipam.config.as_deref().unwrap_or_default();
            if configs.len() > 1 {
                err("ipam.config: dockhand takes one subnet per network".into());
                continue;
            }
            if let Some(c) = configs.first() {
                if let Some(s) = &c.subnet {
                    spec.insert("subnet".into(), json!(s.0));
                }
                if let Some(g) = &c.gateway {
                    spec.insert("gateway".into(), json!(g.0));
                }
            }
        }
        let object = object_name(&format!("{}-{}", cx.project, key.0));
        if let Err(e) = check_dns_label(&object) {
            err(format!("the network cannot name a dockhand object: {e}"));
            continue;
        }
        let value = json!({
            "apiVersion": crate::manifest::API_VERSION,
            "kind": "Network",
            "metadata": {"name": object, "labels": {PROJECT_LABEL: cx.project}},
            "spec": spec,
        });
        nets.insert(
            key.0.clone(),
            NetTarget::Declared {
                object: object.clone(),
                doc: (path.clone(), value),
            },
        );
    }
    nets
}

/// The translation of one service.
struct Service1<'a> {
    key: &'a str,
    name: String,
    cx: &'a Context<'a>,
    file: &'a File,
    active: &'a BTreeMap<&'a str, &'a Service>,
    networks: &'a BTreeMap<String, NetTarget>,
    spec: Map<String, Value>,
    labels: Map<String, Value>,
    notes: Vec<String>,
    origins: BTreeMap<String, String>,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Set when the service runs no container (`replicas: 0`).
    skip: bool,
}

impl Service1<'_> {
    /// The path of one of the service's keys (of the service itself for `""`).
    fn path(&self, key: &str) -> String {
        if key.is_empty() {
            format!("services.{}", self.key)
        } else {
            format!("services.{}.{key}", self.key)
        }
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(Problem {
            path: self.path(key),
            message: message.into(),
        });
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: self.path(key),
            message: message.into(),
        });
    }

    /// Sets a dockhand field, remembering the file's key it came from.
    fn set(&mut self, field: &str, from: &str, value: Value) {
        self.spec.insert(field.to_owned(), value);
        let origin = self.path(from);
        self.origins.entry(field.to_owned()).or_insert(origin);
    }

    fn push(&mut self, field: &str, from: &str, value: Value) {
        let entry = self
            .spec
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = entry {
            a.push(value);
        }
        self.origins
            .entry(field.to_owned())
            .or_insert_with(|| format!("services.{}.{from}", self.key));
    }

    fn service(&mut self, s: &Service) {
        if let Some(i) = &s.image {
            self.set("image", "image", json!(i.0));
        }
        if let Some(b) = &s.build {
            self.build(b);
        }
        if s.image.is_none() && s.build.is_none() {
            self.error("image", "a service needs an image or a build");
        }
        if let Some(p) = &s.pull_policy {
            let policy = match p.0.as_str() {
                "always" => Some("Always"),
                "never" => Some("Never"),
                "missing" | "if_not_present" => Some("IfNotPresent"),
                "build" if s.build.is_some() => None,
                other => {
                    self.error(
                        "pull_policy",
                        format!("{other:?} is not supported by dockhand: expected always, never, missing or build"),
                    );
                    None
                }
            };
            if let Some(policy) = policy {
                self.set("pullPolicy", "pull_policy", json!(policy));
            }
        }
        for (key, field, v) in [
            ("command", "command", &s.command),
            ("entrypoint", "entrypoint", &s.entrypoint),
        ] {
            if let Some(v) = v {
                match v {
                    StrOrList::One(text) => match forms::shell_words(text) {
                        Ok(words) => self.set(field, key, json!(words)),
                        Err(e) => self.error(key, e),
                    },
                    StrOrList::List(l) => self.set(field, key, json!(l)),
                }
            }
        }
        self.environment(s);
        self.ports(s);
        self.volumes(s);
        self.files(s);
        self.networks(s);
        self.depends(s);
        self.health(s);
        self.restart(s);
        self.deploy(s);
        self.options(s);
        if let Some(l) = &s.labels {
            for (k, v) in &l.0 {
                self.labels
                    .insert(k.clone(), json!(v.clone().unwrap_or_default()));
            }
            self.origins.insert("labels".into(), self.path("labels"));
        }
        // An empty platform (`${DOCKER_PLATFORM:-}`) is no platform, as in Compose.
        if let Some(p) = s.platform.as_ref().filter(|p| !p.0.trim().is_empty()) {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            let host = format!("linux/{arch}");
            if p.0 == host || p.0.starts_with(&format!("{host}/")) {
                self.warn(
                    "platform",
                    format!("{} is this host's platform; ignored", p.0),
                );
            } else {
                self.error(
                    "platform",
                    format!(
                        "{} is not this host's platform ({host}): dockhand runs images natively",
                        p.0
                    ),
                );
            }
        }
        if let Some(x) = &s.x_dockhand {
            self.x_dockhand(&x.value.0);
        }
    }

    fn build(&mut self, b: &ShortOrLong<super::model::BuildLong>) {
        let mut build = Map::new();
        match b {
            ShortOrLong::Short(ctx) => {
                build.insert("context".into(), json!(ctx));
            }
            ShortOrLong::Long(l) => {
                build.insert(
                    "context".into(),
                    json!(l.context.as_ref().map_or(".", |c| c.0.as_str())),
                );
                if let Some(d) = &l.dockerfile {
                    build.insert("dockerfile".into(), json!(d.0));
                }
                if let Some(t) = &l.target {
                    build.insert("target".into(), json!(t.0));
                }
                if let Some(args) = &l.args {
                    let mut m = Map::new();
                    for (k, v) in &args.0 {
                        // `ARG` without a value takes the environment's, as Compose does.
                        if let Some(v) = v.clone().or_else(|| (self.cx.lookup)(k)) {
                            m.insert(k.clone(), json!(v));
                        }
                    }
                    if !m.is_empty() {
                        build.insert("args".into(), Value::Object(m));
                    }
                }
                if l.labels.is_some() {
                    self.warn(
                        "build.labels",
                        "image labels of a build are not set by dockhand; ignored",
                    );
                }
            }
        }
        self.set("build", "build", Value::Object(build));
    }

    fn environment(&mut self, s: &Service) {
        if let Some(files) = &s.env_file {
            let mut list = Vec::new();
            for (path, required) in &files.0 {
                if !required && !self.cx.dir.join(path).exists() {
                    continue;
                }
                list.push(json!(path));
            }
            if !list.is_empty() {
                self.set("envFile", "env_file", Value::Array(list));
            }
        }
        if let Some(env) = &s.environment {
            let mut m = Map::new();
            for (k, v) in &env.0 {
                // `KEY` alone takes the value from the environment, or is left unset.
                if let Some(v) = v.clone().or_else(|| (self.cx.lookup)(k)) {
                    m.insert(k.clone(), json!(v));
                }
            }
            self.set("env", "environment", Value::Object(m));
        }
    }

    fn ports(&mut self, s: &Service) {
        for p in s.ports.iter().flatten() {
            let expanded = match p {
                ShortOrLong::Short(text) => forms::short_port(text),
                ShortOrLong::Long(l) => {
                    let udp = match l.protocol.as_ref().map(|p| p.0.as_str()) {
                        None | Some("tcp") => Ok(false),
                        Some("udp") => Ok(true),
                        Some(other) => {
                            Err(format!("invalid protocol {other:?}: expected tcp or udp"))
                        }
                    };
                    udp.and_then(|udp| {
                        let target = u16::try_from(l.target.0)
                            .map_err(|_| format!("invalid target port {}", l.target.0))?;
                        forms::expand_ports(
                            &target.to_string(),
                            l.published.as_ref().map(|p| p.0.as_str()),
                            l.host_ip.as_ref().map(|i| i.0.clone()),
                            udp,
                        )
                    })
                }
            };
            // A swarm's publish mode (one engine publishes both on the host).
            let mode = match p {
                ShortOrLong::Long(l) => match l.mode.as_ref().map(|m| m.0.as_str()) {
                    None => None,
                    Some(m @ ("host" | "ingress")) => Some(m),
                    Some(other) => {
                        self.error(
                            "ports",
                            format!("invalid mode {other:?}: expected host or ingress"),
                        );
                        continue;
                    }
                },
                ShortOrLong::Short(_) => None,
            };
            match expanded {
                Ok(ports) => {
                    for Port {
                        container,
                        host,
                        host_ip,
                        udp,
                    } in ports
                    {
                        let mut m = Map::new();
                        m.insert("container".into(), json!(container));
                        if host != 0 {
                            m.insert("host".into(), json!(host));
                        }
                        if let Some(ip) = host_ip {
                            m.insert("hostIp".into(), json!(ip));
                        }
                        if udp {
                            m.insert("protocol".into(), json!("udp"));
                        }
                        if let Some(mode) = mode {
                            m.insert("mode".into(), json!(mode));
                        }
                        self.push("ports", "ports", Value::Object(m));
                    }
                }
                Err(e) => self.error("ports", e),
            }
        }
    }

    /// A named volume of the file, as dockhand's (namespaced per instance) volume name.
    fn volume_name(&mut self, name: &str) -> Option<String> {
        if !self.file.volumes.keys().any(|k| k.0 == name) {
            self.error(
                "volumes",
                format!("volume {name:?} is not declared under the top-level volumes"),
            );
            return None;
        }
        Some(format!("{}_{name}", self.cx.project))
    }

    fn mount(
        &mut self,
        kind: &str,
        source: Option<String>,
        target: String,
        read_only: bool,
        relabel: Option<char>,
    ) {
        let mut m = Map::new();
        let source = match (kind, source) {
            ("bind", Some(src)) => {
                let src = match src.strip_prefix('~') {
                    Some(rest) => match std::env::var("HOME") {
                        Ok(home) => format!("{home}{rest}"),
                        Err(_) => {
                            self.error("volumes", format!("{src}: HOME is not set"));
                            return;
                        }
                    },
                    None => src,
                };
                m.insert("type".into(), json!("bind"));
                src
            }
            ("volume", Some(src)) => match self.volume_name(&src) {
                Some(v) => v,
                None => return,
            },
            ("volume", None) => {
                let v = format!(
                    "{}_{}_{}",
                    self.cx.project,
                    self.key,
                    target.trim_matches('/').replace('/', "-")
                );
                self.notes.push(format!(
                    "the anonymous volume at {target} became the named volume {v}, kept across updates"
                ));
                v
            }
            (_, _) => {
                self.error(
                    "volumes",
                    format!("a {kind} mount of {target} needs a source"),
                );
                return;
            }
        };
        m.insert("source".into(), json!(source));
        m.insert("target".into(), json!(target));
        if read_only {
            m.insert("readOnly".into(), json!(true));
        }
        match relabel {
            Some('z') => drop(m.insert("relabel".into(), json!("shared"))),
            Some('Z') => drop(m.insert("relabel".into(), json!("private"))),
            _ => {}
        }
        self.push("volumes", "volumes", Value::Object(m));
    }

    fn volumes(&mut self, s: &Service) {
        for v in s.volumes.iter().flatten() {
            match v {
                ShortOrLong::Short(text) => match forms::short_volume(text) {
                    Ok(m @ Mount { .. }) => {
                        let kind = if m.is_bind() { "bind" } else { "volume" };
                        if !m.ignored.is_empty() {
                            self.warn(
                                "volumes",
                                format!(
                                    "{text}: {} changes nothing on this engine (Docker Desktop's file sharing on macOS, or nocopy); ignored",
                                    m.ignored.join(",")
                                ),
                            );
                        }
                        self.mount(kind, m.source, m.target, m.read_only, m.relabel);
                    }
                    Err(e) => self.error("volumes", e),
                },
                ShortOrLong::Long(l) => self.long_volume(l),
            }
        }
    }

    fn long_volume(&mut self, l: &VolumeLong) {
        let ro = l.read_only.is_some_and(|b| b.0);
        let source = l.source.as_ref().map(|s| s.0.clone());
        match l.kind.0.as_str() {
            "bind" => {
                if l.bind.as_ref().and_then(|b| b.create_host_path).is_some_and(|b| b.0) {
                    self.notes.push(format!(
                        "bind.create_host_path: dockhand never creates {}; it must exist",
                        source.as_deref().unwrap_or_default()
                    ));
                }
                let relabel = match l.bind.as_ref().and_then(|b| b.selinux.as_ref()) {
                    None => None,
                    Some(z) if z.0 == "z" => Some('z'),
                    Some(z) if z.0 == "Z" => Some('Z'),
                    Some(other) => {
                        return self.error(
                            "volumes",
                            format!("bind.selinux: {:?}: expected z or Z", other.0),
                        )
                    }
                };
                self.mount("bind", source, l.target.0.clone(), ro, relabel);
            }
            "volume" => self.mount("volume", source, l.target.0.clone(), ro, None),
            "tmpfs" => {
                let mut t = l.target.0.clone();
                let mut opts = Vec::new();
                if let Some(size) = l.tmpfs.as_ref().and_then(|t| t.size.as_ref()) {
                    match forms::bytes(&size.0) {
                        Ok(b) => opts.push(format!("size={b}")),
                        Err(e) => return self.error("volumes", e),
                    }
                }
                if let Some(mode) = l.tmpfs.as_ref().and_then(|t| t.mode) {
                    opts.push(format!("mode={:o}", mode.0));
                }
                if !opts.is_empty() {
                    t = format!("{t}:{}", opts.join(","));
                }
                self.push("tmpfs", "volumes", json!(t));
            }
            other => self.error(
                "volumes",
                format!("volume type {other:?} is not supported by dockhand: expected bind, volume or tmpfs"),
            ),
        }
    }

    /// `secrets` and `configs`: their files, mounted read-only where Compose puts them.
    fn files(&mut self, s: &Service) {
        for (key, refs, defs, dir) in [
            ("secrets", &s.secrets, &self.file.secrets, "/run/secrets/"),
            ("configs", &s.configs, &self.file.configs, "/"),
        ] {
            for r in refs.iter().flatten() {
                let (source, target) = match r {
                    ShortOrLong::Short(n) => (n.clone(), None),
                    ShortOrLong::Long(FileRef { source, target, .. }) => {
                        (source.0.clone(), target.as_ref().map(|t| t.0.clone()))
                    }
                };
                let Some(def) = defs.iter().find(|(k, _)| k.0 == source).map(|(_, d)| d) else {
                    self.error(
                        key,
                        format!("{source:?} is not declared under the top-level {key}"),
                    );
                    continue;
                };
                let Some(file) = &def.file else {
                    self.error(
                        key,
                        format!("{source:?}: dockhand mounts only a secret or config with file:"),
                    );
                    continue;
                };
                if !self.cx.dir.join(&file.0).exists() {
                    self.errors.push(Problem {
                        path: format!("{key}.{source}.file"),
                        message: format!("{} does not exist on this host", file.0),
                    });
                    continue;
                }
                let target = match target {
                    Some(t) if t.starts_with('/') => t,
                    Some(t) => format!("{dir}{t}"),
                    None => format!("{dir}{source}"),
                };
                self.mount("bind", Some(file.0.clone()), target, true, None);
            }
        }
    }

    fn networks(&mut self, s: &Service) {
        if let Some(mode) = &s.network_mode {
            match mode.0.as_str() {
                "host" | "none" => self.set("network", "network_mode", json!(mode.0)),
                other => self.error(
                    "network_mode",
                    format!("{other:?} is not supported by dockhand: expected host or none (or networks:)"),
                ),
            }
            if s.networks.is_some() {
                self.error(
                    "networks",
                    "network_mode and networks cannot be used together",
                );
            }
            return;
        }
        let Some(list) = &s.networks else {
            return;
        };
        let mut joins = Vec::new();
        for (net, opts) in &list.0 {
            let Some(target) = self.networks.get(net) else {
                self.error(
                    "networks",
                    format!("network {net:?} is not declared under the top-level networks"),
                );
                continue;
            };
            let mut j = Map::new();
            j.insert("name".into(), json!(target.name()));
            if let Some(ServiceNetwork {
                aliases,
                ipv4_address,
                ..
            }) = opts
            {
                if let Some(a) = aliases {
                    j.insert(
                        "aliases".into(),
                        json!(a.iter().map(|a| a.0.clone()).collect::<Vec<_>>()),
                    );
                }
                if let Some(ip) = ipv4_address {
                    j.insert("ip".into(), json!(ip.0));
                }
            }
            joins.push(Value::Object(j));
        }
        self.set("networks", "networks", Value::Array(joins));
    }

    fn depends(&mut self, s: &Service) {
        self.links(s);
        let Some(deps) = &s.depends_on else {
            return;
        };
        for (dep, long) in &deps.0 {
            let DependsLong {
                condition,
                restart,
                required,
            } = long.clone().unwrap_or(DependsLong {
                condition: None,
                restart: None,
                required: None,
            });
            if !self.active.contains_key(dep.as_str()) {
                if required.is_some_and(|r| !r.0) {
                    continue;
                }
                let why = if self.file.services.keys().any(|k| k.0 == *dep) {
                    "is not active (its profiles are not enabled)"
                } else {
                    "is not a service of this file"
                };
                self.error("depends_on", format!("{dep:?} {why}"));
                continue;
            }
            let condition = match condition.as_ref().map(|c| c.0.as_str()) {
                None | Some("service_started") => "Started",
                Some("service_healthy") => "Healthy",
                Some("service_completed_successfully") => "Completed",
                Some(other) => {
                    self.error("depends_on", format!("invalid condition {other:?}: expected service_started, service_healthy or service_completed_successfully"));
                    continue;
                }
            };
            let mut d = Map::new();
            d.insert("name".into(), json!(object_name(dep)));
            d.insert("condition".into(), json!(condition));
            if restart.is_some_and(|r| r.0) {
                d.insert("restart".into(), json!(true));
            }
            self.push("dependsOn", "depends_on", Value::Object(d));
        }
    }

    /// `links`, a legacy form: each linked service is a dependency (started first, as Compose
    /// starts it), and its alias a name that service answers to (see `aliases`).
    fn links(&mut self, s: &Service) {
        let listed: Vec<&str> = s
            .depends_on
            .iter()
            .flat_map(|d| d.0.iter().map(|(k, _)| k.as_str()))
            .collect();
        let mut seen = Vec::new();
        for l in s.links.iter().flatten() {
            let target = l.0.split_once(':').map_or(l.0.as_str(), |(t, _)| t);
            if listed.contains(&target) || seen.contains(&target) {
                continue;
            }
            seen.push(target);
            if !self.active.contains_key(target) {
                self.error(
                    "links",
                    format!("{target:?} is not an active service of this file"),
                );
                continue;
            }
            self.push(
                "dependsOn",
                "links",
                json!({"name": object_name(target), "condition": "Started"}),
            );
        }
    }

    fn duration(&mut self, key: &str, v: &Option<Str>, default: &str) -> Option<String> {
        let text = v.as_ref().map_or(default, |s| s.0.as_str());
        match forms::duration(text) {
            Ok(d) => Some(forms::duration_text(d)),
            Err(e) => {
                self.error(key, e);
                None
            }
        }
    }

    fn health(&mut self, s: &Service) {
        let Some(h) = &s.healthcheck else {
            return;
        };
        let mut m = Map::new();
        let test: Option<Vec<String>> = h.test.clone().map(|t| match t {
            StrOrList::One(cmd) => vec!["CMD-SHELL".into(), cmd],
            StrOrList::List(l) => l,
        });
        let disabled = h.disable.is_some_and(|d| d.0)
            || test
                .as_ref()
                .is_some_and(|t| t.first().is_some_and(|f| f == "NONE"));
        if disabled {
            m.insert("disable".into(), json!(true));
            self.set("healthCheck", "healthcheck", Value::Object(m));
            return;
        }
        // `disable: false` and nothing else is a no-op in Compose: the image's own check stays.
        let timings = [&h.interval, &h.timeout, &h.start_period, &h.start_interval];
        if test.is_none() && h.retries.is_none() && timings.iter().all(|t| t.is_none()) {
            return;
        }
        let exec = match test.as_deref() {
            Some([first, rest @ ..]) if first == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some([first, cmd]) if first == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            }
            None => {
                return self.error(
                    "healthcheck.test",
                    "dockhand needs the test: it cannot change only the timings of the image's HEALTHCHECK",
                )
            }
            Some(_) => {
                return self.error(
                    "healthcheck.test",
                    "expected [CMD, args...], [CMD-SHELL, command], [NONE] or a command string",
                )
            }
        };
        m.insert("exec".into(), json!(exec));
        // Compose's defaults, written out: dockhand's own are shorter.
        for (key, field, v, default) in [
            ("healthcheck.interval", "interval", &h.interval, "30s"),
            ("healthcheck.timeout", "timeout", &h.timeout, "30s"),
            (
                "healthcheck.start_period",
                "startPeriod",
                &h.start_period,
                "0s",
            ),
        ] {
            if let Some(d) = self.duration(key, v, default) {
                m.insert(field.into(), json!(d));
            }
        }
        m.insert("retries".into(), json!(h.retries.map_or(3, |r| r.0)));
        if h.start_interval.is_some() {
            self.warn(
                "healthcheck.start_interval",
                "the probe runs at its interval from the start; ignored",
            );
        }
        self.notes.push(
            "an unhealthy container is restarted (onUnhealthy: Restart); x-dockhand: {onUnhealthy: None} only reports it".into(),
        );
        self.set("healthCheck", "healthcheck", Value::Object(m));
    }

    fn restart(&mut self, s: &Service) {
        let (policy, max) = match (&s.restart, s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref())) {
            (Some(r), _) => match r.0.as_str() {
                "no" | "false" => ("Never", None),
                "always" | "unless-stopped" => ("Always", None),
                "on-failure" => ("OnFailure", None),
                other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                    Some(Ok(n)) => ("OnFailure", Some(n)),
                    _ => {
                        return self.error(
                            "restart",
                            format!("invalid restart {other:?}: expected no, always, unless-stopped or on-failure[:N]"),
                        )
                    }
                },
            },
            (None, Some(p)) => {
                let policy = match p.condition.as_ref().map_or("any", |c| c.0.as_str()) {
                    "none" => "Never",
                    "on-failure" => "OnFailure",
                    "any" => "Always",
                    other => {
                        return self.error(
                            "deploy.restart_policy.condition",
                            format!("invalid condition {other:?}: expected none, on-failure or any"),
                        )
                    }
                };
                for (key, field, v) in [
                    ("deploy.restart_policy.delay", "restartDelay", &p.delay),
                    ("deploy.restart_policy.window", "restartWindow", &p.window),
                ] {
                    if v.is_some() {
                        if let Some(d) = self.duration(key, v, "0s") {
                            self.set(field, key, json!(d));
                        }
                    }
                }
                (policy, p.max_attempts.map(|n| n.0.max(0) as u32))
            }
            (None, None) => {
                self.notes.push(
                    "no restart: in Compose a container that exits stays stopped (restartPolicy: Never)".into(),
                );
                ("Never", None)
            }
        };
        self.set("restartPolicy", "restart", json!(policy));
        if let Some(n) = max {
            self.set("maxRestarts", "restart", json!(n));
        }
        if s.restart.as_ref().is_some_and(|r| r.0 == "unless-stopped") {
            self.notes.push("unless-stopped: a container stopped by hand is started again by the next pass (dockhand keeps what the file says)".into());
        }
    }

    fn deploy(&mut self, s: &Service) {
        let replicas = s
            .deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .map(|r| ("deploy.replicas", r))
            .or(s.scale.map(|r| ("scale", r)));
        if let Some((key, n)) = replicas {
            match n.0 {
                0 => {
                    self.warn(key, "0: the service runs no container and is left out");
                    self.skip = true;
                }
                n if n > 0 => {
                    if n != 1 {
                        self.set("replicas", key, json!(n));
                    }
                }
                n => self.error(key, format!("invalid replicas {n}: expected 0 or more")),
            }
        }
        let Some(d) = &s.deploy else {
            let mut res = Map::new();
            self.resources(&s.mem_limit, &s.cpus, "mem_limit", "cpus", &mut res);
            if !res.is_empty() {
                self.set("resources", "mem_limit", Value::Object(res));
            }
            return;
        };
        if d.mode
            .as_ref()
            .is_some_and(|m| m.0 != "replicated" && m.0 != "global")
        {
            self.error("deploy.mode", "expected replicated or global");
        }
        if let Some(u) = &d.update_config {
            let mut update = Map::new();
            match u.order.as_ref().map(|o| o.0.as_str()) {
                Some("start-first") => {
                    update.insert("order".into(), json!("StartFirst"));
                }
                Some("stop-first") | None => {}
                Some(other) => self.error(
                    "deploy.update_config.order",
                    format!("invalid order {other:?}: expected start-first or stop-first"),
                ),
            }
            match u.failure_action.as_ref().map(|o| o.0.as_str()) {
                Some("rollback") => {
                    update.insert("failureAction".into(), json!("Rollback"));
                }
                Some("continue") | None => {}
                Some("pause") => self.warn(
                    "deploy.update_config.failure_action",
                    "pause: a failed rollout is left as it is (continue)",
                ),
                Some(other) => self.error(
                    "deploy.update_config.failure_action",
                    format!(
                        "invalid failure_action {other:?}: expected rollback, continue or pause"
                    ),
                ),
            }
            if u.monitor.is_some() {
                if let Some(m) = self.duration("deploy.update_config.monitor", &u.monitor, "0s") {
                    update.insert("monitor".into(), json!(m));
                }
            }
            if let Some(n) = u.parallelism {
                match u32::try_from(n.0) {
                    Ok(n) => {
                        update.insert("parallelism".into(), json!(n));
                    }
                    Err(_) => self.error(
                        "deploy.update_config.parallelism",
                        format!("invalid parallelism {}: expected 0 or more", n.0),
                    ),
                }
            }
            if u.delay.is_some() {
                if let Some(d) = self.duration("deploy.update_config.delay", &u.delay, "0s") {
                    update.insert("delay".into(), json!(d));
                }
            }
            if !update.is_empty() {
                self.set("update", "deploy.update_config", Value::Object(update));
            }
        }
        if d.rollback_config.is_some() {
            self.warn(
                "deploy.rollback_config",
                "a rollback uses the update's parallelism, order and monitor; ignored",
            );
        }
        if let Some(mode) = &d.endpoint_mode {
            match mode.0.as_str() {
                "vip" => {}
                "dnsrr" => self.set("endpointMode", "deploy.endpoint_mode", json!("dnsrr")),
                other => self.error(
                    "deploy.endpoint_mode",
                    format!("invalid endpoint_mode {other:?}: expected vip or dnsrr"),
                ),
            }
        }
        if let Some(p) = &d.placement {
            let mut m = Map::new();
            if let Some(c) = &p.constraints {
                let list: Vec<&str> = c.iter().map(|c| c.0.as_str()).collect();
                m.insert("constraints".into(), json!(list));
            }
            if let Some(prefs) = &p.preferences {
                let list: Vec<Value> = prefs
                    .iter()
                    .map(|p| json!({"spread": p.spread.0}))
                    .collect();
                m.insert("preferences".into(), Value::Array(list));
            }
            if let Some(n) = p.max_replicas_per_node {
                m.insert("maxReplicasPerNode".into(), json!(n.0.max(0)));
            }
            if !m.is_empty() {
                self.set("placement", "deploy.placement", Value::Object(m));
            }
        }
        let mut res = Map::new();
        let limits = d.resources.as_ref().and_then(|r| r.limits.clone());
        let (cpus, memory) = limits.map_or((None, None), |l| (l.cpus, l.memory));
        self.resources(
            &memory.or(s.mem_limit.clone()),
            &cpus.or(s.cpus.clone()),
            "deploy.resources.limits.memory",
            "deploy.resources.limits.cpus",
            &mut res,
        );
        if let Some(r) = d.resources.as_ref().and_then(|r| r.reservations.as_ref()) {
            let mut reserved = Map::new();
            self.resources(
                &r.memory,
                &r.cpus,
                "deploy.resources.reservations.memory",
                "deploy.resources.reservations.cpus",
                &mut reserved,
            );
            if !reserved.is_empty() {
                res.insert("reservations".into(), Value::Object(reserved));
            }
        }
        if !res.is_empty() {
            self.set("resources", "deploy", Value::Object(res));
        }
    }

    fn resources(
        &mut self,
        memory: &Option<Str>,
        cpus: &Option<Str>,
        mem_key: &str,
        cpu_key: &str,
        out: &mut Map<String, Value>,
    ) {
        if let Some(m) = memory {
            match forms::bytes(&m.0) {
                Ok(b) => {
                    out.insert("memory".into(), json!(b));
                }
                Err(e) => self.error(mem_key, e),
            }
        }
        if let Some(c) = cpus {
            match c.0.trim().parse::<f64>() {
                Ok(n) => {
                    out.insert("cpus".into(), json!(n));
                }
                Err(_) => self.error(
                    cpu_key,
                    format!("invalid cpus {:?}: expected a number like 0.5", c.0),
                ),
            }
        }
    }

    fn options(&mut self, s: &Service) {
        let strs = |v: &Option<Vec<Str>>| {
            v.as_ref()
                .map(|l| json!(l.iter().map(|s| s.0.clone()).collect::<Vec<_>>()))
        };
        let map = |v: &Option<ListOrMap>| {
            v.as_ref().map(|l| {
                Value::Object(
                    l.0.iter()
                        .map(|(k, v)| (k.clone(), json!(v.clone().unwrap_or_default())))
                        .collect(),
                )
            })
        };
        let text = |v: &Option<Str>| v.as_ref().map(|s| json!(s.0));
        let flag = |v: Option<super::model::Bool>| v.filter(|b| b.0).map(|_| json!(true));
        let simple: Vec<(&str, &str, Option<Value>)> = vec![
            ("hostname", "hostname", text(&s.hostname)),
            ("user", "user", text(&s.user)),
            ("workingDir", "working_dir", text(&s.working_dir)),
            ("capAdd", "cap_add", strs(&s.cap_add)),
            ("capDrop", "cap_drop", strs(&s.cap_drop)),
            ("privileged", "privileged", flag(s.privileged)),
            ("devices", "devices", strs(&s.devices)),
            ("sysctls", "sysctls", map(&s.sysctls)),
            ("init", "init", flag(s.init)),
            ("stopSignal", "stop_signal", text(&s.stop_signal)),
            ("readOnlyRootFilesystem", "read_only", flag(s.read_only)),
            ("securityOpt", "security_opt", strs(&s.security_opt)),
            ("tty", "tty", flag(s.tty)),
            ("stdin", "stdin_open", flag(s.stdin_open)),
        ];
        for (field, key, v) in simple {
            if let Some(v) = v {
                self.set(field, key, v);
            }
        }
        if let Some(h) = &s.extra_hosts {
            let m: Map<String, Value> =
                h.0.iter()
                    .map(|(k, v)| (k.clone(), json!(v.clone().unwrap_or_default())))
                    .collect();
            self.set("extraHosts", "extra_hosts", Value::Object(m));
        }
        if let Some(t) = &s.tmpfs {
            for entry in t.clone().into_vec() {
                self.push("tmpfs", "tmpfs", json!(entry));
            }
        }
        if let Some(n) = &s.pids_limit {
            self.set("pidsLimit", "pids_limit", json!(n.0));
        }
        for (field, key, v) in [
            ("dns", "dns", &s.dns),
            ("dnsSearch", "dns_search", &s.dns_search),
        ] {
            if let Some(v) = v {
                self.set(field, key, json!(v.clone().into_vec()));
            }
        }
        if let Some(o) = strs(&s.dns_opt) {
            self.set("dnsOptions", "dns_opt", o);
        }
        if let Some(size) = &s.shm_size {
            match forms::bytes(&size.0) {
                Ok(b) => self.set("shmSize", "shm_size", json!(b)),
                Err(e) => self.error("shm_size", e),
            }
        }
        if let Some(d) = &s.stop_grace_period {
            if let Some(t) = self.duration("stop_grace_period", &Some(d.clone()), "10s") {
                self.set("stopGracePeriod", "stop_grace_period", json!(t));
            }
        }
        if let Some(u) = &s.ulimits {
            let m: Map<String, Value> = u
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        ShortOrLong::Short(n) => json!(n),
                        ShortOrLong::Long(l) => json!({"soft": l.soft.0, "hard": l.hard.0}),
                    };
                    (k.0.clone(), v)
                })
                .collect();
            self.set("ulimits", "ulimits", Value::Object(m));
        }
        let mut aliases = Vec::new();
        if self.name != self.key {
            aliases.push(self.key.to_owned());
        }
        if let Some(c) = &s.container_name {
            self.warn(
                "container_name",
                format!("dockhand names the container itself; {} is kept as a name the service answers to", c.0),
            );
            if c.0 != self.name && !aliases.contains(&c.0) {
                aliases.push(c.0.clone());
            }
        }
        // Another service's `links: [THIS:ALIAS]` makes ALIAS a name this one answers to.
        for other in self.active.values() {
            for l in other.links.iter().flatten() {
                if let Some((target, alias)) = l.0.split_once(':') {
                    if target == self.key
                        && alias != self.name
                        && !aliases.iter().any(|a| a == alias)
                    {
                        aliases.push(alias.to_owned());
                    }
                }
            }
        }
        if !aliases.is_empty() {
            let from = if s.container_name.is_some() {
                "container_name"
            } else {
                ""
            };
            self.set("aliases", from, json!(aliases));
        }
    }

    fn x_dockhand(&mut self, x: &Map<String, Value>) {
        for (k, v) in x {
            if k == "onUnhealthy" {
                match self.spec.get_mut("healthCheck") {
                    Some(Value::Object(h)) if !h.contains_key("disable") => {
                        h.insert("onUnhealthy".into(), v.clone());
                    }
                    _ => self.error(
                        "x-dockhand.onUnhealthy",
                        "needs a healthcheck with a test in the service",
                    ),
                }
                continue;
            }
            self.spec.insert(k.clone(), v.clone());
            self.origins.insert(k.clone(), self.path("x-dockhand"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_names_become_dns_labels() {
        assert_eq!(object_name("My_App.web"), "my-app-web");
    }
}
