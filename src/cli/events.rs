//! `dockhand events`: the event log, optionally followed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::remote::{Remote, RemoteArgs};
use super::{object_ref, open_existing_store, StateArgs};
use crate::manifest::ObjectKey;
use crate::store::Event;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep printing new events as they are recorded.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the events of one object: `server/NAME` (or just `NAME`).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub object: Option<String>,
    /// How many of the newest events to show first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let key = args.object.as_deref().map(object_ref).transpose()?;
    if let Some(remote) = args.remote.client(&args.state.state)? {
        return remote_events(&remote, key.as_ref(), args.limit, args.follow).await;
    }
    let store = open_existing_store(&args.state.state).await?;
    let instance = &args.state.instance;
    let mut last = None;
    for e in store
        .events(instance, key.as_ref(), None, args.limit)
        .await?
    {
        print_event(&e);
        last = Some(e.id);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    // The controller appends from another process; a cheap indexed poll keeps up with it.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tick.tick() => {}
        }
        for e in store
            .events(instance, key.as_ref(), last.or(Some(0)), 10_000)
            .await?
        {
            print_event(&e);
            last = Some(e.id);
        }
    }
}

fn print_event(e: &Event) {
    let object = match (&e.kind, &e.name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        _ => "-".to_owned(),
    };
    println!(
        "{}  {:<20}  {:<13}  {}",
        e.time, object, e.reason, e.message
    );
}

/// The event log of a remote controller; `follow` reads its server-sent event stream.
async fn remote_events(
    remote: &Remote,
    key: Option<&ObjectKey>,
    limit: i64,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let mut path = format!("/api/v1/events?limit={limit}");
    if let Some(k) = key {
        path.push_str(&format!("&kind={}&name={}", k.kind.label(), k.name));
    }
    if !follow {
        let events: Vec<Event> = serde_json::from_value(remote.json(&path).await?)?;
        events.iter().for_each(print_event);
        return Ok(ExitCode::SUCCESS);
    }
    path.push_str("&follow=true");
    let mut resp = remote.send(reqwest::Method::GET, &path, None).await?;
    let mut buf = String::new();
    loop {
        let chunk = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            c = resp.chunk() => c?,
        };
        let Some(chunk) = chunk else {
            anyhow::bail!("the controller closed the event stream");
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                if let Ok(e) = serde_json::from_str::<Event>(data.trim()) {
                    print_event(&e);
                }
            }
        }
    }
}
