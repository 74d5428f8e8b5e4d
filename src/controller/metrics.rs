//! What `GET /metrics` serves, in Prometheus' text format: the controller's own numbers, kept
//! here by the controller loop, the containers' resource use, read from the engine per scrape,
//! and the routes' traffic, read from the proxy's counters.
//!
//! Written by hand rather than through a metrics crate: a dozen series do not justify one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::ContainerStats;
use crate::proxy::RouteState;
use crate::reconcile::PassReport;

/// Upper bounds (seconds) of the pass duration histogram's buckets.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
struct Inner {
    pass_buckets: [u64; BUCKETS.len()],
    pass_count: u64,
    pass_sum: f64,
    passes_failed: u64,
    engine_errors: u64,
    actions: BTreeMap<(&'static str, &'static str), u64>,
    queue_depth: usize,
    rollbacks: u64,
    rolled_back: usize,
    phases: BTreeMap<(String, String), u64>,
}

/// The controller's counters; shared between the loop and the API.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records a pass that ran to the end.
    pub fn pass(&self, took: Duration, report: &PassReport) {
        let Ok(mut m) = self.inner.lock() else { return };
        m.observe(took);
        for o in &report.outcomes {
            let result = if o.result.is_ok() { "ok" } else { "error" };
            *m.actions.entry((o.action.verb(), result)).or_default() += 1;
            if o.result.as_ref().is_err_and(|e| e.is_unavailable()) {
                m.engine_errors += 1;
            }
        }
        let done = report.outcomes.iter().filter(|o| o.result.is_ok()).count();
        m.queue_depth = report.plan.actions.len().saturating_sub(done);
        m.rollbacks += report.plan.rollbacks.len() as u64;
        m.rolled_back = report.plan.rolled_back.len();
        m.phases.clear();
        for s in &report.statuses {
            let kind = s.key.as_ref().map_or("", |k| k.kind.label());
            *m.phases
                .entry((kind.to_owned(), s.phase.as_str().to_owned()))
                .or_default() += 1;
        }
    }

    /// Records a pass that failed as a whole (`engine` when the engine was unreachable).
    pub fn pass_failed(&self, took: Duration, engine: bool) {
        let Ok(mut m) = self.inner.lock() else { return };
        m.observe(took);
        m.passes_failed += 1;
        if engine {
            m.engine_errors += 1;
        }
    }

    /// The whole exposition, with `containers` (object kind, name, stats) and swarm
    /// `services` appended.
    pub fn render(
        &self,
        containers: &[(String, String, ContainerStats)],
        routes: &[(String, RouteState)],
        services: &[ServiceTasks],
    ) -> String {
        let mut out = String::new();
        if let Ok(m) = self.inner.lock() {
            m.render(&mut out);
        }
        render_containers(&mut out, containers);
        render_routes(&mut out, routes);
        render_services(&mut out, services);
        out
    }
}

