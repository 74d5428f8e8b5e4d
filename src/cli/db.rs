//! `dockhand db url NAME`: a managed database's full connection URL, for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{open_store, StateArgs};
use crate::manifest::Spec;
use crate::view;

#[derive(Args, Debug)]
pub struct DbArgs {
    /// `--state` and `--instance` are global, so they may stand before or after `url NAME`.
    #[command(flatten)]
    pub state: StateArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Print the full postgres:// URL (password included) of a database.
    Url {
        /// The database's name.
        name: String,
    },
}

pub async fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    let DbCommand::Url { name } = args.command;
    let state = args.state;
    let store = open_store(&state.state).await?;
    let objects = store.objects(&state.instance).await?;
    let Some(object) = objects
        .iter()
        .map(|s| &s.object)
        .find(|o| matches!(o.spec, Spec::Database(_)) && o.name == name)
    else {
        eprintln!("error: database {name:?} not found");
        return Ok(ExitCode::from(1));
    };
    let secrets = store.database_secrets().await?;
    let Some((_, url, _)) = view::connection(object, &secrets, &state.instance, true) else {
        eprintln!("error: database {name:?} has not been created yet (run dockhand sync or up)");
        return Ok(ExitCode::from(1));
    };
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}
