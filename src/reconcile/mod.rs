//! One reconcile pass: merge sources with the store, list the engine once, plan, execute, record.
//!
//! Passes are level-triggered and idempotent: names and labels are deterministic, so whatever a
//! crashed pass left half done, the next pass finds and finishes.

pub mod execute;

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::engine::{ContainerSpec, Engine, EngineError, Observed};
use crate::kinds::database;
use crate::kinds::network::{self, NetworkPlan};
use crate::lifecycle::{now_millis, BackoffPolicy, Lifecycle, Millis};
use crate::manifest::network::RouteSpec;
use crate::manifest::server::OnUnhealthy;
use crate::manifest::server::{Condition, DbKey, RestartPolicy};
use crate::manifest::{Kind, ManifestError, Object, ObjectKey, Spec};
pub use crate::plan::{
    plan, Action, Dep, Desired, Phase, Plan, PlanOptions, Readiness, RemoveReason, Verdict,
};
use crate::proxy::{Proxy, RouteState};
use crate::source::{merge, Origin, Snapshot};
use crate::store::{DatabaseSecret, NewEvent, Status, Store, StoreError, StoredObject};
pub use execute::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ReconcileError {
    /// Whether the engine was unreachable (retry with backoff) rather than something else failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ReconcileError::Engine(e) if e.is_unavailable())
    }
}

/// Settings of a reconciler.
#[derive(Clone, Debug)]
pub struct Options {
    pub instance: String,
    /// Prune even when the sources yield no objects at all.
    pub allow_empty: bool,
    /// At most this many engine operations at once.
    pub parallel: usize,
    /// Crash-loop backoff for restarts.
    pub backoff: BackoffPolicy,
}

/// Engine per-client routes go ahead of the manifest's rules: a manifest rule for exactly
/// that client address is replaced, wider rules stay (the /32 is more specific anyway).
fn add_client_routes(
    routes: &mut [(String, RouteSpec)],
    clients: &std::collections::BTreeMap<String, Vec<crate::store::ClientRoute>>,
) {
    use crate::manifest::network::{Cidr, Rule, Target};
    for (name, spec) in routes.iter_mut() {
        for c in clients.get(name).into_iter().flatten() {
            let source = Cidr {
                addr: c.client,
                prefix: 32,
            };
            spec.rules.retain(|r| r.source != source);
            spec.rules.push(Rule {
                source,
                to: Target {
                    server: crate::manifest::Name(c.server.clone()),
                    port: crate::manifest::server::ContainerPort(c.port),
                },
            });
        }
    }
}

/// Whether every stored object came from the API (so an empty desired state is explicit).
fn only_applied(stored: &[StoredObject]) -> bool {
    !stored.is_empty()
        && stored
            .iter()
            .all(|s| Origin::of(&s.object.source) == Origin::Api)
}

/// Desired objects that only the hold on their unreadable source keeps.
fn held(desired: &[Object], snapshot: &Snapshot) -> Vec<ObjectKey> {
    desired
        .iter()
        .filter(|o| snapshot.held.contains(&Origin::of(&o.source)))
        .map(Object::key)
        .collect()
}

/// What one pass saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub desired: Vec<Object>,
    pub errors: Vec<ManifestError>,
    pub missing_source: bool,
    /// Objects kept only because their source vanished or could not be read completely.
    pub held: Vec<ObjectKey>,
    /// Networks created, recreated or removed (planned, in a dry run).
    pub network_actions: Vec<String>,
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
    /// Every desired object's status as this pass recorded it.
    pub statuses: Vec<Status>,
}

impl PassReport {
    /// Nothing was left to do when the pass looked.
    pub fn converged(&self) -> bool {
        self.plan.is_empty()
    }

    /// Converged, and every object settled (none waiting for a backoff or dependencies).
    pub fn settled(&self) -> bool {
        self.converged() && self.plan.verdicts.values().all(|v| v.phase.is_settled())
    }

    /// Actions that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Action, &EngineError)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| (&o.action, e)))
    }
}

