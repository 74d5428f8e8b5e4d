//! `kind: Network`: which engine networks this instance needs, and keeping them so.
//!
//! A declared network is `dh_<instance>_<name>`, recreated (with its containers reattached)
//! when its spec changes. A name a server uses but no manifest declares is an existing engine
//! network used as is (never removed), or else a plain bridge network dockhand creates and
//! removes once nothing names it. Every object that names no network joins `default`, the
//! instance's own (like Compose's project network), so servers find each other by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::engine::labels;
use crate::engine::{Endpoint, Engine, EngineError, NetworkConfig, NetworkInfo, Observed};
use crate::manifest::server::{Joins, DEFAULT_NETWORK};
use crate::manifest::{Object, ObjectKey, Phase, Spec};
use crate::store::Status;

/// Spec hash of a network dockhand creates only because a server names it.
const AUTO: &str = "auto";

/// What the networks need this pass.
#[derive(Debug, Default)]
pub struct NetworkPlan {
    /// Manifest network name → engine network name, for every network a server names.
    pub engine_names: HashMap<String, String>,
    pub create: Vec<NetworkConfig>,
    pub recreate: Vec<NetworkConfig>,
    /// Networks of this instance nothing needs any more (removed once no container uses them).
    pub remove: Vec<NetworkInfo>,
    /// Same-named networks of this instance (a create the engine finished after its client was
    /// killed, then made again): all but the oldest go, their containers moved to it, since
    /// the engine refuses to start a container on an ambiguous name.
    pub duplicates: Vec<Duplicate>,
}

/// Networks that share an engine name; `keep` is the oldest.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub name: String,
    pub keep: String,
    pub extra: Vec<String>,
}

impl NetworkPlan {
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .duplicates
            .iter()
            .map(|d| {
                format!(
                    "remove {} duplicate(s) of network {} (same name)",
                    d.extra.len(),
                    d.name
                )
            })
            .collect();
        out.extend(
            self.create
                .iter()
                .map(|n| format!("create network {}", n.name)),
        );
        out.extend(
            self.recreate
                .iter()
                .map(|n| format!("recreate network {} (spec changed)", n.name)),
        );
        out.extend(
            self.remove
                .iter()
                .map(|n| format!("remove network {} (unused)", n.name)),
        );
        out
    }

    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.recreate.is_empty()
            && self.remove.is_empty()
            && self.duplicates.is_empty()
    }

    /// The network mode and engine endpoints for what an object joins.
    pub fn endpoints(&self, joins: &Joins) -> (Option<String>, Vec<Endpoint>) {
        match joins {
            Joins::Mode(mode) => (Some(mode.clone()), Vec::new()),
            Joins::Networks(nets) => (
                None,
                nets.iter()
                    .map(|j| Endpoint {
                        network: self
                            .engine_names
                            .get(&j.network)
                            .cloned()
                            .unwrap_or_else(|| j.network.clone()),
                        ip: j.ip,
                        aliases: j.aliases.clone(),
                    })
                    .collect(),
            ),
        }
    }
}

/// The networks the servers and databases join, by manifest name.
fn joined(desired: &[Object]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in desired {
        let joins = match &o.spec {
            Spec::Server(s) => s.joins(&o.name),
            Spec::Database(d) => d.joins(&o.name),
            Spec::Network(_) | Spec::Route(_) | Spec::Secret(_) => continue,
        };
        out.extend(joins.networks().iter().map(|j| j.network.clone()));
    }
    out
}

/// What the engine holds of the networks a pass may touch.
#[derive(Debug, Default)]
pub struct ObservedNetworks {
    /// This instance's networks.
    pub ours: Vec<NetworkInfo>,
    /// Names that servers use, no manifest declares, and that exist on the engine as
    /// networks this instance does not own (used as they are).
    pub existing: BTreeSet<String>,
}

