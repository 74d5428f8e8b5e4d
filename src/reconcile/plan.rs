//! The pure planner: desired objects, one engine listing and the clock in; actions, phases and
//! lifecycle records out.
//!
//! No I/O happens here, so every decision (what is recreated, what is left alone, when a
//! crashing container may restart, what the empty-source guard holds back) is unit- and
//! property-tested without an engine and without sleeping.

use std::collections::{BTreeMap, BTreeSet};

use crate::lifecycle::{rfc3339, BackoffPolicy, Lifecycle, Millis};
use crate::manifest::replicas::{replica_index, replica_of};
use crate::manifest::server::{Condition, RestartPolicy};
use crate::manifest::{Kind, ObjectKey};
use crate::runtime::{Health, Observed, State};

/// A readiness check dockhand runs itself, and what to do when it never passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    /// Whether the check passed on this pass (or earlier for this same container).
    pub ready: bool,
    pub timeout: std::time::Duration,
    /// A volume to remove with a container that never became ready (one never initialised).
    pub disposable_volume: Option<String>,
}

/// How soon to look again at an object waiting for its readiness check.
const RECHECK_MILLIS: Millis = 500;

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
    /// The object's run history as last recorded.
    pub lifecycle: Lifecycle,
}

/// Where an object stands. The set is part of the CLI and API contract.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    /// No container yet.
    Pending,
    /// Waiting for dependencies to meet their conditions.
    Blocked,
    /// Just created or started; not yet seen running.
    Creating,
    /// Running, not yet healthy.
    Running,
    /// Healthy, or running with no health check.
    Ready,
    Unhealthy,
    /// Finished with exit code 0 and not to be run again while the spec is unchanged.
    Completed,
    /// An action failed, a `Never` run exited non-zero, or `maxRestarts` was reached.
    Failed,
    /// Exited and waiting for its backoff delay before the next restart.
    CrashLoopBackOff,
    /// Its container name is taken by a container this instance does not own.
    Invalid,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Blocked => "Blocked",
            Phase::Creating => "Creating",
            Phase::Running => "Running",
            Phase::Ready => "Ready",
            Phase::Unhealthy => "Unhealthy",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
            Phase::CrashLoopBackOff => "CrashLoopBackOff",
            Phase::Invalid => "Invalid",
        }
    }

    /// Whether nothing more will happen to the object without a change or a failure:
    /// `sync` waits until every object is settled.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Phase::Ready | Phase::Completed | Phase::Failed | Phase::Invalid
        )
    }

    /// Whether dependents waiting for `Started` may go ahead.
    pub fn can_satisfy_started(self) -> bool {
        matches!(
            self,
            Phase::Running | Phase::Ready | Phase::Unhealthy | Phase::Completed
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// Its object is no longer desired.
    Orphan,
    /// Another container already serves the same object.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// No container exists for the object.
    Create { key: ObjectKey },
    /// The container's spec hash differs from the object's (or it is dead): replace it.
    Recreate { key: ObjectKey, old: String },
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
    fn new(
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
    /// When to look again at objects waiting for a readiness check.
    pub recheck_at: Option<Millis>,
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

/// Plans the actions that make `observed` match `desired`.
///
/// Containers whose spec hash matches and that run (or rightly stay stopped) get no action,
/// so a no-op pass touches nothing.
pub fn plan(desired: &[Desired], observed: &[Observed], opts: PlanOptions) -> Plan {
    let mut by_key: BTreeMap<&ObjectKey, Vec<&Observed>> = BTreeMap::new();
    let mut orphans: Vec<&Observed> = Vec::new();
    let wanted: BTreeSet<&ObjectKey> = desired.iter().map(|d| &d.key).collect();
    for o in observed {
        match &o.key {
            Some(k) if wanted.contains(k) => by_key.entry(k).or_default().push(o),
            _ => orphans.push(o),
        }
    }

    let mut p = Plan::default();
    let mut candidates_by_key: BTreeMap<ObjectKey, Option<Action>> = BTreeMap::new();
    // Objects whose spec change this pass would roll out, with the old container if it serves.
    let mut updates: BTreeMap<ObjectKey, Option<Observed>> = BTreeMap::new();
    for d in desired {
        let mut candidates = by_key.remove(&d.key).unwrap_or_default();
        // Keep the best container: matching spec first, then running, then the name order.
        candidates.sort_by_key(|o| {
            (
                o.spec_hash.as_deref() != Some(d.spec_hash.as_str()),
                o.state != State::Running,
                o.name.clone(),
            )
        });
        let matches = |o: &Observed| o.spec_hash.as_deref() == Some(d.spec_hash.as_str());
        // StartFirst: only a container of the current spec counts; older ones keep serving
        // until it is Ready, then go.
        let keep = if d.start_first {
            candidates.iter().find(|o| matches(o)).copied()
        } else {
            candidates.first().copied()
        };
        let (verdict, action) = plan_object(d, keep, &opts, &mut p);
        for o in candidates
            .iter()
            .filter(|o| Some(o.id.as_str()) != keep.map(|k| k.id.as_str()))
        {
            if d.start_first && !matches(o) && verdict.phase != Phase::Ready {
                continue;
            }
            p.actions.push(Action::Remove {
                id: o.id.clone(),
                name: o.name.clone(),
                key: Some(d.key.clone()),
                reason: RemoveReason::Duplicate,
                volume: None,
            });
        }
        let old = candidates.iter().find(|o| !matches(o));
        let update = match &action {
            Some(Action::Recreate { .. }) => keep.is_some_and(|k| !matches(k)),
            Some(Action::Create { .. }) => d.start_first && old.is_some(),
            _ => false,
        };
        if update {
            updates.insert(
                d.key.clone(),
                old.filter(|o| serving(o)).map(|o| (*o).clone()),
            );
        }
        p.verdicts.insert(d.key.clone(), verdict);
        candidates_by_key.insert(d.key.clone(), action);
    }
    roll(desired, &updates, &mut candidates_by_key, &mut p, &opts);
    // Dependencies: nothing starts before what it depends on meets its condition, and a
    // running object restarts when a `restart: true` dependency ran anew.
    let runs: BTreeMap<ObjectKey, String> = p
        .verdicts
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), run_of(v)?)))
        .collect();
    for d in desired {
        let mut action = candidates_by_key.remove(&d.key).flatten();
        let dep_runs: BTreeMap<String, String> = d
            .deps
            .iter()
            .filter(|dep| dep.restart)
            .filter_map(|dep| Some((dep.key.to_string(), runs.get(&dep.key)?.clone())))
            .collect();
        let unmet: Vec<String> = d
            .deps
            .iter()
            .filter_map(|dep| unmet(dep, p.verdicts.get(&dep.key)))
            .collect();
        let Some(v) = p.verdicts.get_mut(&d.key) else {
            continue;
        };
        v.dep_runs = dep_runs;
        let starts = matches!(
            action,
            Some(Action::Create { .. } | Action::Recreate { .. } | Action::Start { .. })
        );
        if starts && !unmet.is_empty() {
            action = None;
            let message = format!("waiting for {}", unmet.join(", "));
            if v.lifecycle.blocked_on.as_deref() != Some(message.as_str()) {
                p.transitions.push(Transition {
                    key: d.key.clone(),
                    reason: "blocked",
                    message: format!("{} is {message}", d.key),
                });
            }
            v.lifecycle.blocked_on = Some(message.clone());
            v.phase = Phase::Blocked;
            v.message = Some(message);
        } else {
            v.lifecycle.blocked_on = None;
        }
        if action.is_none() && unmet.is_empty() {
            if let (Some(c), true) = (
                &v.container,
                matches!(v.phase, Phase::Ready | Phase::Running | Phase::Unhealthy),
            ) {
                let changed: Vec<&String> = v
                    .dep_runs
                    .iter()
                    .filter(|(k, run)| {
                        v.lifecycle
                            .dep_runs
                            .get(*k)
                            .is_some_and(|seen| seen != *run)
                    })
                    .map(|(k, _)| k)
                    .collect();
                if let Some(first) = changed.first() {
                    action = Some(Action::Restart {
                        key: d.key.clone(),
                        id: c.id.clone(),
                        reason: format!("{first} ran anew"),
                    });
                } else {
                    // Adopt runs seen for the first time without restarting.
                    v.lifecycle.dep_runs.clone_from(&v.dep_runs);
                }
            }
        }
        p.actions.extend(action);
    }

    // Remove dependents first: an orphan that another orphan still depends on waits for the
    // next pass, when its dependent is gone.
    let needed: BTreeSet<&ObjectKey> = orphans.iter().flat_map(|o| o.depends_on.iter()).collect();
    for o in orphans {
        if o.state == State::Removing {
            continue;
        }
        if desired.is_empty() && !opts.allow_empty {
            p.prune_refused.push(o.name.clone());
            continue;
        }
        if o.key.as_ref().is_some_and(|k| needed.contains(k)) {
            continue;
        }
        p.actions.push(Action::Remove {
            id: o.id.clone(),
            name: o.name.clone(),
            key: o.key.clone(),
            reason: RemoveReason::Orphan,
            volume: o.delete_volume.clone(),
        });
    }
    p
}

