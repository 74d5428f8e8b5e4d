//! The Compose file as it is written: every form the specification allows for a key (a string
//! or a list, a list or a mapping, short or long syntax), read with positions and with every
//! string scalar interpolated in place. Nothing here decides what a key means for dockhand; the
//! translation does.
//!
//! Untagged enums would buffer values and lose their positions, so the "one of several forms"
//! types have visitors of their own.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Where `${VAR}` values come from.
pub type Lookup = Rc<dyn Fn(&str) -> Option<String>>;

thread_local! {
    static VARS: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

/// Runs `f` with `lookup` as the source of `${VAR}` values for every `Str` it reads.
pub(crate) fn with_vars<R>(lookup: Lookup, f: impl FnOnce() -> R) -> R {
    UNSET.with(|u| u.borrow_mut().clear());
    let previous = VARS.with(|v| v.replace(Some(lookup)));
    let out = f();
    VARS.with(|v| *v.borrow_mut() = previous);
    out
}

thread_local! {
    /// Variables read while unset, with where (line, column): Compose warns of each.
    static UNSET: RefCell<Vec<(String, u64, u64)>> = const { RefCell::new(Vec::new()) };
}

/// The unset variables `with_vars` read so far (and forgets them).
pub(crate) fn take_unset() -> Vec<(String, u64, u64)> {
    UNSET.with(|u| std::mem::take(&mut *u.borrow_mut()))
}

fn interpolated<E: de::Error>(s: String, at: &serde_saphyr::Location) -> Result<String, E> {
    if !s.contains('$') {
        return Ok(s);
    }
    let lookup = VARS.with(|v| v.borrow().clone());
    let Some(l) = lookup else {
        return Ok(s);
    };
    let mut missing: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let out = super::interpolate::interpolate_noting(&s, &*l, &mut |name| {
        if seen.insert(name.to_owned()) {
            missing.push(name.to_owned());
        }
    })
    .map_err(E::custom)?;
    UNSET.with(|u| {
        let mut u = u.borrow_mut();
        for name in missing {
            u.push((name, at.line(), at.column()));
        }
    });
    Ok(out)
}

/// A scalar's text as written (`no`, `010` stay text), before interpolation.
enum Raw<T, M> {
    Text(String),
    Typed(String),
    Seq(Vec<T>),
    Map(M),
}

struct RawVisitor<T, M>(PhantomData<(T, M)>, &'static str);

impl<'de, T: Deserialize<'de>, M: Deserialize<'de>> Visitor<'de> for RawVisitor<T, M> {
    type Value = Raw<T, M>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Raw::Text(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = seq.next_element()? {
            out.push(x);
        }
        Ok(Raw::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        M::deserialize(de::value::MapAccessDeserializer::new(map)).map(Raw::Map)
    }
}

/// A value that may be a scalar (interpolated, as written), a sequence of `T` or a mapping `M`.
/// `Never` in `T` or `M` refuses that form.
pub enum Shape<T, M> {
    Scalar(String),
    Seq(Vec<T>),
    Map(M),
}

/// `Raw` read through `Spanned` (which needs `Deserialize`), expecting what `EXPECT` says.
struct RawOf<T, M>(Raw<T, M>);

thread_local! {
    static EXPECT: RefCell<&'static str> = const { RefCell::new("a value") };
}

impl<'de, T: Deserialize<'de>, M: Deserialize<'de>> Deserialize<'de> for RawOf<T, M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expecting = EXPECT.with(|e| *e.borrow());
        d.deserialize_any(RawVisitor::<T, M>(PhantomData, expecting))
            .map(RawOf)
    }
}

/// Reads one of the forms `Shape` allows; `expecting` names them all for errors.
fn shape<'de, D: Deserializer<'de>, T: Deserialize<'de>, M: Deserialize<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<Shape<T, M>, D::Error> {
    let previous = EXPECT.with(|e| e.replace(expecting));
    let raw = Spanned::<RawOf<T, M>>::deserialize(d);
    EXPECT.with(|e| *e.borrow_mut() = previous);
    let raw = raw?;
    Ok(match raw.value.0 {
        Raw::Text(t) => Shape::Scalar(interpolated(t, &raw.referenced)?),
        Raw::Typed(shown) => {
            Shape::Scalar(crate::manifest::scalar::written_at(&raw.referenced).unwrap_or(shown))
        }
        Raw::Seq(s) => Shape::Seq(s),
        Raw::Map(m) => Shape::Map(m),
    })
}

/// A form a key may not take.
pub enum Never {}

