//! `logs`, `exec`, `attach` and terminal resizing on the Docker engine: what a person asks of a container.

use futures_util::stream::{BoxStream, StreamExt};

use super::convert::engine;
use super::DockerEngine;
use crate::engine::{Attach, EngineError, ExecSession, Output};

fn output(o: bollard::container::LogOutput) -> Option<Output> {
    use bollard::container::LogOutput as L;
    match o {
        L::StdOut { message } | L::Console { message } => Some(Output::Stdout(message.to_vec())),
        L::StdErr { message } => Some(Output::Stderr(message.to_vec())),
        L::StdIn { .. } => None,
    }
}

impl Attach for DockerEngine {
    /// A container's output; with `follow`, until the container stops. On a swarm, the
    /// service's: every task's, from whichever node runs it, through the manager.
    fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
        since: Option<i64>,
    ) -> BoxStream<'static, Result<Output, EngineError>> {
        let opts = bollard::query_parameters::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            since: since.unwrap_or(0) as i32,
            ..Default::default()
        };
        let target = container.to_owned();
        let stream = if self.swarm {
            self.docker.service_logs(container, Some(opts)).boxed()
        } else {
            self.docker.logs(container, Some(opts)).boxed()
        };
        stream
            .filter_map(move |r| {
                let r = match r {
                    Ok(o) => output(o).map(Ok),
                    Err(e) => Some(Err(engine("logs", &target, e))),
                };
                std::future::ready(r)
            })
            .boxed()
    }

    /// Starts `cmd` in a running container, attached to its output (and input if `stdin`).
    async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, EngineError> {
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(cmd),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| engine("exec in", container, e))?;
        let opts = bollard::exec::StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        match self.docker.start_exec(&created.id, Some(opts)).await {
            Ok(bollard::exec::StartExecResults::Attached { output: out, input }) => {
                let target = container.to_owned();
                let output = out
                    .filter_map(move |r| {
                        std::future::ready(match r {
                            Ok(o) => output(o).map(Ok),
                            Err(e) => Some(Err(engine("exec in", &target, e))),
                        })
                    })
                    .boxed();
                Ok(ExecSession {
                    id: created.id,
                    output,
                    input,
                })
            }
            Ok(bollard::exec::StartExecResults::Detached) => Err(EngineError::Engine {
                op: "exec in",
                target: container.to_owned(),
                message: "the engine did not attach".into(),
            }),
            Err(e) => Err(engine("exec in", container, e)),
        }
    }

    async fn attach(
        &self,
        container: &str,
        stdin: bool,
        detach_keys: &str,
    ) -> Result<ExecSession, EngineError> {
        let opts = bollard::query_parameters::AttachContainerOptions {
            stdin,
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            detach_keys: Some(detach_keys.to_owned()),
        };
        let attached = self
            .docker
            .attach_container(container, Some(opts))
            .await
            .map_err(|e| engine("attach to", container, e))?;
        let target = container.to_owned();
        let output = attached
            .output
            .filter_map(move |r| {
                std::future::ready(match r {
                    Ok(o) => output(o).map(Ok),
                    Err(e) => Some(Err(engine("attach to", &target, e))),
                })
            })
            .boxed();
        Ok(ExecSession {
            id: container.to_owned(),
            output,
            input: attached.input,
        })
    }

    async fn resize(&self, container: &str, width: u16, height: u16) -> Result<(), EngineError> {
        self.docker
            .resize_container_tty(
                container,
                bollard::query_parameters::ResizeContainerTTYOptions {
                    h: height.into(),
                    w: width.into(),
                },
            )
            .await
            .map_err(|e| engine("resize", container, e))
    }

    /// The exit code of a finished exec.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, EngineError> {
        let r = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| engine("inspect exec", exec_id, e))?;
        Ok(r.exit_code)
    }
}

/// A terminal's size for `exec -t`; the reconciler never needs it.
impl DockerEngine {
    /// Tells the engine the terminal's size.
    pub async fn resize_exec(
        &self,
        exec_id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), EngineError> {
        self.docker
            .resize_exec(
                exec_id,
                bollard::query_parameters::ResizeExecOptions {
                    h: height.into(),
                    w: width.into(),
                },
            )
            .await
            .map_err(|e| engine("resize exec", exec_id, e))
    }
}
