//! `dockhand logs`: a server's container output.

use std::process::ExitCode;

use clap::Args;

use super::{container_of, object_ref, print_output, InstanceArg};
use crate::runtime::DockerRuntime;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The server: `NAME` or `server/NAME`.
    pub name: String,
    /// Keep printing output until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub instance: InstanceArg,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    let runtime = DockerRuntime::connect().await?;
    let container = container_of(&args.instance.instance, &key);
    print_output(runtime.logs(&container, args.follow, args.tail)).await?;
    Ok(ExitCode::SUCCESS)
}
