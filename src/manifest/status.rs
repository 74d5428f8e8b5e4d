//! Where an object stands, as the CLI, the API and the state file name it.
//!
//! The phase is part of the contract: the planner decides it, the store keeps it typed, and
//! every face (get, describe, sync, the API) reads the same enum.

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
    /// Stopped by an operator (`down`, `stop`) or by `replicas: 0`: no container, on purpose,
    /// until `start` (or a replica count).
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 11] = [
        Phase::Pending,
        Phase::Blocked,
        Phase::Creating,
        Phase::Running,
        Phase::Ready,
        Phase::Unhealthy,
        Phase::Completed,
        Phase::Failed,
        Phase::CrashLoopBackOff,
        Phase::Invalid,
        Phase::Stopped,
    ];

    /// The phase named exactly as `as_str` writes it.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

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
            Phase::Stopped => "Stopped",
        }
    }

    /// Whether nothing more will happen to the object without a change or a failure:
    /// `sync` waits until every object is settled.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Phase::Ready | Phase::Completed | Phase::Failed | Phase::Invalid | Phase::Stopped
        )
    }

    /// Whether the object stopped short of running: failed, backing off, blocked, refused as
    /// invalid, or never started. `sync` names such objects when it exits, and fails.
    pub fn is_held_up(self) -> bool {
        matches!(
            self,
            Phase::Failed
                | Phase::CrashLoopBackOff
                | Phase::Blocked
                | Phase::Pending
                | Phase::Invalid
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
