//! `dockhand db url NAME`: a managed database's full connection URL, for scripts.
//! `dockhand db adopt NAME --password-file FILE`: give a database whose data volume outlived
//! its state file the password its data was created with, so dockhand can run it again.
//! `dockhand db backup NAME [-o FILE]`, `db restore NAME --from FILE|latest --yes-overwrite`
//! and `db backups NAME`: backups on demand, restores, and their history.

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
    /// Take a verified backup now: to the manifest's `backup.to` (pruning beyond `keep`), or
    /// to a local file with -o.
    Backup {
        /// The database's name.
        name: String,
        /// Write the backup to this file (mode 0600) instead of the manifest's target.
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
    /// Replace what a database holds with a backup (in one transaction: a failure changes
    /// nothing).
    Restore {
        /// The database's name.
        name: String,
        /// A dump file on this machine, or `latest`: the newest backup in `backup.to`.
        #[arg(long)]
        from: String,
        /// Confirms that the database's current contents are to be replaced.
        #[arg(long)]
        yes_overwrite: bool,
    },
    /// A database's backups, newest first.
    Backups {
        /// The database's name.
        name: String,
    },
    /// After a major version upgrade: `--finish` removes the volume the data was on before
    /// (kept until then, to go back by hand) and the dump the upgrade went through.
    Upgrade {
        /// The database's name.
        name: String,
        /// Remove the previous data volume and the upgrade's dump.
        #[arg(long)]
        finish: bool,
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
        DbCommand::Backup { name, output } => backup(&args.state, &name, output).await,
        DbCommand::Restore {
            name,
            from,
            yes_overwrite,
        } => restore(&args.state, &name, &from, yes_overwrite).await,
        DbCommand::Backups { name } => backups(&args.state, &name).await,
        DbCommand::Upgrade { name, finish } => upgrade(&args.state, &name, finish).await,
    }
}

/// What a database verb needs: the state file, the database's manifest and its secret.
struct Parts {
    store: crate::store::Store,
    object: Object,
    spec: DatabaseSpec,
    secret: Option<DatabaseSecret>,
    /// The host policy the instance's controller runs with: the manifest's own paths
    /// (`backup.to.path`) are checked against it, as the controller checks them.
    recorded: crate::policy::RecordedPolicy,
}

impl Parts {
    fn subject<'a>(&'a self, instance: &'a str) -> crate::kinds::backup::Subject<'a> {
        crate::kinds::backup::Subject {
            instance,
            object: &self.object,
            spec: &self.spec,
            secret: self.secret.as_ref(),
            host: (&self.recorded).into(),
        }
    }
}

/// The database's parts, or `None` when it is unknown (said on stderr).
async fn parts(state: &StateArgs, name: &str) -> anyhow::Result<Option<Parts>> {
    let store = super::common::open_existing_store(&state.state).await?;
    let objects = store
        .objects_of_kind(&state.instance, crate::manifest::Kind::Database)
        .await?;
    let Some((object, spec)) = database(&objects, name) else {
        eprintln!("error: database {name:?} not found");
        return Ok(None);
    };
    let secret = store
        .database_secrets()
        .await?
        .into_iter()
        .find(|(i, s)| *i == state.instance && s.name == name)
        .map(|(_, s)| s);
    let recorded = crate::policy::RecordedPolicy::from_json(
        store.host_policy(&state.instance).await?.as_deref(),
    );
    Ok(Some(Parts {
        object: object.clone(),
        spec: spec.clone(),
        store,
        secret,
        recorded,
    }))
}

