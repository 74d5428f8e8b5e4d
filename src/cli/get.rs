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
    /// Watch: after the list, print each object's row again whenever it changes (`Deleted`
    /// when it goes), until interrupted. JSON and YAML print the changed objects.
    #[arg(short, long)]
    pub watch: bool,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(mut args: GetArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.what.as_deref(), Some("nodes" | "node")) {
        return nodes(&args).await;
    }
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
    let (items, errors) = fetch(&args, kind, &selector).await?;
    if let (Some(name), true) = (&args.name, items.is_empty()) {
        eprintln!(
            "error: {} {name:?} not found",
            kind.map_or("object", |k| k.label())
        );
        return Ok(ExitCode::from(1));
    }
    match args.output {
        Format::Json if !args.watch => println!("{}", serde_json::to_string_pretty(&items)?),
        Format::Json => {
            for i in &items {
                println!("{i}");
            }
        }
        Format::Yaml => print!("{}", serde_saphyr::to_string(&items)?),
        Format::Table => print_table(&items, false),
        Format::Wide => print_table(&items, true),
    }
    super::print_invalid(&errors);
    if args.watch {
        watch(&args, kind, &selector, items).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `get -w` looks again.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Prints each object again when its row changes, and a `Deleted` row when it goes.
async fn watch(
    args: &GetArgs,
    kind: Option<Kind>,
    selector: &Selector,
    first: Vec<Value>,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use std::io::Write;
    let wide = args.output == Format::Wide;
    let table = matches!(args.output, Format::Table | Format::Wide);
    let id = |i: &Value| format!("{}/{}", str_of(&i["kind"]), str_of(&i["name"]));
    // Each object by id: its row (of the whole list, so every row has the first table's
    // columns) or its JSON, and the object itself.
    let view = |items: Vec<Value>| -> BTreeMap<String, (Vec<String>, Value)> {
        let rows = if table {
            table_rows(&items, wide).1
        } else {
            items.iter().map(|i| vec![i.to_string()]).collect()
        };
        items
            .into_iter()
            .zip(rows)
            .map(|(i, row)| (id(&i), (row, i)))
            .collect()
    };
    let (header, first_rows) = table_rows(&first, wide);
    let widths = widths(&header, &first_rows);
    let mut seen = view(first);
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let (items, _) = fetch(args, kind, selector).await?;
        let mut now = view(items);
        let mut changed: Vec<(Vec<String>, Value)> = now
            .iter()
            .filter(|(k, (row, _))| seen.get(*k).is_none_or(|(old, _)| old != row))
            .map(|(_, shown)| shown.clone())
            .collect();
        for (k, (_, old)) in &seen {
            if !now.contains_key(k) {
                let mut gone = old.clone();
                gone["status"] = serde_json::json!({"phase": "Deleted"});
                let row = table_rows(std::slice::from_ref(&gone), wide).1.concat();
                changed.push((row, gone));
            }
        }
        for (row, i) in &changed {
            match args.output {
                Format::Table | Format::Wide => println!("{}", pad(row, &widths)),
                Format::Json => println!("{i}"),
                Format::Yaml => print!("---\n{}", serde_saphyr::to_string(i)?),
            }
        }
        std::io::stdout().flush()?;
        std::mem::swap(&mut seen, &mut now);
    }
}

/// The objects `get` shows, and the sources' errors (local only).
async fn fetch(
    args: &GetArgs,
    kind: Option<Kind>,
    selector: &Selector,
) -> anyhow::Result<(Vec<Value>, Vec<String>)> {
    let selector = selector.clone();
    Ok(match args.remote.client(&args.state.state)? {
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
    })
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
    let (header, rows) = table_rows(items, wide);
    print_rows(&header, &rows);
}

/// A header and its rows, each column as wide as its widest cell.
fn print_rows(header: &[String], rows: &[Vec<String>]) {
    let widths = widths(header, rows);
    for r in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        println!("{}", pad(r, &widths));
    }
}

/// Each column's width: its widest cell, the header's included.
fn widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    widths
}

/// One row, its cells padded to `widths` (the last one left as it is).
fn pad(r: &[String], widths: &[usize]) -> String {
    let line: Vec<String> = r
        .iter()
        .enumerate()
        .map(|(i, c)| match widths.get(i) {
            Some(w) if i + 1 < r.len() => format!("{c:<w$}"),
            _ => c.clone(),
        })
        .collect();
    line.join("  ").trim_end().to_owned()
}

/// The header and rows of the table.
fn table_rows(items: &[Value], wide: bool) -> (Vec<String>, Vec<Vec<String>>) {
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
        header.extend(["COMMIT", "GEN", "LABELS", "REPORT"]);
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
                    i["commit"]
                        .as_str()
                        .map_or("-".into(), |c| c.chars().take(12).collect()),
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
    (header, rows)
}

/// `get nodes`: the machines the engine spans, asked of the engine (or the controller's API).
async fn nodes(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let nodes: Vec<Value> = match args.remote.client(&args.state.state)? {
        Some(remote) => match remote.json("/api/v1/nodes").await? {
            Value::Array(a) => a,
            _ => Vec::new(),
        },
        None => {
            let engine = crate::engine::DockerEngine::connect().await?;
            engine
                .nodes()
                .await?
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?
        }
    };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&nodes)?),
        Format::Table | Format::Wide => {
            let header: Vec<String> = [
                "HOSTNAME",
                "ROLE",
                "AVAILABILITY",
                "STATE",
                "ENGINE",
                "TASKS",
                "ADDRESS",
            ]
            .into_iter()
            .map(String::from)
            .collect();
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    let role = match (str_of(&n["role"]), n["leader"].as_bool()) {
                        (r, Some(true)) => format!("{r} (leader)"),
                        (r, _) => r,
                    };
                    vec![
                        str_of(&n["hostname"]),
                        role,
                        str_of(&n["availability"]),
                        str_of(&n["state"]),
                        str_of(&n["engineVersion"]),
                        str_of(&n["tasks"]),
                        n["address"]
                            .as_str()
                            .filter(|a| !a.is_empty())
                            .unwrap_or("-")
                            .to_owned(),
                    ]
                })
                .collect();
            print_rows(&header, &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