/// Whether a container is doing its job: running, and healthy if it has a health check.
fn serving(o: &Observed) -> bool {
    o.state == State::Running && matches!(o.health, None | Some(Health::Healthy))
}

/// Rolling updates: a replicated server's spec change replaces one serving replica at a time,
/// the next only once no other replica is on its way up, so the server never loses more than
/// one replica to an update. Replicas that do not serve anyway are replaced at once, and a new
/// spec that never gets Ready halts the rollout with the rest still on the old one.
fn roll(
    desired: &[Desired],
    updates: &BTreeMap<ObjectKey, Option<Observed>>,
    actions: &mut BTreeMap<ObjectKey, Option<Action>>,
    p: &mut Plan,
    opts: &PlanOptions,
) {
    if updates.is_empty() {
        return;
    }
    let mut groups: BTreeMap<&str, Vec<&ObjectKey>> = BTreeMap::new();
    for d in desired.iter().filter(|d| d.key.kind == Kind::Server) {
        groups
            .entry(replica_of(&d.key.name))
            .or_default()
            .push(&d.key);
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let mut members = members.clone();
        members.sort_by_key(|k| replica_index(&k.name));
        // A replica on its way up (created, starting, or new and not Ready yet) comes first.
        let coming_up = members.iter().find(|k| {
            !updates.contains_key(**k)
                && p.verdicts
                    .get(**k)
                    .is_some_and(|v| !matches!(v.phase, Phase::Ready | Phase::Completed))
        });
        let mut next: Option<&ObjectKey> = coming_up.copied();
        for k in &members {
            let Some(Some(old)) = updates.get(*k) else {
                continue;
            };
            let Some(first) = next else {
                next = Some(k);
                continue;
            };
            actions.insert((*k).clone(), None);
            if let Some(v) = p.verdicts.get_mut(*k) {
                v.phase = Phase::Running;
                v.container = Some(old.clone());
                v.message = Some(format!(
                    "rolling update: on the old spec until {first} is Ready"
                ));
            }
            let at = opts.now + RECHECK_MILLIS;
            p.recheck_at = Some(p.recheck_at.map_or(at, |r| r.min(at)));
        }
    }
}

/// Identifies one run of an object: its container and how often dockhand restarted it.
fn run_of(v: &Verdict) -> Option<String> {
    let c = v.container.as_ref()?;
    Some(format!("{}:{}", c.id, v.lifecycle.restart_count))
}

/// Why `dep` does not meet its condition, or `None` when it does.
fn unmet(dep: &Dep, v: Option<&Verdict>) -> Option<String> {
    let want = match dep.condition {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::Completed => "completed",
    };
    let Some(v) = v else {
        return Some(format!("{} to be {want} (it is not defined)", dep.key));
    };
    let met = match dep.condition {
        Condition::Started => v.phase.can_satisfy_started(),
        // Healthy: the engine's health check passes, or dockhand proved it ready itself.
        Condition::Healthy => {
            v.phase == Phase::Ready
                && v.container.as_ref().is_some_and(|c| {
                    c.health.is_some() || v.lifecycle.ready_for.as_deref() == Some(c.id.as_str())
                })
        }
        Condition::Completed => v.phase == Phase::Completed,
    };
    (!met).then(|| format!("{} to be {want} (it is {})", dep.key, v.phase))
}

