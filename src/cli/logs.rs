//! `dockhand logs`: a server's (or database's) container output, locally or from a controller.

use std::process::ExitCode;

use clap::Args;

use super::remote::{object_path, RemoteArgs};
use super::{container_of, object_ref, print_output, StateArgs};
use crate::engine::{Attach, DockerEngine};

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The object: `NAME` (a server) or `KIND/NAME`, like `database/app`.
    pub name: String,
    /// Keep printing output until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    /// Only output since this long ago (`10m`, `1h 30m`) or this time (`2026-12-01T10:00:00Z`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `--since`: a duration back from now, or a time; as seconds since the epoch.
fn parse_since(s: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_duration(s) {
        Ok(d) => now.checked_sub(d).ok_or("too far back")?,
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            format!("invalid --since {s:?}: expected a duration like 10m or a time like 2026-12-01T10:00:00Z")
        })?,
    };
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| "before 1970".to_owned())
}

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        let mut path = format!("{}/logs?follow={}", object_path(&key), args.follow);
        if let Some(n) = args.tail {
            path.push_str(&format!("&tail={n}"));
        }
        if let Some(t) = args.since {
            path.push_str(&format!("&since={t}"));
        }
        let resp = remote.send(reqwest::Method::GET, &path, None).await?;
        remote.copy_to_stdout(resp).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = DockerEngine::connect().await?;
    let container = container_of(&runtime, &args.state, &key).await?;
    print_output(runtime.logs(&container, args.follow, args.tail, args.since)).await?;
    Ok(ExitCode::SUCCESS)
}
