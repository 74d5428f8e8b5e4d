//! What a person asks of a container (`logs`, `exec`, `attach`), locally or through the API. Kept apart
//! from `Engine`: the reconciler never attaches to anything.

use std::future::Future;

use futures_util::stream::BoxStream;

use super::EngineError;

/// A chunk of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// A command running in a container, attached.
pub struct ExecSession {
    pub id: String,
    pub output: BoxStream<'static, Result<Output, EngineError>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Attaching to containers, implemented by each engine.
pub trait Attach: Send + Sync + 'static {
    /// A container's output (only what it wrote from `since`, in seconds since the epoch,
    /// when given); with `follow`, until the container stops.
    fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
        since: Option<i64>,
    ) -> BoxStream<'static, Result<Output, EngineError>>;

    /// Starts `cmd` in a running container, attached to its output (and input if `stdin`).
    fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> impl Future<Output = Result<ExecSession, EngineError>> + Send;

    /// Attaches to a running container's own main process (its terminal, with `tty: true`):
    /// its output from now on, and its input when `stdin`. The engine ends the session when it
    /// reads `detach_keys` (like `ctrl-p,ctrl-q`) on the input, leaving the container running.
    fn attach(
        &self,
        container: &str,
        stdin: bool,
        detach_keys: &str,
    ) -> impl Future<Output = Result<ExecSession, EngineError>> + Send;

    /// Tells the engine the size of the terminal attached to a container's main process.
    fn resize(
        &self,
        container: &str,
        width: u16,
        height: u16,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// The exit code of a finished exec.
    fn exec_exit_code(
        &self,
        exec_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, EngineError>> + Send;
}