impl Inner {
    fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.pass_buckets[i] += 1;
            }
        }
        self.pass_count += 1;
        self.pass_sum += secs;
    }

    fn render(&self, out: &mut String) {
        header(
            out,
            "dockhand_reconcile_pass_duration_seconds",
            "histogram",
            "Duration of reconcile passes.",
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "dockhand_reconcile_pass_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.pass_buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "dockhand_reconcile_pass_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            self.pass_count
        );
        let _ = writeln!(
            out,
            "dockhand_reconcile_pass_duration_seconds_sum {}",
            self.pass_sum
        );
        let _ = writeln!(
            out,
            "dockhand_reconcile_pass_duration_seconds_count {}",
            self.pass_count
        );

        header(
            out,
            "dockhand_reconcile_passes_failed_total",
            "counter",
            "Passes that failed as a whole (state file or engine unreachable).",
        );
        let _ = writeln!(
            out,
            "dockhand_reconcile_passes_failed_total {}",
            self.passes_failed
        );

        header(
            out,
            "dockhand_actions_total",
            "counter",
            "Engine actions by kind and result.",
        );
        for ((verb, result), n) in &self.actions {
            let _ = writeln!(
                out,
                "dockhand_actions_total{{action=\"{verb}\",result=\"{result}\"}} {n}"
            );
        }

        header(
            out,
            "dockhand_engine_errors_total",
            "counter",
            "Times the engine could not be reached.",
        );
        let _ = writeln!(out, "dockhand_engine_errors_total {}", self.engine_errors);

        header(
            out,
            "dockhand_queue_depth",
            "gauge",
            "Actions the last pass planned that are not done yet.",
        );
        let _ = writeln!(out, "dockhand_queue_depth {}", self.queue_depth);

        header(
            out,
            "dockhand_rollbacks_total",
            "counter",
            "Rollouts that did not become Ready within update.monitor and were rolled back.",
        );
        let _ = writeln!(out, "dockhand_rollbacks_total {}", self.rollbacks);
        header(
            out,
            "dockhand_rolled_back",
            "gauge",
            "Objects running an older revision after a failed rollout.",
        );
        let _ = writeln!(out, "dockhand_rolled_back {}", self.rolled_back);

        header(
            out,
            "dockhand_objects",
            "gauge",
            "Objects by kind and phase, as the last pass saw them.",
        );
        for ((kind, phase), n) in &self.phases {
            let _ = writeln!(
                out,
                "dockhand_objects{{kind=\"{}\",phase=\"{}\"}} {n}",
                escape(kind),
                escape(phase)
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A swarm service's task counts: object kind and name, running and desired tasks.
pub type ServiceTasks = (String, String, u64, u64);

/// Each database's backups: when the last verified one started, its size and duration, and
/// whether the last attempt failed.
pub fn render_backups(
    out: &mut String,
    backups: &[(
        crate::store::BackupRecord,
        Option<crate::store::BackupRecord>,
    )],
) {
    if backups.is_empty() {
        return;
    }
    type Field =
        fn(&crate::store::BackupRecord, Option<&crate::store::BackupRecord>) -> Option<String>;
    let series: [(&str, &str, Field); 4] = [
        (
            "dockhand_database_backup_last_success_timestamp",
            "When the last verified backup started (seconds since the epoch).",
            |_, ok| ok.map(|o| format!("{:.3}", o.started_at as f64 / 1000.0)),
        ),
        (
            "dockhand_database_backup_last_size_bytes",
            "The size of the last verified backup.",
            |_, ok| ok.map(|o| o.size_bytes.to_string()),
        ),
        (
            "dockhand_database_backup_last_duration_seconds",
            "How long the last verified backup took.",
            |_, ok| ok.map(|o| format!("{:.3}", o.duration_ms as f64 / 1000.0)),
        ),
        (
            "dockhand_database_backup_last_failed",
            "Whether the last backup attempt failed.",
            |last, _| Some(u8::from(!last.succeeded()).to_string()),
        ),
    ];
    for (metric, help, value) in series {
        header(out, metric, "gauge", help);
        for (last, ok) in backups {
            if let Some(v) = value(last, ok.as_ref()) {
                let _ = writeln!(out, "{metric}{{name=\"{}\"}} {v}", escape(&last.name));
            }
        }
    }
}

/// The Ready databases: whether each answered, its connections and its size.
pub fn render_databases(
    out: &mut String,
    databases: &[(String, Option<crate::kinds::database::Stats>)],
) {
    if databases.is_empty() {
        return;
    }
    header(
        out,
        "dockhand_database_up",
        "gauge",
        "Whether a Ready database accepted a login at this scrape.",
    );
    for (name, s) in databases {
        let _ = writeln!(
            out,
            "dockhand_database_up{{name=\"{}\"}} {}",
            escape(name),
            u8::from(s.is_some())
        );
    }
    type Field = fn(&crate::kinds::database::Stats) -> i64;
    let series: [(&str, &str, Field); 2] = [
        (
            "dockhand_database_connections",
            "Connections to the database (the scrape's own included).",
            |s| s.connections,
        ),
        (
            "dockhand_database_size_bytes",
            "The database's size on disk.",
            |s| s.size_bytes,
        ),
    ];
    for (metric, help, value) in series {
        header(out, metric, "gauge", help);
        for (name, s) in databases {
            if let Some(s) = s {
                let _ = writeln!(out, "{metric}{{name=\"{}\"}} {}", escape(name), value(s));
            }
        }
    }
}

fn render_services(out: &mut String, services: &[ServiceTasks]) {
    if services.is_empty() {
        return;
    }
    type Field = fn(&ServiceTasks) -> u64;
    let series: [(&str, &str, Field); 2] = [
        (
            "dockhand_service_tasks_running",
            "A swarm service's running tasks.",
            |s| s.2,
        ),
        (
            "dockhand_service_tasks_desired",
            "The tasks a swarm service asks for.",
            |s| s.3,
        ),
    ];
    for (name, help, value) in series {
        header(out, name, "gauge", help);
        for s in services {
            let _ = writeln!(
                out,
                "{name}{{kind=\"{}\",name=\"{}\"}} {}",
                escape(&s.0),
                escape(&s.1),
                value(s)
            );
        }
    }
}

fn render_containers(out: &mut String, containers: &[(String, String, ContainerStats)]) {
    type Field = fn(&ContainerStats) -> f64;
    let series: [(&str, &str, &str, Field); 7] = [
        (
            "dockhand_container_cpu_seconds_total",
            "counter",
            "CPU time the object's container used.",
            |s| s.cpu_ns as f64 / 1e9,
        ),
        (
            "dockhand_container_memory_bytes",
            "gauge",
            "Memory the object's container uses.",
            |s| s.memory as f64,
        ),
        (
            "dockhand_container_memory_limit_bytes",
            "gauge",
            "The container's memory limit.",
            |s| s.memory_limit as f64,
        ),
        (
            "dockhand_container_network_receive_bytes_total",
            "counter",
            "Bytes the container received.",
            |s| s.net_rx as f64,
        ),
        (
            "dockhand_container_network_transmit_bytes_total",
            "counter",
            "Bytes the container sent.",
            |s| s.net_tx as f64,
        ),
        (
            "dockhand_container_block_read_bytes_total",
            "counter",
            "Bytes the container read from block devices.",
            |s| s.block_read as f64,
        ),
        (
            "dockhand_container_block_write_bytes_total",
            "counter",
            "Bytes the container wrote to block devices.",
            |s| s.block_write as f64,
        ),
    ];
    for (name, kind, help, get) in series {
        header(out, name, kind, help);
        for (k, n, s) in containers {
            let _ = writeln!(
                out,
                "{name}{{kind=\"{}\",name=\"{}\"}} {}",
                escape(k),
                escape(n),
                get(s)
            );
        }
    }
}

fn render_routes(out: &mut String, routes: &[(String, RouteState)]) {
    type Field = fn(&RouteState) -> u64;
    let series: [(&str, &str, &str, Field); 6] = [
        (
            "dockhand_route_listening",
            "gauge",
            "1 while the route's listener is bound, 0 when its address cannot be had.",
            |s| u64::from(s.listening.is_ok()),
        ),
        (
            "dockhand_route_backends",
            "gauge",
            "Target servers of the route that have a ready container.",
            |s| s.backends.len() as u64,
        ),
        (
            "dockhand_route_active",
            "gauge",
            "Open TCP connections or live UDP sessions through the route.",
            |s| s.active,
        ),
        (
            "dockhand_route_received_bytes_total",
            "counter",
            "Bytes clients sent through the route.",
            |s| s.bytes_in,
        ),
        (
            "dockhand_route_sent_bytes_total",
            "counter",
            "Bytes the route sent back to clients.",
            |s| s.bytes_out,
        ),
        (
            "dockhand_route_dropped_total",
            "counter",
            "Connections or datagrams dropped for want of a ready backend.",
            |s| s.dropped,
        ),
    ];
    for (name, kind, help, get) in series {
        header(out, name, kind, help);
        for (route, s) in routes {
            let _ = writeln!(out, "{name}{{route=\"{}\"}} {}", escape(route), get(s));
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swarm_service_reports_its_running_and_desired_tasks() {
        let services = [("server".to_owned(), "web".to_owned(), 2, 3)];
        let text = Metrics::default().render(&[], &[], &services);
        assert!(
            text.contains("dockhand_service_tasks_running{kind=\"server\",name=\"web\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("dockhand_service_tasks_desired{kind=\"server\",name=\"web\"} 3\n"),
            "{text}"
        );
        assert!(!Metrics::default()
            .render(&[], &[], &[])
            .contains("dockhand_service_"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.pass_failed(Duration::from_millis(3), false);
        m.pass_failed(Duration::from_millis(300), true);
        let text = m.render(&[], &[], &[]);
        assert!(
            text.contains("dockhand_reconcile_pass_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("dockhand_reconcile_pass_duration_seconds_bucket{le=\"0.5\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("dockhand_reconcile_pass_duration_seconds_count 2\n"));
        assert!(text.contains("dockhand_engine_errors_total 1\n"));
    }

    #[test]
    fn routes_get_their_own_series() {
        let state = RouteState {
            listening: Ok(()),
            backends: vec!["web=10.0.0.2".into()],
            active: 2,
            bytes_in: 100,
            bytes_out: 2048,
            dropped: 1,
            unreachable: Vec::new(),
        };
        let text = Metrics::default().render(&[], &[("front".into(), state)], &[]);
        for want in [
            "dockhand_route_listening{route=\"front\"} 1\n",
            "dockhand_route_backends{route=\"front\"} 1\n",
            "dockhand_route_active{route=\"front\"} 2\n",
            "dockhand_route_received_bytes_total{route=\"front\"} 100\n",
            "dockhand_route_sent_bytes_total{route=\"front\"} 2048\n",
            "dockhand_route_dropped_total{route=\"front\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn rollbacks_are_counted_and_the_rolled_back_objects_gauged() {
        use crate::manifest::{Kind, ObjectKey};
        let m = Metrics::default();
        let key = ObjectKey::new(Kind::Server, "web");
        let mut report = PassReport::default();
        report.plan.rollbacks.push(crate::plan::RollbackPlan {
            key: key.clone(),
            from: "b".into(),
            to: "a".into(),
            reason: "not Ready".into(),
        });
        m.pass(Duration::from_millis(1), &report);
        report.plan.rollbacks.clear();
        report.plan.rolled_back.push((key, "rolled back".into()));
        m.pass(Duration::from_millis(1), &report);
        let text = m.render(&[], &[], &[]);
        assert!(text.contains("dockhand_rollbacks_total 1\n"), "{text}");
        assert!(text.contains("dockhand_rolled_back 1\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
