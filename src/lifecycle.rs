//! What dockhand remembers about each object's runs: restarts, crash-loop backoff, completion.
//!
//! dockhand applies restart policies itself (containers get the engine's policy `no`), so every
//! exit is seen, counted and recorded. The record is persisted with the status, which makes the
//! backoff survive a controller restart; all timing is decided by pure code given `now`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// The kubelet's shape: the first restart after a crash is immediate, then each further quick
/// crash waits `base`, doubling up to `cap`; a run that lasted `reset_after` clears the streak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// Delay before the restart that follows the `streak`-th quick crash in a row (0 = first).
    pub fn delay(&self, streak: u32) -> Duration {
        if streak == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(streak - 1).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

/// Per-object run history. Reset when the container is created anew (spec change).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Restarts dockhand made since the container was created.
    #[serde(default)]
    pub restart_count: u32,
    /// Quick crashes in a row; drives the backoff delay.
    #[serde(default)]
    pub crash_streak: u32,
    /// When dockhand last started the container.
    #[serde(default)]
    pub started_at: Option<Millis>,
    /// `started_at` of the run whose exit has been accounted, so each exit counts once.
    #[serde(default)]
    pub exit_seen_for: Option<Millis>,
    #[serde(default)]
    pub last_exit_code: Option<i64>,
    /// When the next restart may happen, while backing off.
    #[serde(default)]
    pub next_retry_at: Option<Millis>,
    /// Spec hash of a run that finished for good (a job that completed, or a `Never` failure):
    /// it is not run again while the spec stays the same.
    #[serde(default)]
    pub finished_hash: Option<String>,
    /// Health last seen, so each transition is recorded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// What the object is blocked on, so each change is recorded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_on: Option<String>,
    /// For `restart: true` dependencies: the run of each one (container and restart count)
    /// that this container was started after. A different run means it must restart.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dep_runs: std::collections::BTreeMap<String, String>,
    /// The container dockhand proved ready (for kinds with a readiness check, e.g. a real login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_for: Option<String>,
    /// What that check found running (a database's server version, `PostgreSQL 15.18`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_as: Option<String>,
    /// The spec (hash) dockhand last updated a swarm service to, so that the swarm rolling
    /// that very spec back is told from an older rollback. Kept across updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_update: Option<String>,
    /// The object spec (its hash) that last ran Ready: where a failed rollout goes back to.
    /// Kept across container replacements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_revision: Option<String>,
    /// A newer spec on its way to Ready, and since when (for `update.monitor`). Kept across
    /// container replacements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<(String, Millis)>,
}

impl Lifecycle {
    /// A fresh record for a container started at `now`.
    pub fn started(now: Millis) -> Self {
        Self {
            started_at: Some(now),
            ..Self::default()
        }
    }

    /// Whether this record holds an exit that has not been accounted yet.
    pub fn exit_is_new(&self) -> bool {
        self.exit_seen_for != self.started_at || self.started_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (0..8).map(|s| p.delay(s).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            p.delay(200),
            Duration::from_secs(300),
            "no overflow on long streaks"
        );
    }

    #[test]
    fn an_exit_counts_once_per_run() {
        let mut l = Lifecycle::started(1_000);
        assert!(l.exit_is_new());
        l.exit_seen_for = l.started_at;
        assert!(!l.exit_is_new());
        l.started_at = Some(2_000);
        assert!(l.exit_is_new());
    }
}