/// Whether any desired object involves networks (every container joins one, but `host`/`none`).
pub fn involved(desired: &[Object]) -> bool {
    desired.iter().any(|o| match &o.spec {
        Spec::Network(_) | Spec::Database(_) => true,
        Spec::Server(s) => !s.joins(&o.name).networks().is_empty(),
        Spec::Route(_) | Spec::Secret(_) => false,
    })
}

/// Reads this instance's networks (unless `listed` already holds them), and asks the engine
/// only about names no manifest declares (to tell an existing network from one to create).
pub async fn observe<R: Engine>(
    engine: &R,
    instance: &str,
    desired: &[Object],
    listed: Option<Vec<NetworkInfo>>,
) -> Result<ObservedNetworks, EngineError> {
    let declared: BTreeSet<&str> = desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Network(_)))
        .map(|o| o.name.as_str())
        .collect();
    let ours: Vec<NetworkInfo> = match listed {
        Some(l) => l,
        None => engine.list_networks(instance).await?,
    };
    let mut existing = BTreeSet::new();
    for net in joined(desired) {
        // `default` is always the instance's own.
        if declared.contains(net.as_str()) || net == DEFAULT_NETWORK {
            continue;
        }
        let auto = labels::network_name(instance, &net);
        let is_ours = ours.iter().any(|n| n.name == auto);
        if !is_ours && engine.network_exists(&net).await? {
            existing.insert(net);
        }
    }
    Ok(ObservedNetworks { ours, existing })
}

/// Decides what to create, recreate and remove, from what `observe` saw.
pub fn plan(
    instance: &str,
    desired: &[Object],
    observed: &ObservedNetworks,
    pool: Option<&SubnetPool>,
) -> NetworkPlan {
    let mut wanted: BTreeMap<String, NetworkConfig> = BTreeMap::new();
    let mut plan = NetworkPlan::default();
    let owner = |hash: &str| {
        let mut l = labels::owner_labels(instance);
        l.insert(labels::SPEC_HASH.into(), hash.into());
        l
    };
    for o in desired {
        if let Spec::Network(n) = &o.spec {
            let name = labels::network_name(instance, &o.name);
            plan.engine_names.insert(o.name.clone(), name.clone());
            wanted.insert(
                name.clone(),
                NetworkConfig {
                    name,
                    driver: n.driver.clone(),
                    subnet: n.subnet.map(|s| s.to_string()),
                    gateway: n.gateway.map(|g| g.to_string()),
                    labels: owner(&o.spec_hash()),
                    internal: n.internal,
                    options: n
                        .options
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                    pool: n.subnet.is_none().then(|| pool.cloned()).flatten(),
                },
            );
        }
    }
    for net in joined(desired) {
        if plan.engine_names.contains_key(&net) {
            continue;
        }
        if observed.existing.contains(&net) {
            plan.engine_names.insert(net.clone(), net);
            continue;
        }
        let auto = labels::network_name(instance, &net);
        plan.engine_names.insert(net, auto.clone());
        wanted.insert(
            auto.clone(),
            NetworkConfig {
                name: auto,
                driver: "bridge".into(),
                subnet: None,
                gateway: None,
                labels: owner(AUTO),
                internal: false,
                options: HashMap::new(),
                pool: pool.cloned(),
            },
        );
    }
    // One network per engine name: the oldest (then the smallest id) stands for the name.
    let mut by_name: BTreeMap<&str, Vec<&NetworkInfo>> = BTreeMap::new();
    for n in &observed.ours {
        by_name.entry(n.name.as_str()).or_default().push(n);
    }
    for same in by_name.values_mut() {
        same.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        if same.len() > 1 && wanted.contains_key(same[0].name.as_str()) {
            plan.duplicates.push(Duplicate {
                name: same[0].name.clone(),
                keep: same[0].id.clone(),
                extra: same[1..].iter().map(|n| n.id.clone()).collect(),
            });
        }
    }
    for (name, config) in &wanted {
        match by_name.get(name.as_str()).and_then(|same| same.first()) {
            None => plan.create.push(config.clone()),
            Some(n)
                if n.spec_hash.as_deref()
                    != config.labels.get(labels::SPEC_HASH).map(String::as_str) =>
            {
                plan.recreate.push(config.clone())
            }
            Some(_) => {}
        }
    }
    plan.remove = observed
        .ours
        .iter()
        .filter(|n| !wanted.contains_key(&n.name))
        .cloned()
        .collect();
    plan
}

