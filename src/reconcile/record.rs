//! What a pass leaves behind: every object's status and the events of what it saw and did.
//!
//! Pure functions of the plan and the executor's outcomes; the pass writes what they return.

use std::collections::HashMap;

use super::execute::Outcome;
use crate::clock::Millis;
use crate::engine::EngineError;
use crate::lifecycle::Lifecycle;
use crate::manifest::{ManifestError, Object, ObjectKey, Phase};
use crate::plan::{Action, Plan};
use crate::store::{ApplyReport, NewEvent, Status};

/// Events for what the store and the planner noticed: files that became invalid, objects no
/// source defines any more, a prune the empty-source guard refused (once, while `last_refused`
/// differs), and the plan's lifecycle transitions.
pub(super) fn pass_events(
    errors: &[ManifestError],
    applied: &ApplyReport,
    plan: &Plan,
    last_refused: &mut Vec<String>,
) -> Vec<NewEvent> {
    let mut events = Vec::new();
    if applied.errors_changed {
        events.extend(errors.iter().map(|e| NewEvent {
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
    if *last_refused != plan.prune_refused {
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
        last_refused.clone_from(&plan.prune_refused);
    }
    events.extend(plan.transitions.iter().map(|t| NewEvent {
        key: Some(t.key.clone()),
        reason: t.reason,
        message: t.message.clone(),
    }));
    events
}

/// One event per network operation of the pass.
pub(super) fn network_events(results: &[(String, Result<(), EngineError>)]) -> Vec<NewEvent> {
    results
        .iter()
        .map(|(what, result)| {
            let (reason, message) = match result {
                Ok(()) => ("network", format!("{what}: done")),
                Err(e) => ("failed", format!("{what}: {e}")),
            };
            NewEvent {
                key: None,
                reason,
                message,
            }
        })
        .collect()
}

/// The objects whose container was removed together with its volume this pass.
pub(super) fn removed_with_volume(outcomes: &[Outcome]) -> Vec<ObjectKey> {
    outcomes
        .iter()
        .filter_map(|x| match (&x.action, &x.result) {
            (
                Action::Remove {
                    key: Some(key),
                    volume: Some(_),
                    ..
                },
                Ok(_),
            ) => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// The error of each object's file, for objects that run on their last good spec.
pub(super) fn first_errors(
    desired: &[Object],
    errors: &[ManifestError],
) -> HashMap<ObjectKey, String> {
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
pub(super) fn statuses(
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
                        lifecycle
                            .ready_revision
                            .clone_from(&v.lifecycle.ready_revision);
                        lifecycle.rollout.clone_from(&v.lifecycle.rollout);
                        lifecycle.swarm_update.clone_from(&v.lifecycle.swarm_update);
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
                phase,
                container_id,
                observed_generation,
                message,
                ports: v
                    .container
                    .as_ref()
                    .map(|c| c.ports.clone())
                    .unwrap_or_default(),
                updated_at: String::new(),
                tasks: v
                    .container
                    .as_ref()
                    .and_then(|c| c.tasks.as_ref())
                    .map(|t| t.list.clone())
                    .unwrap_or_default(),
                lifecycle,
            }
        })
        .collect()
}

/// Events for what the executor did. A failure is recorded when its message is new, so a
/// failure that repeats every pass is recorded once.
/// A service's tasks that reached a new state since the last pass (the swarm starts, restarts
/// and moves them on its own): one event each.
pub(super) fn task_events(
    previous: &std::collections::HashMap<ObjectKey, Status>,
    statuses: &[Status],
) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for s in statuses {
        let Some(key) = &s.key else { continue };
        let before = previous
            .get(key)
            .map(|p| p.tasks.as_slice())
            .unwrap_or_default();
        for t in &s.tasks {
            let seen = before.iter().any(|b| b.id == t.id && b.state == t.state);
            if seen {
                continue;
            }
            let mut message = format!("task {} of {key} on {}: {}", t.slot, t.node, t.state);
            if let Some(e) = &t.error {
                message.push_str(&format!(" ({e})"));
            }
            events.push(NewEvent {
                key: Some(key.clone()),
                reason: "task",
                message,
            });
        }
    }
    events
}

pub(super) fn outcome_events(
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
                (
                    Action::Recreate {
                        key,
                        in_place: true,
                        ..
                    },
                    Ok(_),
                ) => ("updated", format!("updated {key}: its spec changed")),
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