pub struct Reconciler<R> {
    engine: R,
    store: Store,
    options: Options,
    /// What the empty-source guard held back last time, so the refusal is recorded once.
    last_refused: std::sync::Mutex<Vec<String>>,
    /// Whether this instance may have networks to keep; until it has none, passes list them.
    had_networks: std::sync::atomic::AtomicBool,
    /// The routes' data plane, when this reconciler runs inside `dockhand up`.
    proxy: Option<std::sync::Arc<Proxy>>,
}

/// What a pass saw before acting.
struct Observation {
    /// Pruning to nothing is allowed: by the flag, or because every object was applied through
    /// the API, whose deletions are explicit.
    allow_empty: bool,
    stored: Vec<StoredObject>,
    statuses: HashMap<ObjectKey, Status>,
    desired: Vec<Object>,
    specs: HashMap<ObjectKey, ContainerSpec>,
    plan: Plan,
    now: Millis,
    secrets: HashMap<String, DatabaseSecret>,
    networks: NetworkPlan,
    observed: Vec<Observed>,
}

impl<R: Engine> Reconciler<R> {
    pub fn new(engine: R, store: Store, options: Options) -> Self {
        Self {
            engine,
            store,
            options,
            last_refused: std::sync::Mutex::new(Vec::new()),
            had_networks: std::sync::atomic::AtomicBool::new(true),
            proxy: None,
        }
    }

    /// Serves routes from this reconciler's passes (`dockhand up`).
    pub fn with_proxy(mut self, proxy: std::sync::Arc<Proxy>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    pub fn engine(&self) -> &R {
        &self.engine
    }

    /// The routes' proxy, when this reconciler serves them (`dockhand up`).
    pub fn proxy(&self) -> Option<&std::sync::Arc<Proxy>> {
        self.proxy.as_ref()
    }

    /// Reads the store, merges the snapshot, lists the engine once and plans.
    async fn observe(
        &self,
        snapshot: &Snapshot,
        dry_run: bool,
    ) -> Result<Observation, ReconcileError> {
        let instance = &self.options.instance;
        let stored = self.store.objects(instance).await?;
        let statuses: HashMap<ObjectKey, Status> = self
            .store
            .statuses(instance)
            .await?
            .into_iter()
            .filter_map(|s| Some((s.key.clone()?, s)))
            .collect();
        let desired = merge(snapshot, &stored);
        let allow_empty = self.options.allow_empty || only_applied(&stored);
        let secrets = self.database_secrets(&desired, dry_run).await?;
        let observed = self.engine.list(instance).await?;
        let ready = if dry_run {
            HashSet::new()
        } else {
            self.probe_databases(&desired, &observed, &statuses, &secrets)
                .await
        };
        let networks = self.plan_networks(&desired).await?;
        let (wanted, specs) = self.desired(&desired, &statuses, &secrets, &ready, &networks);
        let now = now_millis();
        let plan = plan(
            &wanted,
            &observed,
            PlanOptions {
                allow_empty,
                backoff: self.options.backoff,
                now,
            },
        );
        Ok(Observation {
            allow_empty,
            stored,
            statuses,
            desired,
            specs,
            plan,
            now,
            secrets,
            networks,
            observed,
        })
    }

    /// Points every route at its targets' ready containers: a server's Ready container, or while
    /// a StartFirst update is under way, the old container that still runs.
    async fn sync_routes(
        &self,
        desired: &[Object],
        plan: &Plan,
        observed: &[Observed],
    ) -> HashMap<String, RouteState> {
        let Some(proxy) = &self.proxy else {
            return HashMap::new();
        };
        let mut routes: Vec<(String, RouteSpec)> = desired
            .iter()
            .filter_map(|o| match &o.spec {
                Spec::Route(r) => Some((o.name.clone(), r.clone())),
                _ => None,
            })
            .collect();
        if !routes.is_empty() {
            match self.store.route_clients(&self.options.instance).await {
                Ok(clients) => add_client_routes(&mut routes, &clients),
                Err(e) => tracing::warn!("cannot read per-client routes: {e}"),
            }
        }
        let mut backends = HashMap::new();
        for (key, v) in &plan.verdicts {
            if key.kind != Kind::Server {
                continue;
            }
            let ready = v
                .container
                .as_ref()
                .filter(|_| v.phase == Phase::Ready)
                .and_then(|c| c.ip);
            let fallback = || {
                observed
                    .iter()
                    .filter(|c| {
                        c.key.as_ref() == Some(key) && c.state == crate::engine::State::Running
                    })
                    .find_map(|c| c.ip)
            };
            if let Some(ip) = ready.or_else(fallback) {
                // Every replica of a server serves the routes that target it.
                let server = crate::manifest::replicas::replica_of(&key.name);
                backends
                    .entry(server.to_owned())
                    .or_insert_with(Vec::new)
                    .push(ip);
            }
        }
        proxy.sync(&routes, &backends).await
    }

    /// The networks' plan. Skips the engine while no manifest involves networks and none of
    /// this instance's were seen last time, so such passes stay one container listing.
    async fn plan_networks(&self, desired: &[Object]) -> Result<NetworkPlan, ReconcileError> {
        let involved = desired.iter().any(|o| match &o.spec {
            Spec::Network(_) => true,
            Spec::Server(s) => s.network.is_some(),
            _ => false,
        });
        if !involved && !self.had_networks.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(NetworkPlan::default());
        }
        let plan = network::plan(&self.engine, &self.options.instance, desired).await?;
        let any = !plan.engine_names.is_empty() || !plan.is_empty();
        self.had_networks
            .store(any, std::sync::atomic::Ordering::Relaxed);
        Ok(plan)
    }

