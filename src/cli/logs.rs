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
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        let mut path = format!("{}/logs?follow={}", object_path(&key), args.follow);
        if let Some(n) = args.tail {
            path.push_str(&format!("&tail={n}"));
        }
        let resp = remote.send(reqwest::Method::GET, &path, None).await?;
        remote.copy_to_stdout(resp).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = DockerEngine::connect().await?;
    let container = container_of(&runtime, &args.state, &key).await?;
    print_output(runtime.logs(&container, args.follow, args.tail)).await?;
    Ok(ExitCode::SUCCESS)
}
