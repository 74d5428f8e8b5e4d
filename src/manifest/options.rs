//! The container options real services use beyond image and command (`extraHosts`, `capAdd`,
//! `devices`, `tmpfs`, `ulimits`…), each checked at parse time so a typo is a manifest error
//! with its field, not an engine refusal at create. Which of them reach the host is the host
//! policy's business (`crate::policy`), not this module's.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::scalar::{exact, MapForm, ScalarOrMap};

/// An `extraHosts` name: a host name, read as a plain string so errors name the key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct HostKey(pub String);

impl<'de> Deserialize<'de> for HostKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::fields::Hostname::check(&s).map_err(de::Error::custom)?;
        Ok(HostKey(s))
    }
}

/// Where an `extraHosts` name points: an address, or `host-gateway` (the engine's host).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HostAddress(pub String);

pub const HOST_GATEWAY: &str = "host-gateway";

impl<'de> Deserialize<'de> for HostAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = exact(d)?;
        if s == HOST_GATEWAY || s.parse::<std::net::IpAddr>().is_ok() {
            Ok(HostAddress(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid address {s:?}: expected an IPv4 or IPv6 address, or host-gateway"
            )))
        }
    }
}

/// A Linux capability, as `NET_ADMIN` or `CAP_NET_ADMIN` (any case), or `ALL`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Capability(pub String);

/// The capabilities the engine grants every container unless dropped: adding one back (after
/// `capDrop: [ALL]`) gives nothing beyond a default container, so the host policy lets it be.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

impl Capability {
    /// The name without `CAP_`, upper case: `net_admin` and `CAP_NET_ADMIN` are `NET_ADMIN`.
    pub fn canonical(&self) -> String {
        let up = self.0.to_ascii_uppercase();
        up.strip_prefix("CAP_").unwrap_or(&up).to_owned()
    }

    /// Whether a default container has it already.
    pub fn is_default(&self) -> bool {
        DEFAULT_CAPABILITIES.contains(&self.canonical().as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = exact(d)?;
        let ok = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
        if ok {
            Ok(Capability(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid capability {s:?}: expected a name like NET_ADMIN, CAP_SYS_PTRACE or ALL"
            )))
        }
    }
}

/// A host device given to the container: `/dev/fuse`, `/dev/sda:/dev/xvda` or
/// `/dev/snd:/dev/snd:rw` (permissions out of `rwm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
    written: String,
}

impl Device {
    pub fn parse(s: &str) -> Result<Device, String> {
        let bad = |why: &str| {
            format!("invalid device {s:?}: {why} (expected HOST[:CONTAINER[:PERMISSIONS]], like /dev/fuse or /dev/sda:/dev/xvda:r)")
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] if c.starts_with('/') => (*h, *c, "rwm"),
            [h, p] => (*h, *h, *p),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(bad("too many ':'")),
        };
        if !host.starts_with("/dev/") && host != "/dev" {
            return Err(bad("the host side must be a path under /dev"));
        }
        if !container.starts_with('/') {
            return Err(bad("the container side must be an absolute path"));
        }
        let perms_ok = !permissions.is_empty()
            && permissions.len() <= 3
            && permissions.chars().all(|c| "rwm".contains(c));
        if !perms_ok {
            return Err(bad("permissions are letters out of rwm"));
        }
        Ok(Device {
            host: host.to_owned(),
            container: container.to_owned(),
            permissions: permissions.to_owned(),
            written: s.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Device::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

/// A kernel parameter name, like `net.core.somaxconn`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SysctlName(pub String);

impl<'de> Deserialize<'de> for SysctlName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.contains('.')
            && s.split('.').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if ok {
            Ok(SysctlName(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid sysctl {s:?}: expected a dotted kernel parameter like net.core.somaxconn"
            )))
        }
    }
}

/// A tmpfs mount: `/run` or `/run:size=64m,mode=1777` (the engine's mount options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    pub path: String,
    pub options: String,
}

impl<'de> Deserialize<'de> for Tmpfs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (path, options) = s.split_once(':').unwrap_or((&s, ""));
        if !path.starts_with('/') {
            return Err(de::Error::custom(format!(
                "invalid tmpfs {s:?}: expected an absolute path, then optionally :OPTIONS (like /run:size=64m,mode=1777)"
            )));
        }
        if options.contains(char::is_whitespace) {
            return Err(de::Error::custom(format!(
                "invalid tmpfs {s:?}: options are comma-separated without spaces"
            )));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
            options: options.to_owned(),
        })
    }
}

impl Serialize for Tmpfs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.options.is_empty() {
            s.serialize_str(&self.path)
        } else {
            s.serialize_str(&format!("{}:{}", self.path, self.options))
        }
    }
}

/// The resource limits `setrlimit` knows, by their engine names.
pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A `ulimits` key: one of `ULIMITS`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UlimitName(pub String);

impl<'de> Deserialize<'de> for UlimitName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if ULIMITS.contains(&s.as_str()) {
            Ok(UlimitName(s))
        } else {
            Err(de::Error::custom(format!(
                "unknown ulimit {s:?}: expected one of {}",
                ULIMITS.join(", ")
            )))
        }
    }
}

/// A limit: one number for both, or `{soft, hard}`; `-1` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UlimitMap {
    soft: i64,
    hard: i64,
}