/// Decides one object: the phase it is in and at most one action, before dependencies gate it.
fn plan_object(
    d: &Desired,
    current: Option<&Observed>,
    opts: &PlanOptions,
    p: &mut Plan,
) -> (Verdict, Option<Action>) {
    let mut lc = d.lifecycle.clone();
    let finished_here = lc.finished_hash.as_deref() == Some(d.spec_hash.as_str());
    let verdict = |phase, message, lc| Verdict::new(phase, message, lc, current);
    let Some(c) = current else {
        if finished_here {
            // A finished job whose container was removed is not run again.
            return (
                verdict(finished_phase(&lc), finished_message(&lc), lc),
                None,
            );
        }
        if let Some(at) = lc.next_retry_at.filter(|at| *at > opts.now) {
            let message = format!("creating it again at {}", rfc3339(at));
            return (verdict(Phase::CrashLoopBackOff, Some(message), lc), None);
        }
        return (
            verdict(Phase::Pending, None, lc),
            Some(Action::Create { key: d.key.clone() }),
        );
    };
    if c.spec_hash.as_deref() != Some(d.spec_hash.as_str()) || c.state == State::Dead {
        let action = Action::Recreate {
            key: d.key.clone(),
            old: c.id.clone(),
        };
        return (verdict(Phase::Creating, None, lc), Some(action));
    }
    match &c.state {
        State::Running | State::Paused | State::Restarting => {
            let ran = lc.started_at.map_or(0, |s| opts.now - s);
            if lc.crash_streak > 0 && ran >= opts.backoff.reset_after.as_millis() as Millis {
                lc.crash_streak = 0;
            }
            let health = c.health.map(Health::as_str);
            if health != lc.health.as_deref() {
                if let Some(h @ ("healthy" | "unhealthy")) = health {
                    p.transitions.push(Transition {
                        key: d.key.clone(),
                        reason: if h == "healthy" {
                            "healthy"
                        } else {
                            "unhealthy"
                        },
                        message: format!("{} is {h}", d.key),
                    });
                }
                lc.health = health.map(str::to_owned);
            }
            let paused = (c.state == State::Paused).then(|| "paused".to_owned());
            if let Some(r) = &d.readiness {
                return plan_readiness(d, r, c, lc, opts, p);
            }
            match c.health {
                None | Some(Health::Healthy) => {
                    lc.next_retry_at = None;
                    (verdict(Phase::Ready, paused, lc), None)
                }
                Some(Health::Starting) => {
                    lc.next_retry_at = None;
                    (
                        verdict(Phase::Running, Some("health: starting".into()), lc),
                        None,
                    )
                }
                Some(Health::Unhealthy) if d.restart_unhealthy && !gave_up(d, &lc) => {
                    // Unhealthy restarts back off like crashes, so a probe that can never pass
                    // does not restart the container as fast as the engine allows.
                    let at = match lc.next_retry_at {
                        Some(at) => at,
                        None => schedule_restart(d, &mut lc, opts, p, "was unhealthy"),
                    };
                    if at <= opts.now {
                        let action = Action::Restart {
                            key: d.key.clone(),
                            id: c.id.clone(),
                            reason: "unhealthy".into(),
                        };
                        (
                            verdict(Phase::Unhealthy, Some("unhealthy; restarting".into()), lc),
                            Some(action),
                        )
                    } else {
                        let message = format!(
                            "unhealthy; restart {} at {}",
                            lc.restart_count + 1,
                            rfc3339(at)
                        );
                        (verdict(Phase::Unhealthy, Some(message), lc), None)
                    }
                }
                Some(Health::Unhealthy) => {
                    let message = if d.restart_unhealthy {
                        format!(
                            "unhealthy; gave up after {} restarts (maxRestarts)",
                            lc.restart_count
                        )
                    } else {
                        "unhealthy (onUnhealthy: None)".to_owned()
                    };
                    (verdict(Phase::Unhealthy, Some(message), lc), None)
                }
            }
        }
        State::Created => {
            let action = Action::Start {
                key: d.key.clone(),
                id: c.id.clone(),
                restart: false,
            };
            (verdict(Phase::Creating, None, lc), Some(action))
        }
        State::Removing | State::Dead => (verdict(Phase::Pending, None, lc), None),
        State::Exited { code } => {
            if lc.exit_is_new() {
                account_exit(d, &mut lc, *code, opts, p);
            }
            lc.health = None;
            if lc.finished_hash.as_deref() == Some(d.spec_hash.as_str()) {
                return (
                    verdict(finished_phase(&lc), finished_message(&lc), lc),
                    None,
                );
            }
            if gave_up(d, &lc) {
                let message = format!("gave up after {} restarts (maxRestarts)", lc.restart_count);
                return (verdict(Phase::Failed, Some(message), lc), None);
            }
            match lc.next_retry_at {
                Some(at) if at > opts.now => {
                    let message = format!(
                        "exited with code {}; restart {} at {}",
                        code.map_or("?".to_owned(), |c| c.to_string()),
                        lc.restart_count + 1,
                        rfc3339(at)
                    );
                    (verdict(Phase::CrashLoopBackOff, Some(message), lc), None)
                }
                _ => {
                    let action = Action::Start {
                        key: d.key.clone(),
                        id: c.id.clone(),
                        restart: true,
                    };
                    (verdict(Phase::Creating, None, lc), Some(action))
                }
            }
        }
    }
}

/// A running container of a kind that dockhand proves ready itself.
fn plan_readiness(
    d: &Desired,
    r: &Readiness,
    c: &Observed,
    mut lc: Lifecycle,
    opts: &PlanOptions,
    p: &mut Plan,
) -> (Verdict, Option<Action>) {
    let verdict = |phase, message, lc| Verdict::new(phase, message, lc, Some(c));
    if r.ready {
        if lc.ready_for.as_deref() != Some(c.id.as_str()) {
            p.transitions.push(Transition {
                key: d.key.clone(),
                reason: "ready",
                message: format!("{} accepted a login", d.key),
            });
            lc.ready_for = Some(c.id.clone());
        }
        lc.next_retry_at = None;
        return (verdict(Phase::Ready, None, lc), None);
    }
    let waited = lc.started_at.map_or(0, |s| opts.now - s);
    if waited >= r.timeout.as_millis() as Millis {
        let reason = format!("not ready after {}", humantime::format_duration(r.timeout));
        p.transitions.push(Transition {
            key: d.key.clone(),
            reason: "not-ready",
            message: format!(
                "{} {reason}; removing its container{}",
                d.key,
                if r.disposable_volume.is_some() {
                    " and its never-initialised volume"
                } else {
                    ""
                }
            ),
        });
        schedule_restart(d, &mut lc, opts, p, "failed to become ready");
        let action = Action::Abandon {
            key: d.key.clone(),
            id: c.id.clone(),
            reason,
            volume: r.disposable_volume.clone(),
        };
        return (
            verdict(
                Phase::Failed,
                Some("not ready in time; retrying".into()),
                lc,
            ),
            Some(action),
        );
    }
    let next = opts.now + RECHECK_MILLIS;
    p.recheck_at = Some(p.recheck_at.map_or(next, |t| t.min(next)));
    (
        verdict(
            Phase::Running,
            Some("waiting for it to accept a login".into()),
            lc,
        ),
        None,
    )
}

