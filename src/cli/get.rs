//! `dockhand get`: desired and observed state, from the state file (no engine needed) or from
//! a remote controller's API.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::remote::{encode, RemoteArgs};
use super::{open_existing_store, StateArgs};
use crate::manifest::Kind;
use crate::view::{self, Selector};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// What to list: a kind (`servers`, `databases`, `networks`, `routes`), all when omitted;
    /// or one object as `KIND/NAME`.
    pub what: Option<String>,
    /// One object's name.
    pub name: Option<String>,
    /// Only objects matching: `mode=skywars,tier!=test,region,!canary`; keys starting with
    /// `report.` read the object's report (`report.mode=skywars`).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Only objects in this phase (`Ready`, `Failed`, ...).
    #[arg(long)]
    pub phase: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
    /// Include database passwords (in `connection.url` and `connection.password`).
    #[arg(long)]
    pub show_secrets: bool,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(mut args: GetArgs) -> anyhow::Result<ExitCode> {
    // `get server/web` is `get server web`.
    if let Some(w) = args.what.clone().filter(|w| w.contains('/')) {
        if args.name.is_some() {
            anyhow::bail!("give KIND NAME or KIND/NAME, not both");
        }
        let key = super::object_ref(&w)?;
        args.what = Some(key.kind.label().to_owned());
        args.name = Some(key.name);
    }
    let kind = match args.what.as_deref() {
        None => None,
        Some(w) => Some(Kind::parse_or_err(w)?),
    };
    let selector = match &args.selector {
        Some(s) => Selector::parse(s)?,
        None => Selector::default(),
    };
    let (items, errors): (Vec<Value>, Vec<String>) = match args.remote.client(&args.state.state)? {
        Some(remote) => {
            if args.show_secrets {
                anyhow::bail!("--show-secrets works on the local state file only");
            }
            let mut items = Vec::new();
            for k in kind.map_or(Kind::ALL.to_vec(), |k| vec![k]) {
                let path = super::remote::kind_path(k);
                match &args.name {
                    Some(n) => match remote.json(&format!("{path}/{n}")).await {
                        Ok(v) => items.push(v),
                        Err(e) if super::remote::is_not_found(&e) => {}
                        Err(e) => return Err(e),
                    },
                    None => {
                        let mut q = Vec::new();
                        if let Some(s) = &args.selector {
                            q.push(format!("labelSelector={}", encode(s)));
                        }
                        if let Some(p) = &args.phase {
                            q.push(format!("phase={}", encode(p)));
                        }
                        let url = format!("{path}?{}", q.join("&"));
                        if let Value::Array(a) = remote.json(&url).await? {
                            items.extend(a);
                        }
                    }
                }
            }
            (items, Vec::new())
        }
        None => {
            let store = open_existing_store(&args.state.state).await?;
            let q = view::Query {
                kind,
                name: args.name.clone(),
                selector,
                phase: args.phase.clone(),
                show_secrets: args.show_secrets,
            };
            let items = view::items(&store, &args.state.instance, &q).await?;
            let errors = store.source_errors(&args.state.instance).await?;
            (
                items
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?,
                errors.iter().map(ToString::to_string).collect(),
            )
        }
    };

    if let (Some(name), true) = (&args.name, items.is_empty()) {
        eprintln!(
            "error: {} {name:?} not found",
            kind.map_or("object", |k| k.label())
        );
        return Ok(ExitCode::from(1));
    }
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&items)?),
        Format::Table => print_table(&items, false),
        Format::Wide => print_table(&items, true),
    }
    super::print_invalid(&errors);
    Ok(ExitCode::SUCCESS)
}

/// Published ports of a status view, as `host->container/protocol`.
pub(crate) fn ports(ports: &Value) -> Vec<String> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}->{}/{}",
                p["host"],
                p["container"],
                text(&p["protocol"], "")
            )
        })
        .collect()
}

/// A view's field as text: strings bare, `none` for null, other values as JSON.
pub(crate) fn text(v: &Value, none: &str) -> String {
    match v {
        Value::Null => none.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn str_of(v: &Value) -> String {
    text(v, "-")
}

/// The table `get` prints: one row per object; `wide` adds health, generation, labels and
/// the report.
pub fn print_table(items: &[Value], wide: bool) {
    let project = |i: &Value| {
        i["labels"][crate::compose::PROJECT_LABEL]
            .as_str()
            .map(str::to_owned)
    };
    // Objects of compose projects show their project, in a column of its own.
    let projects = items.iter().any(|i| project(i).is_some());
    let mut header = vec!["NAME"];
    if projects {
        header.push("PROJECT");
    }
    header.extend(["PHASE", "RESTARTS"]);
    if wide {
        header.push("HEALTH");
    }
    header.extend(["CONTAINER", "PORTS", "SOURCE"]);
    if wide {
        header.extend(["GEN", "LABELS", "REPORT"]);
    }
    header.push("MESSAGE");
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let st = &i["status"];
            let kind = i["kind"].as_str().and_then(Kind::parse);
            let mut row = vec![format!(
                "{}/{}",
                kind.map_or("?", |k| k.label()),
                str_of(&i["name"])
            )];
            if projects {
                row.push(project(i).unwrap_or_else(|| "-".into()));
            }
            row.extend([str_of(&st["phase"]), str_of(&st["restartCount"])]);
            if wide {
                row.push(str_of(&st["health"]));
            }
            row.extend([
                st["containerId"]
                    .as_str()
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                {
                    let p = ports(&st["ports"]);
                    if p.is_empty() {
                        "-".into()
                    } else {
                        p.join(",")
                    }
                },
                str_of(&i["source"]),
            ]);
            if wide {
                let labels: Vec<String> = i["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", str_of(v)))
                    .collect();
                row.extend([
                    str_of(&i["generation"]),
                    if labels.is_empty() {
                        "-".into()
                    } else {
                        labels.join(",")
                    },
                    i.get("report").map_or("-".into(), Value::to_string),
                ]);
            }
            row.push(st["message"].as_str().unwrap_or_default().to_owned());
            row
        })
        .collect();
    let header: Vec<String> = header.into_iter().map(String::from).collect();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
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