/// A declared network is Ready unless creating it failed this pass.
pub fn statuses(
    desired: &[Object],
    instance: &str,
    results: &[(String, Result<(), EngineError>)],
    generations: &HashMap<ObjectKey, i64>,
) -> Vec<Status> {
    desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Network(_)))
        .map(|o| {
            let engine = labels::network_name(instance, &o.name);
            let failure = results
                .iter()
                .find_map(|(what, r)| r.as_ref().err().filter(|_| what.ends_with(&engine)));
            let mut st = Status::pending(o.key());
            st.phase = if failure.is_some() {
                Phase::Failed
            } else {
                Phase::Ready
            };
            st.message = Some(match failure {
                Some(e) => e.to_string(),
                None => format!("engine network {engine}"),
            });
            st.observed_generation = generations.get(&o.key()).copied().unwrap_or(1);
            st
        })
        .collect()
}

/// Creates and recreates (before containers are created). A recreated network gets back the
/// containers it had, each with its static address and aliases there.
/// The operator's own address pool for networks that name no subnet (`--subnet-pool
/// 10.213.0.0/16`, a /24 each by default): the engine has about 31 default pools, one per
/// network, and the 32nd network fails ("could not find an available, non-overlapping IPv4
/// address pool"). A network's subnet is the first free one from a start its name decides, so
/// names keep to the same subnet and hundreds of instances fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetPool {
    pub base: std::net::Ipv4Addr,
    pub prefix: u8,
    /// The prefix length of each network's subnet.
    pub size: u8,
}

impl SubnetPool {
    /// `10.213.0.0/16` (each network a /24) or `10.213.0.0/16/26` (each a /26).
    pub fn parse(text: &str) -> Result<SubnetPool, String> {
        let expected = "expected an IPv4 CIDR such as 10.213.0.0/16, optionally with each network's size: 10.213.0.0/16/26";
        let mut parts = text.split('/');
        let (Some(addr), Some(prefix)) = (parts.next(), parts.next()) else {
            return Err(format!("invalid subnet pool {text:?}: {expected}"));
        };
        let base: std::net::Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid subnet pool {text:?}: {expected}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| {
                format!("invalid subnet pool {text:?}: the prefix must be 8 to 30; {expected}")
            })?;
        let size: u8 = match parts.next() {
            None => 24u8.max(prefix),
            Some(s) => s
                .parse()
                .ok()
                .filter(|s| (prefix..=30).contains(s))
                .ok_or_else(|| format!("invalid subnet pool {text:?}: each network's size must be between the pool's prefix and 30; {expected}"))?,
        };
        if parts.next().is_some() {
            return Err(format!("invalid subnet pool {text:?}: {expected}"));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        if u32::from(base) & !mask != 0 {
            return Err(format!(
                "invalid subnet pool {text:?}: {base} is not where a /{prefix} starts"
            ));
        }
        Ok(SubnetPool { base, prefix, size })
    }

    /// How many subnets the pool holds.
    pub fn count(&self) -> u32 {
        1u32 << (self.size - self.prefix)
    }

    /// Every subnet of the pool, starting at the one `name` hashes to.
    pub fn candidates<'a>(&'a self, name: &str) -> impl Iterator<Item = String> + 'a {
        let count = self.count();
        let digest = crate::manifest::short_hash(name.as_bytes());
        let start = u32::from_str_radix(&digest[..8.min(digest.len())], 16).unwrap_or(0) % count;
        let step = 1u32 << (32 - u32::from(self.size));
        (0..count).map(move |i| {
            let n = (start + i) % count;
            let addr = std::net::Ipv4Addr::from(u32::from(self.base) + n * step);
            format!("{addr}/{}", self.size)
        })
    }
}