impl<'de> Deserialize<'de> for Never {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(wrong_form(EXPECT.with(|e| *e.borrow())))
    }
}

fn wrong_form<E: de::Error>(expecting: &str) -> E {
    E::custom(format!("expected {expecting}"))
}

/// A string scalar (numbers and booleans as written), interpolated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const E: &str = "a string, number or boolean";
        match shape::<D, Never, Never>(d, E)? {
            Shape::Scalar(s) => Ok(Str(s)),
            _ => Err(wrong_form(E)),
        }
    }
}

/// A map key as written (not interpolated, as in Compose).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(pub String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::manifest::scalar::exact(d).map(Key)
    }
}

/// A boolean, also written as a string (`"true"`, or `${FLAG}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?.0;
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(Bool(true)),
            "false" | "no" | "off" | "n" => Ok(Bool(false)),
            _ => Err(de::Error::custom(format!(
                "invalid boolean {s:?}: expected true or false"
            ))),
        }
    }
}

/// A whole number, also written as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub i64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?.0;
        s.trim().parse().map(Num).map_err(|_| {
            de::Error::custom(format!("invalid number {s:?}: expected a whole number"))
        })
    }
}

/// `command: echo hi` or `command: [echo, hi]`: a string is split like a shell would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrOrList {
    One(String),
    List(Vec<String>),
}

impl StrOrList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StrOrList::One(s) => vec![s],
            StrOrList::List(l) => l,
        }
    }
}

impl<'de> Deserialize<'de> for StrOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const E: &str = "a string or a list of strings";
        match shape::<D, Str, Never>(d, E)? {
            Shape::Scalar(s) => Ok(StrOrList::One(s)),
            Shape::Seq(l) => Ok(StrOrList::List(l.into_iter().map(|s| s.0).collect())),
            Shape::Map(never) => match never {},
        }
    }
}

/// `environment`, `labels`, `sysctls`, `extra_hosts`, `build.args`: a list of `KEY=VALUE` (or
/// `KEY`) or a mapping; a `None` value is "take it from the environment" (or unset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOrMap(pub Vec<(String, Option<String>)>);

impl ListOrMap {
    /// Splits a list entry at the first of `seps`.
    fn from_list(items: Vec<Str>, seps: &[char]) -> Self {
        ListOrMap(
            items
                .into_iter()
                .map(|Str(s)| match s.find(seps) {
                    Some(i) => (s[..i].to_owned(), Some(s[i + 1..].to_owned())),
                    None => (s, None),
                })
                .collect(),
        )
    }
}

struct OptMap(Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for OptMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OptMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OptMap, A::Error> {
                let mut out = Vec::new();
                while let Some(Key(k)) = m.next_key()? {
                    let v: Option<Str> = m.next_value()?;
                    out.push((k, v.map(|s| s.0)));
                }
                Ok(OptMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ListOrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const E: &str = "a list of KEY=VALUE strings or a mapping";
        match shape::<D, Str, OptMap>(d, E)? {
            Shape::Scalar(_) => Err(wrong_form(E)),
            Shape::Seq(l) => Ok(ListOrMap::from_list(l, &['='])),
            Shape::Map(m) => Ok(ListOrMap(m.0)),
        }
    }
}

/// `extra_hosts`: like `ListOrMap`, but a list entry is `host:ip` or `host=ip`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostList(pub Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for HostList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const E: &str = "a list of HOST:IP strings or a mapping";
        match shape::<D, Str, OptMap>(d, E)? {
            Shape::Scalar(_) => Err(wrong_form(E)),
            Shape::Seq(l) => Ok(HostList(ListOrMap::from_list(l, &['=', ':']).0)),
            Shape::Map(m) => Ok(HostList(m.0)),
        }
    }
}

/// A scalar short form, or the long form `M` (a mapping).
#[derive(Clone, Debug, PartialEq)]
pub enum ShortOrLong<M> {
    Short(String),
    Long(M),
}

/// What each long form expects, for errors.
pub trait LongForm {
    const EXPECTING: &'static str;
}

impl<'de, M: LongForm + Deserialize<'de>> Deserialize<'de> for ShortOrLong<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match shape::<D, Never, M>(d, M::EXPECTING)? {
            Shape::Scalar(s) => Ok(ShortOrLong::Short(s)),
            Shape::Map(m) => Ok(ShortOrLong::Long(m)),
            Shape::Seq(never) => match never.into_iter().next() {
                Some(n) => match n {},
                None => Err(wrong_form(M::EXPECTING)),
            },
        }
    }
}

