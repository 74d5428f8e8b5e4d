//! `rollout history|undo|status NAME`: an object's revisions, going back to one, and waiting
//! for the current one to be Ready (kubectl's `rollout`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::remote::RemoteArgs;
use super::{object_ref, open_existing_store, parse_duration, StateArgs};
use crate::operate::{self, covers, OperateError, Undo};

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub verb: RolloutVerb,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum RolloutVerb {
    /// Every spec the object has had: revision, time, source and spec hash.
    History {
        /// `NAME` (a server) or `KIND/NAME`.
        name: String,
    },
    /// Go back to the previous revision (or `--to-revision N`): applied for objects of the API
    /// source; for a file's object, the change to make in the file is printed (exit 1).
    Undo {
        name: String,
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Wait until the object's current revision is Ready (every replica); exit 1 if it fails
    /// or at the timeout.
    Status {
        name: String,
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

pub async fn run(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    match &args.verb {
        RolloutVerb::History { name } => history(&args, name).await,
        RolloutVerb::Undo { name, to_revision } => undo(&args, name, *to_revision).await,
        RolloutVerb::Status { name, timeout } => status(&args, name, *timeout).await,
    }
}

/// A refusal, the controller's or this state file's: exit 1 with the reason.
fn refusal(e: anyhow::Error) -> anyhow::Result<ExitCode> {
    match e.downcast_ref::<OperateError>() {
        Some(o) if o.is_refusal() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        _ => super::remote::refused(e),
    }
}

async fn history(args: &RolloutArgs, name: &str) -> anyhow::Result<ExitCode> {
    let key = object_ref(name)?;
    let revisions: Value = match args.remote.client(&args.state.state)? {
        Some(r) => {
            let path = format!("{}/revisions", super::remote::object_path(&key));
            match r.json(&path).await {
                Ok(v) => v,
                Err(e) => return refusal(e),
            }
        }
        None => {
            let store = open_existing_store(&args.state.state).await?;
            if !store.has_object(&args.state.instance, &key).await? {
                eprintln!("error: {key} not found");
                return Ok(ExitCode::from(1));
            }
            serde_json::to_value(store.revisions(&args.state.instance, &key).await?)?
        }
    };
    println!(
        "{:<9} {:<25} {:<17} {:<13} SOURCE",
        "REVISION", "CREATED", "SPEC-HASH", "COMMIT"
    );
    for r in revisions.as_array().into_iter().flatten() {
        let commit: String = r["object"]["commit"]
            .as_str()
            .map_or("-".into(), |c| c.chars().take(12).collect());
        println!(
            "{:<9} {:<25} {:<17} {commit:<13} {}",
            r["revision"].to_string(),
            r["createdAt"].as_str().unwrap_or(""),
            r["specHash"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn undo(args: &RolloutArgs, name: &str, to: Option<i64>) -> anyhow::Result<ExitCode> {
    let key = object_ref(name)?;
    let undo: Undo = match args.remote.client(&args.state.state)? {
        Some(r) => {
            let path = format!("{}/undo", super::remote::object_path(&key));
            let body = json!({"toRevision": to}).to_string();
            match r.send(reqwest::Method::POST, &path, Some(body)).await {
                Ok(resp) => resp.json().await?,
                Err(e) => return refusal(e),
            }
        }
        None => {
            let sources = args
                .state
                .api_sources(open_existing_store(&args.state.state).await?);
            match operate::undo(&sources, &key, to).await {
                Ok(u) => u,
                Err(e) => return refusal(e.into()),
            }
        }
    };
    match undo {
        Undo::Applied { revision, .. } => {
            println!("{key} rolled back to revision {revision}");
            Ok(ExitCode::SUCCESS)
        }
        Undo::EditSource {
            revision,
            source,
            diff,
        } => {
            println!("{key} is defined by {source}; to go back to revision {revision}, change it there (- now, + revision {revision}):");
            print!("{diff}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn status(args: &RolloutArgs, name: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let key = object_ref(name)?;
    let remote = args.remote.client(&args.state.state)?;
    let store = match &remote {
        Some(_) => None,
        None => Some(open_existing_store(&args.state.state).await?),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let items: Vec<Value> = match (&remote, &store) {
            (Some(r), _) => match r.json(&super::remote::kind_path(key.kind)).await? {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            (None, Some(s)) => {
                let q = crate::view::Query {
                    kind: Some(key.kind),
                    ..Default::default()
                };
                crate::view::items(s, &args.state.instance, &q)
                    .await?
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
            (None, None) => Vec::new(),
        };
        let mine: Vec<&Value> = items
            .iter()
            .filter(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| covers(&key, &crate::manifest::ObjectKey::new(key.kind, n)))
            })
            .collect();
        if mine.is_empty() {
            eprintln!("error: {key} not found");
            return Ok(ExitCode::from(1));
        }
        let mut waiting = Vec::new();
        for i in &mine {
            let phase = i["status"]["phase"].as_str().unwrap_or("Pending");
            let current = i["status"]["observedGeneration"] == i["generation"];
            let name = i["name"].as_str().unwrap_or_default();
            if current && matches!(phase, "Failed" | "Invalid") {
                let message = i["status"]["message"].as_str().unwrap_or_default();
                eprintln!("{key}: {name} is {phase}: {message}");
                return Ok(ExitCode::from(1));
            }
            if !(current && matches!(phase, "Ready" | "Completed" | "Stopped")) {
                waiting.push(format!("{name} {phase}"));
            }
        }
        if waiting.is_empty() {
            let generation = &mine[0]["generation"];
            println!("{key} rolled out: revision {generation} is ready");
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{key} not rolled out after {}: waiting for {}",
                humantime::format_duration(timeout),
                waiting.join(", ")
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
