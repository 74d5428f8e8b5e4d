//! The command line: argument parsing and the verbs, one file each. `anyhow` lives only here.
//!
//! Exit codes: 0 success; 1 the command ran but the answer is "no" (not converged, invalid
//! manifests, changes pending for `diff`, object not found, apply or delete refused); 2 usage
//! or fatal errors (bad flags, unreadable state file, unreachable engine or API, state file
//! locked by another controller).

mod apply;
mod clients;
mod db;
mod delete;
mod describe;
mod diff;
mod events;
mod exec;
mod get;
mod logs;
mod remote;
mod sync;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::labels::DEFAULT_INSTANCE;
use crate::engine::{DockerEngine, Output};
use crate::lifecycle::BackoffPolicy;
use crate::manifest::replicas::check_object_name;
use crate::manifest::{check_dns_label, Kind, ManifestError, ObjectKey};
use crate::reconcile::{Options, Reconciler};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "dockhand",
    version,
    about = "Declarative containers for a Docker host, kept converged"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller in the foreground: converge, then keep converged.
    Up(up::UpArgs),
    /// Reconcile once until converged, then exit.
    Sync(sync::SyncArgs),
    /// Show the actions a sync would take; change nothing. Exit 1 when changes are pending.
    Diff(diff::DiffArgs),
    /// Show desired and observed state from the state file.
    Get(get::GetArgs),
    /// Show one object in full: spec, status, run history and recent events.
    Describe(describe::DescribeArgs),
    /// Print the event log.
    Events(events::EventsArgs),
    /// Print a server's container output.
    Logs(logs::LogsArgs),
    /// Run a command in a server's container; exits with the command's exit code.
    Exec(exec::ExecArgs),
    /// Managed databases: `db url NAME` prints the full connection URL.
    Db(db::DbArgs),
    /// Store objects from files, a directory or stdin as the API source; a controller applies them.
    Apply(apply::ApplyArgs),
    /// Delete an object that was applied (files and table rows are removed at their source).
    Delete(delete::DeleteArgs),
    /// A route's per-client routes: `clients list ROUTE`, `set ROUTE CLIENT SERVER:PORT`,
    /// `delete ROUTE CLIENT`.
    Clients(clients::ClientsArgs),
    /// Print a shell completion script: `source <(dockhand completion bash)`.
    Completion(CompletionArgs),
    /// Print the JSON Schema of dockhand manifests (for editors' YAML language servers).
    Schema,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Where state lives and which instance this is.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// The SQLite state file.
    #[arg(
        long,
        env = "DOCKHAND_STATE",
        default_value = "./dockhand.db",
        global = true
    )]
    pub state: PathBuf,
    /// Name of this dockhand instance; it only ever touches containers labelled with it.
    #[arg(
        long,
        env = "DOCKHAND_INSTANCE",
        default_value = DEFAULT_INSTANCE,
        value_parser = parse_instance,
        global = true
    )]
    pub instance: String,
}

/// The instance alone, for verbs that talk to the engine but not the state file.
#[derive(Args, Debug, Clone)]
pub struct InstanceArg {
    /// Name of this dockhand instance.
    #[arg(long, env = "DOCKHAND_INSTANCE", default_value = DEFAULT_INSTANCE, value_parser = parse_instance)]
    pub instance: String,
}

/// `server/NAME`, or a bare `NAME` meaning a server.
pub(crate) fn object_ref(s: &str) -> anyhow::Result<ObjectKey> {
    let (kind, name) = match s.split_once('/') {
        Some((k, n)) => (
            Kind::parse_or_err(k).map_err(|e| anyhow::anyhow!("{e} (in {s:?})"))?,
            n,
        ),
        None => (Kind::Server, s),
    };
    check_object_name(name).map_err(|e| anyhow::anyhow!(e))?;
    Ok(ObjectKey::new(kind, name))
}

/// `KIND NAME` as the verbs take them: a kind in any of its forms and a DNS-label name.
pub(crate) fn object_key(kind: &str, name: &str) -> anyhow::Result<ObjectKey> {
    let kind = Kind::parse_or_err(kind)?;
    check_object_name(name).map_err(|e| anyhow::anyhow!(e))?;
    Ok(ObjectKey::new(kind, name))
}

