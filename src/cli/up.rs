//! `dockhand up`: the controller in the foreground.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{open_store, parse_duration, ReconcileArgs};
use crate::api::{self, Api};
use crate::controller::{Backoff, Controller, Signals};
use crate::engine::DockerEngine;
use crate::reconcile::Reconciler;
use crate::store::lock_state;

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
    /// Full resync period, a safety net behind file and engine events.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,
    /// Serve the HTTP API on this address (`none` turns it off). Any address but loopback
    /// needs --token-file.
    #[arg(long, env = "DOCKHAND_API", default_value = "127.0.0.1:7700", value_parser = parse_api)]
    pub api: ApiAddr,
    /// A file holding the bearer token every API request but /healthz must carry. Without it,
    /// `up` generates one into `<state>.token` (mode 0600), where the CLI finds it.
    #[arg(long, env = "DOCKHAND_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// POST a JSON message here when an object starts failing (Failed, CrashLoopBackOff,
    /// Unhealthy), when it recovers, and when a rollout is rolled back (repeatable).
    /// A URL that carries a token is better given by --notify-file or DOCKHAND_NOTIFY (comma-
    /// separated): the command line shows in `ps` to every user.
    #[arg(
        long = "notify",
        value_name = "URL",
        env = "DOCKHAND_NOTIFY",
        value_delimiter = ',',
        value_parser = parse_notify_url
    )]
    pub notify: Vec<reqwest::Url>,
    /// A file of --notify URLs, one a line (`#` comments), read at start: a webhook URL's
    /// token stays out of the command line.
    #[arg(long, value_name = "FILE", env = "DOCKHAND_NOTIFY_FILE")]
    pub notify_file: Option<std::path::PathBuf>,
    /// A file holding the shared secret git hosts sign webhook calls with: a verified
    /// `POST /api/v1/hooks/git` fetches the --git repositories at once.
    #[arg(long, value_name = "FILE")]
    pub git_webhook_secret_file: Option<std::path::PathBuf>,
    /// How often the registry is asked whether the tags that servers follow (`update.image:
    /// Poll`, `pullPolicy: Always`) moved.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub image_interval: Duration,
}

/// The URLs of a --notify-file, one a line, or the first that is not a URL (by its line).
fn notify_file(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Url>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --notify-file {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            // Never the line itself in the message: it may hold a token.
            parse_notify_url(l)
                .map_err(|e| anyhow::anyhow!("--notify-file {} line {n}: {e}", path.display()))
        })
        .collect()
}

fn parse_notify_url(s: &str) -> Result<reqwest::Url, String> {
    let url: reqwest::Url = s
        .parse()
        .map_err(|e| format!("invalid --notify URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err("invalid --notify URL: expected http(s)://HOST[:PORT]/PATH".into()),
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ApiAddr {
    None,
    At(std::net::SocketAddr),
}

fn parse_api(s: &str) -> Result<ApiAddr, String> {
    if s == "none" {
        return Ok(ApiAddr::None);
    }
    s.parse().map(ApiAddr::At).map_err(|_| {
        format!("invalid --api {s:?}: expected host:port like 127.0.0.1:7700, or none")
    })
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let c = &args.common;
    let _lock = lock_state(&c.state.state)?;
    let store = open_store(&c.state.state).await?;
    let token = match &args.token_file {
        Some(path) => Some(super::read_token(path)?),
        None if matches!(args.api, ApiAddr::At(_)) => Some(super::load_or_create_token(
            &super::default_token_path(&c.state.state),
        )?),
        None => None,
    };
    let identities = super::common::age_identities(&c.age_identities)?;
    let sources = c.sources(store.clone());
    let signals = Signals::default();
    super::common::warn_of_argv_credentials();
    let mut notify = args.notify.clone();
    if let Some(f) = &args.notify_file {
        notify.extend(notify_file(f)?);
    }
    let notifier = (!notify.is_empty())
        .then(|| crate::notify::Notifier::start(&c.state.instance, notify, store.clone()));
    let kick = Arc::new(tokio::sync::Notify::new());
    let git_hook = match &args.git_webhook_secret_file {
        None => None,
        Some(_) if sources.git.is_empty() => {
            anyhow::bail!("--git-webhook-secret-file needs a --git repository to fetch")
        }
        Some(_) if matches!(args.api, ApiAddr::None) => {
            anyhow::bail!(
                "--git-webhook-secret-file needs the API (--api ADDR), which serves the hook"
            )
        }
        Some(path) => {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the webhook secret {}: {e}", path.display())
            })?;
            let secret = secret.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
            if secret.is_empty() {
                anyhow::bail!("the webhook secret {} is empty", path.display());
            }
            Some(crate::source::git::Webhook::new(secret, kick.clone()))
        }
    };
    if !sources.git.is_empty() {
        let s = signals.clone();
        tokio::spawn(crate::source::git::keep_fetching(
            sources.git.clone(),
            c.git_interval,
            store.clone(),
            c.state.instance.clone(),
            move || s.reload(),
            kick,
            notifier.clone(),
        ));
    }
    let reconciler_cell = Arc::new(std::sync::OnceLock::new());
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    if let ApiAddr::At(addr) = args.api {
        if api::needs_token(&addr) && args.token_file.is_none() {
            anyhow::bail!(
                "--api {addr} is reachable from other hosts: pass --token-file, or listen on 127.0.0.1"
            );
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve the API on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let state = Arc::new(Api {
            store: store.clone(),
            sources: sources.clone(),
            instance: c.state.instance.clone(),
            signals: signals.clone(),
            reconciler: reconciler_cell.clone(),
            token,
            git_hook,
        });
        tokio::spawn(async move {
            let stopped = async {
                let _ = api_stopped.await;
            };
            if let Err(e) = api::serve(listener, state, stopped).await {
                tracing::error!("api server stopped: {e}");
            }
        });
        tracing::info!("api listening on http://{local}");
    }
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    // The engine may not be up yet: wait for it, with backoff, until asked to stop.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let runtime = loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(ExitCode::SUCCESS),
            r = DockerEngine::connect() => match r {
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
    let for_digests = signals.clone();
    let mut reconciler = Reconciler::new(runtime, store.clone(), c.options())
        .with_wake(move || for_digests.poke())
        .with_proxy(crate::proxy::Proxy::new())
        .with_age_identities(identities);
    let notifier_for_images = notifier.clone();
    let notifier_for_backups = notifier.clone();
    if let Some(notifier) = notifier {
        reconciler = reconciler.with_notifier(notifier);
    }
    let reconciler = Arc::new(reconciler);
    let _ = reconciler_cell.set(reconciler.clone());
    let s = signals.clone();
    tokio::spawn(crate::kinds::image::keep_polling(
        reconciler.clone(),
        store.clone(),
        c.state.instance.clone(),
        args.image_interval,
        move || s.reload(),
        notifier_for_images,
    ));
    tokio::spawn(crate::kinds::backup::keep_backing_up(
        reconciler.clone(),
        store.clone(),
        c.state.instance.clone(),
        notifier_for_backups,
        reconciler.recorded_policy().clone(),
    ));
    let result = Controller {
        reconciler,
        sources,
        state: c.state.state.clone(),
        instance: c.state.instance.clone(),
        resync: args.resync,
        signals,
    }
    .run(shutdown)
    .await;
    let _ = stop_api.send(());
    if let Err(e) = result {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
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