fn gave_up(d: &Desired, lc: &Lifecycle) -> bool {
    d.max_restarts.is_some_and(|m| lc.restart_count >= m)
}

/// Records an exit once: a finished job, a give-up, or the backoff before the next restart.
fn account_exit(
    d: &Desired,
    lc: &mut Lifecycle,
    code: Option<i64>,
    opts: &PlanOptions,
    p: &mut Plan,
) {
    lc.exit_seen_for = lc.started_at;
    lc.last_exit_code = code;
    let shown = code.map_or("?".to_owned(), |c| c.to_string());
    let mut note = |reason, message| {
        p.transitions.push(Transition {
            key: d.key.clone(),
            reason,
            message,
        })
    };
    note("died", format!("{} exited with code {shown}", d.key));
    if !d.restart.restarts_after(code) {
        lc.finished_hash = Some(d.spec_hash.clone());
        lc.next_retry_at = None;
        if code == Some(0) {
            note("completed", format!("{} completed", d.key));
        } else {
            note(
                "failed",
                format!(
                    "{} failed with exit code {shown}; restartPolicy Never",
                    d.key
                ),
            );
        }
        return;
    }
    if gave_up(d, lc) {
        note(
            "failed",
            format!("{} gave up after {} restarts", d.key, lc.restart_count),
        );
        return;
    }
    schedule_restart(d, lc, opts, p, "crashed");
}

/// Sets the time of the next restart after a failure (an exit or unhealthiness) and returns
/// it: at once after a long good run, otherwise after the backoff for the current streak.
fn schedule_restart(
    d: &Desired,
    lc: &mut Lifecycle,
    opts: &PlanOptions,
    p: &mut Plan,
    what: &str,
) -> Millis {
    let ran = lc.started_at.map_or(Millis::MAX, |s| opts.now - s);
    if ran >= opts.backoff.reset_after.as_millis() as Millis {
        lc.crash_streak = 0;
    }
    let delay = opts.backoff.delay(lc.crash_streak);
    lc.crash_streak = lc.crash_streak.saturating_add(1);
    let at = opts.now + delay.as_millis() as Millis;
    lc.next_retry_at = Some(at);
    if !delay.is_zero() {
        p.transitions.push(Transition {
            key: d.key.clone(),
            reason: "backoff",
            message: format!(
                "{} {what} {} times in a row; restarting in {}",
                d.key,
                lc.crash_streak,
                humantime::format_duration(delay)
            ),
        });
    }
    at
}

fn finished_phase(lc: &Lifecycle) -> Phase {
    if lc.last_exit_code == Some(0) {
        Phase::Completed
    } else {
        Phase::Failed
    }
}