async fn backup(
    state: &StateArgs,
    name: &str,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    use crate::kinds::backup::{self, Destination};
    let Some(p) = parts(state, name).await? else {
        return Ok(ExitCode::from(1));
    };
    let dest = match (output, &p.spec.backup) {
        (Some(path), _) => Destination::Local(path),
        (None, Some(b)) => Destination::Target(b.to.clone()),
        (None, None) => {
            eprintln!("error: database {name:?} has no spec.backup.to; give -o FILE");
            return Ok(ExitCode::from(1));
        }
    };
    let engine = crate::engine::DockerEngine::connect().await?;
    let r = backup::take(&engine, &p.store, &p.subject(&state.instance), &dest).await?;
    match &r.error {
        None => {
            println!(
                "database/{name}: backup {} verified ({} bytes in {})",
                r.file,
                r.size_bytes,
                humantime::format_duration(std::time::Duration::from_millis(r.duration_ms as u64))
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn restore(state: &StateArgs, name: &str, from: &str, yes: bool) -> anyhow::Result<ExitCode> {
    use crate::kinds::backup::{self, Source};
    let Some(p) = parts(state, name).await? else {
        return Ok(ExitCode::from(1));
    };
    if !yes {
        eprintln!(
            "error: a restore replaces everything database {name:?} holds; pass --yes-overwrite to go ahead"
        );
        return Ok(ExitCode::from(2));
    }
    let source = if from == "latest" {
        let Some(b) = &p.spec.backup else {
            eprintln!(
                "error: database {name:?} has no spec.backup.to to take the latest backup from"
            );
            return Ok(ExitCode::from(1));
        };
        Source::Latest(b.to.clone())
    } else {
        let path = std::path::PathBuf::from(from);
        if let Err(e) = std::fs::File::open(&path) {
            eprintln!("error: cannot read {from}: {e}");
            return Ok(ExitCode::from(1));
        }
        Source::Local(path)
    };
    let engine = crate::engine::DockerEngine::connect().await?;
    let outcome = backup::restore(&engine, &p.subject(&state.instance), &source).await;
    let key = Some(crate::manifest::ObjectKey::new(
        crate::manifest::Kind::Database,
        name,
    ));
    let (event, code) = match &outcome {
        Ok(file) => {
            println!("database/{name}: restored {file}");
            (
                crate::store::NewEvent {
                    key,
                    reason: "restored",
                    message: format!("restored {file} (requested with db restore)"),
                },
                ExitCode::SUCCESS,
            )
        }
        Err(e) => {
            eprintln!("error: {e}");
            (
                crate::store::NewEvent {
                    key,
                    reason: "restore-failed",
                    message: e.to_string(),
                },
                ExitCode::from(1),
            )
        }
    };
    p.store.append_events(&state.instance, &[event]).await?;
    Ok(code)
}

async fn backups(state: &StateArgs, name: &str) -> anyhow::Result<ExitCode> {
    let store = super::common::open_existing_store(&state.state).await?;
    let rows = store.backups(&state.instance, name, 100).await?;
    if rows.is_empty() {
        println!("no backups of database/{name}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<21} {:>12} {:>9}  RESULT", "STARTED", "SIZE", "TOOK");
    for r in rows {
        println!(
            "{:<21} {:>12} {:>9}  {}",
            crate::clock::rfc3339(r.started_at),
            r.size_bytes,
            humantime::format_duration(std::time::Duration::from_millis(
                (r.duration_ms / 100 * 100) as u64
            ))
            .to_string(),
            match &r.error {
                None => r.file,
                Some(e) => format!("failed: {e}"),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
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
        volume: None,
        old_volume: None,
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

async fn upgrade(state: &StateArgs, name: &str, finish: bool) -> anyhow::Result<ExitCode> {
    use crate::engine::Engine;
    let Some(Parts { store, secret, .. }) = parts(state, name).await? else {
        return Ok(ExitCode::from(1));
    };
    let Some(old) = secret.as_ref().and_then(|s| s.old_volume.clone()) else {
        println!("database/{name}: no upgrade to finish (no previous data volume)");
        return Ok(ExitCode::SUCCESS);
    };
    if !finish {
        println!(
            "database/{name}: upgraded; its previous data is in volume {old} (`dockhand db upgrade {name} --finish` removes it)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let engine = crate::engine::DockerEngine::connect().await?;
    let dump = crate::kinds::upgrade::dump_volume(&state.instance, name);
    for v in [&old, &dump] {
        let ours = engine
            .volume_labels(v)
            .await?
            .is_some_and(|l| crate::engine::labels::is_ours(&l, &state.instance));
        if ours {
            engine.remove_volume(v).await?;
        }
    }
    let current = secret.as_ref().and_then(|s| s.volume.clone());
    store
        .set_database_volumes(&state.instance, name, current.as_deref(), None)
        .await?;
    store
        .append_events(
            &state.instance,
            &[crate::store::NewEvent {
                key: Some(crate::manifest::ObjectKey::new(
                    crate::manifest::Kind::Database,
                    name,
                )),
                reason: "upgrade-finished",
                message: format!("removed the previous data volume {old} and the upgrade's dump"),
            }],
        )
        .await?;
    println!("database/{name}: removed the previous data volume {old}");
    Ok(ExitCode::SUCCESS)
}
