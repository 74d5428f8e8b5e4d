use super::types::RECHECK_MILLIS;
use super::*;
use crate::clock::Millis;
use crate::engine::{Health, State};
use crate::lifecycle::{BackoffPolicy, Lifecycle};
use crate::manifest::depends::Condition;
use crate::manifest::server::RestartPolicy;
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
        hold: None,
        stopped: None,
        revision: String::new(),
        rollback_after: None,
        rolled_back: None,
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
        state_id: None,
        tasks: None,
        image: None,
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
            old: "c1".into(),
            in_place: false,
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
            old: "c1".into(),
            in_place: false,
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
fn a_healthy_spell_ends_an_unhealthy_streak() {
    let mut lc = Lifecycle::started(NOW - 1_000);
    lc.crash_streak = 2;
    lc.health = Some("unhealthy".into());
    let d = Desired {
        lifecycle: lc,
        ..want("web", "h1")
    };
    let obs = [healthy(
        seen("c1", "web", "h1", State::Running),
        Health::Healthy,
    )];
    let p = plan(&[d], &obs, opts(false));
    let lc = p.verdicts[&key("web")].lifecycle.clone();
    assert_eq!(lc.crash_streak, 0, "healthy again, the streak is over");
    // Unhealthy once more: the first of a new streak, restarted at once.
    let d = Desired {
        lifecycle: lc,
        ..want("web", "h1")
    };
    let obs = [healthy(
        seen("c1", "web", "h1", State::Running),
        Health::Unhealthy,
    )];
    let p = plan(&[d], &obs, opts(false));
    assert!(
        matches!(&p.actions[..], [Action::Restart { .. }]),
        "{:?}",
        p.actions
    );
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
            found: ready.then(|| "PostgreSQL 15.18".to_owned()),
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
    // It says what runs, whatever the manifest's version says.
    assert_eq!(
        v.message.as_deref(),
        Some("PostgreSQL 15.18 accepted a login")
    );
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
    // Waiting to try again is a crash loop's phase, not a final failure.
    let v = &p.verdicts[&key("db")];
    assert_eq!(v.phase, Phase::CrashLoopBackOff);
    assert!(
        v.message
            .as_deref()
            .is_some_and(|m| m.starts_with("not ready after") && m.contains("creating it again at")),
        "{:?}",
        v.message
    );
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
            Action::Remove { id, .. } | Action::Abandon { id, .. } => out.retain(|o| &o.id != id),
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

fn arb_health() -> impl Strategy<Value = Option<Health>> {
    prop_oneof![
        Just(None),
        Just(Some(Health::Starting)),
        Just(Some(Health::Healthy)),
        Just(Some(Health::Unhealthy)),
    ]
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::Started),
        Just(Condition::Healthy),
        Just(Condition::Completed)
    ]
}

/// What the engine shows of one object: nothing, or one container on the current or an old
/// spec, in some state and health.
fn arb_seen() -> impl Strategy<Value = Option<(bool, State, Option<Health>)>> {
    proptest::option::of((any::<bool>(), arb_state(), arb_health()))
}

fn observe(
    n: &str,
    i: usize,
    hash: &str,
    s: &Option<(bool, State, Option<Health>)>,
) -> Option<Observed> {
    let (current, state, health) = s.clone()?;
    let hash = if current {
        hash.to_owned()
    } else {
        format!("{hash}-old")
    };
    let mut o = seen(&format!("c{i}"), n, &hash, state);
    o.health = health;
    Some(o)
}

/// Whether a dependency's container, as observed before the plan, can meet `condition`: the
/// planner may be stricter, never looser.
fn could_meet(condition: Condition, o: Option<&Observed>, hash: &str) -> bool {
    let Some(o) = o.filter(|o| o.spec_hash.as_deref() == Some(hash)) else {
        return false;
    };
    match condition {
        Condition::Started => !matches!(o.state, State::Created | State::Dead | State::Removing),
        // The planner counts a paused or restarting container as up, like a running one.
        Condition::Healthy => {
            matches!(o.state, State::Running | State::Paused | State::Restarting)
                && o.health == Some(Health::Healthy)
        }
        Condition::Completed => matches!(o.state, State::Exited { .. }),
    }
}

