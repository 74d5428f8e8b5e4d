//! `dockhand events`: the event log, optionally followed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{object_ref, open_store, StateArgs};
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
    #[command(flatten)]
    pub state: StateArgs,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let key = args.object.as_deref().map(object_ref).transpose()?;
    let store = open_store(&args.state.state).await?;
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
