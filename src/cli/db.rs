//! `dockhand db url NAME`: a managed database's full connection URL, for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{open_store, StateArgs};
use crate::kinds::database::Connection;
use crate::manifest::Spec;

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
    let Some((object, spec)) = objects.iter().find_map(|s| match &s.object.spec {
        Spec::Database(d) if s.object.name == name => Some((&s.object, d)),
        _ => None,
    }) else {
        eprintln!("error: database {name:?} not found");
        return Ok(ExitCode::from(1));
    };
    let secrets = store.database_secrets().await?;
    let Some((_, secret)) = secrets
        .iter()
        .find(|(i, s)| *i == state.instance && s.name == name)
    else {
        eprintln!("error: database {name:?} has not been created yet (run dockhand sync or up)");
        return Ok(ExitCode::from(1));
    };
    println!(
        "{}",
        Connection::from_host(object, spec, secret).url(Some(&secret.password))
    );
    Ok(ExitCode::SUCCESS)
}