proptest! {
    /// Nothing is created or started before every dependency meets its condition.
    #[test]
    fn nothing_starts_before_its_dependencies_meet_their_conditions(
        objects in proptest::collection::vec(
            (arb_policy(), proptest::collection::vec((0usize..5, arb_condition(), any::<bool>()), 0..3), arb_seen()),
            1..6,
        ),
    ) {
        let names: Vec<String> = (0..objects.len()).map(|i| format!("s{i}")).collect();
        let desired: Vec<Desired> = objects.iter().enumerate().map(|(i, (policy, deps, _))| Desired {
            restart: *policy,
            // Dependencies only on earlier objects: the graph is acyclic, as validation ensures.
            deps: deps.iter().filter(|(j, _, _)| *j < i)
                .map(|(j, c, r)| dep(&names[*j], *c, *r))
                .collect(),
            ..want(&names[i], "h")
        }).collect();
        let observed: Vec<Observed> = objects.iter().enumerate()
            .filter_map(|(i, (_, _, s))| observe(&names[i], i, "h", s))
            .collect();
        let p = plan(&desired, &observed, opts(false));
        for a in &p.actions {
            if !matches!(a, Action::Create { .. } | Action::Recreate { .. } | Action::Start { .. }) {
                continue;
            }
            let Some(k) = a.key() else { continue };
            let d = desired.iter().find(|d| &d.key == k).expect("desired");
            for dep in &d.deps {
                let o = observed.iter().find(|o| o.key.as_ref() == Some(&dep.key));
                prop_assert!(
                    could_meet(dep.condition, o, "h"),
                    "{a:?} although {} cannot be {:?} yet: {o:?}", dep.key, dep.condition
                );
            }
        }
    }

    /// An update never takes more than one serving replica down, and none while another
    /// replica is on its way up.
    #[test]
    fn a_rollout_never_takes_down_more_than_one_serving_replica(
        replicas in proptest::collection::vec(arb_seen(), 2..5),
        start_first in any::<bool>(),
    ) {
        let names: Vec<String> = (0..replicas.len())
            .map(|i| if i == 0 { "web".into() } else { format!("web.{i}") })
            .collect();
        let desired: Vec<Desired> = names.iter()
            .map(|n| Desired { start_first, ..want(n, "h") })
            .collect();
        let observed: Vec<Observed> = replicas.iter().enumerate()
            .filter_map(|(i, s)| observe(&names[i], i, "h", s))
            .collect();
        let serving: BTreeSet<&str> = observed.iter()
            .filter(|o| o.state == State::Running && matches!(o.health, None | Some(Health::Healthy)))
            .map(|o| o.id.as_str())
            .collect();
        let p = plan(&desired, &observed, opts(false));
        let down: BTreeSet<&str> = p.actions.iter().filter_map(|a| match a {
            Action::Recreate { old, .. } if !start_first => Some(old.as_str()),
            Action::Remove { id, .. } | Action::Abandon { id, .. } | Action::Restart { id, .. } => Some(id.as_str()),
            _ => None,
        }).filter(|id| serving.contains(id)).collect();
        prop_assert!(down.len() <= 1, "{down:?} taken down at once: {:?}", p.actions);
        // On its way up: no container yet, or one of the new spec that is not up. The planner
        // counts a paused or restarting container as up (as it does for dependencies).
        let up = |o: &Observed| {
            matches!(o.state, State::Paused | State::Restarting) || serving.contains(o.id.as_str())
        };
        let coming_up = names.iter().any(|n| {
            let o = observed.iter().find(|o| o.key.as_ref().is_some_and(|k| &k.name == n));
            o.is_none_or(|o| o.spec_hash.as_deref() == Some("h") && !up(o))
        });
        prop_assert!(
            !coming_up || down.is_empty(),
            "{down:?} taken down while a replica is on its way up: {:?}", p.actions
        );
    }
}

