//! `down`, `stop`, `start`, `restart` and `scale`: the operator's verbs. They share one flow:
//! write the intent (to the state file, or through a controller's API), then see it carried
//! out. A running controller does the work and the verb waits for it; with none running,
//! `down` and `stop` remove the containers themselves, and `start`, `restart` and `scale` are
//! carried out by the next `sync` or `up`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::remote::{Remote, RemoteArgs};
use super::{open_existing_store, parse_duration, StateArgs};
use crate::engine::DockerEngine;
use crate::operate::{self, Outcome, Selection};
use crate::store::{lock_state, LockError, Store};

/// `down`: the objects are optional (none means every object of the instance).
#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Remove their named volumes too (databases' data included) once they are stopped.
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Objects (`web`, `server/web`, `database/orders`, a replica `web.2`); for `down`, none
    /// means every object of the instance.
    pub names: Vec<String>,
    /// The objects this selector matches (`tier=front`).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    #[command(flatten)]
    pub wait: WaitFlags,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug, Clone)]
pub struct WaitFlags {
    /// Return once the intent is stored, without waiting for a controller to carry it out.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting (exit 1) after this long.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// The server (of the API source: `apply`'d objects).
    pub name: String,
    /// How many replicas to run (0 stops it).
    #[arg(long)]
    pub replicas: u32,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Stop,
    Start,
    Restart,
}

impl Verb {
    fn path(self) -> &'static str {
        match self {
            Verb::Stop => "/api/v1/stop",
            Verb::Start => "/api/v1/start",
            Verb::Restart => "/api/v1/restart",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verb::Stop => "stop",
            Verb::Start => "start",
            Verb::Restart => "restart",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Verb::Stop => "stopped",
            Verb::Start => "started",
            Verb::Restart => "restarted",
        }
    }
}

pub async fn down(args: DownArgs) -> anyhow::Result<ExitCode> {
    let DownArgs {
        target: args,
        volumes,
    } = args;
    let selection = Selection {
        objects: args.names,
        selector: args.selector,
    };
    if volumes && args.remote.client(&args.state.state)?.is_some() {
        anyhow::bail!("--volumes removes volumes on this host; run it without --server on the controller's host");
    }
    run(
        Verb::Stop,
        selection,
        volumes,
        &args.wait,
        &args.state,
        &args.remote,
    )
    .await
}

pub async fn stop(args: TargetArgs) -> anyhow::Result<ExitCode> {
    targeted(Verb::Stop, args).await
}

pub async fn start(args: TargetArgs) -> anyhow::Result<ExitCode> {
    targeted(Verb::Start, args).await
}

pub async fn restart(args: TargetArgs) -> anyhow::Result<ExitCode> {
    targeted(Verb::Restart, args).await
}

async fn targeted(verb: Verb, args: TargetArgs) -> anyhow::Result<ExitCode> {
    if args.names.is_empty() && args.selector.is_none() {
        anyhow::bail!(
            "name the objects to {} (or give -l SELECTOR); `dockhand down` stops every object",
            verb.word()
        );
    }
    let selection = Selection {
        objects: args.names,
        selector: args.selector,
    };
    run(
        verb,
        selection,
        false,
        &args.wait,
        &args.state,
        &args.remote,
    )
    .await
}

