//! `dockhand apply -f FILE|DIR|-`: store objects as the API source, locally or through a
//! controller's API. The controller notices within a second and converges.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::print_invalid;
use super::remote::{RemoteArgs, RemoteError};
use super::{open_store, StateArgs};
use crate::manifest::Object;
use crate::source::applied::{self as apply, ApplyError};
use crate::source::directory;

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (read recursively), or `-` for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Print the plan this input would make (with the other sources, under the default host
    /// policy) and store nothing; exit 0 only when it changes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the API source's objects that `-l` selects and this input no longer has (as
    /// `kubectl apply --prune -l`). Objects of files and the table are never touched.
    #[arg(long, requires = "selector")]
    pub prune: bool,
    /// With `--prune`: which applied objects this input is the whole truth for.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The texts to apply, each with its label for errors and its directory for bind sources.
fn inputs(files: &[PathBuf]) -> anyhow::Result<Vec<(String, String, Option<PathBuf>)>> {
    let mut out = Vec::new();
    for f in files {
        if f == Path::new("-") {
            let text = std::io::read_to_string(std::io::stdin())?;
            out.push(("<stdin>".to_owned(), text, std::env::current_dir().ok()));
        } else if f.is_dir() {
            let mut paths = Vec::new();
            directory::collect(f, &mut paths)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
            paths.sort();
            for p in paths {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                out.push((p.display().to_string(), text, abs_parent(&p)));
            }
        } else {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
            out.push((f.display().to_string(), text, abs_parent(f)));
        }
    }
    Ok(out)
}

fn abs_parent(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()?.parent().map(Path::to_owned)
}

pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut objects: Vec<Object> = Vec::new();
    let mut errors = Vec::new();
    for (label, text, dir) in inputs(&args.files)? {
        match apply::parse(&text, &label, dir.as_deref()) {
            Ok(o) => objects.extend(o),
            Err(ApplyError::Invalid { errors: e }) => errors.extend(e),
            Err(e) => return Err(e.into()),
        }
    }
    if !errors.is_empty() {
        // All or nothing, like a file: nothing is applied while anything is invalid.
        print_invalid(&errors);
        return Ok(ExitCode::from(1));
    }
    if args.dry_run {
        if args.prune {
            anyhow::bail!("--dry-run does not plan --prune's deletions; run it without --prune");
        }
        if let Some(remote) = args.remote.client(&args.state.state)? {
            // The controller plans it, with its own sources and host policy.
            let body: Vec<String> = objects.iter().map(apply::document).collect();
            let plan = match remote
                .send(
                    reqwest::Method::POST,
                    "/api/v1/plan",
                    Some(body.join("\n---\n")),
                )
                .await
            {
                Ok(resp) => resp.json().await?,
                Err(e) => {
                    if let Some(r) = e.downcast_ref::<RemoteError>() {
                        if (400..500).contains(&r.status) {
                            eprintln!("error: {}", r.message);
                            print_invalid(&r.details);
                            return Ok(ExitCode::from(1));
                        }
                    }
                    return Err(e);
                }
            };
            return Ok(super::diff::print_plan(&plan));
        }
        return dry_run(&args, objects).await;
    }
    let selector = match &args.selector {
        Some(s) => Some(crate::view::Selector::parse(s)?),
        None => None,
    };
    if selector.as_ref().is_some_and(|s| s.0.is_empty()) {
        anyhow::bail!(
            "an empty -l would prune every applied object; name the ones this input owns"
        );
    }
    if selector.is_some() && !args.prune {
        anyhow::bail!("-l selects what --prune deletes; give --prune too");
    }
    let keep: std::collections::BTreeSet<crate::manifest::ObjectKey> =
        objects.iter().map(Object::key).collect();
    if let Some(remote) = args.remote.client(&args.state.state)? {
        for o in &objects {
            let key = o.key();
            let path = super::remote::object_path(&key);
            match remote
                .send(reqwest::Method::PUT, &path, Some(apply::document(o)))
                .await
            {
                Ok(resp) => {
                    let v: serde_json::Value = resp.json().await?;
                    println!("{key} {}", v["result"].as_str().unwrap_or("applied"));
                }
                Err(e) => {
                    if let Some(r) = e.downcast_ref::<RemoteError>() {
                        if (400..500).contains(&r.status) {
                            eprintln!("error: {key}: {}", r.message);
                            print_invalid(&r.details);
                            return Ok(ExitCode::from(1));
                        }
                    }
                    return Err(e);
                }
            }
        }
        if let Some(selector) = &args.selector {
            prune_remotely(&remote, selector, &keep).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(&args.state.state).await?;
    let sources = args.state.api_sources(store);
    match apply::apply(&sources, objects).await {
        Ok(changes) => {
            for (key, change) in changes {
                let word = serde_json::to_value(&change)?;
                println!("{key} {}", word.as_str().unwrap_or_default());
            }
            if let Some(selector) = &selector {
                for key in apply::prune(&sources, selector, &keep).await? {
                    println!("{key} pruned");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ApplyError::Invalid { errors }) => {
            print_invalid(&errors);
            Ok(ExitCode::from(1))
        }
        Err(e @ (ApplyError::Conflict { .. } | ApplyError::NotFound { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// The plan of the sources with `objects` applied, against the engine; nothing is stored (a
/// missing state file is not created: the plan is then made against an empty one).
async fn dry_run(args: &ApplyArgs, objects: Vec<Object>) -> anyhow::Result<ExitCode> {
    let plan = async {
        let (store, _scratch) = super::common::plan_store(&args.state.state, "dry-run").await?;
        let sources = args.state.api_sources(store.clone());
        let options = crate::reconcile::Options {
            instance: args.state.instance.clone(),
            allow_empty: false,
            parallel: 8,
            backoff: Default::default(),
            host_policy: Default::default(),
            manifests: None,
            take_over: false,
            prune_delay: std::time::Duration::from_secs(3),
            subnet_pool: None,
        };
        let engine = crate::engine::DockerEngine::connect().await?;
        let rec = crate::reconcile::Reconciler::new(engine, store, options);
        let snapshot = sources.load_with(objects).await?;
        anyhow::Ok(crate::view::PlanView::new(&rec.dry_run(&snapshot).await?))
    }
    .await;
    Ok(super::diff::print_plan(&plan?))
}

/// The same through a controller's API, which prunes its own applied objects.
async fn prune_remotely(
    remote: &super::remote::Remote,
    selector: &str,
    keep: &std::collections::BTreeSet<crate::manifest::ObjectKey>,
) -> anyhow::Result<()> {
    let keep: Vec<String> = keep.iter().map(ToString::to_string).collect();
    let body = serde_json::json!({"selector": selector, "keep": keep}).to_string();
    let resp = remote
        .send(reqwest::Method::POST, "/api/v1/prune", Some(body))
        .await?;
    let v: serde_json::Value = resp.json().await?;
    for key in v["pruned"].as_array().into_iter().flatten() {
        println!("{} pruned", key.as_str().unwrap_or_default());
    }
    Ok(())
}