/// A list of names, or a mapping from name to the long form (`networks`, `depends_on`).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedList<M>(pub Vec<(String, Option<M>)>);

impl<M> Default for NamedList<M> {
    fn default() -> Self {
        NamedList(Vec::new())
    }
}

struct NamedMap<M>(Vec<(String, Option<M>)>);

impl<'de, M: Deserialize<'de>> Deserialize<'de> for NamedMap<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<M>(PhantomData<M>);
        impl<'de, M: Deserialize<'de>> Visitor<'de> for V<M> {
            type Value = NamedMap<M>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<NamedMap<M>, A::Error> {
                let mut out = Vec::new();
                while let Some(Key(k)) = m.next_key()? {
                    out.push((k, m.next_value()?));
                }
                Ok(NamedMap(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'de, M: LongForm + Deserialize<'de>> Deserialize<'de> for NamedList<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match shape::<D, Str, NamedMap<M>>(d, M::EXPECTING)? {
            Shape::Scalar(_) => Err(wrong_form(M::EXPECTING)),
            Shape::Seq(l) => Ok(NamedList(l.into_iter().map(|s| (s.0, None)).collect())),
            Shape::Map(m) => Ok(NamedList(m.0)),
        }
    }
}

/// A key Compose knows and dockhand does not honour: reading it fails, naming the key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refused;

impl<'de> Deserialize<'de> for Refused {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Err(de::Error::custom("not supported by dockhand"))
    }
}

/// The whole file. Keys of services and of the top level are checked before this is read (see
/// `keys`), so unknown ones never reach here; `x-` keys are skipped.
#[derive(Deserialize, Default)]
pub struct File {
    pub name: Option<Str>,
    #[serde(default)]
    pub services: BTreeMap<Key, Spanned<Service>>,
    #[serde(default)]
    pub networks: BTreeMap<Key, Option<Network>>,
    #[serde(default)]
    pub volumes: BTreeMap<Key, Option<Volume>>,
    #[serde(default)]
    pub secrets: BTreeMap<Key, FileObject>,
    #[serde(default)]
    pub configs: BTreeMap<Key, FileObject>,
}

/// One service, every key optional (so that `extends` can merge two).
#[derive(Deserialize, Default, Clone)]
pub struct Service {
    pub image: Option<Str>,
    pub build: Option<ShortOrLong<BuildLong>>,
    pub command: Option<StrOrList>,
    pub entrypoint: Option<StrOrList>,
    pub environment: Option<ListOrMap>,
    pub env_file: Option<EnvFiles>,
    pub ports: Option<Vec<ShortOrLong<PortLong>>>,
    pub expose: Option<Vec<Str>>,
    pub volumes: Option<Vec<ShortOrLong<VolumeLong>>>,
    pub networks: Option<NamedList<ServiceNetwork>>,
    pub network_mode: Option<Str>,
    pub depends_on: Option<NamedList<DependsLong>>,
    pub healthcheck: Option<Healthcheck>,
    pub restart: Option<Str>,
    pub deploy: Option<Deploy>,
    pub scale: Option<Num>,
    pub labels: Option<ListOrMap>,
    pub secrets: Option<Vec<ShortOrLong<FileRef>>>,
    pub configs: Option<Vec<ShortOrLong<FileRef>>>,
    pub profiles: Option<Vec<Str>>,
    pub extends: Option<ShortOrLong<Extends>>,
    pub container_name: Option<Str>,
    pub hostname: Option<Str>,
    pub user: Option<Str>,
    pub working_dir: Option<Str>,
    pub extra_hosts: Option<HostList>,
    pub cap_add: Option<Vec<Str>>,
    pub cap_drop: Option<Vec<Str>>,
    pub privileged: Option<Bool>,
    pub devices: Option<Vec<Str>>,
    pub sysctls: Option<ListOrMap>,
    pub shm_size: Option<Str>,
    pub tmpfs: Option<StrOrList>,
    pub ulimits: Option<BTreeMap<Key, ShortOrLong<UlimitLong>>>,
    pub init: Option<Bool>,
    pub stop_signal: Option<Str>,
    pub stop_grace_period: Option<Str>,
    pub read_only: Option<Bool>,
    pub security_opt: Option<Vec<Str>>,
    pub tty: Option<Bool>,
    pub stdin_open: Option<Bool>,
    pub mem_limit: Option<Str>,
    pub cpus: Option<Str>,
    pub pull_policy: Option<Str>,
    pub pids_limit: Option<Num>,
    /// `SERVICE` or `SERVICE:ALIAS`: a dependency, and a name the service answers to.
    pub links: Option<Vec<Str>>,
    pub dns: Option<StrOrList>,
    pub dns_search: Option<StrOrList>,
    pub dns_opt: Option<Vec<Str>>,
    /// Accepted with a warning (see `keys`); read only to compare with the host.
    pub platform: Option<Str>,
    /// `x-dockhand`: dockhand's own fields, in manifest form, over the translation.
    #[serde(rename = "x-dockhand")]
    pub x_dockhand: Option<Spanned<XDockhand>>,
}

