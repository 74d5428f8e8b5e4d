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
pub fn plan(instance: &str, desired: &[Object], observed: &ObservedNetworks) -> NetworkPlan {
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
            engine.create_network(config).await,
        ));
    }
    for config in &plan.recreate {
        let result = async {
            let attached = engine.network_containers(&config.name).await?;
            for id in &attached {
                engine.disconnect_network(&config.name, id).await?;
            }
            engine.remove_network(&config.name).await?;
            engine.create_network(config).await?;
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
        let plan = plan("t", &[server("web")], &observed);
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
        let plan = plan("t", &[], &observed);
        let ids: Vec<&str> = plan.remove.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["x", "y"]);
        assert!(plan.duplicates.is_empty());
    }
}
