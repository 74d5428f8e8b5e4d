//! `dockhand diff`: what a sync would do, without doing it; locally or asked of a controller.

use std::process::ExitCode;

use clap::Args;

use super::common::plan_store;
use super::remote::RemoteArgs;
use super::{print_manifest_errors, ReconcileArgs};
use crate::view::PlanView;

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let plan: PlanView = match args.remote.client(&args.common.state.state)? {
        Some(remote) => serde_json::from_value(remote.json("/api/v1/plan").await?)?,
        None => {
            // Without a state file, the plan is made against an empty one, and none is made.
            let (store, _scratch) = plan_store(&args.common.state.state, "diff").await?;
            let (rec, sources) = super::common::reconciler_on(&args.common, store).await?;
            crate::source::git::fetch_once(&sources.git).await;
            let snapshot = sources.load().await?;
            PlanView::new(&rec.dry_run(&snapshot).await?)
        }
    };
    Ok(print_plan(&plan))
}

/// Prints a plan as `diff` does; exit 0 only for nothing to do and no manifest error.
pub(crate) fn print_plan(plan: &PlanView) -> ExitCode {
    print_manifest_errors(&plan.errors);
    for line in plan.networks.iter().chain(&plan.actions) {
        println!("{line}");
    }
    if !plan.prune_refused.is_empty() {
        println!(
            "keep {} (the sources define no objects; --allow-empty would remove them)",
            plan.prune_refused.join(", ")
        );
    }
    // Invalid manifests are never "no changes": a CI check on `diff` must fail on them.
    if !plan.errors.is_empty() {
        eprintln!("{} manifest error(s)", plan.errors.len());
        ExitCode::from(1)
    } else if plan.is_empty() {
        println!("no changes");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