async fn run(
    verb: Verb,
    selection: Selection,
    volumes: bool,
    wait: &WaitFlags,
    state: &StateArgs,
    remote: &RemoteArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(r) = remote.client(&state.state)? {
        let body = serde_json::to_string(&selection)?;
        let outcome: Outcome = match r.send(reqwest::Method::POST, verb.path(), Some(body)).await {
            Ok(resp) => resp.json().await?,
            Err(e) => return super::remote::refused(e),
        };
        if wait.no_wait || verb == Verb::Restart {
            return Ok(requested(verb, &outcome.objects));
        }
        return await_phases(verb, &outcome.objects, &Watch::Remote(&r), wait.timeout).await;
    }
    let store = open_existing_store(&state.state).await?;
    let instance = &state.instance;
    let result = match verb {
        Verb::Stop => operate::set_stopped(&store, instance, &selection, true).await,
        Verb::Start => operate::set_stopped(&store, instance, &selection, false).await,
        Verb::Restart => operate::restart(&store, instance, &selection).await,
    };
    let outcome: Outcome = match result {
        Ok(o) => o,
        Err(e) if e.is_refusal() => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    // No controller holds the state file: `down` and `stop` do its work themselves.
    match lock_state(&state.state) {
        Ok(_lock) => {
            if verb != Verb::Stop {
                let _ = requested(verb, &outcome.objects);
                println!("no controller runs on {}: the next `dockhand sync` or `dockhand up` carries it out", state.state.display());
                return Ok(ExitCode::SUCCESS);
            }
            let engine = DockerEngine::connect().await?;
            crate::reconcile::stop_now(&engine, &store, instance, 8).await?;
            let code = await_phases(
                verb,
                &outcome.objects,
                &Watch::Local(&store, instance),
                Duration::ZERO,
            )
            .await?;
            if volumes {
                remove_volumes(&engine, &store, instance, &outcome).await?;
            }
            Ok(code)
        }
        Err(LockError::Locked { .. }) => {
            if wait.no_wait || verb == Verb::Restart {
                return Ok(requested(verb, &outcome.objects));
            }
            let code = await_phases(
                verb,
                &outcome.objects,
                &Watch::Local(&store, instance),
                wait.timeout,
            )
            .await?;
            if volumes && code == ExitCode::SUCCESS {
                let engine = DockerEngine::connect().await?;
                remove_volumes(&engine, &store, instance, &outcome).await?;
            }
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove_volumes(
    engine: &DockerEngine,
    store: &Store,
    instance: &str,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let keys: Vec<_> = outcome
        .objects
        .iter()
        .filter_map(|o| super::object_ref(o).ok())
        .collect();
    for v in crate::reconcile::remove_stopped_volumes(engine, store, instance, &keys).await? {
        println!("volume {v} removed");
    }
    Ok(())
}

fn requested(verb: Verb, objects: &[String]) -> ExitCode {
    for o in objects {
        println!("{o} {} requested", verb.word());
    }
    ExitCode::SUCCESS
}

/// Where the objects' phases are read.
enum Watch<'a> {
    Local(&'a Store, &'a str),
    Remote(&'a Remote),
}

impl Watch<'_> {
    /// Each object's phase, by `kind/name`.
    async fn phases(&self) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let items: Vec<Value> = match self {
            Watch::Local(store, instance) => {
                crate::view::items(store, instance, &crate::view::Query::default())
                    .await?
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
            Watch::Remote(r) => {
                let mut all = Vec::new();
                for kind in ["servers", "databases"] {
                    if let Value::Array(a) = r.json(&format!("/api/v1/{kind}")).await? {
                        all.extend(a);
                    }
                }
                all
            }
        };
        Ok(items
            .iter()
            .filter_map(|i| {
                let key = format!(
                    "{}/{}",
                    i["kind"].as_str()?.to_lowercase(),
                    i["name"].as_str()?
                );
                Some((
                    key,
                    i["status"]["phase"]
                        .as_str()
                        .unwrap_or("Pending")
                        .to_owned(),
                ))
            })
            .collect())
    }
}

/// Waits until every object is `Stopped` (stop) or no longer is (start), printing each as it
/// gets there; exit 1 at the timeout, naming the others.
async fn await_phases(
    verb: Verb,
    objects: &[String],
    watch: &Watch<'_>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<String> = objects.to_vec();
    loop {
        let phases = watch.phases().await?;
        left.retain(|o| {
            let phase = phases.get(o).map_or("Pending", String::as_str);
            let done = match verb {
                Verb::Stop => phase == "Stopped",
                _ => phase != "Stopped",
            };
            if done {
                println!("{o} {}", verb.done());
            }
            !done
        });
        if left.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            for o in &left {
                let phase = phases.get(o).map_or("Pending", String::as_str);
                eprintln!(
                    "{o} not {} after {}: phase {phase}",
                    verb.done(),
                    humantime::format_duration(timeout)
                );
            }
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    if let Some(r) = args.remote.client(&args.state.state)? {
        let path = format!("/api/v1/servers/{}/scale", args.name);
        let body = json!({"replicas": args.replicas}).to_string();
        return match r.send(reqwest::Method::POST, &path, Some(body)).await {
            Ok(_) => {
                println!("server/{} scaled to {}", args.name, args.replicas);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => super::remote::refused(e),
        };
    }
    let sources = args
        .state
        .api_sources(open_existing_store(&args.state.state).await?);
    match operate::scale(&sources, &args.name, args.replicas).await {
        Ok(_) => {
            println!("server/{} scaled to {}", args.name, args.replicas);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_refusal() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
