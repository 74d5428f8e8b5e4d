//! One reconcile pass: observe (store, sources, engine) → plan (pure) → execute → record.
//!
//! This is the only place that sequences I/O. Passes are level-triggered and idempotent: names
//! and labels are deterministic, so whatever a crashed pass left half done, the next pass finds
//! and finishes.

pub mod execute;
mod listing;
mod observe;
mod record;
mod stop;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::engine::labels::owner_labels;
use crate::engine::{Engine, EngineError, Observed};
use crate::kinds::{database, network, route};
use crate::lifecycle::BackoffPolicy;
use crate::manifest::{ManifestError, Object, ObjectKey};
pub use crate::plan::{
    plan, Action, Dep, Desired, Phase, Plan, PlanOptions, Readiness, RemoveReason, Verdict,
};
use crate::proxy::{Proxy, RouteState};
use crate::source::Snapshot;
use crate::store::{Status, Store, StoreError};
pub use execute::Outcome;
use observe::{held, Observation};
pub use stop::{remove_stopped_volumes, stop_now};

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

    /// Whether retrying cannot help: the state file is gone from under the process.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ReconcileError::Store(StoreError::Vanished { .. }))
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
    /// What manifests may take from the host.
    pub host_policy: crate::policy::HostPolicy,
    /// The watched manifests directory, inside which its manifests may bind files.
    pub manifests: Option<std::path::PathBuf>,
    /// Claim (recreate) this instance's containers that another state file's controller made.
    pub take_over: bool,
    /// How long an object must have been gone from its file or row before its containers are
    /// removed; if it comes back sooner (a file rewritten in place), nothing is removed.
    pub prune_delay: std::time::Duration,
    /// The operator's address pool for networks that name no subnet (`--subnet-pool`).
    pub subnet_pool: Option<crate::kinds::network::SubnetPool>,
}

/// What one pass saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub desired: Vec<Object>,
    pub errors: Vec<ManifestError>,
    /// Keys of compose files accepted although they change nothing at runtime.
    pub warnings: Vec<ManifestError>,
    pub missing_source: bool,
    /// Objects kept only because their source vanished or could not be read completely.
    pub held: Vec<ObjectKey>,
    /// Networks created, recreated or removed (planned, in a dry run).
    pub network_actions: Vec<String>,
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
    /// Every desired object's status as this pass recorded it.
    pub statuses: Vec<Status>,
    /// Objects gone from their file or row that are kept until their prune delay ends.
    pub pending_prunes: Vec<(ObjectKey, crate::clock::Millis)>,
    /// Names of this instance's containers that another state file's controller created.
    pub foreign: Vec<String>,
}

impl PassReport {
    /// Nothing was left to do when the pass looked.
    pub fn converged(&self) -> bool {
        self.plan.is_empty()
    }

    /// Converged, and every object settled (none waiting for a backoff, dependencies or the
    /// prune delay).
    pub fn settled(&self) -> bool {
        self.converged()
            && self.pending_prunes.is_empty()
            && self.plan.monitoring.is_empty()
            && self.plan.verdicts.values().all(|v| v.phase.is_settled())
    }