    /// This instance's database secrets, creating those of new databases (not in a dry run):
    /// a generated password, and a host port from `PORT_RANGE` that no other database of any
    /// instance holds, no manifest fixes, and nothing on the host listens on.
    async fn database_secrets(
        &self,
        desired: &[Object],
        dry_run: bool,
    ) -> Result<HashMap<String, DatabaseSecret>, ReconcileError> {
        let instance = &self.options.instance;
        let all = self.store.database_secrets().await?;
        let mut taken: BTreeSet<u16> = all.iter().map(|(_, s)| s.port).collect();
        for o in desired {
            match &o.spec {
                Spec::Database(d) if d.port.0 != 0 => {
                    taken.insert(d.port.0);
                }
                Spec::Server(s) => {
                    taken.extend(s.ports.iter().map(|p| p.host.0).filter(|p| *p != 0))
                }
                Spec::Route(r) => {
                    taken.insert(r.listen.0.port());
                }
                Spec::Database(_) | Spec::Network(_) => {}
            }
        }
        let mut mine: HashMap<String, DatabaseSecret> = all
            .into_iter()
            .filter(|(i, _)| i == instance)
            .map(|(_, s)| (s.name.clone(), s))
            .collect();
        for o in desired
            .iter()
            .filter(|o| matches!(o.spec, Spec::Database(_)))
        {
            if mine.contains_key(&o.name) || dry_run {
                continue;
            }
            let password = database::generate_password().map_err(|e| EngineError::Engine {
                op: "generate password for",
                target: o.key().to_string(),
                message: e.to_string(),
            })?;
            let port =
                database::allocate_port(&taken, database::host_port_is_free).ok_or_else(|| {
                    EngineError::Engine {
                        op: "allocate a port for",
                        target: o.key().to_string(),
                        message: "every port in 5433-6000 is taken".into(),
                    }
                })?;
            taken.insert(port);
            let secret = DatabaseSecret {
                name: o.name.clone(),
                password,
                port,
                initialized: false,
            };
            self.store.insert_database_secret(instance, &secret).await?;
            mine.insert(o.name.clone(), secret);
        }
        Ok(mine)
    }

