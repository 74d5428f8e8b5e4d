//! What each kind means to the engine: the containers and networks an object asks for, and how
//! its engine-side state is read back. The manifest says what a user wants; these files say how
//! the engine is made to hold it, one kind to a file. The planner (`crate::plan`) sees only
//! the `Desired` records made here.

pub mod backup;
pub mod build;
pub mod config_files;
pub mod database;
pub mod env_file;
pub mod image;
pub mod network;
pub mod route;
pub mod secret;
pub mod server;
pub mod upgrade;

use std::collections::HashMap;

use crate::engine::ContainerSpec;
use crate::manifest::short_hash;
use crate::manifest::{Object, ObjectKey, Spec};
use crate::plan::Desired;
use crate::store::{DatabaseSecret, Intent, Status};

use network::NetworkPlan;

/// What a pass knows beyond the objects themselves when it turns them into planner input.
pub struct Context<'a> {
    pub instance: &'a str,
    /// The state file's identity, carried by every container as `dockhand.state-id`.
    pub state_id: &'a str,
    pub statuses: &'a HashMap<ObjectKey, Status>,
    pub secrets: &'a HashMap<String, DatabaseSecret>,
    /// Databases that accepted a login for their current container.
    /// With what each was found running (none when proven for this container before).
    pub ready: &'a HashMap<ObjectKey, Option<String>>,
    /// Objects that may not be acted on, and why (their status is `Invalid`).
    pub refused: &'a HashMap<ObjectKey, String>,
    pub networks: &'a NetworkPlan,
    /// The host files the servers' specs take in (every one of a server not held back).
    pub files: &'a HostFiles,
    /// What operators asked beyond the manifests (stopped, restarted), by the key given.
    pub intents: &'a HashMap<ObjectKey, Intent>,
    /// Objects that run an older revision after a failed rollout, and why.
    pub rolled_back: &'a HashMap<ObjectKey, String>,
    /// Objects become swarm services: a replicated server is one object, and the swarm rolls
    /// out, restarts and rolls back its tasks itself.
    pub swarm: bool,
    /// The databases some server reaches through the host gateway (`reached_through_gateway`).
    pub through_gateway: &'a std::collections::BTreeSet<String>,
    /// The address the engine's `host-gateway` stands for, asked only when a database is
    /// reached through it.
    pub host_gateway: Option<std::net::IpAddr>,
}

impl Context<'_> {
    /// An object's spec hash with its restarts in it: a restart is a rollout of the same spec,
    /// so the restart's time joins the hash (and the names derived from it), and the
    /// containers are replaced once, in the object's update order.
    pub fn with_restarts(&self, key: &ObjectKey, hash: String) -> String {
        let restarts: Vec<&str> = intents_of(self.intents, key)
            .filter_map(|(_, i)| i.restarted_at.as_deref())
            .collect();
        if restarts.is_empty() {
            return hash;
        }
        short_hash(format!("{hash}|restart:{}", restarts.join(",")).as_bytes())
    }
}

/// The intents that apply to an object: its own, and for a replica its server's.
pub fn intents_of<'a>(
    intents: &'a HashMap<ObjectKey, Intent>,
    key: &ObjectKey,
) -> impl Iterator<Item = (ObjectKey, &'a Intent)> {
    let base = Some(crate::manifest::replicas::whole(key)).filter(|b| b != key);
    [Some(key.clone()), base]
        .into_iter()
        .flatten()
        .filter_map(|k| intents.get(&k).map(|i| (k, i)))
}

/// What the servers read from the host at this pass, by path as the spec writes it.
#[derive(Default)]
pub struct HostFiles {
    pub env: server::EnvFiles,
    /// Digests of read-only bind sources.
    pub config: HashMap<String, String>,
    /// What to build, by server name (replicas share their server's).
    pub builds: HashMap<String, crate::engine::BuildSpec>,
    /// The values of the Secrets those servers use, by name.
    pub secrets: HashMap<String, std::sync::Arc<secret::Value>>,
}

/// The planner's input for every object that runs a container, and the container each asks
/// for (absent while it cannot be built yet, e.g. a database value not known).
pub fn desired(
    objects: &[Object],
    ctx: &Context<'_>,
) -> (Vec<Desired>, HashMap<ObjectKey, ContainerSpec>) {
    let mut wanted = Vec::with_capacity(objects.len());
    let mut specs = HashMap::with_capacity(objects.len());
    let replicas = crate::manifest::replicas::further_replicas(objects);
    for o in objects {
        let lifecycle = ctx
            .statuses
            .get(&o.key())
            .map(|s| s.lifecycle.clone())
            .unwrap_or_default();
        let (mut d, spec) = match &o.spec {
            Spec::Server(s) => server::desired(objects, o, s, &replicas, ctx, lifecycle),
            Spec::Database(d) => database::desired(o, d, ctx, lifecycle),
            // No containers of their own: networks are kept by `network`, routes by the proxy.
            Spec::Network(_) | Spec::Route(_) | Spec::Secret(_) => continue,
        };
        d.hold = ctx.refused.get(&d.key).cloned();
        d.stopped = stopped_because(o, ctx.intents);
        d.rolled_back = ctx.rolled_back.get(&d.key).cloned();
        if let Some(spec) = spec {
            specs.insert(d.key.clone(), spec);
        }
        wanted.push(d);
    }
    (wanted, specs)
}

/// Why an object runs no container on purpose: an operator stopped it (or its server), or it
/// asks for no replicas.
pub fn stopped_because(o: &Object, intents: &HashMap<ObjectKey, Intent>) -> Option<String> {
    let key = o.key();
    let stop = intents_of(intents, &key).find_map(|(k, i)| Some((k, i.stopped_at.as_deref()?)));
    if let Some((by, at)) = stop {
        return Some(format!(
            "stopped at {at}; `dockhand start {by}` runs it again"
        ));
    }
    match &o.spec {
        Spec::Server(s) if s.replicas == Some(0) => Some("replicas: 0".to_owned()),
        _ => None,
    }
}