#[test]
fn a_held_object_is_invalid_and_none_of_its_containers_is_touched() {
    let d = Desired {
        hold: Some("data volume exists".into()),
        readiness: Some(Readiness {
            ready: false,
            found: None,
            timeout: Duration::from_secs(1),
            disposable_volume: Some("v".into()),
        }),
        ..want("db", "h2")
    };
    let p = plan(
        &[d],
        &[
            seen("a", "db", "h1", exited(1)),
            seen("b", "db", "h2", State::Running),
        ],
        opts(false),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.verdicts[&key("db")].phase, Phase::Invalid);
}

#[test]
fn a_healthy_dependency_that_nothing_checks_says_so() {
    let api = Desired {
        deps: vec![dep("db", Condition::Healthy, false)],
        ..want("api", "a1")
    };
    // Running with no health status at all: neither manifest nor image checks it.
    let obs = [seen("c1", "db", "d1", State::Running)];
    let p = plan(&[api, want("db", "d1")], &obs, opts(false));
    let v = &p.verdicts[&key("api")];
    assert_eq!(v.phase, Phase::Blocked);
    assert!(
        v.message
            .as_deref()
            .is_some_and(|m| m.contains("image's HEALTHCHECK")),
        "{:?}",
        v.message
    );
}

fn stopped(mut d: Desired) -> Desired {
    d.stopped = Some("stopped by dockhand stop".into());
    d
}

#[test]
fn a_stopped_object_loses_its_containers_and_gets_none_back() {
    let desired = [stopped(want("web", "h")), want("api", "h")];
    let p = plan(
        &desired,
        &[seen("c1", "web", "h", State::Running)],
        opts(false),
    );
    assert!(
        matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Stopped, .. }, Action::Create { key: k }] if id == "c1" && k.name == "api"),
        "{:?}",
        p.actions
    );
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Stopped);
    assert_eq!(p.verdicts[&key("web")].container, None);
    // Once its container is gone, nothing is done and it stays Stopped (settled).
    let p = plan(&desired[..1], &[], opts(false));
    assert!(p.is_empty(), "{:?}", p.actions);
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Stopped);
    assert!(Phase::Stopped.is_settled() && !Phase::Stopped.is_held_up());
}

#[test]
fn stopped_objects_go_dependents_first() {
    let mut web = stopped(want("web", "h"));
    web.deps = vec![dep("db", Condition::Started, false)];
    let desired = [stopped(want("db", "h")), web];
    let mut web_c = seen("w", "web", "h", State::Running);
    web_c.depends_on = vec![key("db")];
    let db_c = seen("d", "db", "h", State::Running);
    let p = plan(&desired, &[web_c, db_c.clone()], opts(false));
    assert!(
        matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "w"),
        "{:?}",
        p.actions
    );
    assert!(p.verdicts[&key("db")]
        .message
        .as_deref()
        .is_some_and(|m| m.contains("stopping after server/web")));
    let p = plan(&desired, &[db_c], opts(false));
    assert!(
        matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "d"),
        "{:?}",
        p.actions
    );
}

#[test]
fn a_dependent_of_a_stopped_object_is_not_started() {
    let mut web = want("web", "h");
    web.deps = vec![dep("db", Condition::Started, false)];
    let p = plan(&[stopped(want("db", "h")), web], &[], opts(false));
    assert!(p.is_empty(), "{:?}", p.actions);
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Blocked);
}

#[test]
fn a_held_object_stays_invalid_even_when_stopped() {
    let mut d = stopped(want("web", "h"));
    d.hold = Some("name taken".into());
    let p = plan(&[d], &[seen("c1", "web", "h", State::Running)], opts(false));
    assert!(p.is_empty(), "{:?}", p.actions);
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Invalid);
}

fn rolling(n: &str, revision: &str, ready: Option<&str>, since: Option<Millis>) -> Desired {
    let mut d = want(n, revision);
    d.revision = revision.into();
    d.rollback_after = Some(Duration::from_secs(30));
    d.lifecycle.ready_revision = ready.map(str::to_owned);
    d.lifecycle.rollout = since.map(|s| (revision.to_owned(), s));
    d
}

