//! Short-lived containers that run one script to its end (a database's backup or restore).
//!
//! A trait of its own, like `Attach`. Their containers carry `JOB_LABEL`, and a listing of
//! objects leaves out whatever carries it (an image dockhand built gives its containers the
//! instance's label, so a job of it would otherwise look like an orphan and be pruned mid-dump);
//! a job left behind by a crash is replaced by the next job of the same name.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use super::{EngineError, Mount, SecretEnv};

/// Label on every job container: the instance that ran it.
pub const JOB_LABEL: &str = "dockhand.job-of";

/// The labels of `instance`'s job `what` (`backup/orders`): not the instance's own, and
/// `JOB_LABEL`, which keeps the job out of every listing of objects (and every prune).
pub fn job_labels(instance: &str, what: &str) -> HashMap<String, String> {
    HashMap::from([
        (JOB_LABEL.to_owned(), instance.to_owned()),
        ("dockhand.job".to_owned(), what.to_owned()),
    ])
}

/// One script run in a container of `image`, with `sh -c`, as root.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The container's name (deterministic: a job left behind is found and replaced).
    pub name: String,
    pub image: String,
    pub script: String,
    pub env: Vec<String>,
    /// Variables whose values never reach a log or an error.
    pub secret_env: Vec<SecretEnv>,
    pub mounts: Vec<Mount>,
    /// A container whose network namespace the job joins (`container:<id>`).
    pub network_of: Option<String>,
    pub labels: HashMap<String, String>,
    /// A local file copied to this directory of the container before it starts.
    pub upload: Option<(PathBuf, String)>,
    /// A file of the container copied to this local path once the script succeeded.
    pub download: Option<(String, PathBuf)>,
    /// The job is killed and reported failed after this long.
    pub timeout: Duration,
}

/// What a job printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl JobOutput {
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }

    /// The last line the job printed on stderr (what a failing tool says), else stdout's.
    pub fn last_words(&self) -> String {
        let last = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(str::to_owned)
        };
        last(&self.stderr)
            .or_else(|| last(&self.stdout))
            .unwrap_or_else(|| format!("exit code {}", self.exit_code))
    }
}

pub trait Jobs: Send + Sync {
    /// Runs `job` to its end and removes its container (whatever happened).
    fn run_job(&self, job: &Job) -> impl Future<Output = Result<JobOutput, EngineError>> + Send;
}
