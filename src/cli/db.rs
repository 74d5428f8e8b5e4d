//! `dockhand db url NAME`: a managed database's full connection URL, for scripts.
//! `dockhand db adopt NAME --password-file FILE`: give a database whose data volume outlived
//! its state file the password its data was created with, so dockhand can run it again.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{open_store, StateArgs};
use crate::kinds::database;
use crate::manifest::database::DatabaseSpec;
use crate::manifest::{Object, Spec};
use crate::store::{DatabaseSecret, StoredObject};
use crate::view;

#[derive(Args, Debug)]
pub struct DbArgs {
    /// `--state` and `--instance` are global, so they may stand before or after `url NAME`.
    #[arg(skip)]
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
    /// Recover a database whose state file was lost: record the password its data volume was
    /// initialised with (the first line of FILE). Refused if the state file has one already.
    Adopt {
        /// The database's name.
        name: String,
        /// A file holding the password (only its first line is read).
        #[arg(long)]
        password_file: std::path::PathBuf,
        /// The host port to publish it on; by default the manifest's, or a free one.
        #[arg(long)]
        port: Option<u16>,
    },
}

pub async fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DbCommand::Url { name } => url(&args.state, &name).await,
        DbCommand::Adopt {
            name,
            password_file,
            port,
        } => adopt(&args.state, &name, &password_file, port).await,
    }
}

async fn url(state: &StateArgs, name: &str) -> anyhow::Result<ExitCode> {
    let store = super::common::open_existing_store(&state.state).await?;
    let objects = store.objects(&state.instance).await?;
    let Some((object, _)) = database(&objects, name) else {
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

async fn adopt(
    state: &StateArgs,
    name: &str,
    password_file: &std::path::Path,
    port: Option<u16>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(&state.state).await?;
    let objects = store.objects(&state.instance).await?;
    let Some((_, spec)) = database(&objects, name) else {
        eprintln!("error: database {name:?} not found (run dockhand sync first, so the state file knows its manifest)");
        return Ok(ExitCode::from(1));
    };
    let all = store.database_secrets().await?;
    if all
        .iter()
        .any(|(i, s)| *i == state.instance && s.name == name)
    {
        eprintln!(
            "error: database {name:?} has a password already; adopt only recovers a lost one"
        );
        return Ok(ExitCode::from(1));
    }
    let text = std::fs::read_to_string(password_file).map_err(|e| {
        anyhow::anyhow!("cannot read password file {}: {e}", password_file.display())
    })?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        anyhow::bail!("password file {} is empty", password_file.display());
    }
    let taken = all.iter().map(|(_, s)| s.port).collect();
    let port = match port.or((spec.port.0 != 0).then_some(spec.port.0)) {
        Some(p) => p,
        None => database::allocate_port(&taken, database::host_port_is_free)
            .ok_or_else(|| anyhow::anyhow!("every port in 5433-6000 is taken"))?,
    };
    let secret = DatabaseSecret {
        name: name.to_owned(),
        password,
        port,
        initialized: true,
    };
    store
        .insert_database_secret(&state.instance, &secret)
        .await?;
    println!("database/{name}: password recorded; the next pass runs it on port {port}");
    Ok(ExitCode::SUCCESS)
}

fn database<'a>(objects: &'a [StoredObject], name: &str) -> Option<(&'a Object, &'a DatabaseSpec)> {
    objects.iter().find_map(|s| match &s.object.spec {
        Spec::Database(d) if s.object.name == name => Some((&s.object, d)),
        _ => None,
    })
}
