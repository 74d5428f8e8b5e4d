//! `dockhand exec`: run a command in a server's container and exit with its exit code.
//!
//! With `-it` the local terminal goes raw and its size follows the window, as `docker exec -it`.
//! Against a controller (`--server`) the command runs without a terminal; `-i` sends standard
//! input to it whole, once it ends.

use std::process::ExitCode;

use clap::Args;
use tokio::io::AsyncWriteExt;

use super::remote::{object_path, Remote, RemoteArgs};
use super::{container_of, object_ref, print_output, StateArgs};
use crate::engine::{Attach, DockerEngine};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The object: `NAME` (a server) or `KIND/NAME`, like `database/app`.
    pub name: String,
    /// Pass standard input to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal (with -i: an interactive session).
    #[arg(short, long)]
    pub tty: bool,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        return run_remote(&remote, &args, &key).await;
    }
    let runtime = DockerEngine::connect().await?;
    let container = container_of(&runtime, &args.state.instance, &key).await?;
    let tty = args.tty && terminal::is_terminal(libc::STDIN_FILENO);
    let session = runtime
        .exec(&container, args.command, tty, args.interactive)
        .await?;

    let _raw = if tty {
        terminal::RawMode::enable(libc::STDIN_FILENO)
    } else {
        None
    };
    if tty {
        follow_window_size(&runtime, &session.id);
    }
    let stdin_task = args.interactive.then(|| {
        let mut input = session.input;
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
            let _ = input.shutdown().await;
        })
    });
    print_output(session.output).await?;
    if let Some(t) = stdin_task {
        t.abort();
    }
    let code = runtime.exec_exit_code(&session.id).await?.unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Runs the command through the controller's API and replays its output frames.
async fn run_remote(
    remote: &Remote,
    args: &ExecArgs,
    key: &crate::manifest::ObjectKey,
) -> anyhow::Result<ExitCode> {
    use base64::Engine as _;
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD;
    if args.tty {
        anyhow::bail!(
            "-t needs the engine's terminal: run exec -it on the controller's host, without --server"
        );
    }
    let mut body = serde_json::json!({ "command": args.command });
    if args.interactive {
        let mut input = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut input).await?;
        body["stdin"] = b64.encode(input).into();
    }
    let path = format!("{}/exec", object_path(key));
    let resp = remote
        .send(reqwest::Method::POST, &path, Some(body.to_string()))
        .await?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut code = None;
    remote
        .json_lines(resp, |frame| {
            let bytes = |field: &str| -> anyhow::Result<Option<Vec<u8>>> {
                frame[field]
                    .as_str()
                    .map(|s| b64.decode(s))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("a malformed {field} frame from the API: {e}"))
            };
            if let Some(b) = bytes("stdout")? {
                out.write_all(&b)?;
                out.flush()?;
            } else if let Some(b) = bytes("stderr")? {
                err.write_all(&b)?;
                err.flush()?;
            } else if let Some(c) = frame["exitCode"].as_i64() {
                code = Some(c);
            } else if let Some(e) = frame["error"].as_str() {
                anyhow::bail!("{e}");
            }
            Ok(())
        })
        .await?;
    let code =
        code.ok_or_else(|| anyhow::anyhow!("the API ended the exec without an exit code"))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Sends the terminal's size now and whenever the window changes.
fn follow_window_size(runtime: &DockerEngine, exec_id: &str) {
    let (runtime, exec_id) = (runtime.clone(), exec_id.to_owned());
    tokio::spawn(async move {
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        loop {
            if let Some((w, h)) = terminal::size(libc::STDOUT_FILENO) {
                let _ = runtime.resize_exec(&exec_id, w, h).await;
            }
            match winch.as_mut() {
                Some(s) => {
                    if s.recv().await.is_none() {
                        return;
                    }
                }
                None => return,
            }
        }
    });
}

/// The few terminal calls an interactive session needs.
mod terminal {
    /// Restores the terminal's settings when dropped.
    pub struct RawMode {
        fd: i32,
        saved: libc::termios,
    }

    pub fn is_terminal(fd: i32) -> bool {
        // SAFETY: isatty only inspects the descriptor.
        unsafe { libc::isatty(fd) == 1 }
    }

    impl RawMode {
        pub fn enable(fd: i32) -> Option<RawMode> {
            // SAFETY: termios is plain data; tcgetattr fills it or fails, and we check which.
            unsafe {
                let mut saved: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(fd, &mut saved) != 0 {
                    return None;
                }
                let mut raw = saved;
                libc::cfmakeraw(&mut raw);
                if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                    return None;
                }
                Some(RawMode { fd, saved })
            }
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            // SAFETY: restores settings read earlier from the same descriptor.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
            }
        }
    }

    /// Columns and rows of the terminal on `fd`.
    pub fn size(fd: i32) -> Option<(u16, u16)> {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it or fails, and we check which.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
                .then_some((ws.ws_col, ws.ws_row))
        }
    }
}
