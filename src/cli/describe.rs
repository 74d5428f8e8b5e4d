//! `dockhand describe`: one object in full, the way `kubectl describe` shows it.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;

use super::{open_store, StateArgs};
use crate::lifecycle::rfc3339;
use crate::manifest::{Kind, ObjectKey};
use crate::store::Status;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The kind: `server`, `database`, `network` or `route`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Show a database's password in its connection URL.
    #[arg(long)]
    pub show_secrets: bool,
    /// How many recent events to show.
    #[arg(long, default_value_t = 15)]
    pub events: i64,
    #[command(flatten)]
    pub state: StateArgs,
}

pub async fn run(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let kind = Kind::parse(&args.kind).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown kind {:?}: expected server, database, network or route",
            args.kind
        )
    })?;
    let key = ObjectKey::new(kind, args.name.clone());
    let store = open_store(&args.state.state).await?;
    let instance = &args.state.instance;
    let Some(obj) = store
        .objects(instance)
        .await?
        .into_iter()
        .find(|s| s.object.key() == key)
    else {
        eprintln!("error: {key} not found");
        return Ok(ExitCode::from(1));
    };
    let status = store
        .statuses(instance)
        .await?
        .into_iter()
        .find(|s| s.key.as_ref() == Some(&key))
        .unwrap_or_else(|| Status::pending(key.clone()));
    let events = store
        .events(instance, Some(&key), None, args.events)
        .await?;

    let l = &status.lifecycle;
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    };
    field("Name", obj.object.name.clone());
    field("Kind", kind.as_str().into());
    field("Instance", instance.clone());
    field(
        "Source",
        format!("{}:{}", obj.object.source, obj.object.line),
    );
    let labels: Vec<String> = obj
        .object
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    field(
        "Labels",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(", ")
        },
    );
    field(
        "Generation",
        format!(
            "{} (observed {})",
            obj.generation, status.observed_generation
        ),
    );
    field("Spec hash", obj.spec_hash.clone());
    field("Phase", status.phase.clone());
    field(
        "Container",
        status
            .container_id
            .clone()
            .unwrap_or_else(|| "<none>".into()),
    );
    let ports: Vec<String> = status
        .ports
        .iter()
        .map(|p| format!("{}->{}/{}", p.host, p.container, p.protocol.as_str()))
        .collect();
    field(
        "Ports",
        if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(", ")
        },
    );
    field("Restarts", l.restart_count.to_string());
    if let Some(h) = &l.health {
        field("Health", h.clone());
    }
    field(
        "Last exit",
        l.last_exit_code.map_or("<none>".into(), |c| c.to_string()),
    );
    field("Started", l.started_at.map_or("<never>".into(), rfc3339));
    if let Some(at) = l.next_retry_at {
        field("Next retry", rfc3339(at));
    }
    let secrets = store.database_secrets().await?;
    if let Some((_, url, _)) =
        super::get::connection(&obj.object, &secrets, instance, args.show_secrets)
    {
        field("Connection", url);
    }
    if let Some(m) = &status.message {
        field("Message", m.clone());
    }
    if let Some(e) = &obj.last_error {
        field("Last error", e.clone());
    }
    println!("{out}Conditions:");
    let phase = status.phase.as_str();
    let has_health_check = crate::manifest::graph::has_health_check(&obj.object);
    let conditions = [
        ("Ready", if phase == "Ready" { "True" } else { "False" }),
        (
            "Healthy",
            match (has_health_check, l.health.as_deref()) {
                (false, _) => "n/a (no health check)",
                (true, Some("healthy")) => "True",
                (true, Some("unhealthy")) => "False",
                (true, _) => "Unknown",
            },
        ),
        (
            "DependenciesMet",
            if phase == "Blocked" { "False" } else { "True" },
        ),
        (
            "ManifestValid",
            if obj.last_error.is_some() {
                "False (running the last good spec)"
            } else {
                "True"
            },
        ),
    ];
    for (name, value) in conditions {
        println!("  {name:<16}{value}");
    }
    println!("Spec:");
    let spec = serde_saphyr::to_string(&obj.object.spec)?;
    for line in spec.lines() {
        println!("  {line}");
    }
    println!("Events:");
    if events.is_empty() {
        println!("  <none>");
    }
    for e in events {
        println!("  {}  {:<13}  {}", e.time, e.reason, e.message);
    }
    Ok(ExitCode::SUCCESS)
}