impl std::fmt::Display for SubnetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.base, self.prefix, self.size)
    }
}

/// Whether the engine refused a subnet because another network has it (or it overlaps one).
fn overlaps(e: &EngineError) -> bool {
    let m = e.to_string();
    m.contains("overlaps") || m.contains("overlap") || m.contains("in use")
}

/// Creates one network: in the operator's pool when it has one and names no subnet (the first
/// free subnet from its start), else as the config says.
async fn create_one<R: Engine>(engine: &R, config: &NetworkConfig) -> Result<(), EngineError> {
    let Some(pool) = config.pool.as_ref().filter(|_| config.subnet.is_none()) else {
        return engine.create_network(config).await;
    };
    for subnet in pool.candidates(&config.name) {
        let mut c = config.clone();
        c.subnet = Some(subnet);
        match engine.create_network(&c).await {
            Err(e) if overlaps(&e) => continue,
            other => return other,
        }
    }
    Err(EngineError::Engine {
        op: "create network",
        target: config.name.clone(),
        message: format!(
            "the subnet pool {pool} has no free /{} left ({} taken): give a larger pool with --subnet-pool, or remove unused networks",
            pool.size,
            pool.count()
        ),
    })
}

pub async fn create<R: Engine>(
    engine: &R,
    plan: &NetworkPlan,
    observed: &[Observed],
    endpoint_of: &(dyn Fn(&Observed, &str) -> Option<Endpoint> + Sync),
) -> Vec<(String, Result<(), EngineError>)> {
    let mut out = Vec::new();
    for d in &plan.duplicates {
        let result = async {
            let kept = engine.network_containers(&d.keep).await?;
            for extra in &d.extra {
                let attached = engine.network_containers(extra).await?;
                for id in &attached {
                    engine.disconnect_network(extra, id).await?;
                }
                engine.remove_network(extra).await?;
                for id in attached.iter().filter(|id| !kept.contains(id)) {
                    engine
                        .connect_network(id, &endpoint(observed, endpoint_of, id, &d.name))
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        out.push((format!("remove duplicates of network {}", d.name), result));
    }
    for config in &plan.create {
        out.push((
            format!("create network {}", config.name),
            create_one(engine, config).await,
        ));
    }
    for config in &plan.recreate {
        let result = async {
            let attached = engine.network_containers(&config.name).await?;
            for id in &attached {
                engine.disconnect_network(&config.name, id).await?;
            }
            engine.remove_network(&config.name).await?;
            create_one(engine, config).await?;
            for id in &attached {
                engine
                    .connect_network(id, &endpoint(observed, endpoint_of, id, &config.name))
                    .await?;
            }
            Ok(())
        }
        .await;
        out.push((format!("recreate network {}", config.name), result));
    }
    out
}

/// The endpoint a container had on `network` (its address and aliases), to attach it again.
fn endpoint(
    observed: &[Observed],
    endpoint_of: &(dyn Fn(&Observed, &str) -> Option<Endpoint> + Sync),
    id: &str,
    network: &str,
) -> Endpoint {
    observed
        .iter()
        .find(|o| o.id == id)
        .and_then(|o| endpoint_of(o, network))
        .unwrap_or_else(|| Endpoint {
            network: network.to_owned(),
            ..Endpoint::default()
        })
}

/// Removes networks nothing needs (after their containers are gone; an error leaves them for
/// the next pass).
pub async fn remove_unused<R: Engine>(
    engine: &R,
    plan: &NetworkPlan,
) -> Vec<(String, Result<(), EngineError>)> {
    let mut out = Vec::new();
    for n in &plan.remove {
        // By id: a name may be shared by duplicates.
        out.push((
            format!("remove network {}", n.name),
            engine.remove_network(&n.id).await,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn server(name: &str) -> Object {
        let text = format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n"
        );
        parse_str(&text, &format!("{name}.yaml"), None)
            .expect("parses")
            .remove(0)
    }

    fn net(id: &str, name: &str, created: &str) -> NetworkInfo {
        NetworkInfo {
            id: id.into(),
            name: name.into(),
            spec_hash: Some(AUTO.into()),
            created: created.into(),
        }
    }

    #[test]
    fn same_named_networks_are_reduced_to_the_oldest() {
        let default = labels::network_name("t", DEFAULT_NETWORK);
        let observed = ObservedNetworks {
            ours: vec![
                net("b2", &default, "2026-12-02T10:00:01Z"),
                net("a1", &default, "2026-12-02T10:00:00Z"),
                net("c3", &default, "2026-12-02T10:00:02Z"),
            ],
            existing: BTreeSet::new(),
        };
        let plan = plan("t", &[server("web")], &observed, None);
        assert_eq!(
            plan.duplicates,
            vec![Duplicate {
                name: default.clone(),
                keep: "a1".into(),
                extra: vec!["b2".into(), "c3".into()],
            }]
        );
        assert!(plan.create.is_empty() && plan.recreate.is_empty() && plan.remove.is_empty());
        assert!(!plan.is_empty());
    }

    #[test]
    fn every_copy_of_an_unused_network_is_removed_by_id() {
        let stale = labels::network_name("t", "old");
        let observed = ObservedNetworks {
            ours: vec![net("x", &stale, "1"), net("y", &stale, "2")],
            existing: BTreeSet::new(),
        };
        let plan = plan("t", &[], &observed, None);
        let ids: Vec<&str> = plan.remove.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["x", "y"]);
        assert!(plan.duplicates.is_empty());
    }

    #[test]
    fn a_subnet_pool_gives_each_name_a_stable_start_and_tries_every_subnet() {
        let pool = SubnetPool::parse("10.213.0.0/16").expect("parses");
        assert_eq!((pool.prefix, pool.size, pool.count()), (16, 24, 256));
        let all: Vec<String> = pool.candidates("dh_a_default").collect();
        assert_eq!(all.len(), 256);
        assert_eq!(all, pool.candidates("dh_a_default").collect::<Vec<_>>());
        let distinct: BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), 256, "every subnet once");
        assert!(all
            .iter()
            .all(|s| s.starts_with("10.213.") && s.ends_with(".0/24")));
        let small = SubnetPool::parse("10.213.0.0/16/26").expect("parses");
        assert_eq!(small.count(), 1024);
        assert!(small.candidates("x").all(|s| s.ends_with("/26")));
        for bad in [
            "10.213.0.0",
            "10.213.1.0/16",
            "10.213.0.0/16/8",
            "x/16",
            "10.0.0.0/4",
        ] {
            assert!(SubnetPool::parse(bad).is_err(), "{bad}");
        }
        let observed = ObservedNetworks::default();
        let plan = plan("t", &[server("web")], &observed, Some(&pool));
        assert_eq!(plan.create[0].pool.as_ref(), Some(&pool));
    }

    #[tokio::test]
    async fn a_taken_subnet_is_skipped_for_the_next_free_one() {
        // The fake engine refuses a subnet another network has, as the engine does.
        let engine = crate::engine::fake::FakeEngine::new();
        let pool = SubnetPool::parse("10.213.0.0/16/30").expect("parses");
        let config = |name: &str| NetworkConfig {
            name: name.into(),
            driver: "bridge".into(),
            subnet: None,
            gateway: None,
            labels: labels::owner_labels("t"),
            internal: false,
            options: HashMap::new(),
            pool: Some(pool.clone()),
        };
        let first = pool.candidates("dh_t_b").next().expect("a subnet");
        let taken = NetworkConfig {
            subnet: Some(first.clone()),
            pool: None,
            ..config("dh_t_a")
        };
        engine.create_network(&taken).await.expect("creates");
        create_one(&engine, &config("dh_t_b"))
            .await
            .expect("the next one");
        let subnets = engine.network_subnets();
        assert_eq!(subnets.len(), 2);
        assert!(subnets.contains(&first));
    }
}
