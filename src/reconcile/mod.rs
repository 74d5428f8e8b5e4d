//! One reconcile pass: merge sources with the store, list the engine once, plan, execute, record.
//!
//! Passes are level-triggered and idempotent: names and labels are deterministic, so whatever a
//! crashed pass left half done, the next pass finds and finishes.

pub mod execute;
pub mod plan;

use std::collections::HashMap;

use crate::lifecycle::{now_millis, BackoffPolicy, Lifecycle, Millis};
use crate::manifest::server::OnUnhealthy;
use crate::manifest::{ManifestError, Object, ObjectKey, Spec};
use crate::runtime::{ContainerSpec, Runtime, RuntimeError};
use crate::source::{merge, Snapshot};
use crate::store::{NewEvent, Status, Store, StoreError, StoredObject};
pub use execute::Outcome;
pub use plan::{plan, Action, Dep, Desired, Phase, Plan, PlanOptions, RemoveReason, Verdict};

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
    /// Crash-loop backoff for restarts.
    pub backoff: BackoffPolicy,
}

/// What one pass saw and did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub desired: Vec<Object>,
    pub errors: Vec<ManifestError>,
    pub missing_source: bool,
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
    pub fn failures(&self) -> impl Iterator<Item = (&Action, &RuntimeError)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| (&o.action, e)))
    }
}

pub struct Reconciler<R> {
    runtime: R,
    store: Store,
    options: Options,
    /// What the empty-source guard held back last time, so the refusal is recorded once.
    last_refused: std::sync::Mutex<Vec<String>>,
}

/// What a pass saw before acting.
struct Observation {
    stored: Vec<StoredObject>,
    statuses: HashMap<ObjectKey, Status>,
    desired: Vec<Object>,
    specs: HashMap<ObjectKey, ContainerSpec>,
    plan: Plan,
    now: Millis,
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
        let statuses: HashMap<ObjectKey, Status> = self
            .store
            .statuses(instance)
            .await?
            .into_iter()
            .filter_map(|s| Some((s.key.clone()?, s)))
            .collect();
        let desired = merge(snapshot, &stored);
        let observed = self.runtime.list(instance).await?;
        let (wanted, specs) = self.desired(&desired, &statuses);
        let now = now_millis();
        let plan = plan(
            &wanted,
            &observed,
            PlanOptions {
                allow_empty: self.options.allow_empty,
                backoff: self.options.backoff,
                now,
            },
        );
        Ok(Observation {
            stored,
            statuses,
            desired,
            specs,
            plan,
            now,
        })
    }

    /// Plans against the engine without changing anything (the store included).
    pub async fn dry_run(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let o = self.observe(snapshot).await?;
        Ok(PassReport {
            desired: o.desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            plan: o.plan,
            ..PassReport::default()
        })
    }

    /// One full pass. Returns after the planned actions ran; call again to confirm convergence.
    pub async fn pass(&self, snapshot: &Snapshot) -> Result<PassReport, ReconcileError> {
        let instance = &self.options.instance;
        let Observation {
            stored,
            statuses: previous,
            desired,
            specs,
            plan,
            now,
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
        events.extend(plan.transitions.iter().map(|t| NewEvent {
            key: Some(t.key.clone()),
            reason: t.reason,
            message: t.message.clone(),
        }));

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
        let last_errors = first_errors(&desired, &snapshot.errors);
        let statuses = statuses(&plan, &outcomes, &generations, &last_errors, now);
        self.store
            .record_status(instance, &previous, &statuses)
            .await?;
        events.extend(outcome_events(&outcomes, &previous, &statuses));
        self.store.append_events(instance, &events).await?;

        Ok(PassReport {
            desired,
            errors: snapshot.errors.clone(),
            missing_source: snapshot.missing,
            plan,
            outcomes,
            statuses,
        })
    }

    fn desired(
        &self,
        objects: &[Object],
        statuses: &HashMap<ObjectKey, Status>,
    ) -> (Vec<Desired>, HashMap<ObjectKey, ContainerSpec>) {
        let mut wanted = Vec::with_capacity(objects.len());
        let mut specs = HashMap::with_capacity(objects.len());
        for o in objects {
            let hash = o.spec_hash();
            let key = o.key();
            let lifecycle = statuses
                .get(&key)
                .map(|s| s.lifecycle.clone())
                .unwrap_or_default();
            match &o.spec {
                Spec::Server(s) => {
                    specs.insert(
                        key.clone(),
                        crate::server::container_spec(&self.options.instance, o, s, &hash),
                    );
                    wanted.push(Desired {
                        key,
                        spec_hash: hash,
                        restart: s.restart_policy,
                        max_restarts: s.max_restarts,
                        restart_unhealthy: s
                            .health_check
                            .as_ref()
                            .is_some_and(|h| h.on_unhealthy == OnUnhealthy::Restart),
                        deps: s
                            .depends_on
                            .iter()
                            .map(|d| Dep {
                                key: d.key(),
                                condition: d.condition,
                                restart: d.restart,
                            })
                            .collect(),
                        lifecycle,
                    });
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
                        // A name held by something this instance does not own is never adopted
                        // or removed: the object is Invalid until the conflict is resolved.
                        phase = if matches!(e, RuntimeError::NameConflict { .. }) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::FakeRuntime;
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
        let rec = Reconciler::new(FakeRuntime::new(), store.clone(), options);
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
