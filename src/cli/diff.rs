//! `dockhand diff`: what a sync would do, without doing it.

use std::process::ExitCode;

use clap::Args;

use super::{print_manifest_errors, reconciler, ReconcileArgs};

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
}

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let (rec, sources) = reconciler(c).await?;
    let snapshot = sources.load().await?;
    let report = rec.dry_run(&snapshot).await?;
    print_manifest_errors(&report.errors);
    for a in &report.network_actions {
        println!("{a}");
    }
    for a in &report.plan.actions {
        println!("{}", a.describe());
    }
    if !report.plan.prune_refused.is_empty() {
        println!(
            "keep {} (the sources define no objects; --allow-empty would remove them)",
            report.plan.prune_refused.join(", ")
        );
    }
    if report.plan.is_empty() && report.network_actions.is_empty() {
        println!("no changes");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
