//! `dockhand get`: desired and observed state, from the state file alone (no engine needed).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{open_store, StateArgs};
use crate::lifecycle::rfc3339;
use crate::manifest::{Kind, Spec};
use crate::runtime::PublishedPort;
use crate::store::Status;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// What to list: `servers` (the default), or `server` followed by a name.
    pub what: Option<String>,
    /// One object's name.
    pub name: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// Include database passwords (in `connection.url` and `connection.password`).
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// One object as `get` shows it: the JSON/YAML shape is part of the CLI contract.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    kind: Kind,
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    source: String,
    generation: i64,
    spec_hash: String,
    last_error: Option<String>,
    spec: Spec,
    status: StatusView,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionView>,
}

/// How to reach a database from this host. The password only with `--show-secrets`.
#[derive(Serialize)]
struct ConnectionView {
    host: String,
    port: u16,
    database: String,
    user: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// The connection of a database object, if it has a secret yet.
pub(crate) fn connection(
    object: &crate::manifest::Object,
    secrets: &[(String, crate::store::DatabaseSecret)],
    instance: &str,
    show_secrets: bool,
) -> Option<(crate::database::Connection, String, Option<String>)> {
    let Spec::Database(d) = &object.spec else {
        return None;
    };
    let (_, secret) = secrets
        .iter()
        .find(|(i, s)| i == instance && s.name == object.name)?;
    let conn = crate::database::Connection::new("127.0.0.1", object, d, secret);
    let password = show_secrets.then(|| secret.password.clone());
    let url = conn.url(password.as_deref());
    Some((conn, url, password))
}

/// Status as `get` shows it: the recorded status plus the run history users care about.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    #[serde(flatten)]
    status: Status,
    restart_count: u32,
    last_exit_code: Option<i64>,
    next_retry_at: Option<String>,
    /// `starting`, `healthy` or `unhealthy`; absent without a health check.
    health: Option<String>,
}

impl From<Status> for StatusView {
    fn from(status: Status) -> Self {
        let l = &status.lifecycle;
        StatusView {
            restart_count: l.restart_count,
            last_exit_code: l.last_exit_code,
            next_retry_at: l.next_retry_at.map(rfc3339),
            health: l.health.clone(),
            status,
        }
    }
}

pub async fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.what.as_deref() {
        None => None,
        Some(w) => Some(Kind::parse(w).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown kind {w:?}: expected servers, server NAME, databases or database NAME"
            )
        })?),
    };
    let store = open_store(&args.state.state).await?;
    let instance = &args.state.instance;
    let statuses = store.statuses(instance).await?;
    let secrets = store.database_secrets().await?;
    let mut items: Vec<Item> = store
        .objects(instance)
        .await?
        .into_iter()
        .filter(|s| kind.is_none_or(|k| s.object.spec.kind() == k))
        .filter(|s| args.name.as_deref().is_none_or(|n| s.object.name == n))
        .map(|s| {
            let key = s.object.key();
            let status = statuses
                .iter()
                .find(|st| st.key.as_ref() == Some(&key))
                .cloned()
                .unwrap_or_else(|| Status::pending(key));
            let connection = connection(&s.object, &secrets, instance, args.show_secrets).map(
                |(c, url, password)| ConnectionView {
                    host: c.host,
                    port: c.port,
                    database: c.database,
                    user: c.user,
                    url,
                    password,
                },
            );
            Item {
                connection,
                kind: s.object.spec.kind(),
                name: s.object.name.clone(),
                labels: s.object.labels.clone(),
                source: s.object.source.clone(),
                generation: s.generation,
                spec_hash: s.spec_hash,
                last_error: s.last_error,
                spec: s.object.spec,
                status: status.into(),
            }
        })
        .collect();
    items.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));

    if let (Some(name), true) = (&args.name, items.is_empty()) {
        eprintln!(
            "error: {} {name:?} not found",
            kind.map_or("object", |k| k.label())
        );
        return Ok(ExitCode::from(1));
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&items)?),
        Output::Table => print_table(&items),
    }
    for e in store.source_errors(instance).await? {
        eprintln!("invalid: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

fn ports(ports: &[PublishedPort]) -> String {
    let p: Vec<String> = ports
        .iter()
        .map(|p| format!("{}->{}/{}", p.host, p.container, p.protocol.as_str()))
        .collect();
    if p.is_empty() {
        "-".into()
    } else {
        p.join(",")
    }
}

fn print_table(items: &[Item]) {
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|i| {
            let st = &i.status.status;
            [
                format!("{}/{}", i.kind.label(), i.name),
                st.phase.clone(),
                i.status.restart_count.to_string(),
                st.container_id
                    .as_deref()
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                ports(&st.ports),
                i.source.clone(),
                st.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "PHASE",
        "RESTARTS",
        "CONTAINER",
        "PORTS",
        "SOURCE",
        "MESSAGE",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