#[test]
fn a_rollout_not_ready_within_its_monitor_is_rolled_back_to_the_last_ready_revision() {
    let starting = healthy(seen("c2", "web", "r2", State::Running), Health::Starting);
    // First seen not Ready: the monitor starts, and a recheck is due when it ends.
    let p = plan(
        &[rolling("web", "r2", Some("r1"), None)],
        std::slice::from_ref(&starting),
        opts(false),
    );
    assert!(p.rollbacks.is_empty());
    assert_eq!(
        p.verdicts[&key("web")].lifecycle.rollout,
        Some(("r2".to_owned(), NOW))
    );
    assert_eq!(p.recheck_at, Some(NOW + 30_000));
    // 30 s later and still not Ready: roll back to r1.
    let since = NOW - 30_000;
    let p = plan(
        &[rolling("web", "r2", Some("r1"), Some(since))],
        &[starting],
        opts(false),
    );
    assert!(
        matches!(&p.rollbacks[..], [r] if r.from == "r2" && r.to == "r1" && r.reason.contains("not Ready within 30s")),
        "{:?}",
        p.rollbacks
    );
    assert!(p.transitions.iter().any(|t| t.reason == "rollback"));
    // Rolled back: it runs r1 again and is not judged again until the spec changes.
    let mut back = rolling("web", "r1", Some("r1"), Some(since));
    back.rolled_back = Some("rolled back to revision 1".into());
    let p = plan(
        &[back],
        &[seen("c1", "web", "r1", State::Running)],
        opts(false),
    );
    assert!(p.rollbacks.is_empty());
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Ready);
    assert_eq!(p.rolled_back.len(), 1);
    assert_eq!(
        p.verdicts[&key("web")].message.as_deref(),
        Some("rolled back to revision 1")
    );
}

#[test]
fn a_rollout_that_fails_within_its_monitor_is_rolled_back_at_once_and_one_that_holds_is_kept() {
    let p = plan(
        &[rolling("web", "r2", Some("r1"), Some(NOW - 1_000))],
        &[seen("c2", "web", "r2", exited(1))],
        opts(false),
    );
    assert!(
        matches!(&p.rollbacks[..], [r] if r.reason.contains("failing within its 30s monitor")),
        "{:?}",
        p.rollbacks
    );
    // Ready but the window is not over: not judged yet.
    let up = seen("c2", "web", "r2", State::Running);
    let p = plan(
        &[rolling("web", "r2", Some("r1"), Some(NOW - 1_000))],
        std::slice::from_ref(&up),
        opts(false),
    );
    assert!(p.rollbacks.is_empty());
    assert_eq!(
        p.verdicts[&key("web")].lifecycle.ready_revision.as_deref(),
        Some("r1")
    );
    // Ready through the window: accepted.
    let p = plan(
        &[rolling("web", "r2", Some("r1"), Some(NOW - 30_000))],
        &[up],
        opts(false),
    );
    assert!(p.rollbacks.is_empty());
    let lc = &p.verdicts[&key("web")].lifecycle;
    assert_eq!(
        (lc.ready_revision.as_deref(), &lc.rollout),
        (Some("r2"), &None)
    );
}

#[test]
fn a_first_rollout_or_one_without_rollback_is_never_rolled_back() {
    let crashing = seen("c2", "web", "r2", exited(1));
    let since = Some(NOW - 60_000);
    // Nothing was ever Ready: there is nowhere to go back to.
    let p = plan(
        &[rolling("web", "r2", None, since)],
        std::slice::from_ref(&crashing),
        opts(false),
    );
    assert!(p.rollbacks.is_empty());
    let mut d = rolling("web", "r2", Some("r1"), since);
    d.rollback_after = None;
    let p = plan(&[d], &[crashing], opts(false));
    assert!(p.rollbacks.is_empty());
    // Ready records the revision that works.
    let p = plan(
        &[rolling("web", "r2", Some("r1"), since)],
        &[seen("c2", "web", "r2", State::Running)],
        opts(false),
    );
    let lc = &p.verdicts[&key("web")].lifecycle;
    assert_eq!(
        (lc.ready_revision.as_deref(), &lc.rollout),
        (Some("r2"), &None)
    );
}

