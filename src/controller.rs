//! `dockhand up`: keep the engine converged, driven by file changes, engine events and a resync.
//!
//! Three triggers feed one wake-up signal (a `Notify` holds at most one permit, so bursts
//! coalesce): the directory watcher, the engine's event stream (a killed container is back
//! within about a second, no polling), and a periodic resync as the safety net. Only one pass
//! runs at a time; a pass that changed something is followed at once by a confirming pass.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::lifecycle::now_millis;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::runtime::Runtime;
use crate::source::{directory, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(
        "another dockhand controller is already running on state file {state} (it holds {lock})"
    )]
    Locked { state: PathBuf, lock: PathBuf },
    #[error("cannot lock state file {lock}: {source}")]
    Lock {
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// Held while a controller owns a state file; released when dropped (or the process dies).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Takes the state file's controller lock (`<state>.lock`), refusing if another process has it.
pub fn lock_state(state: &Path) -> Result<StateLock, ControllerError> {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| ControllerError::Lock {
            lock: lock.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(ControllerError::Locked {
            state: state.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(ControllerError::Lock { lock, source }),
    }
}

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

pub struct Controller<R> {
    pub reconciler: Arc<Reconciler<R>>,
    pub manifests: PathBuf,
    pub instance: String,
    pub resync: Duration,
}

impl<R: Runtime + Clone> Controller<R> {
    /// Runs until `shutdown` resolves. Workloads are left running.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let wake = Arc::new(Notify::new());
        let dirty = Arc::new(AtomicBool::new(true));

        let watch = {
            let (wake, dirty) = (wake.clone(), dirty.clone());
            directory::watch(&self.manifests, Duration::from_millis(100), move || {
                dirty.store(true, Ordering::SeqCst);
                wake.notify_one();
            })
        };
        let _watch = match watch {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("{e}; changes will be seen at the next resync");
                None
            }
        };

        let events = tokio::spawn(watch_engine(
            self.reconciler.runtime().clone(),
            self.instance.clone(),
            wake.clone(),
        ));
        let resync = {
            let (wake, dirty, every) = (wake.clone(), dirty.clone(), self.resync);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    dirty.store(true, Ordering::SeqCst);
                    wake.notify_one();
                }
            })
        };

        tokio::pin!(shutdown);
        let mut snapshot = Snapshot::default();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut retry_at: Option<Instant> = None;
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
            if dirty.swap(false, Ordering::SeqCst) {
                let dir = self.manifests.clone();
                snapshot = tokio::task::spawn_blocking(move || directory::load(&dir))
                    .await
                    .unwrap_or_default();
            }
            let result = tokio::select! {
                _ = &mut shutdown => break,
                r = self.reconciler.pass(&snapshot) => r,
            };
            match result {
                Ok(report) => {
                    for a in &report.plan.actions {
                        tracing::info!("{}", a.describe());
                    }
                    for (a, e) in report.failures() {
                        tracing::warn!("{} failed: {e}", a.describe());
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
                    if let Some(at) = report.plan.wake_at() {
                        let wait = Duration::from_millis((at - now_millis()).max(0) as u64);
                        let when = Instant::now() + wait;
                        retry_at = Some(retry_at.map_or(when, |r| r.min(when)));
                    }
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    log_pass_error(&e, delay);
                    retry_at = Some(Instant::now() + delay);
                }
            }
        }
        events.abort();
        resync.abort();
        tracing::info!("controller stopped; workloads keep running");
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

/// Follows the engine's container events for this instance, resubscribing with backoff when the
/// stream ends (engine restarted or gone), and asking for a full pass after every reconnect.
async fn watch_engine<R: Runtime>(runtime: R, instance: String, wake: Arc<Notify>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        let mut stream = runtime.events(&instance);
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    backoff.reset();
                    if drifts(&e.action) {
                        tracing::debug!(container = %e.id, action = %e.action, "engine event");
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!("engine event stream: {e}");
                    break;
                }
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

    #[test]
    fn second_controller_on_the_same_state_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("s.db");
        let held = lock_state(&state).expect("first lock");
        let err = lock_state(&state).expect_err("second lock must fail");
        assert!(err.to_string().contains("already running"), "{err}");
        drop(held);
        lock_state(&state).expect("lock is free again");
    }

    /// The engine's event stream is resubscribed with a doubling delay, and every reconnect asks
    /// for a full pass. Runs entirely in memory, so the paused clock is exact.
    #[tokio::test(start_paused = true)]
    async fn event_stream_reconnects_with_backoff() {
        use crate::runtime::fake::FakeRuntime;
        let runtime = FakeRuntime::new();
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

    #[test]
    fn container_exits_and_removals_count_as_drift() {
        assert!(drifts("die") && drifts("destroy"));
        assert!(drifts("health_status: unhealthy"));
        assert!(!drifts("exec_start: sh") && !drifts("start"));
    }
}
