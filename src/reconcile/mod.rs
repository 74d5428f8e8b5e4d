//! One reconcile pass: merge sources with the store, list the engine once, plan, execute, record.
//!
//! Passes are level-triggered and idempotent: names and labels are deterministic, so whatever a
//! crashed pass left half done, the next pass finds and finishes.

pub mod execute;
pub mod plan;

use std::collections::{HashMap, HashSet};

use crate::manifest::{ManifestError, Object, ObjectKey, Spec};
use crate::runtime::{ContainerSpec, Observed, Runtime, RuntimeError, State};
use crate::source::{merge, Snapshot};
use crate::store::{NewEvent, Status, Store, StoreError};
pub use execute::Outcome;
pub use plan::{plan, Action, Desired, Plan, RemoveReason};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl ReconcileError {
    /// Whether the engine was unreachable (retry with backoff) rather than something else failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ReconcileError::Runtime(e) if e.is_unavailable())
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
}

/// What one pass saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub desired: Vec<Object>,
    pub errors: Vec<ManifestError>,
    pub missing_source: bool,
    pub observed: Vec<Observed>,
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
}

impl PassReport {
    /// Nothing was left to do when the pass looked.
    pub fn converged(&self) -> bool {
        self.plan.is_empty()
    }

    /// Actions that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Action, &RuntimeError)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| (&o.action, e)))
    }
}

/// What a pass saw before acting.
struct Observation {
    stored: Vec<crate::store::StoredObject>,
    desired: Vec<Object>,
    observed: Vec<Observed>,
    specs: HashMap<ObjectKey, ContainerSpec>,
    plan: Plan,
}

pub struct Reconciler<R> {
    runtime: R,
    store: Store,
    options: Options,
    /// What the empty-source guard held back last time, so the refusal is recorded once.
    last_refused: std::sync::Mutex<Vec<String>>,
}

