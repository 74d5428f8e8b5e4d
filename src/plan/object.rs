//! The per-object state machine: the phase an object is in, its run history, and at most one
//! action, before rollouts and dependencies have their say.

use std::collections::BTreeMap;

use super::rollout::serving;
use super::types::Readiness;
use super::types::{
    Action, Desired, Plan, PlanOptions, RemoveReason, Transition, Verdict, RECHECK_MILLIS,
};
use crate::clock::{rfc3339, Millis};
use crate::engine::{Health, Observed, State};
use crate::lifecycle::Lifecycle;
use crate::manifest::{ObjectKey, Phase};

/// Decides every desired object on its own, among the containers that carry its key: the one
/// to keep, the duplicates to remove, and which objects a spec change would update (with the
/// old container if it still serves).
#[allow(clippy::type_complexity)]
pub(super) fn plan_objects(
    desired: &[Desired],
    mut by_key: BTreeMap<&ObjectKey, Vec<&Observed>>,
    opts: &PlanOptions,
    p: &mut Plan,
) -> (
    BTreeMap<ObjectKey, Option<Action>>,
    BTreeMap<ObjectKey, Option<Observed>>,
) {
    let mut actions: BTreeMap<ObjectKey, Option<Action>> = BTreeMap::new();
    // Objects whose spec change this pass would roll out, with the old container if it serves.
    let mut updates: BTreeMap<ObjectKey, Option<Observed>> = BTreeMap::new();
    // Stopped objects whose containers still exist, and what those containers depend on: a
    // stopped object goes only after its stopped dependents (as orphans do).
    let stopping: BTreeMap<&ObjectKey, Vec<&ObjectKey>> = desired
        .iter()
        .filter(|d| d.stopped.is_some() && d.hold.is_none())
        .filter_map(|d| {
            let containers = by_key.get(&d.key)?;
            let needs = containers
                .iter()
                .flat_map(|o| o.depends_on.iter())
                .collect();
            Some((&d.key, needs))
        })
        .collect();
    for d in desired {
        let mut candidates = by_key.remove(&d.key).unwrap_or_default();
        if let (Some(why), None) = (&d.stopped, &d.hold) {
            let waits_for: Vec<String> = stopping
                .iter()
                .filter(|(k, needs)| **k != &d.key && needs.contains(&&d.key))
                .map(|(k, _)| k.to_string())
                .collect();
            let mut lc = d.lifecycle.clone();
            lc.next_retry_at = None;
            lc.health = None;
            let message = if waits_for.is_empty() || candidates.is_empty() {
                why.clone()
            } else {
                format!("{why}; stopping after {}", waits_for.join(", "))
            };
            if waits_for.is_empty() {
                for o in candidates.iter().filter(|o| o.state != State::Removing) {
                    p.actions.push(Action::Remove {
                        id: o.id.clone(),
                        name: o.name.clone(),
                        key: Some(d.key.clone()),
                        reason: RemoveReason::Stopped,
                        volume: None,
                    });
                }
            }
            p.verdicts.insert(
                d.key.clone(),
                Verdict::new(Phase::Stopped, Some(message), lc, None),
            );
            actions.insert(d.key.clone(), None);
            continue;
        }
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
        let (verdict, action) = plan_object(d, keep, opts, p);
        for o in candidates
            .iter()
            .filter(|o| Some(o.id.as_str()) != keep.map(|k| k.id.as_str()))
        {
            let held = d.hold.is_some();
            if held || d.start_first && !matches(o) && verdict.phase != Phase::Ready {
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
        actions.insert(d.key.clone(), action);
    }
    (actions, updates)
}

/// Decides one object: the phase it is in and at most one action, before dependencies gate it.
pub(super) fn plan_object(
    d: &Desired,
    current: Option<&Observed>,
    opts: &PlanOptions,
    p: &mut Plan,
) -> (Verdict, Option<Action>) {
    let Some(tasks) = current.and_then(|c| c.tasks.as_ref()) else {
        return plan_container(d, current, opts, p);
    };
    // A swarm that rolled this very spec back keeps the previous one: updating again would
    // fail again, so the object is Failed until its manifest changes.
    // The swarm went back from the spec dockhand last updated it to, and that spec is still
    // the desired one.
    let runs_desired = current.is_some_and(|c| c.spec_hash.as_ref() == Some(&d.spec_hash));
    let spec_rolled_back = !runs_desired && d.lifecycle.swarm_update.as_ref() == Some(&d.spec_hash);
    // A paused update of the desired spec fails it too; a new spec goes ahead.
    let failed = match &tasks.rolled_back {
        Some(why) if spec_rolled_back => Some(format!("the swarm rolled the update back ({why})")),
        _ => tasks.update_failed.clone().filter(|_| runs_desired),
    };
    if let Some(message) = failed.filter(|_| d.hold.is_none()) {
        let v = Verdict::new(Phase::Failed, Some(message), d.lifecycle.clone(), current);
        return (v, None);
    }
    let (mut v, mut action) = plan_container(d, current, opts, p);
    // A new spec waits for a rollback under way: an update sent meanwhile interrupts it, and
    // the swarm then pauses the update on the tasks the rollback was replacing.
    if tasks.rolling_back && matches!(action, Some(Action::Recreate { .. })) {
        let why =
            "the swarm is rolling back the last update; the new spec goes out once it is done";
        v = Verdict::new(
            Phase::Running,
            Some(why.into()),
            d.lifecycle.clone(),
            current,
        );
        action = None;
    }
    if matches!(action, Some(Action::Recreate { .. })) {
        v.lifecycle.swarm_update = Some(d.spec_hash.clone());
    }
    // A service is Ready with every task it asks for, once the swarm has rolled it out.
    if matches!(v.phase, Phase::Ready | Phase::Running) {
        let count = format!("{}/{} tasks running", tasks.running, tasks.desired);
        if v.phase == Phase::Ready && (tasks.running < tasks.desired || tasks.updating.is_some()) {
            v.phase = Phase::Running;
        }
        let mut message = v
            .message
            .take()
            .map_or(count.clone(), |m| format!("{count}; {m}"));
        if let Some(u) = &tasks.updating {
            message.push_str("; ");
            message.push_str(u);
        }
        if tasks.running < tasks.desired {
            if let Some(e) = tasks.list.iter().rev().find_map(|t| t.error.as_deref()) {
                message.push_str("; last task error: ");
                message.push_str(e);
            }
        }
        v.message = Some(message);
    }
    (v, action)
}

/// Decides one container (or service): its phase and at most one action.
fn plan_container(
    d: &Desired,
    current: Option<&Observed>,
    opts: &PlanOptions,
    p: &mut Plan,
) -> (Verdict, Option<Action>) {
    let mut lc = d.lifecycle.clone();
    if let Some(why) = &d.hold {
        return (
            Verdict::new(Phase::Invalid, Some(why.clone()), lc, current),
            None,
        );
    }
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
            in_place: c.tasks.is_some(),
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
                    // Healthy again ends a streak: "unhealthy N times in a row" counts only
                    // unhealthiness with no healthy spell between.
                    if h == "healthy" {
                        lc.crash_streak = 0;
                    }
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
        let run = c.run_id();
        if let Some(found) = &r.found {
            lc.ready_as = Some(found.clone());
        }
        if lc.ready_for.as_deref() != Some(run.as_str()) {
            let what = lc
                .ready_as
                .as_deref()
                .map_or_else(String::new, |f| format!(" ({f})"));
            p.transitions.push(Transition {
                key: d.key.clone(),
                reason: "ready",
                message: format!("{} accepted a login{what}", d.key),
            });
            lc.ready_for = Some(run);
        }
        lc.next_retry_at = None;
        // What runs, which the manifest's version may not say (an image of another major).
        let message = lc
            .ready_as
            .as_ref()
            .map(|f| format!("{f} accepted a login"));
        return (verdict(Phase::Ready, message, lc), None);
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
        let at = schedule_restart(d, &mut lc, opts, p, "failed to become ready");
        let action = Action::Abandon {
            key: d.key.clone(),
            id: c.id.clone(),
            reason: reason.clone(),
            volume: r.disposable_volume.clone(),
        };
        // Waiting to try again, as after a crash: not a final failure.
        return (
            verdict(
                Phase::CrashLoopBackOff,
                Some(format!("{reason}; creating it again at {}", rfc3339(at))),
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