/// Copies a container's output to this process's stdout and stderr, as it arrives.
pub(crate) async fn print_output(
    mut stream: futures_util::stream::BoxStream<
        'static,
        Result<Output, crate::engine::EngineError>,
    >,
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use std::io::Write;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = stream.next().await {
        match chunk? {
            Output::Stdout(b) => {
                out.write_all(&b)?;
                out.flush()?;
            }
            Output::Stderr(b) => {
                err.write_all(&b)?;
                err.flush()?;
            }
        }
    }
    Ok(())
}

/// The id of the container that serves an object of this instance, as the API finds it.
pub(crate) async fn container_of(
    engine: &crate::engine::DockerEngine,
    instance: &str,
    key: &ObjectKey,
) -> anyhow::Result<String> {
    crate::engine::serving_container(engine, instance, key)
        .await?
        .map(|c| c.id)
        .ok_or_else(|| anyhow::anyhow!("{key} has no container yet"))
}

/// Flags shared by the verbs that reconcile.
#[derive(Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Directory of manifests, read recursively.
    #[arg(long, env = "DOCKHAND_MANIFESTS", default_value = "./manifests")]
    pub manifests: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    /// Allow pruning every container when the sources define no objects at all.
    #[arg(long)]
    pub allow_empty: bool,
    /// At most this many engine operations at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// First crash-loop backoff delay; it doubles with every quick crash.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub backoff_base: Duration,
    /// Longest crash-loop backoff delay.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub backoff_cap: Duration,
}

impl ReconcileArgs {
    /// Every source of desired state: the directory and the state file's tables.
    pub fn sources(&self, store: Store) -> crate::source::Sources {
        crate::source::Sources {
            dir: Some(self.manifests.clone()),
            store,
            instance: self.state.instance.clone(),
            allow_empty: self.allow_empty,
        }
    }

    pub fn options(&self) -> Options {
        Options {
            instance: self.state.instance.clone(),
            allow_empty: self.allow_empty,
            parallel: self.parallel,
            backoff: BackoffPolicy {
                base: self.backoff_base,
                cap: self.backoff_cap,
                ..BackoffPolicy::default()
            },
        }
    }
}

fn parse_instance(s: &str) -> Result<String, String> {
    check_dns_label(s).map(|()| s.to_owned())
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?}: {e} (expected e.g. 30s, 2m, 1h)"))
}

/// Process-wide settings of a long-running dockhand, made before any thread starts.
///
/// glibc gives each thread that allocates its own malloc arena, and freed memory stays in the
/// arena it came from; with the runtime's workers, blocking threads and SQLite's, an idle
/// controller with 1,000 objects held 35 MB, 10 MB of it in idle arenas. Two arenas are plenty
/// for two worker threads.
pub fn tune_process() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

pub fn main() -> ExitCode {
    tune_process();
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(a) => up::run(a).await,
            Command::Sync(a) => sync::run(a).await,
            Command::Diff(a) => diff::run(a).await,
            Command::Get(a) => get::run(a).await,
            Command::Describe(a) => describe::run(a).await,
            Command::Events(a) => events::run(a).await,
            Command::Logs(a) => logs::run(a).await,
            Command::Exec(a) => exec::run(a).await,
            Command::Db(a) => db::run(a).await,
            Command::Apply(a) => apply::run(a).await,
            Command::Delete(a) => delete::run(a).await,
            Command::Clients(a) => clients::run(a).await,
            Command::Completion(a) => {
                use clap::CommandFactory;
                let mut cmd = Cli::command();
                clap_complete::generate(a.shell, &mut cmd, "dockhand", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Schema => {
                println!("{}", crate::manifest::schema::json_schema());
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    // Do not wait for blocked tasks (an idle event stream) at exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKHAND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub(crate) async fn open_store(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(path).await?)
}

/// A reconciler on the engine, and the sources it reads.
pub(crate) async fn reconciler(
    args: &ReconcileArgs,
) -> anyhow::Result<(Reconciler<DockerEngine>, crate::source::Sources)> {
    let store = open_store(&args.state.state).await?;
    let runtime = DockerEngine::connect().await?;
    let sources = args.sources(store.clone());
    Ok((Reconciler::new(runtime, store, args.options()), sources))
}

/// Prints the errors of the sources, each as `file:line:column: field: message`.
pub(crate) fn print_manifest_errors(errors: &[ManifestError]) {
    for e in errors {
        eprintln!("invalid: {e}");
    }
    if !errors.is_empty() {
        eprintln!(
            "objects of invalid files keep their last good spec; nothing they defined is removed"
        );
    }
}