/// `x-dockhand:` as written: kept as a mapping, checked when the manifest is read.
#[derive(Clone, Debug, Default)]
pub struct XDockhand(pub serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for XDockhand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Object(m) => Ok(XDockhand(m)),
            serde_json::Value::Null => Ok(XDockhand::default()),
            _ => Err(de::Error::custom(
                "expected a mapping of dockhand Server fields (update, onUnhealthy, maxRestarts…)",
            )),
        }
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildLong {
    pub context: Option<Str>,
    pub dockerfile: Option<Str>,
    pub args: Option<ListOrMap>,
    pub target: Option<Str>,
    pub labels: Option<ListOrMap>,
    pub dockerfile_inline: Option<Refused>,
    pub cache_from: Option<Refused>,
    pub cache_to: Option<Refused>,
    pub ssh: Option<Refused>,
    pub secrets: Option<Refused>,
    pub platforms: Option<Refused>,
    pub additional_contexts: Option<Refused>,
    pub network: Option<Refused>,
    pub extra_hosts: Option<Refused>,
    pub no_cache: Option<Refused>,
    pub pull: Option<Refused>,
    pub shm_size: Option<Refused>,
    pub tags: Option<Refused>,
}

impl LongForm for BuildLong {
    const EXPECTING: &'static str = "a context directory, or {context, dockerfile, args, target}";
}

/// `env_file: .env`, a list of paths, or a list of `{path, required}`.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvFiles(pub Vec<(String, bool)>);

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvFileLong {
    pub path: Str,
    pub required: Option<Bool>,
    pub format: Option<Refused>,
}

impl LongForm for EnvFileLong {
    const EXPECTING: &'static str = "a path, or {path, required}";
}

impl<'de> Deserialize<'de> for EnvFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const E: &str = "a path or a list of paths (or of {path, required})";
        match shape::<D, ShortOrLong<EnvFileLong>, Never>(d, E)? {
            Shape::Scalar(s) => Ok(EnvFiles(vec![(s, true)])),
            Shape::Seq(l) => Ok(EnvFiles(
                l.into_iter()
                    .map(|e| match e {
                        ShortOrLong::Short(p) => (p, true),
                        ShortOrLong::Long(l) => (l.path.0, l.required.is_none_or(|b| b.0)),
                    })
                    .collect(),
            )),
            Shape::Map(never) => match never {},
        }
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortLong {
    pub target: Num,
    pub published: Option<Str>,
    pub host_ip: Option<Str>,
    pub protocol: Option<Str>,
    /// `host` or `ingress`: a swarm's; one engine has no ingress mesh, so both publish on the
    /// host.
    pub mode: Option<Str>,
    pub name: Option<Str>,
    pub app_protocol: Option<Str>,
}

impl LongForm for PortLong {
    const EXPECTING: &'static str =
        "a port like 8080:80, or {target, published, host_ip, protocol}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeLong {
    #[serde(rename = "type")]
    pub kind: Str,
    pub source: Option<Str>,
    pub target: Str,
    pub read_only: Option<Bool>,
    pub bind: Option<BindOptions>,
    pub volume: Option<VolumeOptions>,
    pub tmpfs: Option<TmpfsOptions>,
    pub consistency: Option<Str>,
}

impl LongForm for VolumeLong {
    const EXPECTING: &'static str =
        "a volume like data:/var/lib/data:ro, or {type, source, target, read_only}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// dockhand never creates a missing bind source: it is an error either way.
    pub create_host_path: Option<Bool>,
    pub propagation: Option<Refused>,
    /// `z` or `Z`.
    pub selinux: Option<Str>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    pub nocopy: Option<Refused>,
    pub subpath: Option<Refused>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    pub size: Option<Str>,
    pub mode: Option<Num>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    pub aliases: Option<Vec<Str>>,
    pub ipv4_address: Option<Str>,
    pub ipv6_address: Option<Refused>,
    pub link_local_ips: Option<Refused>,
    pub mac_address: Option<Refused>,
    pub priority: Option<Refused>,
    pub driver_opts: Option<Refused>,
}