impl MapForm for UlimitMap {
    const EXPECTING: &'static str = "a number, or {soft, hard}";
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (soft, hard) = match ScalarOrMap::<UlimitMap>::deserialize(d)? {
            ScalarOrMap::Scalar(s) => {
                let n = s.parse::<i64>().map_err(|_| {
                    de::Error::custom(format!(
                        "invalid ulimit {s:?}: expected a number (-1 for unlimited), or {{soft, hard}}"
                    ))
                })?;
                (n, n)
            }
            ScalarOrMap::Map(m) => (m.soft, m.hard),
        };
        let unlimited = |n: i64| if n == -1 { i64::MAX } else { n };
        if soft < -1 || hard < -1 || unlimited(soft) > unlimited(hard) {
            return Err(de::Error::custom(format!(
                "invalid ulimit {{soft: {soft}, hard: {hard}}}: expected limits of -1 (unlimited) or more, soft no higher than hard"
            )));
        }
        Ok(Ulimit { soft, hard })
    }
}

/// A signal, as `SIGTERM`, `TERM`, `SIGRTMIN+3` or a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Signal(pub String);

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = exact(d)?;
        let number = s.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
        let name = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
            && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
        if number || name {
            Ok(Signal(s))
        } else {
            Err(de::Error::custom(format!(
                "invalid signal {s:?}: expected a name like SIGTERM, SIGQUIT or SIGRTMIN+3, or a number from 1 to 64"
            )))
        }
    }
}

/// A `securityOpt` entry, checked against the engine's forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SecurityOpt(pub String);

impl SecurityOpt {
    /// Whether it lifts a confinement off the container (the host policy's business).
    pub fn unconfines(&self) -> bool {
        matches!(
            self.0.replace(':', "=").as_str(),
            "seccomp=unconfined"
                | "apparmor=unconfined"
                | "label=disable"
                | "systempaths=unconfined"
        )
    }
}

impl<'de> Deserialize<'de> for SecurityOpt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (key, value) = s
            .split_once(['=', ':'])
            .map_or((s.as_str(), None), |(k, v)| (k, Some(v)));
        let ok = match (key, value) {
            ("no-new-privileges", None | Some("true" | "false")) => true,
            ("seccomp", Some("unconfined")) => true,
            ("apparmor", Some(p)) => !p.is_empty(),
            ("label", Some(v)) => !v.is_empty(),
            ("systempaths", Some("unconfined")) => true,
            _ => false,
        };
        if ok {
            Ok(SecurityOpt(s))
        } else if key == "seccomp" {
            Err(de::Error::custom(format!(
                "invalid securityOpt {s:?}: a seccomp profile file is not supported (the engine reads no host files for an API client); only seccomp=unconfined"
            )))
        } else {
            Err(de::Error::custom(format!(
                "invalid securityOpt {s:?}: expected no-new-privileges, apparmor=PROFILE, label=LABEL, seccomp=unconfined or systempaths=unconfined"
            )))
        }
    }
}

/// A path to a file of `KEY=VALUE` lines on the host; relative ones are resolved against the
/// manifest's directory when it is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EnvFile(pub String);

impl<'de> Deserialize<'de> for EnvFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains('\0') {
            return Err(de::Error::custom(
                "invalid envFile: expected a path to a file of KEY=VALUE lines",
            ));
        }
        Ok(EnvFile(s))
    }
}

/// How the schema shows a string-or-list.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum OneOrManyText {
    One(String),
    Many(Vec<String>),
}

/// One value or a list of them (`envFile: .env` or `envFile: [.env, .env.local]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Checks of the options against each other and the network mode.
pub(super) fn check(spec: &super::server::ServerSpec) -> Result<(), (String, String)> {
    let host_network = spec
        .network
        .as_ref()
        .is_some_and(|n| n.0 == super::server::NETWORK_HOST);
    if host_network && spec.hostname.is_some() {
        return Err((
            "spec.hostname".into(),
            "network: host shares the host's name: hostname cannot be set".into(),
        ));
    }
    if host_network {
        if let Some(k) = spec.sysctls.keys().find(|k| k.0.starts_with("net.")) {
            return Err((
                format!("spec.sysctls.{}", k.0),
                "network: host shares the host's network stack: net.* sysctls would change the host's".into(),
            ));
        }
    }
    let mut paths = std::collections::BTreeSet::new();
    for (i, t) in spec.tmpfs.iter().enumerate() {
        let clash = spec.volumes.iter().any(|v| v.target.0 == t.path);
        if !paths.insert(t.path.as_str()) || clash {
            return Err((
                format!("spec.tmpfs[{i}]"),
                format!("{} is mounted twice", t.path),
            ));
        }
    }
    let mut devices = std::collections::BTreeSet::new();
    for (i, d) in spec.devices.iter().enumerate() {
        if !devices.insert(d.container.as_str()) {
            return Err((
                format!("spec.devices[{i}]"),
                format!("{} in the container is given twice", d.container),
            ));
        }
    }
    Ok(())
}

/// A resolver's search domain or option: one word of printable characters, no spaces (it is a
/// line of the container's resolv.conf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct DnsName(pub String);

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 253 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(serde::de::Error::custom(format!(
                "invalid {s:?}: expected one word like example.com or ndots:2"
            )));
        }
        Ok(DnsName(s))
    }
}
