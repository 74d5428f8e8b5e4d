//! `dockhand attach`: connect to a server's main process (its own terminal, with `tty: true`
//! and `stdin: true`), as `docker attach` does: the local terminal goes raw and its size follows
//! the window, and the detach keys (`ctrl-p,ctrl-q` unless told) leave the container running.
//! Through a controller (`--server`) the session is an HTTP upgrade on the API, with the token.

use std::process::ExitCode;

use clap::Args;

use super::remote::{object_path, RemoteArgs};
use super::{container_of, object_ref, print_output, terminal, StateArgs};
use crate::engine::{Attach, DockerEngine};

/// The engine's own default detach sequence.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The object: `NAME` (a server) or `KIND/NAME`.
    pub name: String,
    /// The key sequence that detaches, like ctrl-p,ctrl-q (the default) or ctrl-x.
    #[arg(long, default_value = DEFAULT_DETACH_KEYS, value_parser = parse_detach_keys)]
    pub detach_keys: String,
    /// Only watch the output; send nothing to the process.
    #[arg(long)]
    pub no_stdin: bool,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The engine's form: comma-separated `ctrl-<letter>` or single characters.
fn parse_detach_keys(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split(',').all(|k| {
            let ctrl = k.strip_prefix("ctrl-").is_some_and(|c| {
                c.len() == 1
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b"@[\\]^_".contains(&b))
            });
            ctrl || k.chars().count() == 1
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "invalid detach keys {s:?}: expected keys like ctrl-p,ctrl-q (ctrl-<letter> or one character each, comma-separated)"
        ))
    }
}

pub async fn run(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    let stdin = !args.no_stdin;
    let tty = terminal::is_terminal(libc::STDIN_FILENO) && stdin;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        let path = format!(
            "{}/attach?detachKeys={}&stdin={stdin}",
            object_path(&key),
            args.detach_keys
        );
        let upgraded = remote.upgrade(&path).await?;
        let _raw = tty.then(|| terminal::RawMode::enable(libc::STDIN_FILENO));
        if tty {
            let (remote, resize) = (
                remote.clone(),
                format!("{}/attach/resize", object_path(&key)),
            );
            terminal::follow_window_size(move |w, h| {
                let (remote, path) = (remote.clone(), format!("{resize}?w={w}&h={h}"));
                async move {
                    let _ = remote.send(reqwest::Method::POST, &path, None).await;
                }
            });
        }
        let (mut from, to) = tokio::io::split(upgraded);
        let input = stdin.then(|| terminal::forward_stdin(to));
        tokio::io::copy(&mut from, &mut tokio::io::stdout()).await?;
        if let Some(t) = input {
            t.abort();
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = DockerEngine::connect().await?;
    let container = container_of(&runtime, &args.state, &key).await?;
    let session = runtime.attach(&container, stdin, &args.detach_keys).await?;
    let _raw = tty.then(|| terminal::RawMode::enable(libc::STDIN_FILENO));
    if tty {
        let (rt, id) = (runtime.clone(), container.clone());
        terminal::follow_window_size(move |w, h| {
            let (rt, id) = (rt.clone(), id.clone());
            async move {
                let _ = rt.resize(&id, w, h).await;
            }
        });
    }
    let input = stdin.then(|| terminal::forward_stdin(session.input));
    print_output(session.output).await?;
    if let Some(t) = input {
        t.abort();
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_take_the_engines_form() {
        for ok in ["ctrl-p,ctrl-q", "ctrl-x", "a,b", "ctrl-@"] {
            assert!(parse_detach_keys(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ctrl-", "ctrl-pq", "alt-x", "ctrl-p,,ctrl-q"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }
}
