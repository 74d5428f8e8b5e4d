//! `dockhand up`: the controller in the foreground.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{open_store, parse_duration, ReconcileArgs};
use crate::controller::{lock_state, Backoff, Controller};
use crate::reconcile::Reconciler;
use crate::runtime::DockerRuntime;

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
    /// Full resync period, a safety net behind file and engine events.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let _lock = lock_state(&c.state.state)?;
    let store = open_store(&c.state.state).await?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    // The engine may not be up yet: wait for it, with backoff, until asked to stop.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let runtime = loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
            r = DockerRuntime::connect() => match r {
                Ok(rt) => break rt,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!("{e}; retrying in {}", humantime::format_duration(delay));
                    tokio::select! {
                        _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    };
    tracing::info!(
        instance = %c.state.instance,
        manifests = %c.manifests.display(),
        state = %c.state.state.display(),
        "dockhand controller started"
    );
    let reconciler =
        Reconciler::new(runtime, store, c.options()).with_proxy(crate::route::Proxy::new());
    Controller {
        reconciler: Arc::new(reconciler),
        manifests: c.manifests.clone(),
        instance: c.state.instance.clone(),
        resync: args.resync,
    }
    .run(shutdown)
    .await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