fn finished_message(lc: &Lifecycle) -> Option<String> {
    Some(match lc.last_exit_code {
        Some(c) => format!("exited with code {c}; not run again until its spec changes"),
        None => "exited; not run again until its spec changes".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use proptest::prelude::*;
    use std::time::Duration;

    const NOW: Millis = 1_000_000_000;

    fn key(n: &str) -> ObjectKey {
        ObjectKey::new(Kind::Server, n)
    }

    fn want(n: &str, hash: &str) -> Desired {
        Desired {
            key: key(n),
            spec_hash: hash.into(),
            restart: RestartPolicy::Always,
            max_restarts: None,
            restart_unhealthy: true,
            readiness: None,
            start_first: false,
            deps: Vec::new(),
            lifecycle: Lifecycle::started(NOW - 1_000),
        }
    }

    fn dep(n: &str, condition: Condition, restart: bool) -> Dep {
        Dep {
            key: key(n),
            condition,
            restart,
        }
    }

    fn healthy(mut o: Observed, h: Health) -> Observed {
        o.health = Some(h);
        o
    }

    fn opts(allow_empty: bool) -> PlanOptions {
        PlanOptions {
            allow_empty,
            backoff: BackoffPolicy {
                base: Duration::from_secs(10),
                cap: Duration::from_secs(40),
                reset_after: Duration::from_secs(600),
            },
            now: NOW,
        }
    }

    fn seen(id: &str, n: &str, hash: &str, state: State) -> Observed {
        Observed {
            id: id.into(),
            name: format!("dh_t_server_{n}"),
            key: Some(key(n)),
            spec_hash: Some(hash.into()),
            state,
            ports: vec![],
            health: None,
            depends_on: vec![],
            delete_volume: None,
            ip: None,
        }
    }

    fn exited(code: i64) -> State {
        State::Exited { code: Some(code) }
    }

    fn start(n: &str, id: &str, restart: bool) -> Action {
        Action::Start {
            key: key(n),
            id: id.into(),
            restart,
        }
    }

    fn three(hash: &str) -> Vec<Desired> {
        ["web", "web.1", "web.2"]
            .iter()
            .map(|n| want(n, hash))
            .collect()
    }

    fn updated(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .filter(|a| matches!(a, Action::Recreate { .. } | Action::Create { .. }))
            .filter_map(|a| a.key().map(|k| k.name.clone()))
            .collect()
    }

    #[test]
    fn a_rolling_update_replaces_one_serving_replica_at_a_time() {
        let old = |id: &str, n: &str| seen(id, n, "h1", State::Running);
        let p = plan(
            &three("h2"),
            &[old("a", "web"), old("b", "web.1"), old("c", "web.2")],
            opts(false),
        );
        assert_eq!(updated(&p), ["web"]);
        let held = &p.verdicts[&key("web.2")];
        assert_eq!(held.phase, Phase::Running, "not settled: sync keeps going");
        assert_eq!(held.container.as_ref().map(|c| c.id.as_str()), Some("c"));
        assert!(
            held.message
                .as_deref()
                .is_some_and(|m| m.contains("until server/web is Ready")),
            "{held:?}"
        );
        assert_eq!(p.recheck_at, Some(NOW + RECHECK_MILLIS));

        // The first is up on the new spec and Ready: the next one goes.
        let p = plan(
            &three("h2"),
            &[
                seen("a2", "web", "h2", State::Running),
                old("b", "web.1"),
                old("c", "web.2"),
            ],
            opts(false),
        );
        assert_eq!(updated(&p), ["web.1"]);

        // While the updated one is not Ready yet, no other serving replica is touched.
        let starting = healthy(seen("a2", "web", "h2", State::Running), Health::Starting);
        let p = plan(
            &three("h2"),
            &[starting, old("b", "web.1"), old("c", "web.2")],
            opts(false),
        );
        assert!(updated(&p).is_empty(), "{:?}", p.actions);
    }

    #[test]
    fn replicas_that_do_not_serve_are_replaced_at_once() {
        let p = plan(
            &three("h2"),
            &[
                seen("a", "web", "h1", State::Running),
                seen("b", "web.1", "h1", exited(1)),
                healthy(seen("c", "web.2", "h1", State::Running), Health::Unhealthy),
            ],
            opts(false),
        );
        assert_eq!(updated(&p), ["web", "web.1", "web.2"]);
    }

    #[test]
    fn a_start_first_rollout_is_one_replica_at_a_time_too() {
        let desired: Vec<Desired> = three("h2")
            .into_iter()
            .map(|mut d| {
                d.start_first = true;
                d
            })
            .collect();
        let p = plan(
            &desired,
            &[
                seen("a", "web", "h1", State::Running),
                seen("b", "web.1", "h1", State::Running),
                seen("c", "web.2", "h1", State::Running),
            ],
            opts(false),
        );
        assert_eq!(updated(&p), ["web"]);
        assert!(
            !p.actions.iter().any(|a| matches!(a, Action::Remove { .. })),
            "old containers keep serving: {:?}",
            p.actions
        );
    }

    #[test]
    fn servers_that_are_not_replicas_of_one_another_update_together() {
        let p = plan(
            &[want("web", "h2"), want("api", "a2")],
            &[
                seen("a", "web", "h1", State::Running),
                seen("b", "api", "a1", State::Running),
            ],
            opts(false),
        );
        assert_eq!(updated(&p), ["web", "api"]);
    }

    #[test]
    fn missing_container_is_created() {
        let p = plan(&[want("web", "h1")], &[], opts(false));
        assert_eq!(p.actions, [Action::Create { key: key("web") }]);
        assert_eq!(p.verdicts[&key("web")].phase, Phase::Pending);
    }

    #[test]
    fn unchanged_running_container_gets_no_action() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Running)],
            opts(false),
        );
        assert!(p.is_empty());
        assert_eq!(p.verdicts[&key("web")].phase, Phase::Ready);
    }

    #[test]
    fn changed_spec_recreates_only_that_object() {
        let p = plan(
            &[want("web", "h2"), want("api", "a1")],
            &[
                seen("c1", "web", "h1", State::Running),
                seen("c2", "api", "a1", State::Running),
            ],
            opts(false),
        );
        assert_eq!(
            p.actions,
            [Action::Recreate {
                key: key("web"),
                old: "c1".into()
            }]
        );
    }

    #[test]
    fn exited_container_is_restarted_per_restart_policy() {
        let with = |restart| Desired {
            restart,
            ..want("web", "h1")
        };
        let obs = |code| [seen("c1", "web", "h1", exited(code))];
        let restart = [start("web", "c1", true)];
        assert_eq!(
            plan(&[with(RestartPolicy::Always)], &obs(0), opts(false)).actions,
            restart
        );
        assert_eq!(
            plan(&[with(RestartPolicy::OnFailure)], &obs(1), opts(false)).actions,
            restart
        );
        assert!(plan(&[with(RestartPolicy::OnFailure)], &obs(0), opts(false)).is_empty());
        assert!(plan(&[with(RestartPolicy::Never)], &obs(1), opts(false)).is_empty());
    }

    #[test]
    fn created_but_never_started_container_is_started() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Created)],
            opts(false),
        );
        assert_eq!(p.actions, [start("web", "c1", false)]);
    }

    #[test]
    fn dead_container_is_recreated() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Dead)],
            opts(false),
        );
        assert_eq!(
            p.actions,
            [Action::Recreate {
                key: key("web"),
                old: "c1".into()
            }]
        );
    }

    #[test]
    fn orphan_is_removed() {
        let p = plan(
            &[want("web", "h1")],
            &[
                seen("c1", "web", "h1", State::Running),
                seen("c2", "old", "h", State::Running),
            ],
            opts(false),
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Orphan, .. }] if id == "c2")
        );
    }

    #[test]
    fn container_with_incomplete_labels_is_an_orphan() {
        let mut o = seen("c9", "x", "h", State::Running);
        o.key = None;
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Running), o],
            opts(false),
        );
        assert!(matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "c9"));
    }

    #[test]
    fn duplicates_keep_the_matching_running_one() {
        let p = plan(
            &[want("web", "h1")],
            &[
                seen("old", "web", "h0", State::Running),
                seen("good", "web", "h1", State::Running),
            ],
            opts(false),
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Duplicate, .. }] if id == "old")
        );
    }

    #[test]
    fn empty_desired_state_prunes_nothing_without_allow_empty() {
        let obs = [seen("c1", "web", "h1", State::Running)];
        let p = plan(&[], &obs, opts(false));
        assert!(p.is_empty());
        assert_eq!(p.prune_refused, ["dh_t_server_web"]);
        let p = plan(&[], &obs, opts(true));
        assert_eq!(p.actions.len(), 1);
        assert!(p.prune_refused.is_empty());
    }

    #[test]
    fn first_crash_restarts_at_once_and_is_recorded_once() {
        let d = want("web", "h1");
        let p = plan(
            std::slice::from_ref(&d),
            &[seen("c1", "web", "h1", exited(3))],
            opts(false),
        );
        assert_eq!(p.actions, [start("web", "c1", true)]);
        let v = &p.verdicts[&key("web")];
        assert_eq!(v.lifecycle.last_exit_code, Some(3));
        assert_eq!(v.lifecycle.crash_streak, 1);
        let reasons: Vec<_> = p.transitions.iter().map(|t| t.reason).collect();
        assert_eq!(reasons, ["died"]);

        // Planning again from the recorded lifecycle does not count the same exit twice.
        let again = Desired {
            lifecycle: v.lifecycle.clone(),
            ..d
        };
        let p = plan(&[again], &[seen("c1", "web", "h1", exited(3))], opts(false));
        assert!(p.transitions.is_empty());
        assert_eq!(p.verdicts[&key("web")].lifecycle.crash_streak, 1);
    }

    #[test]
    fn quick_crashes_back_off_doubling_to_the_cap() {
        let mut lc = Lifecycle::started(NOW - 1_000);
        let mut delays = Vec::new();
        for run in 0..5i64 {
            let d = Desired {
                lifecycle: lc.clone(),
                ..want("web", "h1")
            };
            let p = plan(&[d], &[seen("c1", "web", "h1", exited(1))], opts(false));
            let v = &p.verdicts[&key("web")];
            let delay = v.lifecycle.next_retry_at.map(|t| (t - NOW) / 1000);
            delays.push(delay);
            if delay == Some(0) {
                assert_eq!(p.actions, [start("web", "c1", true)], "run {run}");
            } else {
                assert!(p.is_empty(), "run {run}: must wait");
                assert_eq!(v.phase, Phase::CrashLoopBackOff);
                assert!(v
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("exited with code 1")));
                assert_eq!(p.next_retry(), v.lifecycle.next_retry_at);
            }
            // The executor's restart: count it, and the container dies again one second later.
            lc = v.lifecycle.clone();
            lc.restart_count += 1;
            lc.started_at = Some(NOW - 999 + run);
            lc.next_retry_at = None;
        }
        assert_eq!(delays, [Some(0), Some(10), Some(20), Some(40), Some(40)]);
    }

    #[test]
    fn backoff_expires_into_a_restart() {
        let mut lc = Lifecycle::started(NOW - 1_000);
        lc.exit_seen_for = lc.started_at;
        lc.crash_streak = 2;
        lc.next_retry_at = Some(NOW);
        let d = Desired {
            lifecycle: lc,
            ..want("web", "h1")
        };
        let p = plan(&[d], &[seen("c1", "web", "h1", exited(1))], opts(false));
        assert_eq!(p.actions, [start("web", "c1", true)]);
    }

    #[test]
    fn a_long_good_run_resets_the_crash_streak() {
        let mut lc = Lifecycle::started(NOW - 601_000);
        lc.crash_streak = 4;
        let d = Desired {
            lifecycle: lc,
            ..want("web", "h1")
        };
        let p = plan(&[d], &[seen("c1", "web", "h1", exited(1))], opts(false));
        assert_eq!(p.actions, [start("web", "c1", true)], "restarts at once");
        assert_eq!(p.verdicts[&key("web")].lifecycle.crash_streak, 1);
    }

    #[test]
    fn max_restarts_gives_up_with_failed() {
        let mut lc = Lifecycle::started(NOW - 1_000);
        lc.restart_count = 2;
        let d = Desired {
            lifecycle: lc,
            max_restarts: Some(2),
            ..want("web", "h1")
        };
        let p = plan(&[d], &[seen("c1", "web", "h1", exited(1))], opts(false));
        assert!(p.is_empty());
        let v = &p.verdicts[&key("web")];
        assert_eq!(v.phase, Phase::Failed);
        assert!(v
            .message
            .as_deref()
            .is_some_and(|m| m.contains("gave up after 2 restarts")));
        assert!(p.transitions.iter().any(|t| t.reason == "failed"));
    }

    #[test]
    fn completed_job_is_not_rerun_even_when_its_container_is_gone() {
        let d = Desired {
            restart: RestartPolicy::OnFailure,
            ..want("job", "h1")
        };
        let p = plan(
            std::slice::from_ref(&d),
            &[seen("c1", "job", "h1", exited(0))],
            opts(false),
        );
        assert!(p.is_empty());
        let v = &p.verdicts[&key("job")];
        assert_eq!(v.phase, Phase::Completed);
        assert!(p.transitions.iter().any(|t| t.reason == "completed"));

        let done = Desired {
            lifecycle: v.lifecycle.clone(),
            ..d.clone()
        };
        let p = plan(std::slice::from_ref(&done), &[], opts(false));
        assert!(p.is_empty(), "a completed job must not be created again");
        assert_eq!(p.verdicts[&key("job")].phase, Phase::Completed);

        // A new spec runs again.
        let changed = Desired {
            spec_hash: "h2".into(),
            ..done
        };
        assert_eq!(
            plan(&[changed], &[], opts(false)).actions,
            [Action::Create { key: key("job") }]
        );
    }

    #[test]
    fn never_with_a_non_zero_exit_is_failed() {
        let d = Desired {
            restart: RestartPolicy::Never,
            ..want("job", "h1")
        };
        let p = plan(&[d], &[seen("c1", "job", "h1", exited(2))], opts(false));
        assert!(p.is_empty());
        assert_eq!(p.verdicts[&key("job")].phase, Phase::Failed);
    }

    #[test]
    fn dependents_wait_blocked_until_conditions_hold() {
        let api = Desired {
            deps: vec![dep("db", Condition::Healthy, false)],
            ..want("api", "a1")
        };
        let db = want("db", "d1");
        // db is still starting: api is blocked, db is left alone.
        let obs = [healthy(
            seen("c1", "db", "d1", State::Running),
            Health::Starting,
        )];
        let p = plan(&[api.clone(), db.clone()], &obs, opts(false));
        assert!(p.is_empty(), "{:?}", p.actions);
        let v = &p.verdicts[&key("api")];
        assert_eq!(v.phase, Phase::Blocked);
        assert_eq!(
            v.message.as_deref(),
            Some("waiting for server/db to be healthy (it is Running)")
        );
        assert_eq!(p.verdicts[&key("db")].phase, Phase::Running);
        assert!(p.transitions.iter().any(|t| t.reason == "blocked"));
        // Healthy: api is created.
        let obs = [healthy(
            seen("c1", "db", "d1", State::Running),
            Health::Healthy,
        )];
        let p = plan(&[api, db], &obs, opts(false));
        assert_eq!(p.actions, [Action::Create { key: key("api") }]);
    }

    #[test]
    fn a_missing_dependency_blocks_only_its_dependents() {
        let web = Desired {
            deps: vec![dep("ghost", Condition::Started, false)],
            ..want("web", "w")
        };
        let p = plan(&[web, want("other", "o")], &[], opts(false));
        assert_eq!(p.actions, [Action::Create { key: key("other") }]);
        let v = &p.verdicts[&key("web")];
        assert_eq!(v.phase, Phase::Blocked);
        assert!(v
            .message
            .as_deref()
            .is_some_and(|m| m.contains("server/ghost to be started (it is not defined)")));
    }

    #[test]
    fn completed_condition_waits_for_exit_zero() {
        let api = Desired {
            deps: vec![dep("job", Condition::Completed, false)],
            ..want("api", "a")
        };
        let job = Desired {
            restart: RestartPolicy::OnFailure,
            ..want("job", "j")
        };
        let running = [seen("c1", "job", "j", State::Running)];
        assert!(plan(&[api.clone(), job.clone()], &running, opts(false)).is_empty());
        let done = [seen("c1", "job", "j", exited(0))];
        let p = plan(&[api, job], &done, opts(false));
        assert_eq!(p.actions, [Action::Create { key: key("api") }]);
    }

    #[test]
    fn a_running_dependent_stays_up_when_its_dependency_stops() {
        let web = Desired {
            deps: vec![dep("api", Condition::Started, false)],
            ..want("web", "w")
        };
        let obs = [
            seen("c1", "api", "a", exited(1)),
            seen("c2", "web", "w", State::Running),
        ];
        let p = plan(&[web, want("api", "a")], &obs, opts(false));
        assert_eq!(p.actions, [start("api", "c1", true)]);
        assert_eq!(p.verdicts[&key("web")].phase, Phase::Ready);
    }

    #[test]
    fn unhealthy_container_is_restarted_unless_told_not_to() {
        let obs = [healthy(
            seen("c1", "web", "h1", State::Running),
            Health::Unhealthy,
        )];
        let p = plan(&[want("web", "h1")], &obs, opts(false));
        assert!(
            matches!(&p.actions[..], [Action::Restart { id, reason, .. }] if id == "c1" && reason == "unhealthy")
        );
        assert_eq!(p.verdicts[&key("web")].phase, Phase::Unhealthy);
        assert!(p.transitions.iter().any(|t| t.reason == "unhealthy"));
        let keep = Desired {
            restart_unhealthy: false,
            ..want("web", "h1")
        };
        let p = plan(&[keep], &obs, opts(false));
        assert!(p.is_empty());
        assert_eq!(p.verdicts[&key("web")].phase, Phase::Unhealthy);
    }

    #[test]
    fn repeated_unhealthiness_backs_off_like_crashes() {
        let obs = [healthy(
            seen("c1", "web", "h1", State::Running),
            Health::Unhealthy,
        )];
        let mut lc = Lifecycle::started(NOW - 1_000);
        lc.crash_streak = 1;
        let d = Desired {
            lifecycle: lc,
            ..want("web", "h1")
        };
        let p = plan(&[d], &obs, opts(false));
        assert!(p.is_empty(), "must wait before restarting again");
        let v = &p.verdicts[&key("web")];
        assert_eq!(v.phase, Phase::Unhealthy);
        assert_eq!(v.lifecycle.next_retry_at, Some(NOW + 10_000));
        assert_eq!(p.next_retry(), Some(NOW + 10_000));
        assert!(p.transitions.iter().any(|t| t.reason == "backoff"));
    }

    #[test]
    fn health_transitions_are_noted_once() {
        let obs = [healthy(
            seen("c1", "web", "h1", State::Running),
            Health::Healthy,
        )];
        let p = plan(&[want("web", "h1")], &obs, opts(false));
        assert_eq!(
            p.transitions
                .iter()
                .filter(|t| t.reason == "healthy")
                .count(),
            1
        );
        let again = Desired {
            lifecycle: p.verdicts[&key("web")].lifecycle.clone(),
            ..want("web", "h1")
        };
        assert!(plan(&[again], &obs, opts(false)).transitions.is_empty());
    }

    #[test]
    fn restart_true_dependents_restart_when_their_dependency_runs_anew() {
        let web = Desired {
            deps: vec![dep("db", Condition::Started, true)],
            ..want("web", "w")
        };
        let obs = [
            seen("d1", "db", "d", State::Running),
            seen("w1", "web", "w", State::Running),
        ];
        // First sight: the dependency's run is adopted, nothing restarts.
        let p = plan(&[web.clone(), want("db", "d")], &obs, opts(false));
        assert!(p.is_empty());
        let lc = p.verdicts[&key("web")].lifecycle.clone();
        assert_eq!(
            lc.dep_runs.get("server/db").map(String::as_str),
            Some("d1:0")
        );
        // The dependency was recreated (new container): the dependent restarts.
        let web = Desired {
            lifecycle: lc,
            ..web
        };
        let obs = [
            seen("d2", "db", "d", State::Running),
            seen("w1", "web", "w", State::Running),
        ];
        let p = plan(&[web, want("db", "d")], &obs, opts(false));
        assert!(
            matches!(&p.actions[..], [Action::Restart { id, .. }] if id == "w1"),
            "{:?}",
            p.actions
        );
        assert_eq!(
            p.verdicts[&key("web")]
                .dep_runs
                .get("server/db")
                .map(String::as_str),
            Some("d2:0")
        );
    }

    #[test]
    fn orphans_are_removed_dependents_first() {
        let mut web = seen("w1", "web", "w", State::Running);
        web.depends_on = vec![key("api")];
        let api = seen("a1", "api", "a", State::Running);
        let p = plan(
            &[want("keep", "k")],
            &[web, api.clone(), seen("k1", "keep", "k", State::Running)],
            opts(false),
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "w1"),
            "{:?}",
            p.actions
        );
        let p = plan(
            &[want("keep", "k")],
            &[api, seen("k1", "keep", "k", State::Running)],
            opts(false),
        );
        assert!(matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "a1"));
    }

    fn database(n: &str, ready: bool) -> Desired {
        Desired {
            readiness: Some(Readiness {
                ready,
                timeout: Duration::from_secs(30),
                disposable_volume: Some(format!("{n}-data")),
            }),
            ..want(n, "d1")
        }
    }

    #[test]
    fn a_database_is_ready_only_once_a_login_worked() {
        let obs = [seen("c1", "db", "d1", State::Running)];
        let p = plan(&[database("db", false)], &obs, opts(false));
        assert!(p.is_empty());
        let v = &p.verdicts[&key("db")];
        assert_eq!(v.phase, Phase::Running);
        assert_eq!(p.recheck_at, Some(NOW + RECHECK_MILLIS), "looks again soon");
        assert_eq!(p.wake_at(), Some(NOW + RECHECK_MILLIS));
        let p = plan(&[database("db", true)], &obs, opts(false));
        let v = &p.verdicts[&key("db")];
        assert_eq!(v.phase, Phase::Ready);
        assert_eq!(v.lifecycle.ready_for.as_deref(), Some("c1"));
        assert!(p.transitions.iter().any(|t| t.reason == "ready"));
    }

    #[test]
    fn a_database_never_ready_in_time_is_abandoned_then_retried_after_backoff() {
        let mut d = database("db", false);
        d.lifecycle = Lifecycle::started(NOW - 31_000);
        d.lifecycle.crash_streak = 1;
        let p = plan(&[d], &[seen("c1", "db", "d1", State::Running)], opts(false));
        assert!(
            matches!(&p.actions[..], [Action::Abandon { id, volume: Some(v), .. }] if id == "c1" && v == "db-data"),
            "{:?}",
            p.actions
        );
        assert!(p.transitions.iter().any(|t| t.reason == "not-ready"));
        // Gone: it is created again only after its backoff.
        let lc = p.verdicts[&key("db")].lifecycle.clone();
        let waiting = Desired {
            lifecycle: lc.clone(),
            ..database("db", false)
        };
        let p = plan(&[waiting], &[], opts(false));
        assert!(p.is_empty(), "{:?}", p.actions);
        assert_eq!(p.verdicts[&key("db")].phase, Phase::CrashLoopBackOff);
        let later = PlanOptions {
            now: lc.next_retry_at.unwrap_or(NOW),
            ..opts(false)
        };
        let d = Desired {
            lifecycle: lc,
            ..database("db", false)
        };
        assert_eq!(
            plan(&[d], &[], later).actions,
            [Action::Create { key: key("db") }]
        );
    }

    #[test]
    fn a_database_proven_ready_satisfies_healthy() {
        let app = Desired {
            deps: vec![Dep {
                key: key("db"),
                condition: Condition::Healthy,
                restart: false,
            }],
            ..want("app", "a")
        };
        let obs = [seen("c1", "db", "d1", State::Running)];
        let p = plan(&[app.clone(), database("db", false)], &obs, opts(false));
        assert_eq!(p.verdicts[&key("app")].phase, Phase::Blocked);
        let p = plan(&[app, database("db", true)], &obs, opts(false));
        assert_eq!(p.actions, [Action::Create { key: key("app") }]);
    }

    #[test]
    fn start_first_keeps_the_old_container_until_the_new_one_is_ready() {
        let d = Desired {
            start_first: true,
            ..want("web", "h2")
        };
        let old = seen("old", "web", "h1", State::Running);
        // No container of the new spec: create one beside the old.
        let p = plan(
            std::slice::from_ref(&d),
            std::slice::from_ref(&old),
            opts(false),
        );
        assert_eq!(p.actions, [Action::Create { key: key("web") }]);
        // The new one is starting (health not passed yet): both stay.
        let new = healthy(seen("new", "web", "h2", State::Running), Health::Starting);
        let p = plan(std::slice::from_ref(&d), &[old.clone(), new], opts(false));
        assert!(p.is_empty(), "{:?}", p.actions);
        // Ready: the old one goes.
        let new = healthy(seen("new", "web", "h2", State::Running), Health::Healthy);
        let p = plan(&[d], &[old, new], opts(false));
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Duplicate, .. }] if id == "old"),
            "{:?}",
            p.actions
        );
    }

    #[test]
    fn an_orphan_takes_its_delete_volume_with_it() {
        let mut o = seen("c1", "old", "h", State::Running);
        o.delete_volume = Some("dh_t_old-data".into());
        let p = plan(
            &[want("keep", "k")],
            &[o, seen("k1", "keep", "k", State::Running)],
            opts(false),
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { volume: Some(v), .. }] if v == "dh_t_old-data")
        );
    }

    /// Applies a plan the way a perfect engine would.
    fn apply(observed: &[Observed], plan: &Plan, desired: &[Desired]) -> Vec<Observed> {
        let mut out: Vec<Observed> = observed.to_vec();
        let hash_of = |k: &ObjectKey| {
            desired
                .iter()
                .find(|d| &d.key == k)
                .map(|d| d.spec_hash.clone())
        };
        let mut next = 0;
        for a in &plan.actions {
            match a {
                Action::Create { key } | Action::Recreate { key, .. } => {
                    if let Action::Recreate { old, .. } = a {
                        out.retain(|o| &o.id != old);
                    }
                    next += 1;
                    let hash = hash_of(key).unwrap_or_default();
                    out.push(seen(
                        &format!("new{next}"),
                        &key.name,
                        &hash,
                        State::Running,
                    ));
                }
                Action::Start { id, .. } | Action::Restart { id, .. } => {
                    for o in out.iter_mut().filter(|o| &o.id == id) {
                        o.state = State::Running;
                    }
                }
                Action::Remove { id, .. } | Action::Abandon { id, .. } => {
                    out.retain(|o| &o.id != id)
                }
            }
        }
        out
    }

    fn arb_state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Running),
            Just(State::Created),
            Just(State::Dead),
            Just(State::Paused),
            (0i64..3).prop_map(|c| State::Exited { code: Some(c) }),
        ]
    }

    fn arb_policy() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never)
        ]
    }

    proptest! {
        #[test]
        fn applying_the_plan_yields_exactly_the_desired_set(
            names in proptest::collection::btree_map("[a-e]", (0u8..3, arb_policy()), 0..5),
            obs in proptest::collection::vec(("[a-g]", 0u8..3, arb_state()), 0..8),
            allow_empty in any::<bool>(),
        ) {
            let desired: Vec<Desired> = names.iter().map(|(n, (h, r))| Desired {
                restart: *r,
                ..want(n, &format!("h{h}"))
            }).collect();
            let observed: Vec<Observed> = obs.iter().enumerate()
                .map(|(i, (n, h, s))| seen(&format!("c{i}"), n, &format!("h{h}"), s.clone()))
                .collect();
            let p = plan(&desired, &observed, opts(allow_empty));
            let after = apply(&observed, &p, &desired);

            if desired.is_empty() && !allow_empty {
                // The guard: nothing removed at all.
                prop_assert_eq!(after.len(), observed.len());
                return Ok(());
            }
            let keys: BTreeSet<_> = after.iter().filter_map(|o| o.key.clone()).collect();
            let want: BTreeSet<_> = desired.iter().map(|d| d.key.clone()).collect();
            prop_assert_eq!(&keys, &want);
            prop_assert_eq!(after.len(), desired.len(), "one container per object");
            for d in &desired {
                let o = after.iter().find(|o| o.key.as_ref() == Some(&d.key)).expect("present");
                prop_assert_eq!(o.spec_hash.as_deref(), Some(d.spec_hash.as_str()));
                if let State::Exited { code } = o.state {
                    prop_assert!(!d.restart.restarts_after(code), "left exited against its policy");
                }
            }
            // Converged in one step: planning again, with the recorded lifecycles, finds nothing to do.
            let recorded: Vec<Desired> = desired.iter().map(|d| Desired {
                lifecycle: p.verdicts[&d.key].lifecycle.clone(),
                ..d.clone()
            }).collect();
            prop_assert!(plan(&recorded, &after, opts(allow_empty)).is_empty());
        }
    }
}
