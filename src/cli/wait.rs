//! `dockhand wait NAME --for Ready|Completed|Deleted`: block until an object gets there (as
//! `kubectl wait`), from the state file or a controller's API, so scripts need no polling loop.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::remote::RemoteArgs;
use super::{object_ref, open_existing_store, parse_duration, StateArgs};
use crate::view;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Until {
    Ready,
    Completed,
    Deleted,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The object: `NAME` (a server) or `KIND/NAME`.
    pub name: String,
    /// What to wait for: phase `Ready`, phase `Completed`, or the object gone.
    #[arg(long = "for", value_enum, ignore_case = true)]
    pub until: Until,
    /// Give up (exit 1) after this long.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// How often the object is looked at.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let key = object_ref(&args.name)?;
    let remote = args.remote.client(&args.state.state)?;
    let deadline = Instant::now() + args.timeout;
    // `up & wait web --for Ready`: the controller may not have made its state file yet.
    while remote.is_none() && !args.state.state.exists() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let store = match remote {
        Some(_) => None,
        None => Some(open_existing_store(&args.state.state).await?),
    };
    loop {
        let item: Option<Value> = match (&remote, &store) {
            (Some(r), _) => match r.json(&super::remote::object_path(&key)).await {
                Ok(v) => Some(v),
                Err(e) if super::remote::is_not_found(&e) => None,
                Err(e) => return Err(e),
            },
            (None, Some(s)) => {
                let q = view::Query {
                    kind: Some(key.kind),
                    name: Some(key.name.clone()),
                    selector: view::Selector::default(),
                    phase: None,
                    show_secrets: false,
                };
                view::items(s, &args.state.instance, &q)
                    .await?
                    .first()
                    .map(serde_json::to_value)
                    .transpose()?
            }
            (None, None) => unreachable!("a store or a remote"),
        };
        let phase = item
            .as_ref()
            .and_then(|i| i["status"]["phase"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let done = match args.until {
            Until::Deleted => item.is_none(),
            Until::Ready => phase == "Ready",
            Until::Completed => phase == "Completed",
        };
        if done {
            println!(
                "{key} {}",
                match args.until {
                    Until::Deleted => "deleted".to_owned(),
                    _ => phase,
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        // A phase that cannot turn into the one awaited ends the wait at once.
        let hopeless = matches!(args.until, Until::Ready | Until::Completed)
            && (phase == "Failed" || phase == "Invalid" || phase == "Stopped")
            || (args.until == Until::Ready && phase == "Completed");
        if hopeless {
            let message = item
                .as_ref()
                .and_then(|i| i["status"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            eprintln!("{key} is {phase}: {message}");
            return Ok(ExitCode::from(1));
        }
        if Instant::now() >= deadline {
            let now = if item.is_none() {
                "not defined".to_owned()
            } else {
                format!("phase {phase}")
            };
            eprintln!(
                "{key} not {:?} after {}: {now}",
                args.until,
                humantime::format_duration(args.timeout)
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(POLL).await;
    }
}
