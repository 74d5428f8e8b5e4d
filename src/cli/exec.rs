//! `dockhand exec`: run a command in a server's container and exit with its exit code.
//!
//! With `-it` the local terminal goes raw and its size follows the window, as `docker exec -it`.
//! Against a controller (`--server`) the command runs without a terminal; `-i` sends standard
//! input to it whole, once it ends.

use std::process::ExitCode;

use clap::Args;

use super::remote::{object_path, Remote, RemoteArgs};
use super::{container_of, object_ref, print_output, terminal, StateArgs};
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
    #[arg(skip)]
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
    let container = container_of(&runtime, &args.state, &key).await?;
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
        let (rt, id) = (runtime.clone(), session.id.clone());
        terminal::follow_window_size(move |w, h| {
            let (rt, id) = (rt.clone(), id.clone());
            async move {
                let _ = rt.resize_exec(&id, w, h).await;
            }
        });
    }
    let stdin_task = args
        .interactive
        .then(|| terminal::forward_stdin(session.input));
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
