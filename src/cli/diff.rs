//! `dockhand diff`: what a sync would do, without doing it.

use std::process::ExitCode;

use clap::Args;

use super::{print_manifest_errors, reconciler, ReconcileArgs};
use crate::source::directory;

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
}

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let rec = reconciler(c).await?;
    let dir = c.manifests.clone();
    let snapshot = tokio::task::spawn_blocking(move || directory::load(&dir)).await?;
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
