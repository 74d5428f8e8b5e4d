//! `dockhand logs`: a server's container output.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use futures_util::StreamExt;

use super::{container_of, object_ref, InstanceArg};
use crate::runtime::{DockerRuntime, Output};

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
    let mut stream = runtime.logs(
        &container_of(&args.instance.instance, &key),
        args.follow,
        args.tail,
    );
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = stream.next().await {
        match chunk? {
            Output::Stdout(b) => {
                out.write_all(&b)?;
                out.flush()?;
            }
            Output::Stderr(b) => {
                err.write_all(&b)?;
                err.flush()?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