impl<R: Runtime> Reconciler<R> {
    pub fn new(runtime: R, store: Store, options: Options) -> Self {
        Self {
            runtime,
            store,
            options,
            last_refused: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Reads the store, merges the snapshot, lists the engine once and plans.
    async fn observe(&self, snapshot: &Snapshot) -> Result<Observation, ReconcileError> {
        let instance = &self.options.instance;
        let stored = self.store.objects(instance).await?;
        let desired = merge(snapshot, &stored);
        let observed = self.runtime.list(instance).await?;
        let (wanted, specs) = self.desired(&desired);
        let plan = plan(&wanted, &observed, self.options.allow_empty);
        Ok(Observation {
            stored,
            desired,
            observed,
            specs,
            plan,
        })
    }

    /// Plans against the engine without changing anything (the store included).
    pub async fn dry_run(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let o = self.observe(snapshot).await?;
        Ok(PassReport {
            desired: o.desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            observed: o.observed,
            plan: o.plan,
            outcomes: Vec::new(),
        })
    }

    /// One full pass. Returns after the planned actions ran; call again to confirm convergence.
    pub async fn pass(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let instance = &self.options.instance;
        let Observation {
            stored,
            desired,
            observed,
            specs,
            plan,
        } = self.observe(snapshot).await?;
        let prune = !desired.is_empty() || self.options.allow_empty;
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
        let outcomes = execute::execute(
            &self.runtime,
            plan.actions.clone(),
            &specs,
            &crate::server::owner_labels(instance),
            self.options.parallel,
        )
        .await;

        let mut generations: HashMap<ObjectKey, i64> = stored
            .iter()
            .map(|s| (s.object.key(), s.generation))
            .collect();
        generations.extend(applied.changed.iter().cloned());
        let last_errors: HashMap<ObjectKey, String> = first_errors(&desired, &snapshot.errors);
        let statuses = statuses(&desired, &observed, &outcomes, &generations, &last_errors);
        let changed = self.store.record_status(instance, &statuses).await?;
        events.extend(outcome_events(&outcomes, &changed));
        self.store.append_events(instance, &events).await?;

        Ok(PassReport {
            desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            observed,
            plan,
            outcomes,
        })
    }

    fn desired(&self, objects: &[Object]) -> (Vec<Desired>, HashMap<ObjectKey, ContainerSpec>) {
        let mut wanted = Vec::with_capacity(objects.len());
        let mut specs = HashMap::with_capacity(objects.len());
        for o in objects {
            let hash = o.spec_hash();
            match &o.spec {
                Spec::Server(s) => {
                    wanted.push(Desired {
                        key: o.key(),
                        spec_hash: hash.clone(),
                        restart: s.restart_policy,
                    });
                    specs.insert(
                        o.key(),
                        crate::server::container_spec(&self.options.instance, o, s, &hash),
                    );
                }
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

/// Status of every desired object after a pass, from the listing and the outcomes.
fn statuses(
    desired: &[Object],
    observed: &[Observed],
    outcomes: &[Outcome],
    generations: &HashMap<ObjectKey, i64>,
    last_errors: &HashMap<ObjectKey, String>,
) -> Vec<Status> {
    desired
        .iter()
        .map(|o| {
            let key = o.key();
            let generation = generations.get(&key).copied().unwrap_or(1);
            let current = observed
                .iter()
                .filter(|c| c.key.as_ref() == Some(&key))
                .find(|c| c.spec_hash.as_deref() == Some(o.spec_hash().as_str()));
            let outcome = outcomes.iter().find(|x| {
                x.action.key() == Some(&key) && !matches!(x.action, Action::Remove { .. })
            });
            let (phase, container_id, mut message, observed_generation) = match (outcome, current) {
                (Some(x), _) => match &x.result {
                    Err(e) => (
                        "Failed",
                        current.map(|c| c.id.clone()),
                        Some(e.to_string()),
                        0,
                    ),
                    Ok(Some(id)) => ("Creating", Some(id.clone()), None, generation),
                    Ok(None) => ("Running", current.map(|c| c.id.clone()), None, generation),
                },
                (None, Some(c)) => {
                    let (phase, message) = match &c.state {
                        State::Running => ("Running", None),
                        State::Paused => ("Running", Some("paused".to_owned())),
                        State::Restarting => ("Creating", Some("restarting".to_owned())),
                        State::Exited { code: Some(0) } => {
                            ("Completed", Some("exited with code 0".to_owned()))
                        }
                        State::Exited { code } => (
                            "Failed",
                            Some(match code {
                                Some(c) => format!("exited with code {c}"),
                                None => "exited".to_owned(),
                            }),
                        ),
                        State::Created | State::Removing | State::Dead => ("Pending", None),
                    };
                    (phase, Some(c.id.clone()), message, generation)
                }
                (None, None) => ("Pending", None, None, 0),
            };
            if let Some(err) = last_errors.get(&key) {
                let note = format!("manifest error, running the last good spec: {err}");
                message = Some(match message {
                    Some(m) => format!("{m}; {note}"),
                    None => note,
                });
            }
            Status {
                key: Some(key),
                phase: phase.to_owned(),
                container_id,
                observed_generation,
                message,
                ports: current.map(|c| c.ports.clone()).unwrap_or_default(),
                updated_at: String::new(),
            }
        })
        .collect()
}

/// Events for what the executor did. Failures are recorded when the status changed, so a
/// failure that repeats every pass is recorded once.
fn outcome_events(outcomes: &[Outcome], status_changed: &HashSet<ObjectKey>) -> Vec<NewEvent> {
    outcomes
        .iter()
        .filter_map(|x| {
            let key = x.action.key().cloned();
            let (reason, message) = match (&x.action, &x.result) {
                (a, Err(e)) => {
                    if key.as_ref().is_some_and(|k| !status_changed.contains(k)) {
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
                (Action::Start { key, .. }, Ok(_)) => {
                    ("started", format!("started {key} after it stopped"))
                }
                (a @ Action::Remove { .. }, Ok(_)) => ("removed", a.describe()),
            };
            Some(NewEvent {
                key,
                reason,
                message,
            })
        })
        .collect()
}
