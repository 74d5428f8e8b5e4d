//! The pure planner on 100,000 objects: a converged pass (nothing to do), and a cold pass
//! (everything to create). Target: under a second per pass.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use dockhand::engine::{Observed, State};
use dockhand::lifecycle::{BackoffPolicy, Lifecycle};
use dockhand::manifest::depends::Condition;
use dockhand::manifest::server::RestartPolicy;
use dockhand::manifest::{Kind, ObjectKey};
use dockhand::reconcile::{plan, Dep, Desired, PlanOptions};

const N: usize = 100_000;
const NOW: i64 = 1_700_000_000_000;

fn key(i: usize) -> ObjectKey {
    ObjectKey::new(Kind::Server, format!("s{i:06}"))
}

/// Every tenth object depends on the one before it, so dependency gating is exercised.
fn desired() -> Vec<Desired> {
    (0..N)
        .map(|i| Desired {
            key: key(i),
            spec_hash: format!("{i:016x}"),
            restart: RestartPolicy::Always,
            max_restarts: None,
            restart_unhealthy: false,
            readiness: None,
            start_first: false,
            hold: None,
            stopped: None,
            deps: if i % 10 == 1 {
                vec![Dep {
                    key: key(i - 1),
                    condition: Condition::Started,
                    restart: false,
                }]
            } else {
                Vec::new()
            },
            lifecycle: Lifecycle::started(NOW - 60_000),
            revision: format!("{i:016x}"),
            rollback_after: None,
            rolled_back: None,
        })
        .collect()
}

fn observed() -> Vec<Observed> {
    (0..N)
        .map(|i| Observed {
            id: format!("{i:064x}"),
            name: format!("dh_bench_server_s{i:06}"),
            key: Some(key(i)),
            spec_hash: Some(format!("{i:016x}")),
            state: State::Running,
            ports: Vec::new(),
            health: None,
            depends_on: Vec::new(),
            delete_volume: None,
            ip: None,
            state_id: None,
            tasks: None,
            image: None,
        })
        .collect()
}

fn opts() -> PlanOptions {
    PlanOptions {
        allow_empty: false,
        backoff: BackoffPolicy::default(),
        now: NOW,
    }
}

fn planner(c: &mut Criterion) {
    let desired = desired();
    let observed = observed();
    let mut g = c.benchmark_group("plan_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("converged", |b| {
        b.iter(|| black_box(plan(black_box(&desired), black_box(&observed), opts())))
    });
    g.bench_function("cold", |b| {
        b.iter(|| black_box(plan(black_box(&desired), black_box(&[]), opts())))
    });
    g.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);
