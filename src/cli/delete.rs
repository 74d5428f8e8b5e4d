//! `dockhand delete KIND NAME`: remove an object applied through the API or `apply`. Objects
//! of files or the manifests table are refused, with where to remove them instead.

use std::process::ExitCode;

use clap::Args;

use super::remote::RemoteArgs;
use super::{open_store, StateArgs};
use crate::source::applied::{self as apply, ApplyError};

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The kind: `server`, `database`, `network` or `route`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let key = super::object_key(&args.kind, &args.name)?;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        let path = super::remote::object_path(&key);
        return match remote.send(reqwest::Method::DELETE, &path, None).await {
            Ok(_) => {
                println!("{key} deleted");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => super::remote::refused(e),
        };
    }
    let sources = args.state.api_sources(open_store(&args.state.state).await?);
    match apply::delete(&sources, &key).await {
        Ok(()) => {
            println!("{key} deleted");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ApplyError::Conflict { .. } | ApplyError::NotFound { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
