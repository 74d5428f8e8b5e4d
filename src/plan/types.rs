//! The planner's vocabulary: what it is told of each object, and what it decides.

use std::collections::BTreeMap;

use crate::clock::Millis;
use crate::engine::Observed;
use crate::lifecycle::{BackoffPolicy, Lifecycle};
use crate::manifest::depends::Condition;
use crate::manifest::server::RestartPolicy;
use crate::manifest::{ObjectKey, Phase};

/// A readiness check dockhand runs itself, and what to do when it never passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    /// Whether the check passed on this pass (or earlier for this same container).
    pub ready: bool,
    /// What the check found running, when it ran on this pass (`PostgreSQL 15.18`).
    pub found: Option<String>,
    pub timeout: std::time::Duration,
    /// A volume to remove with a container that never became ready (one never initialised).
    pub disposable_volume: Option<String>,
}

/// How soon to look again at an object waiting for its readiness check.
pub(super) const RECHECK_MILLIS: Millis = 500;

/// One dependency, as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Dep {
    pub key: ObjectKey,
    pub condition: Condition,
    /// Restart the dependent when this dependency is recreated or restarted.
    pub restart: bool,
}

/// What the planner needs to know of a desired object.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub key: ObjectKey,
    pub spec_hash: String,
    pub restart: RestartPolicy,
    pub max_restarts: Option<u32>,
    /// Restart the container when its health check reports it unhealthy.
    pub restart_unhealthy: bool,
    /// For kinds that dockhand itself proves ready (a Database's login).
    pub readiness: Option<Readiness>,
    /// A spec change creates the new container beside the old one (update.order StartFirst).
    pub start_first: bool,
    pub deps: Vec<Dep>,
    /// The object may not be acted on (why, for its `Invalid` status): its containers, if any,
    /// are left exactly as they are. A database whose data volume the state file forgot.
    pub hold: Option<String>,
    /// The object is stopped on purpose (why, for its `Stopped` status): its containers are
    /// removed, dependents first, and none is created.
    pub stopped: Option<String>,
    /// The object's run history as last recorded.
    pub lifecycle: Lifecycle,
    /// The object spec's own hash (a revision's identity, without what the host adds).
    pub revision: String,
    /// `update.failureAction: Rollback`: how long a new revision has to become Ready.
    pub rollback_after: Option<std::time::Duration>,
    /// It runs an older revision because its current one failed to roll out (why).
    pub rolled_back: Option<String>,
}

/// A rollout that did not become Ready in time: run revision `to` again while the spec is
/// `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackPlan {
    pub key: ObjectKey,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// Its object is no longer desired.
    Orphan,
    /// Another container already serves the same object.
    Duplicate,
    /// Its object is stopped.
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// No container exists for the object.
    Create { key: ObjectKey },
    /// The container's spec hash differs from the object's (or it is dead): replace it.
    Recreate {
        key: ObjectKey,
        old: String,
        /// The engine changes it in place (a swarm service, whose tasks the swarm rolls).
        in_place: bool,
    },
    /// Start a stopped container: a restart after an exit, or the first start of one created.
    Start {
        key: ObjectKey,
        id: String,
        restart: bool,
    },
    /// Restart a running container: it is unhealthy, or a dependency it restarts with ran anew.
    Restart {
        key: ObjectKey,
        id: String,
        reason: String,
    },
    /// Remove a container that never became ready (and its volume, if it never held data);
    /// the object is created again after its backoff.
    Abandon {
        key: ObjectKey,
        id: String,
        reason: String,
        volume: Option<String>,
    },
    /// A container of this instance that no desired object claims.
    Remove {
        id: String,
        name: String,
        key: Option<ObjectKey>,
        reason: RemoveReason,
        /// A data volume its object asked to be removed with it.
        volume: Option<String>,
    },
}

impl Action {
    /// The object the action is for, if any.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Action::Create { key }
            | Action::Recreate { key, .. }
            | Action::Start { key, .. }
            | Action::Restart { key, .. }
            | Action::Abandon { key, .. } => Some(key),
            Action::Remove { key, .. } => key.as_ref(),
        }
    }

    /// The action's kind, a metric label: create, recreate, start, restart, abandon, remove.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Recreate { .. } => "recreate",
            Action::Start { .. } => "start",
            Action::Restart { .. } => "restart",
            Action::Abandon { .. } => "abandon",
            Action::Remove { .. } => "remove",
        }
    }

    /// A one-line human description (`create server/web`).
    pub fn describe(&self) -> String {
        match self {
            Action::Create { key } => format!("create {key}"),
            Action::Recreate {
                key,
                in_place: true,
                ..
            } => format!("update {key} (spec changed)"),
            Action::Recreate { key, .. } => format!("recreate {key} (spec changed)"),
            Action::Start {
                key, restart: true, ..
            } => format!("restart {key} (exited)"),
            Action::Start {
                key,
                restart: false,
                ..
            } => format!("start {key}"),
            Action::Restart { key, reason, .. } => format!("restart {key} ({reason})"),
            Action::Abandon { key, reason, .. } => {
                format!("remove {key} ({reason}); retry after backoff")
            }
            Action::Remove { name, reason, .. } => match reason {
                RemoveReason::Orphan => format!("remove {name} (orphan: its object is gone)"),
                RemoveReason::Duplicate => format!("remove {name} (duplicate)"),
                RemoveReason::Stopped => format!("remove {name} (stopped)"),
            },
        }
    }
}

/// Where the plan leaves one desired object, before any action runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub phase: Phase,
    pub message: Option<String>,
    pub lifecycle: Lifecycle,
    /// The container that serves the object now, if any.
    pub container: Option<Observed>,
    /// The current runs of its `restart: true` dependencies, recorded when it (re)starts.
    pub dep_runs: BTreeMap<String, String>,
}

impl Verdict {
    pub(super) fn new(
        phase: Phase,
        message: Option<String>,
        lifecycle: Lifecycle,
        container: Option<&Observed>,
    ) -> Self {
        Self {
            phase,
            message,
            lifecycle,
            container: container.cloned(),
            dep_runs: BTreeMap::new(),
        }
    }
}

/// A lifecycle transition the plan noticed, to be recorded as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub key: ObjectKey,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanOptions {
    /// Prune even when no objects are desired at all.
    pub allow_empty: bool,
    pub backoff: BackoffPolicy,
    pub now: Millis,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Containers that would be pruned but were kept because the sources yielded no objects
    /// and `--allow-empty` was not given.
    pub prune_refused: Vec<String>,
    pub verdicts: BTreeMap<ObjectKey, Verdict>,
    pub transitions: Vec<Transition>,
    /// When to look again at objects waiting for a readiness check (or a rollout's monitor).
    pub recheck_at: Option<Millis>,
    /// Rollouts to roll back now.
    pub rollbacks: Vec<RollbackPlan>,
    /// Rollouts inside their `update.monitor` window, and when it ends: not settled yet.
    pub monitoring: Vec<(ObjectKey, Millis)>,
    /// Objects that run an older revision after a failed rollout, and why.
    pub rolled_back: Vec<(ObjectKey, String)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// When the next pass should run without any outside trigger: the end of the first
    /// backoff, or the next readiness check.
    pub fn wake_at(&self) -> Option<Millis> {
        [self.next_retry(), self.recheck_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest moment a backing-off object may be restarted.
    pub fn next_retry(&self) -> Option<Millis> {
        self.verdicts
            .values()
            .filter(|v| matches!(v.phase, Phase::CrashLoopBackOff | Phase::Unhealthy))
            .filter_map(|v| v.lifecycle.next_retry_at)
            .min()
    }
}
