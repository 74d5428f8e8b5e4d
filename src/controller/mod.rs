//! `dockhand up`: keep the engine converged, driven by file changes, engine events and a resync.
//!
//! Five triggers feed one wake-up signal (a `Notify` holds at most one permit, so bursts
//! coalesce): the directory watcher, the source tables' watch (`PRAGMA data_version`), writes
//! through the API, the engine's event stream (a killed container is back within about a
//! second, no polling), and a periodic resync as the safety net. Only one pass runs at a time;
//! a pass that changed something is followed at once by a confirming pass.

pub mod metrics;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::now_millis;
use crate::controller::metrics::Metrics;
use crate::engine::Engine;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::source::{directory, table, Snapshot, Sources};

/// Exponential backoff between retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            next: base,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// How often `up` records route counters while routes exist.
const ROUTE_REFRESH: Duration = Duration::from_secs(5);

/// Engine event actions after which the observed state may have drifted.
fn drifts(action: &str) -> bool {
    matches!(
        action,
        "die" | "destroy" | "oom" | "pause" | "unpause" | "rename"
    ) || action.starts_with("health_status")
}

/// What the controller shares with the API: how to wake it, and what it measured.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    wake: Arc<Notify>,
    dirty: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
}

impl Signals {
    /// Asks for a pass that reads the sources again.
    pub fn reload(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Asks for a pass over the sources as last read.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The engine answered the last pass and the sources are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

pub struct Controller<R> {
    pub reconciler: Arc<Reconciler<R>>,
    pub sources: Sources,
    /// The state file, whose source tables are watched.
    pub state: PathBuf,
    pub instance: String,
    pub resync: Duration,
    pub signals: Signals,
}

/// How often the source tables' watch asks `PRAGMA data_version`.
const TABLE_WATCH: Duration = Duration::from_millis(250);

impl<R: Engine + Clone> Controller<R> {
    /// Runs until `shutdown` resolves. Workloads are left running.
    /// Runs until `shutdown`, or until a pass fails in a way no retry can mend (the state file
    /// was deleted or replaced), which is returned.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ReconcileError> {
        let signals = self.signals.clone();
        let wake = signals.wake.clone();
        let dirty = signals.dirty.clone();
        dirty.store(true, Ordering::SeqCst);

        let _watch = self.sources.dir.as_ref().and_then(|dir| {
            let s = signals.clone();
            match directory::watch(dir, Duration::from_millis(100), move || s.reload()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!("{e}; changes will be seen at the next resync");
                    None
                }
            }
        });
        // Compose files named on the command line: their project directories (with `.env`).
        let mut projects: Vec<std::path::PathBuf> = self
            .sources
            .compose
            .files
            .iter()
            .filter_map(|f| f.parent().map(|p| p.to_path_buf()))
            .map(|p| {
                if p.as_os_str().is_empty() {
                    ".".into()
                } else {
                    p
                }
            })
            .collect();
        projects.sort();
        projects.dedup();
        let _compose_watches: Vec<directory::Watch> = projects
            .iter()
            .filter_map(|dir| {
                let s = signals.clone();
                directory::watch(dir, Duration::from_millis(100), move || s.reload())
                    .map_err(|e| tracing::warn!("{e}; changes will be seen at the next resync"))
                    .ok()
            })
            .collect();
        let tables = {
            let s = signals.clone();
            table::watch(&self.state, TABLE_WATCH, move || s.reload())
        };

        let events = tokio::spawn(watch_engine(
            self.reconciler.engine().clone(),
            self.instance.clone(),
            wake.clone(),
        ));
        let resync = {
            let (wake, dirty, every) = (wake.clone(), dirty.clone(), self.resync);
            let store = self.sources.store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // Keep the WAL from growing under churn (see `Store::checkpoint`).
                    if let Err(e) = store.checkpoint().await {
                        tracing::debug!("{e}");
                    }
                    dirty.store(true, Ordering::SeqCst);
                    wake.notify_one();
                }
            })
        };

        tokio::pin!(shutdown);
        let mut snapshot = Snapshot::default();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut retry_at: Option<Instant> = None;
        let mut last_warnings: Vec<String> = Vec::new();
        let mut fatal = None;
        wake.notify_one();
        loop {
            let retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = wake.notified() => {}
                _ = retry => {}
            }
            retry_at = None;
            let started = Instant::now();
            if dirty.swap(false, Ordering::SeqCst) {
                match self.sources.load().await {
                    Ok(s) => snapshot = s,
                    Err(e) => {
                        // Keep the last snapshot; try reading again soon.
                        tracing::warn!("cannot read the source tables: {e}");
                        dirty.store(true, Ordering::SeqCst);
                        retry_at = Some(Instant::now() + backoff.next_delay());
                        continue;
                    }
                }
            }
            let result = tokio::select! {
                _ = &mut shutdown => break,
                r = self.reconciler.pass(&snapshot) => r,
            };
            let took = started.elapsed();
            match result {
                Ok(report) => {
                    signals.metrics.pass(took, &report);
                    signals.ready.store(true, Ordering::SeqCst);
                    for a in &report.plan.actions {
                        tracing::info!("{}", a.describe());
                    }
                    for (a, e) in report.failures() {
                        tracing::warn!("{} failed: {e}", a.describe());
                    }
                    // Compose keys that change nothing: said once, and again only when they change.
                    let warnings: Vec<String> =
                        report.warnings.iter().map(ToString::to_string).collect();
                    if warnings != last_warnings {
                        for w in &warnings {
                            tracing::warn!("{w}");
                        }
                        last_warnings = warnings;
                    }
                    if report.failures().next().is_some() {
                        retry_at = Some(Instant::now() + backoff.next_delay());
                    } else {
                        backoff.reset();
                        if !report.converged() {
                            wake.notify_one();
                        }
                    }
                    // Routes' counters (sessions, bytes) are recorded by passes: refresh them.
                    if report
                        .desired
                        .iter()
                        .any(|o| matches!(o.spec, crate::manifest::Spec::Route(_)))
                    {
                        let when = Instant::now() + ROUTE_REFRESH;
                        retry_at = Some(retry_at.map_or(when, |r| r.min(when)));
                    }
                    // Wake when the first crash-loop backoff ends.
                    if let Some(at) = report.wake_at() {
                        let wait = Duration::from_millis((at - now_millis()).max(0) as u64);
                        let when = Instant::now() + wait;
                        retry_at = Some(retry_at.map_or(when, |r| r.min(when)));
                    }
                }
                Err(e) => {
                    signals.metrics.pass_failed(took, e.is_unavailable());
                    // Not ready while passes fail, whatever the cause.
                    signals.ready.store(false, Ordering::SeqCst);
                    if e.is_fatal() {
                        fatal = Some(e);
                        break;
                    }
                    let delay = backoff.next_delay();
                    log_pass_error(&e, delay);
                    retry_at = Some(Instant::now() + delay);
                }
            }
            release_freed_memory();
        }
        events.abort();
        resync.abort();
        tables.abort();
        tracing::info!("controller stopped; workloads keep running");
        fatal.map_or(Ok(()), Err)
    }
}

