//! `dockhand describe`: one object in full, the way `kubectl describe` shows it, from the
//! state file or a remote controller's API (both give the same view).

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::get::text;
use super::remote::RemoteArgs;
use super::{open_existing_store, StateArgs};
use crate::manifest::Phase;
use crate::store::Event;
use crate::view;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The kind (`server`, `database`, `network` or `route`), or `KIND/NAME` alone.
    pub kind: String,
    /// The object's name (unless the first argument is `KIND/NAME`).
    pub name: Option<String>,
    /// Show a database's password in its connection URL.
    #[arg(long)]
    pub show_secrets: bool,
    /// How many recent events to show.
    #[arg(long, default_value_t = 15)]
    pub events: i64,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let key = match (&args.name, args.kind.contains('/')) {
        (Some(name), false) => super::object_key(&args.kind, name)?,
        (None, true) => super::object_ref(&args.kind)?,
        (Some(_), true) => anyhow::bail!("give KIND NAME or KIND/NAME, not both"),
        (None, false) => anyhow::bail!("which {}? give KIND NAME or KIND/NAME", args.kind),
    };
    let kind = key.kind;
    let instance = &args.state.instance;
    let (item, events): (Option<Value>, Vec<Event>) = match args.remote.client(&args.state.state)? {
        Some(remote) => {
            if args.show_secrets {
                anyhow::bail!("--show-secrets works on the local state file only");
            }
            let path = super::remote::object_path(&key);
            let item = match remote.json(&path).await {
                Ok(v) => Some(v),
                Err(e) if super::remote::is_not_found(&e) => None,
                Err(e) => return Err(e),
            };
            let events = remote
                .json(&format!(
                    "/api/v1/events?kind={}&name={}&limit={}",
                    kind.label(),
                    key.name,
                    args.events
                ))
                .await?;
            (item, serde_json::from_value(events)?)
        }
        None => {
            let store = open_existing_store(&args.state.state).await?;
            let q = view::Query {
                kind: Some(kind),
                name: Some(key.name.clone()),
                show_secrets: args.show_secrets,
                ..view::Query::default()
            };
            let item = view::items(&store, instance, &q).await?.into_iter().next();
            let events = store
                .events(instance, Some(&key), None, args.events)
                .await?;
            (item.map(serde_json::to_value).transpose()?, events)
        }
    };
    let Some(item) = item else {
        eprintln!("error: {key} not found");
        return Ok(ExitCode::from(1));
    };
    // The instance is known locally; over the API it is the remote controller's own.
    let instance = args.remote.server.is_none().then_some(instance.as_str());
    print!("{}", render(&item, instance, &events)?);
    Ok(ExitCode::SUCCESS)
}