    /// When a pass should look again on its own: a backoff ends, a readiness recheck, or a
    /// prune delay runs out.
    pub fn wake_at(&self) -> Option<crate::clock::Millis> {
        let prunes = self.pending_prunes.iter().map(|(_, at)| *at);
        self.plan.wake_at().into_iter().chain(prunes).min()
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
    /// When each object was first seen gone from its file or row (for the prune delay).
    vanished: std::sync::Mutex<HashMap<ObjectKey, crate::clock::Millis>>,
    /// Whether this instance may have networks to keep; until it has none, passes list them.
    had_networks: std::sync::atomic::AtomicBool,
    /// The routes' data plane, when this reconciler runs inside `dockhand up`.
    proxy: Option<std::sync::Arc<Proxy>>,
    /// Where failing, recovered and rolled-back objects are announced (`up --notify`).
    notifier: Option<crate::notify::Notifier>,
    /// Env files and config files read before, re-read only when they change.
    env_file_cache: crate::kinds::env_file::EnvFiles,
    config_cache: crate::kinds::config_files::ConfigFiles,
    /// Reads Secrets' values (with the controller's age identities).
    secret_resolver: crate::kinds::secret::Resolver,
    /// When each followed image last had its first digest looked up (and found none).
    image_tries: std::sync::Mutex<HashMap<String, crate::clock::Millis>>,
    /// The last error rotating each database's password (one event per distinct error).
    rotation_failures: std::sync::Mutex<HashMap<String, String>>,
    /// The last error seeding each new database from its `restoreFrom` (one event per error).
    seed_failures: std::sync::Mutex<HashMap<String, String>>,
    /// The PostgreSQL major version of each database image asked so far.
    image_majors: std::sync::Mutex<HashMap<String, u32>>,
    /// The engine listed ahead of the next pass (`list_ahead`).
    ahead: std::sync::Mutex<Option<listing::Listing>>,
    /// Asks the controller for a pass (`up`): work done beside a pass (a digest found) calls it.
    wake: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    /// The host policy with its manifests directory, as the `db` verbs and the backup
    /// scheduler check a database's paths; and whether this process recorded it in the state
    /// file yet.
    recorded: crate::policy::RecordedPolicy,
    policy_recorded: std::sync::atomic::AtomicBool,
}

impl<R: Engine> Reconciler<R> {
    pub fn new(engine: R, store: Store, options: Options) -> Self {
        let recorded = crate::policy::RecordedPolicy {
            policy: options.host_policy.clone(),
            manifests: options.manifests.clone(),
        };
        Self {
            engine,
            store,
            options,
            last_refused: std::sync::Mutex::new(Vec::new()),
            vanished: std::sync::Mutex::new(HashMap::new()),
            had_networks: std::sync::atomic::AtomicBool::new(true),
            proxy: None,
            notifier: None,
            env_file_cache: crate::kinds::env_file::EnvFiles::default(),
            config_cache: crate::kinds::config_files::ConfigFiles::default(),
            secret_resolver: crate::kinds::secret::Resolver::default(),
            image_tries: std::sync::Mutex::new(HashMap::new()),
            rotation_failures: std::sync::Mutex::new(HashMap::new()),
            seed_failures: std::sync::Mutex::new(HashMap::new()),
            image_majors: std::sync::Mutex::new(HashMap::new()),
            ahead: std::sync::Mutex::new(None),
            recorded,
            policy_recorded: std::sync::atomic::AtomicBool::new(false),
            wake: None,
        }
    }

    /// Opens encrypted Secrets with these identities (`--age-identity`).
    pub fn with_age_identities(mut self, identities: Vec<crate::age::Identity>) -> Self {
        self.secret_resolver = crate::kinds::secret::Resolver::new(identities);
        self
    }

    /// Calls `wake` when work done beside the passes wants one (`dockhand up`).
    pub fn with_wake(mut self, wake: impl Fn() + Send + Sync + 'static) -> Self {
        self.wake = Some(std::sync::Arc::new(wake));
        self
    }

