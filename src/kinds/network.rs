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
    pub remove: Vec<String>,
}

impl NetworkPlan {
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .create
            .iter()
            .map(|n| format!("create network {}", n.name))
            .collect();
        out.extend(
            self.recreate
                .iter()
                .map(|n| format!("recreate network {} (spec changed)", n.name)),
        );
        out.extend(
            self.remove
                .iter()
                .map(|n| format!("remove network {n} (unused)")),
        );
        out
    }

    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.recreate.is_empty() && self.remove.is_empty()
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
            Spec::Network(_) | Spec::Route(_) => continue,
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
        Spec::Route(_) => false,
    })
}

/// Reads this instance's networks, and asks the engine only about names no manifest declares
/// (to tell an existing network from one to create).
pub async fn observe<R: Engine>(
    engine: &R,
    instance: &str,
    desired: &[Object],
) -> Result<ObservedNetworks, EngineError> {
    let declared: BTreeSet<&str> = desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Network(_)))
        .map(|o| o.name.as_str())
        .collect();
    let ours: Vec<NetworkInfo> = engine.list_networks(instance).await?;
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
    for (name, config) in &wanted {
        match observed.ours.iter().find(|n| &n.name == name) {
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
        .map(|n| n.name.clone())
        .filter(|n| !wanted.contains_key(n))
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
                let endpoint = observed
                    .iter()
                    .find(|o| &o.id == id)
                    .and_then(|o| endpoint_of(o, &config.name))
                    .unwrap_or_else(|| Endpoint {
                        network: config.name.clone(),
                        ..Endpoint::default()
                    });
                engine.connect_network(id, &endpoint).await?;
            }
            Ok(())
        }
        .await;
        out.push((format!("recreate network {}", config.name), result));
    }
    out
}

/// Removes networks nothing needs (after their containers are gone; an error leaves them for
/// the next pass).
pub async fn remove_unused<R: Engine>(
    engine: &R,
    plan: &NetworkPlan,
) -> Vec<(String, Result<(), EngineError>)> {
    let mut out = Vec::new();
    for name in &plan.remove {
        out.push((
            format!("remove network {name}"),
            engine.remove_network(name).await,
        ));
    }
    out
}