/// The describe page of one object view.
fn render(item: &Value, instance: Option<&str>, events: &[Event]) -> anyhow::Result<String> {
    let st = &item["status"];
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    };
    field("Name", text(&item["name"], ""));
    field("Kind", text(&item["kind"], ""));
    if let Some(i) = instance {
        field("Instance", i.to_owned());
    }
    field(
        "Source",
        format!("{}:{}", text(&item["source"], ""), text(&item["line"], "0")),
    );
    if let Some(commit) = item["commit"].as_str() {
        field("Commit", commit.to_owned());
    }
    let labels: Vec<String> = item["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v, "")))
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
            text(&item["generation"], "0"),
            text(&st["observedGeneration"], "0")
        ),
    );
    field("Spec hash", text(&item["specHash"], ""));
    field("Phase", text(&st["phase"], "Pending"));
    field("Container", text(&st["containerId"], "<none>"));
    let ports = super::get::ports(&st["ports"]);
    field(
        "Ports",
        if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(", ")
        },
    );
    field("Restarts", text(&st["restartCount"], "0"));
    if !st["health"].is_null() {
        field("Health", text(&st["health"], ""));
    }
    field("Last exit", text(&st["lastExitCode"], "<none>"));
    field("Started", text(&st["startedAt"], "<never>"));
    if !st["nextRetryAt"].is_null() {
        field("Next retry", text(&st["nextRetryAt"], ""));
    }
    if let Some(url) = item["connection"]["url"].as_str() {
        field("Connection", url.to_owned());
    }
    if let Some(v) = item["dataVolume"].as_str() {
        field("Data volume", v.to_owned());
    }
    if let Some(v) = item["previousDataVolume"].as_str() {
        field(
            "Previous data",
            format!(
                "{v} (kept after an upgrade; `dockhand db upgrade {} --finish` removes it)",
                text(&item["name"], "")
            ),
        );
    }
    let b = &item["backups"];
    if !b.is_null() {
        let said = |r: &serde_json::Value| match r["error"].as_str() {
            Some(e) => format!("{} failed: {e}", text(&r["at"], "")),
            None => format!(
                "{} {} ({} bytes in {} ms)",
                text(&r["at"], ""),
                text(&r["file"], ""),
                text(&r["sizeBytes"], "0"),
                text(&r["durationMs"], "0")
            ),
        };
        field(
            "Backup schedule",
            text(&b["schedule"], "<none> (db backup only)"),
        );
        field(
            "Last backup",
            if b["last"].is_null() {
                "<never>".into()
            } else {
                said(&b["last"])
            },
        );
        if !b["last"]["error"].is_null() {
            field(
                "Last good backup",
                if b["lastSuccess"].is_null() {
                    "<never>".into()
                } else {
                    said(&b["lastSuccess"])
                },
            );
        }
    }
    if let Some(r) = item.get("report") {
        field("Report", r.to_string());
    }
    if let Some(m) = st["message"].as_str() {
        field("Message", m.to_owned());
    }
    if let Some(e) = item["lastError"].as_str() {
        field("Last error", e.to_owned());
    }
    let _ = writeln!(out, "Conditions:");
    let phase: Phase = serde_json::from_value(st["phase"].clone()).unwrap_or(Phase::Pending);
    let has_health_check = match item["kind"].as_str() {
        Some("Server") => !item["spec"]["healthCheck"].is_null(),
        Some("Database") => true,
        _ => false,
    };
    let conditions = [
        (
            "Ready",
            if phase == Phase::Ready {
                "True"
            } else {
                "False"
            },
        ),
        (
            "Healthy",
            match (has_health_check, st["health"].as_str()) {
                (false, _) => "n/a (no health check)",
                (true, Some("healthy")) => "True",
                (true, Some("unhealthy")) => "False",
                (true, _) => "Unknown",
            },
        ),
        (
            "DependenciesMet",
            if phase == Phase::Blocked {
                "False"
            } else {
                "True"
            },
        ),
        (
            "ManifestValid",
            if item["lastError"].is_string() {
                "False (running the last good spec)"
            } else {
                "True"
            },
        ),
        (
            "RolledOut",
            if st["message"].as_str().is_some_and(|m| {
                m.starts_with("rolled back") || m.contains("rolled the update back")
            }) {
                "False (rolled back: see the message)"
            } else {
                "True"
            },
        ),
    ];
    for (name, value) in conditions {
        let _ = writeln!(out, "  {name:<16}{value}");
    }
    if let Some(tasks) = st["tasks"].as_array().filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "Tasks:");
        let _ = writeln!(
            out,
            "  {:<6}{:<14}{:<16}{:<10}{:<28}ERROR",
            "SLOT", "ID", "NODE", "STATE", "SINCE"
        );
        for t in tasks {
            let id = text(&t["id"], "");
            let _ = writeln!(
                out,
                "  {:<6}{:<14}{:<16}{:<10}{:<28}{}",
                text(&t["slot"], "0"),
                &id[..id.len().min(12)],
                text(&t["node"], ""),
                text(&t["state"], ""),
                text(&t["since"], ""),
                text(&t["error"], "")
            );
        }
    }
    let _ = writeln!(out, "Spec:");
    let spec = serde_saphyr::to_string(&item["spec"])?;
    for line in spec.lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "Events:");
    if events.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for e in events {
        let _ = writeln!(out, "  {}  {:<13}  {}", e.time, e.reason, e.message);
    }
    Ok(out)
}