    /// Logs in to every running database not yet proven ready for its current container.
    async fn probe_databases(
        &self,
        desired: &[Object],
        observed: &[Observed],
        statuses: &HashMap<ObjectKey, Status>,
        secrets: &HashMap<String, DatabaseSecret>,
    ) -> HashSet<ObjectKey> {
        let probes = desired.iter().filter_map(|o| {
            let Spec::Database(d) = &o.spec else {
                return None;
            };
            let key = o.key();
            let c = observed.iter().find(|c| {
                c.key.as_ref() == Some(&key) && c.state == crate::engine::State::Running
            })?;
            let verified = statuses
                .get(&key)
                .and_then(|s| s.lifecycle.ready_for.as_deref())
                == Some(c.id.as_str());
            let secret = secrets.get(&o.name)?;
            Some(async move {
                if verified {
                    return Some(key);
                }
                let conn = database::Connection::new("127.0.0.1", o, d, secret);
                database::probe(&conn, &secret.password)
                    .await
                    .ok()
                    .map(|()| key)
            })
        });
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Plans against the engine without changing anything (the store included).
    pub async fn dry_run(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let o = self.observe(snapshot, true).await?;
        Ok(PassReport {
            held: held(&o.desired, snapshot),
            desired: o.desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            network_actions: o.networks.describe(),
            plan: o.plan,
            ..PassReport::default()
        })
    }

    /// One full pass. Returns after the planned actions ran; call again to confirm convergence.
    pub async fn pass(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let instance = &self.options.instance;
        let Observation {
            allow_empty,
            stored,
            statuses: previous,
            desired,
            specs,
            plan,
            now,
            secrets,
            networks,
            observed,
        } = self.observe(snapshot, false).await?;
        let prune = !desired.is_empty() || allow_empty;
        let applied = self
            .store
            .apply_desired(instance, &stored, &desired, &snapshot.errors, prune)
            .await?;
        let mut events = Vec::new();
        if applied.errors_changed {
            events.extend(snapshot.errors.iter().map(|e| NewEvent {
                key: None,
                reason: "invalid",
                message: format!("{e} (objects of this file keep their last good spec)"),
            }));
        }
        for key in &applied.deleted {
            events.push(NewEvent {
                key: Some(key.clone()),
                reason: "deleted",
                message: format!("{key} is no longer defined by any source"),
            });
        }
        if let Ok(mut last) = self.last_refused.lock() {
            if *last != plan.prune_refused {
                if !plan.prune_refused.is_empty() {
                    events.push(NewEvent {
                        key: None,
                        reason: "prune-refused",
                        message: format!(
                            "the sources define no objects; kept {} container(s) ({}); pass --allow-empty to remove them",
                            plan.prune_refused.len(),
                            plan.prune_refused.join(", ")
                        ),
                    });
                }
                last.clone_from(&plan.prune_refused);
            }
        }
        events.extend(plan.transitions.iter().map(|t| NewEvent {
            key: Some(t.key.clone()),
            reason: t.reason,
            message: t.message.clone(),
        }));

        let ip_of = |o: &Observed| {
            let key = o.key.as_ref()?;
            desired
                .iter()
                .find(|d| &d.key() == key)
                .and_then(|d| match &d.spec {
                    Spec::Server(s) => s.ip,
                    _ => None,
                })
        };
        let mut network_results =
            network::apply_before(&self.engine, &networks, &observed, &ip_of).await;
        // Routes switch to ready containers before anything is removed (StartFirst updates).
        let route_states = self.sync_routes(&desired, &plan, &observed).await;
        let outcomes = execute::execute(
            &self.engine,
            plan.actions.clone(),
            &specs,
            &crate::kinds::server::owner_labels(instance),
            self.options.parallel,
        )
        .await;

        network_results.extend(network::apply_after(&self.engine, &networks).await);
        for (what, result) in &network_results {
            let (reason, message) = match result {
                Ok(()) => ("network", format!("{what}: done")),
                Err(e) => ("failed", format!("{what}: {e}")),
            };
            events.push(NewEvent {
                key: None,
                reason,
                message,
            });
        }
        if !networks.is_empty() || !network_results.is_empty() {
            self.had_networks
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut generations: HashMap<ObjectKey, i64> = stored
            .iter()
            .map(|s| (s.object.key(), s.generation))
            .collect();
        generations.extend(applied.changed.iter().cloned());
        let last_errors = first_errors(&desired, &snapshot.errors);
        let mut statuses = statuses(&plan, &outcomes, &generations, &last_errors, now);
        statuses.extend(network_statuses(
            &desired,
            instance,
            &network_results,
            &generations,
        ));
        statuses.extend(route_statuses(
            &desired,
            self.proxy.is_some(),
            &route_states,
            &previous,
            &generations,
            &mut events,
        ));
        self.store
            .record_status(instance, &previous, &statuses)
            .await?;
        self.record_databases(&plan, &outcomes, &secrets).await?;
        events.extend(outcome_events(&outcomes, &previous, &statuses));
        self.store.append_events(instance, &events).await?;

        Ok(PassReport {
            held: held(&desired, snapshot),
            desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            network_actions: network_results
                .iter()
                .map(|(w, r)| match r {
                    Ok(()) => w.clone(),
                    Err(e) => format!("{w}: failed: {e}"),
                })
                .collect(),
            plan,
            outcomes,
            statuses,
        })
    }

    /// A database that accepted a login holds data from now on; one removed with its volume
    /// (deletionPolicy Delete) gives up its secret.
    async fn record_databases(
        &self,
        plan: &Plan,
        outcomes: &[Outcome],
        secrets: &HashMap<String, DatabaseSecret>,
    ) -> Result<(), ReconcileError> {
        let instance = &self.options.instance;
        for (key, v) in &plan.verdicts {
            let fresh = secrets.get(&key.name).is_some_and(|s| !s.initialized);
            if key.kind == Kind::Database && fresh && v.phase == Phase::Ready {
                self.store
                    .mark_database_initialized(instance, &key.name)
                    .await?;
            }
        }
        for x in outcomes {
            if let (
                Action::Remove {
                    key: Some(key),
                    volume: Some(_),
                    ..
                },
                Ok(_),
            ) = (&x.action, &x.result)
            {
                if key.kind == Kind::Database {
                    self.store
                        .delete_database_secret(instance, &key.name)
                        .await?;
                }
            }
        }
        Ok(())
    }

    fn desired(
        &self,
        objects: &[Object],
        statuses: &HashMap<ObjectKey, Status>,
        secrets: &HashMap<String, DatabaseSecret>,
        ready: &HashSet<ObjectKey>,
        networks: &NetworkPlan,
    ) -> (Vec<Desired>, HashMap<ObjectKey, ContainerSpec>) {
        let mut wanted = Vec::with_capacity(objects.len());
        let mut specs = HashMap::with_capacity(objects.len());
        let replicas = crate::manifest::replicas::further_replicas(objects);
        for o in objects {
            let hash = o.spec_hash();
            let key = o.key();
            let lifecycle = statuses
                .get(&key)
                .map(|s| s.lifecycle.clone())
                .unwrap_or_default();
            match &o.spec {
                Spec::Server(s) => {
                    let databases: BTreeSet<&str> =
                        s.env.values().filter_map(|v| v.database()).collect();
                    let lookup = |name: &str, part: DbKey| -> Option<String> {
                        let (obj, spec) = objects.iter().find_map(|x| match &x.spec {
                            Spec::Database(d) if x.name == name => Some((x, d)),
                            _ => None,
                        })?;
                        let secret = secrets.get(name)?;
                        let conn = database::Connection::new(
                            crate::kinds::server::HOST_ALIAS,
                            obj,
                            spec,
                            secret,
                        );
                        Some(match part {
                            DbKey::Url => conn.url(Some(&secret.password)),
                            DbKey::Host => conn.host,
                            DbKey::Port => conn.port.to_string(),
                            DbKey::Database => conn.database,
                            DbKey::User => conn.user,
                            DbKey::Password => secret.password.clone(),
                        })
                    };
                    // A server that takes values from databases is recreated when where they are
                    // changes (never because of the password, which stays the same).
                    let hash = if databases.is_empty() {
                        hash
                    } else {
                        let mut material = hash;
                        for db in &databases {
                            for part in [DbKey::Host, DbKey::Port, DbKey::Database, DbKey::User] {
                                material.push('|');
                                material.push_str(&lookup(db, part).unwrap_or_default());
                            }
                        }
                        crate::manifest::short_hash(material.as_bytes())
                    };
                    if let Some(mut c) = crate::kinds::server::container_spec(
                        &self.options.instance,
                        o,
                        s,
                        &hash,
                        &lookup,
                    ) {
                        if let Some(net) = &s.network {
                            c.network = Some(
                                networks
                                    .engine_names
                                    .get(&net.0)
                                    .cloned()
                                    .unwrap_or_else(|| net.0.clone()),
                            );
                            c.ip = s.ip;
                        }
                        specs.insert(key.clone(), c);
                    }
                    // Depending on a replicated server means on every replica of it.
                    let mut deps: Vec<Dep> = s
                        .depends_on
                        .iter()
                        .flat_map(|d| {
                            let key = d.key();
                            crate::manifest::replicas::dependency_keys(&key, &replicas)
                                .map(|key| Dep {
                                    key,
                                    condition: d.condition,
                                    restart: d.restart,
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    // Taking values from a database implies depending on it (at least Started).
                    for db in databases {
                        let db_key = ObjectKey::new(Kind::Database, db);
                        if !deps.iter().any(|d| d.key == db_key) {
                            deps.push(Dep {
                                key: db_key,
                                condition: Condition::Started,
                                restart: false,
                            });
                        }
                    }
                    wanted.push(Desired {
                        key,
                        spec_hash: hash,
                        restart: s.restart_policy,
                        max_restarts: s.max_restarts,
                        restart_unhealthy: s
                            .health_check
                            .as_ref()
                            .is_some_and(|h| h.on_unhealthy == OnUnhealthy::Restart),
                        readiness: None,
                        start_first: s.start_first(),
                        deps,
                        lifecycle,
                    });
                }
                Spec::Database(d) => {
                    let secret = secrets.get(&o.name);
                    if let Some(secret) = secret {
                        specs.insert(
                            key.clone(),
                            database::container_spec(&self.options.instance, o, d, &hash, secret),
                        );
                    }
                    let never_initialised = secret.is_some_and(|s| !s.initialized);
                    wanted.push(Desired {
                        readiness: Some(Readiness {
                            ready: ready.contains(&key),
                            timeout: d.ready_timeout,
                            disposable_volume: never_initialised
                                .then(|| database::volume_name(&self.options.instance, &o.name)),
                        }),
                        key,
                        spec_hash: hash,
                        restart: RestartPolicy::Always,
                        max_restarts: None,
                        restart_unhealthy: false,
                        start_first: false,
                        deps: Vec::new(),
                        lifecycle,
                    });
                }
                // No containers of their own: networks are kept by `network`, routes by the proxy.
                Spec::Network(_) | Spec::Route(_) => {}
            }
        }
        (wanted, specs)
    }
}

/// The error of each object's file, for objects that run on their last good spec.
fn first_errors(desired: &[Object], errors: &[ManifestError]) -> HashMap<ObjectKey, String> {
    desired
        .iter()
        .filter_map(|o| {
            let e = errors.iter().find(|e| e.file == o.source)?;
            Some((o.key(), e.to_string()))
        })
        .collect()
}

/// Status of every desired object after a pass: the plan's verdict, updated by what the
/// executor did.
fn statuses(
    plan: &Plan,
    outcomes: &[Outcome],
    generations: &HashMap<ObjectKey, i64>,
    last_errors: &HashMap<ObjectKey, String>,
    now: Millis,
) -> Vec<Status> {
    plan.verdicts
        .iter()
        .map(|(key, v)| {
            let generation = generations.get(key).copied().unwrap_or(1);
            let mut phase = v.phase;
            let mut message = v.message.clone();
            let mut lifecycle = v.lifecycle.clone();
            let mut container_id = v.container.as_ref().map(|c| c.id.clone());
            let outcome = outcomes.iter().find(|x| {
                x.action.key() == Some(key) && !matches!(x.action, Action::Remove { .. })
            });
            if let Some(x) = outcome {
                match (&x.action, &x.result) {
                    (_, Err(e)) => {
                        // A container or volume name held by something this instance does not
                        // own is never adopted or removed: Invalid until the conflict is resolved.
                        phase = if matches!(
                            e,
                            EngineError::NameConflict { .. } | EngineError::VolumeConflict { .. }
                        ) {
                            Phase::Invalid
                        } else {
                            Phase::Failed
                        };
                        message = Some(e.to_string());
                    }
                    (Action::Create { .. } | Action::Recreate { .. }, Ok(id)) => {
                        phase = Phase::Creating;
                        lifecycle = Lifecycle::started(now);
                        lifecycle.dep_runs.clone_from(&v.dep_runs);
                        container_id.clone_from(id);
                    }
                    (Action::Start { restart, .. }, Ok(_)) => {
                        phase = Phase::Creating;
                        if *restart {
                            lifecycle.restart_count += 1;
                        }
                        lifecycle.started_at = Some(now);
                        lifecycle.next_retry_at = None;
                        lifecycle.dep_runs.clone_from(&v.dep_runs);
                    }
                    (Action::Restart { .. }, Ok(_)) => {
                        phase = Phase::Creating;
                        lifecycle.restart_count += 1;
                        lifecycle.started_at = Some(now);
                        lifecycle.next_retry_at = None;
                        lifecycle.health = None;
                        lifecycle.dep_runs.clone_from(&v.dep_runs);
                    }
                    (Action::Abandon { .. }, Ok(_)) => container_id = None,
                    (Action::Remove { .. }, Ok(_)) => {}
                }
            }
            let observed_generation = match phase {
                Phase::Pending | Phase::Failed if container_id.is_none() => 0,
                _ => generation,
            };
            if let Some(err) = last_errors.get(key) {
                let note = format!("manifest error, running the last good spec: {err}");
                message = Some(match message {
                    Some(m) => format!("{m}; {note}"),
                    None => note,
                });
            }
            Status {
                key: Some(key.clone()),
                phase: phase.as_str().to_owned(),
                container_id,
                observed_generation,
                message,
                ports: v
                    .container
                    .as_ref()
                    .map(|c| c.ports.clone())
                    .unwrap_or_default(),
                updated_at: String::new(),
                lifecycle,
            }
        })
        .collect()
}

/// A route is Ready while it listens and has a ready backend, Running while it listens with none,
/// Invalid when it cannot listen, and Pending outside `dockhand up`.
fn route_statuses(
    desired: &[Object],
    serving: bool,
    states: &HashMap<String, RouteState>,
    previous: &HashMap<ObjectKey, Status>,
    generations: &HashMap<ObjectKey, i64>,
    events: &mut Vec<NewEvent>,
) -> Vec<Status> {
    desired
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Route(r) => Some((o, r)),
            _ => None,
        })
        .map(|(o, r)| {
            let mut st = Status::pending(o.key());
            st.observed_generation = generations.get(&o.key()).copied().unwrap_or(1);
            let (phase, message) = match states.get(&o.name) {
                _ if !serving => ("Pending", "served by dockhand up".to_owned()),
                None => ("Pending", "not started".to_owned()),
                Some(s) => match &s.listening {
                    Err(e) => ("Invalid", e.clone()),
                    Ok(()) if s.backends.is_empty() => ("Running", s.message(r)),
                    Ok(()) => ("Ready", s.message(r)),
                },
            };
            if phase == "Invalid"
                && previous.get(&o.key()).map(|p| p.phase.as_str()) != Some("Invalid")
            {
                events.push(NewEvent {
                    key: Some(o.key()),
                    reason: "invalid",
                    message: message.clone(),
                });
            }
            st.phase = phase.to_owned();
            st.message = Some(message);
            st
        })
        .collect()
}

/// A declared network is Ready unless creating it failed this pass.
fn network_statuses(
    desired: &[Object],
    instance: &str,
    results: &[(String, Result<(), EngineError>)],
    generations: &HashMap<ObjectKey, i64>,
) -> Vec<Status> {
    desired
        .iter()
        .filter(|o| matches!(o.spec, Spec::Network(_)))
        .map(|o| {
            let engine = crate::engine::labels::network_name(instance, &o.name);
            let failure = results
                .iter()
                .find_map(|(what, r)| r.as_ref().err().filter(|_| what.ends_with(&engine)));
            let mut st = Status::pending(o.key());
            st.phase = if failure.is_some() { "Failed" } else { "Ready" }.to_owned();
            st.message = Some(match failure {
                Some(e) => e.to_string(),
                None => format!("engine network {engine}"),
            });
            st.observed_generation = generations.get(&o.key()).copied().unwrap_or(1);
            st
        })
        .collect()
}

/// Events for what the executor did. A failure is recorded when its message is new, so a
/// failure that repeats every pass is recorded once.
fn outcome_events(
    outcomes: &[Outcome],
    previous: &HashMap<ObjectKey, Status>,
    now: &[Status],
) -> Vec<NewEvent> {
    outcomes
        .iter()
        .filter_map(|x| {
            let key = x.action.key().cloned();
            let (reason, message) = match (&x.action, &x.result) {
                (a, Err(e)) => {
                    let repeated = key.as_ref().is_some_and(|k| {
                        let before = previous.get(k).and_then(|p| p.message.as_ref());
                        let after = now
                            .iter()
                            .find(|s| s.key.as_ref() == Some(k))
                            .and_then(|s| s.message.as_ref());
                        before == after
                    });
                    if repeated {
                        return None;
                    }
                    ("failed", format!("{}: {e}", a.describe()))
                }
                (Action::Create { key }, Ok(_)) => {
                    ("created", format!("created and started {key}"))
                }
                (Action::Recreate { key, .. }, Ok(_)) => {
                    ("recreated", format!("recreated {key}: its spec changed"))
                }
                (
                    Action::Start {
                        key, restart: true, ..
                    },
                    Ok(_),
                ) => {
                    let count = now
                        .iter()
                        .find(|s| s.key.as_ref() == Some(key))
                        .map_or(0, |s| s.lifecycle.restart_count);
                    ("restarted", format!("restarted {key} (restart {count})"))
                }
                (Action::Start { key, .. }, Ok(_)) => ("started", format!("started {key}")),
                (Action::Restart { key, reason, .. }, Ok(_)) => {
                    let count = now
                        .iter()
                        .find(|s| s.key.as_ref() == Some(key))
                        .map_or(0, |s| s.lifecycle.restart_count);
                    (
                        "restarted",
                        format!("restarted {key}: {reason} (restart {count})"),
                    )
                }
                (a @ (Action::Remove { .. } | Action::Abandon { .. }), Ok(_)) => {
                    ("removed", a.describe())
                }
            };
            Some(NewEvent {
                key,
                reason,
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use crate::source::directory;

    #[tokio::test]
    async fn a_pass_converges_and_the_next_one_does_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("m");
        std::fs::create_dir_all(&manifests).expect("mkdir");
        for name in ["a", "b"] {
            let text = format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec: {{image: x}}\n");
            std::fs::write(manifests.join(format!("{name}.yaml")), text).expect("write");
        }
        let store = Store::open(&dir.path().join("s.db")).await.expect("store");
        let options = Options {
            instance: "t".into(),
            allow_empty: false,
            parallel: 4,
            backoff: BackoffPolicy::default(),
        };
        let rec = Reconciler::new(FakeEngine::new(), store.clone(), options);
        let snapshot = directory::load(&manifests);

        let first = rec.pass(&snapshot).await.expect("pass");
        assert_eq!(first.outcomes.len(), 2);
        assert!(first.failures().next().is_none());
        let second = rec.pass(&snapshot).await.expect("pass");
        assert!(
            second.converged() && second.settled(),
            "{:?}",
            second.plan.actions
        );
        assert!(second.statuses.iter().all(|s| s.phase == "Ready"));
        let events = store.events("t", None, None, 100).await.expect("events");
        let third = rec.pass(&snapshot).await.expect("pass");
        assert!(third.outcomes.is_empty());
        assert_eq!(
            store.events("t", None, None, 100).await.expect("events"),
            events,
            "a no-op pass wrote events"
        );
    }
}
