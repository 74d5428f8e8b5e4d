//! Dependency gates: nothing starts before what it depends on meets its condition, and a
//! running object restarts when a `restart: true` dependency ran anew.

use std::collections::BTreeMap;

use super::types::{Action, Dep, Desired, Plan, Transition, Verdict};
use crate::manifest::depends::Condition;
use crate::manifest::{ObjectKey, Phase};

/// Holds back every start whose dependencies are unmet, and adds the restarts that
/// `restart: true` dependencies call for; the object's own action goes into the plan here.
pub(super) fn gate(
    desired: &[Desired],
    mut actions: BTreeMap<ObjectKey, Option<Action>>,
    p: &mut Plan,
) {
    let runs: BTreeMap<ObjectKey, String> = p
        .verdicts
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), run_of(v)?)))
        .collect();
    for d in desired {
        let mut action = actions.remove(&d.key).flatten();
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
    // A job (something waits for it to complete) that still runs is Running, not Ready.
    let jobs: std::collections::BTreeSet<&ObjectKey> = desired
        .iter()
        .flat_map(|d| &d.deps)
        .filter(|dep| dep.condition == Condition::Completed)
        .map(|dep| &dep.key)
        .collect();
    for key in jobs {
        if let Some(v) = p.verdicts.get_mut(key).filter(|v| v.phase == Phase::Ready) {
            v.phase = Phase::Running;
            v.message
                .get_or_insert_with(|| "running; its dependents wait for it to complete".into());
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
                    c.health.is_some() || v.lifecycle.ready_for.as_deref() == Some(&c.run_id())
                })
        }
        Condition::Completed => v.phase == Phase::Completed,
    };
    let no_check = dep.condition == Condition::Healthy
        && v.phase == Phase::Ready
        && v.container.as_ref().is_some_and(|c| c.health.is_none());
    (!met).then(|| {
        if no_check {
            format!(
                "{} to be healthy (it runs, but neither its manifest's healthCheck nor its image's HEALTHCHECK checks it)",
                dep.key
            )
        } else {
            format!("{} to be {want} (it is {})", dep.key, v.phase)
        }
    })
}