    /// Serves routes from this reconciler's passes (`dockhand up`).
    pub fn with_proxy(mut self, proxy: std::sync::Arc<Proxy>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Announces failing, recovered and rolled-back objects from this reconciler's passes.
    pub fn with_notifier(mut self, notifier: crate::notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn engine(&self) -> &R {
        &self.engine
    }

    /// The host policy and the manifests directory it applies to (what the backup scheduler
    /// checks a database's paths against).
    pub fn recorded_policy(&self) -> &crate::policy::RecordedPolicy {
        &self.recorded
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The routes' proxy, when this reconciler serves them (`dockhand up`).
    pub fn proxy(&self) -> Option<&std::sync::Arc<Proxy>> {
        self.proxy.as_ref()
    }

    /// Plans against the engine without changing anything (the store included).
    pub async fn dry_run(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let o = self.observe(snapshot, true).await?;
        Ok(PassReport {
            held: held(&o.desired, snapshot),
            desired: o.desired,
            errors: o.errors,
            warnings: snapshot.warnings.clone(),
            missing_source: snapshot.missing,
            network_actions: o.networks.describe(),
            plan: o.plan,
            pending_prunes: o.pending_prunes,
            foreign: o.foreign.iter().map(|c| c.name.clone()).collect(),
            ..PassReport::default()
        })
    }

    /// One full pass. Returns after the planned actions ran; call again to confirm convergence.
    pub async fn pass(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        self.store.check_file()?;
        let instance = &self.options.instance;
        if !self
            .policy_recorded
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            if let Err(e) = self
                .store
                .record_host_policy(instance, &self.recorded.to_json())
                .await
            {
                tracing::warn!("cannot record the host policy for the db verbs: {e}");
                self.policy_recorded
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let Observation {
            allow_empty,
            stored,
            errors,
            pending_prunes,
            foreign,
            statuses: previous,
            desired,
            specs,
            plan,
            now,
            secrets,
            networks,
            observed,
            secret_values,
            secret_refused,
            notes,
        } = self.observe(snapshot, false).await?;
        let prune = !desired.is_empty() || allow_empty;
        // Another program holding the state file's write lock must not stop drift repair: the
        // pass acts on what it read, and records once it can write again.
        let mut store_busy = false;
        let applied = match self
            .store
            .apply_desired(instance, &stored, &desired, &errors, prune)
            .await
        {
            Ok(applied) => applied,
            Err(e) if e.is_busy() => {
                tracing::warn!("{e}; acting on what was read, recording at a later pass");
                store_busy = true;
                crate::store::ApplyReport::default()
            }
            Err(e) => return Err(e.into()),
        };
        let mut events = {
            let mut last = self
                .last_refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            record::pass_events(&errors, &applied, &plan, &mut last)
        };
        events.extend(notes);

        // Execute: networks first, then routes switch to ready containers before anything is
        // removed (StartFirst updates), then the containers, then unused networks go.
        let endpoint_of = |o: &Observed, network: &str| {
            let spec = specs.get(o.key.as_ref()?)?;
            spec.endpoints
                .iter()
                .find(|e| e.network == network)
                .cloned()
        };
        let mut network_results =
            network::create(&self.engine, &networks, &observed, &endpoint_of).await;
        let route_states = self.sync_routes(&desired, &plan, &observed).await;
        let outcomes = execute::execute(
            &self.engine,
            plan.actions.clone(),
            &specs,
            &owner_labels(instance),
            self.options.parallel,
        )
        .await;
        network_results.extend(network::remove_unused(&self.engine, &networks).await);
        events.extend(record::network_events(&network_results));
        if !networks.is_empty() || !network_results.is_empty() {
            self.had_networks.store(true, Ordering::Relaxed);
        }

        // Record.
        let mut generations: HashMap<ObjectKey, i64> = stored
            .iter()
            .map(|s| (s.object.key(), s.generation))
            .collect();
        generations.extend(applied.changed.iter().cloned());
        let last_errors = record::first_errors(&desired, &errors);
        let mut statuses = record::statuses(&plan, &outcomes, &generations, &last_errors, now);
        statuses.extend(network::statuses(
            &desired,
            instance,
            &network_results,
            &generations,
        ));
        let (route_statuses, route_events) = route::statuses(
            &desired,
            self.proxy.is_some(),
            &route_states,
            &previous,
            &generations,
        );
        statuses.extend(route_statuses);
        statuses.extend(crate::kinds::secret::statuses(
            &desired,
            &secret_values,
            &secret_refused,
            &generations,
        ));
        events.extend(route_events);
        if !store_busy {
            self.store
                .record_status(instance, &previous, &statuses)
                .await?;
            let removed = record::removed_with_volume(&outcomes);
            database::record(&self.store, instance, &plan, &removed, &secrets).await?;
            let forgotten = database::forget_never_initialised(
                &self.engine,
                &self.store,
                instance,
                &desired,
                &observed,
                &secrets,
            )
            .await?;
            events.extend(
                database::move_taken_ports(&self.store, instance, &desired, &outcomes).await?,
            );
            events.extend(forgotten.into_iter().map(|name| crate::store::NewEvent {
                key: Some(ObjectKey::new(crate::manifest::Kind::Database, name)),
                reason: "forgotten",
                message: "never held data: its volume, password and port are released".into(),
            }));
            events.extend(record::outcome_events(&outcomes, &previous, &statuses));
            if let Some(n) = &self.notifier {
                n.observe(&previous, &statuses, &plan.rollbacks);
            }
            events.extend(record::task_events(&previous, &statuses));
            self.store.append_events(instance, &events).await?;
            // A failed rollout: the next pass runs the last Ready revision instead.
            for r in &plan.rollbacks {
                let by = crate::manifest::replicas::whole(&r.key);
                let rollback = crate::store::Rollback {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    reason: r.reason.clone(),
                };
                self.store.set_rollback(instance, &by, &rollback).await?;
            }
        }

        Ok(PassReport {
            held: held(&desired, snapshot),
            desired,
            errors,
            warnings: snapshot.warnings.clone(),
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
            pending_prunes,
            foreign: foreign.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Points every route at its targets' ready containers, with the runtime per-client routes
    /// ahead of the manifest's rules.
    async fn sync_routes(
        &self,
        desired: &[Object],
        plan: &Plan,
        observed: &[Observed],
    ) -> HashMap<String, RouteState> {
        let Some(proxy) = &self.proxy else {
            return HashMap::new();
        };
        let mut routes = route::routes(desired);
        let mut backends = route::backends(plan, observed);
        if !routes.is_empty() {
            match self.store.route_clients(&self.options.instance).await {
                Ok(clients) => backends.extend(route::add_client_routes(&mut routes, &clients)),
                Err(e) => tracing::warn!("cannot read per-client routes: {e}"),
            }
        }
        let mut states = proxy.sync(&routes, &backends).await;
        for (name, why) in route::unpublished_targets(&routes, plan) {
            if let Some(state) = states.get_mut(&name) {
                state.unreachable = why;
            }
        }
        states
    }
}

#[cfg(test)]
mod tests;