impl LongForm for ServiceNetwork {
    const EXPECTING: &'static str =
        "a list of network names, or a mapping of name to {aliases, ipv4_address}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DependsLong {
    pub condition: Option<Str>,
    pub restart: Option<Bool>,
    pub required: Option<Bool>,
}

impl LongForm for DependsLong {
    const EXPECTING: &'static str =
        "a list of service names, or a mapping of name to {condition, restart, required}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    pub test: Option<StrOrList>,
    pub interval: Option<Str>,
    pub timeout: Option<Str>,
    pub retries: Option<Num>,
    pub start_period: Option<Str>,
    /// Only changes how often the probe runs while the container starts.
    pub start_interval: Option<Str>,
    pub disable: Option<Bool>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub replicas: Option<Num>,
    pub resources: Option<DeployResources>,
    pub restart_policy: Option<DeployRestart>,
    pub update_config: Option<UpdateConfig>,
    /// `replicated` only; `global` is a cluster's.
    pub mode: Option<Str>,
    pub labels: Option<Refused>,
    pub placement: Option<Placement>,
    /// dockhand rolls back with the update's settings.
    pub rollback_config: Option<IgnoredSpan>,
    /// `vip` or `dnsrr` (a swarm's; one engine has no virtual addresses).
    pub endpoint_mode: Option<Str>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    pub constraints: Option<Vec<Str>>,
    pub preferences: Option<Vec<Preference>>,
    pub max_replicas_per_node: Option<Num>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    pub spread: Str,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployResources {
    pub limits: Option<Limits>,
    /// What a swarm schedules by; one engine takes the memory as a soft limit.
    pub reservations: Option<Reservations>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reservations {
    pub cpus: Option<Str>,
    pub memory: Option<Str>,
    pub devices: Option<Refused>,
    pub generic_resources: Option<Refused>,
}

/// A value that is read and dropped, with where it was, for a warning.
#[derive(Clone, Debug, PartialEq)]
pub struct IgnoredSpan;

impl<'de> Deserialize<'de> for IgnoredSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| IgnoredSpan)
    }
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub cpus: Option<Str>,
    pub memory: Option<Str>,
    pub pids: Option<Refused>,
    pub devices: Option<Refused>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployRestart {
    pub condition: Option<Str>,
    pub max_attempts: Option<Num>,
    pub delay: Option<Str>,
    pub window: Option<Str>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    pub order: Option<Str>,
    pub parallelism: Option<Num>,
    pub delay: Option<Str>,
    pub failure_action: Option<Str>,
    pub monitor: Option<Str>,
    pub max_failure_ratio: Option<Refused>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub source: Str,
    pub target: Option<Str>,
    pub uid: Option<Refused>,
    pub gid: Option<Refused>,
    pub mode: Option<Refused>,
}

impl LongForm for FileRef {
    const EXPECTING: &'static str = "a name, or {source, target}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Extends {
    pub service: Str,
    pub file: Option<Str>,
}

impl LongForm for Extends {
    const EXPECTING: &'static str = "a service name, or {service, file}";
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UlimitLong {
    pub soft: Num,
    pub hard: Num,
}

impl LongForm for UlimitLong {
    const EXPECTING: &'static str = "a number, or {soft, hard}";
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub driver: Option<Str>,
    pub ipam: Option<Ipam>,
    pub external: Option<Bool>,
    pub name: Option<Str>,
    pub internal: Option<Bool>,
    pub attachable: Option<IgnoredSpan>,
    pub enable_ipv6: Option<Refused>,
    pub driver_opts: Option<ListOrMap>,
    pub labels: Option<IgnoredSpan>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    pub driver: Option<Str>,
    pub config: Option<Vec<IpamConfig>>,
    pub options: Option<Refused>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    pub subnet: Option<Str>,
    pub gateway: Option<Str>,
    pub ip_range: Option<Refused>,
    pub aux_addresses: Option<Refused>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub driver: Option<Str>,
    pub external: Option<Refused>,
    pub name: Option<Refused>,
    pub driver_opts: Option<Refused>,
    pub labels: Option<IgnoredSpan>,
}

/// A top-level secret or config: dockhand mounts its file read-only.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    pub file: Option<Str>,
    pub environment: Option<Refused>,
    pub content: Option<Refused>,
    pub external: Option<Refused>,
    pub name: Option<Refused>,
}