#[test]
fn a_running_job_is_running_not_ready() {
    let mut web = want("web", "h");
    web.deps = vec![dep("migrate", Condition::Completed, false)];
    let p = plan(
        &[want("migrate", "m"), web],
        &[seen("m1", "migrate", "m", State::Running)],
        opts(false),
    );
    let v = &p.verdicts[&key("migrate")];
    assert_eq!(v.phase, Phase::Running);
    assert!(v.message.as_deref().is_some_and(|m| m.contains("complete")));
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Blocked);
    // Nothing waits for it to complete: a server that runs is Ready.
    let p = plan(
        &[want("migrate", "m")],
        &[seen("m1", "migrate", "m", State::Running)],
        opts(false),
    );
    assert_eq!(p.verdicts[&key("migrate")].phase, Phase::Ready);
}

fn service(hash: &str, running: u64, desired: u64) -> Observed {
    let mut o = seen("svc", "web", hash, State::Running);
    o.tasks = Some(crate::engine::Tasks {
        running,
        desired,
        ..Default::default()
    });
    o
}

#[test]
fn a_service_is_ready_only_once_every_task_runs_and_its_update_is_done() {
    let p = plan(&[want("web", "h1")], &[service("h1", 2, 3)], opts(false));
    let v = &p.verdicts[&key("web")];
    assert_eq!(v.phase, Phase::Running);
    assert_eq!(v.message.as_deref(), Some("2/3 tasks running"));
    let mut updating = service("h1", 3, 3);
    updating.tasks.as_mut().unwrap().updating = Some("updating".into());
    let p = plan(&[want("web", "h1")], &[updating], opts(false));
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Running);
    let p = plan(&[want("web", "h1")], &[service("h1", 3, 3)], opts(false));
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Ready);
    assert!(p.actions.is_empty());
}

#[test]
fn a_new_spec_waits_for_the_swarms_rollback_to_finish() {
    let mut rolling = service("h1", 3, 3);
    let tasks = rolling.tasks.as_mut().expect("tasks");
    tasks.rolled_back = Some("rolling back".into());
    tasks.rolling_back = true;
    let p = plan(&[want("web", "h3")], &[rolling.clone()], opts(false));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let v = &p.verdicts[&key("web")];
    assert_eq!(v.phase, Phase::Running);
    assert!(v
        .message
        .as_deref()
        .is_some_and(|m| m.contains("rolling back")));
    // Once it is done, the new spec goes out.
    rolling.tasks.as_mut().expect("tasks").rolling_back = false;
    let p = plan(&[want("web", "h3")], &[rolling], opts(false));
    assert!(matches!(p.actions[..], [Action::Recreate { .. }]));
}

#[test]
fn a_service_update_records_its_spec_and_the_swarm_rolling_it_back_fails_it() {
    // The update goes out and remembers which spec it sent.
    let p = plan(&[want("web", "h2")], &[service("h1", 3, 3)], opts(false));
    assert!(matches!(p.actions[..], [Action::Recreate { .. }]));
    let lc = p.verdicts[&key("web")].lifecycle.clone();
    assert_eq!(lc.swarm_update.as_deref(), Some("h2"));
    // The swarm rolled h2 back to h1: Failed, and not sent again.
    let mut back = service("h1", 3, 3);
    back.tasks.as_mut().unwrap().rolled_back = Some("rolled back".into());
    let mut d = want("web", "h2");
    d.lifecycle = lc;
    let p = plan(&[d.clone()], &[back.clone()], opts(false));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.verdicts[&key("web")].phase, Phase::Failed);
    // A new spec (a fix) is sent despite the old rollback.
    let mut fix = d;
    fix.spec_hash = "h3".into();
    let p = plan(&[fix], &[back], opts(false));
    assert!(matches!(p.actions[..], [Action::Recreate { .. }]));
}