/// Gives the pages a pass freed back to the system. A pass over a thousand objects allocates
/// several megabytes for a moment; glibc keeps freed memory for reuse (only what sits at the top
/// of its heap goes back by itself), so an idle controller kept its busiest pass's size.
/// Trimming takes well under a millisecond at that size.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn log_pass_error(e: &ReconcileError, delay: Duration) {
    if e.is_unavailable() {
        tracing::warn!("{e}; retrying in {}", humantime::format_duration(delay));
    } else {
        tracing::error!(
            "reconcile pass failed: {e}; retrying in {}",
            humantime::format_duration(delay)
        );
    }
}

/// When, after a burst of drift events, the engine's listing is asked again. The engine
/// publishes `die` before its listing shows the container stopped (150-300 ms later on
/// fuse-overlayfs, while it unmounts), so a pass woken by the event alone can still see it
/// running. A few cheap passes soon after catch the change without polling the rest of the time.
const EVENT_RECHECKS: [Duration; 5] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];

/// How many exited containers are waited on at once (`Engine::settled`); exits beyond that
/// are caught by the rechecks.
const SETTLING_AT_ONCE: usize = 16;

/// Follows the engine's container events for this instance, resubscribing with backoff when the
/// stream ends (engine restarted or gone), and asking for a full pass after every reconnect.
/// Each burst of drift events wakes a pass at once and again at `EVENT_RECHECKS`; an exit
/// also wakes one as soon as the engine has recorded it (`Engine::settled`), so a crashed
/// container is started again without waiting for a recheck to find it stopped.
async fn watch_engine<R: Engine>(runtime: R, instance: String, wake: Arc<Notify>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    // The burst's start and how many rechecks are done.
    let mut burst: Option<(Instant, usize)> = None;
    let settle = |id: String| {
        let runtime = &runtime;
        async move { runtime.settled(&id).await }
    };
    let mut settling = futures_util::stream::FuturesUnordered::new();
    loop {
        let mut stream = runtime.events(&instance);
        loop {
            let due = async {
                match burst {
                    Some((start, done)) => {
                        tokio::time::sleep_until(start + EVENT_RECHECKS[done]).await
                    }
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                e = stream.next() => e,
                Some(()) = settling.next(), if !settling.is_empty() => {
                    wake.notify_one();
                    continue;
                }
                _ = due => {
                    wake.notify_one();
                    burst = burst
                        .map(|(start, done)| (start, done + 1))
                        .filter(|(_, done)| *done < EVENT_RECHECKS.len());
                    continue;
                }
            };
            match event {
                Some(Ok(e)) => {
                    backoff.reset();
                    if drifts(&e.action) {
                        tracing::debug!(container = %e.id, action = %e.action, "engine event");
                        wake.notify_one();
                        burst.get_or_insert_with(|| (Instant::now(), 0));
                        if e.action == "die" && settling.len() < SETTLING_AT_ONCE {
                            settling.push(settle(e.id));
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("engine event stream: {e}");
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
        wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let seq: Vec<_> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(seq, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    /// The engine's event stream is resubscribed with a doubling delay, and every reconnect asks
    /// for a full pass. Runs entirely in memory, so the paused clock is exact.
    #[tokio::test(start_paused = true)]
    async fn event_stream_reconnects_with_backoff() {
        use crate::engine::fake::FakeEngine;
        let runtime = FakeEngine::new();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(watch_engine(runtime.clone(), "t".into(), wake.clone()));
        let start = Instant::now();
        let mut wakes = Vec::new();
        for _ in 0..4 {
            tokio::task::yield_now().await;
            runtime.drop_event_streams();
            wake.notified().await;
            wakes.push((Instant::now() - start).as_millis());
        }
        task.abort();
        // Cut at t=0 → back after 250 ms; each later cut happens at once, with a doubled delay.
        assert_eq!(wakes, [250, 750, 1750, 3750]);
    }

    /// A drift event wakes a pass at once, and a few times more within the next second, while
    /// the engine's listing catches up with the event; then the controller stays asleep.
    #[tokio::test(start_paused = true)]
    async fn a_drift_event_wakes_now_and_at_each_recheck() {
        use crate::engine::fake::FakeEngine;
        use crate::engine::{ContainerSpec, Engine};
        let runtime = FakeEngine::new();
        let spec = ContainerSpec {
            name: "dh_t_server_web".into(),
            labels: crate::engine::labels::owner_labels("t"),
            ..ContainerSpec::default()
        };
        let id = runtime.create(&spec).await.expect("create");
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(watch_engine(runtime.clone(), "t".into(), wake.clone()));
        tokio::task::yield_now().await;
        let start = Instant::now();
        runtime.remove(&id).await.expect("remove");
        let mut woken = Vec::new();
        for _ in 0..=EVENT_RECHECKS.len() {
            wake.notified().await;
            woken.push((Instant::now() - start).as_millis());
        }
        assert_eq!(woken, [0, 50, 100, 200, 400, 1000]);
        // Then nothing, until the next event.
        let quiet = tokio::time::timeout(Duration::from_secs(60), wake.notified()).await;
        assert!(quiet.is_err(), "woken without an event");
        task.abort();
    }

    /// An exit wakes a pass once more as soon as the engine has recorded it, between the
    /// rechecks, so the pass that starts the container again need not wait for one.
    #[tokio::test(start_paused = true)]
    async fn an_exit_wakes_a_pass_once_the_engine_has_recorded_it() {
        use crate::engine::fake::FakeEngine;
        use crate::engine::{ContainerSpec, Engine};
        let runtime = FakeEngine::new();
        runtime.settle_after(Duration::from_millis(130));
        let spec = ContainerSpec {
            name: "dh_t_server_web".into(),
            labels: crate::engine::labels::owner_labels("t"),
            ..ContainerSpec::default()
        };
        let id = runtime.create(&spec).await.expect("create");
        runtime.start(&id).await.expect("start");
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(watch_engine(runtime.clone(), "t".into(), wake.clone()));
        tokio::task::yield_now().await;
        let start = Instant::now();
        runtime.exit(&id, 137);
        let mut woken = Vec::new();
        for _ in 0..=EVENT_RECHECKS.len() + 1 {
            wake.notified().await;
            woken.push((Instant::now() - start).as_millis());
        }
        assert_eq!(woken, [0, 50, 100, 130, 200, 400, 1000]);
        task.abort();
    }

    #[test]
    fn container_exits_and_removals_count_as_drift() {
        assert!(drifts("die") && drifts("destroy"));
        assert!(drifts("health_status: unhealthy"));
        assert!(!drifts("exec_start: sh") && !drifts("start"));
    }
}
