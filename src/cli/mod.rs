//! The command line: argument parsing and the verbs, one file each. `anyhow` lives only here.
//!
//! Exit codes: 0 success; 1 the command ran but the answer is "no" (not converged, invalid
//! manifests, changes pending for `diff`, object not found, apply or delete refused); 2 usage
//! or fatal errors (bad flags, unreadable state file, unreachable engine or API, state file
//! locked by another controller).

mod apply;
mod attach;
mod clients;
mod common;
mod convert;
mod db;
mod delete;
mod describe;
mod diff;
mod events;
mod exec;
mod explain;
mod get;
mod logs;
mod operate;
mod remote;
mod rollout;
mod secret;
mod sync;
mod terminal;
mod up;
mod validate;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub(crate) use common::{
    container_of, default_token_path, load_or_create_token, object_key, object_ref,
    open_existing_store, open_store, parse_duration, print_invalid, print_manifest_errors,
    print_output, read_token, reconciler, ReconcileArgs, StateArgs,
};

#[derive(Parser, Debug)]
#[command(
    name = "dockhand",
    version,
    about = "Declarative containers for a Docker host, kept converged"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    state: StateArgs,
    /// How log lines are written to stderr: `text` (coloured on a terminal only) or `json`
    /// (one object per line, for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "DOCKHAND_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// What objects become on the engine: `auto` (swarm services when the engine manages a
    /// swarm, containers otherwise), `docker` (containers, even on a swarm manager) or `swarm`
    /// (services; an error on an engine that manages no swarm).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "DOCKHAND_ENGINE"
    )]
    engine: crate::engine::docker::EngineMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// Attach to a server's main process (its terminal, with tty and stdin); detach with
    /// ctrl-p,ctrl-q.
    Attach(attach::AttachArgs),
    /// Managed databases: `db url NAME` prints the full connection URL.
    Db(db::DbArgs),
    /// Secrets in git: `secret encrypt -r age1… [FILE]` prints a Secret's `encrypted:` value;
    /// `secret keygen -o FILE` makes the controller's identity.
    Secret(secret::SecretArgs),
    /// Store objects from files, a directory or stdin as the API source; a controller applies them.
    Apply(apply::ApplyArgs),
    /// Delete an object that was applied (files and table rows are removed at their source).
    Delete(delete::DeleteArgs),
    /// A route's per-client routes: `clients list ROUTE`, `set ROUTE CLIENT SERVER:PORT`,
    /// `delete ROUTE CLIENT`.
    Clients(clients::ClientsArgs),
    /// Stop and remove what the instance runs (or the objects named, or selected), dependents
    /// first; they stay stopped, through reloads, until `start`. Volumes stay unless `--volumes`.
    Down(operate::DownArgs),
    /// Stop objects (their containers are removed; they stay stopped until `start`).
    Stop(operate::TargetArgs),
    /// Start stopped objects again.
    Start(operate::TargetArgs),
    /// Replace objects' containers with the same spec, in their update order (StartFirst keeps
    /// serving).
    Restart(operate::TargetArgs),
    /// Set a server's replicas (objects of the API source; others say which file to edit).
    Scale(operate::ScaleArgs),
    /// Revisions: `rollout history NAME`, `rollout undo NAME [--to-revision N]`,
    /// `rollout status NAME` (waits until the current revision is Ready).
    Rollout(rollout::RolloutArgs),
    /// Wait until an object is Ready, Completed or Deleted (exit 1 on timeout or failure).
    Wait(wait::WaitArgs),
    /// Document a kind or a field of it, from the schema: `explain server.spec.healthCheck`.
    Explain(explain::ExplainArgs),
    /// Check manifests and compose files offline (no engine, no state file); exit 1 on errors.
    Validate(validate::ValidateArgs),
    /// Write the dockhand manifests a compose file translates to (what the compose source runs).
    Convert(convert::ConvertArgs),
    /// Print a shell completion script: `source <(dockhand completion bash)`.
    Completion(CompletionArgs),
    /// Print the JSON Schema of dockhand manifests (for editors' YAML language servers).
    Schema,
    /// The object names completion offers (`web`, `server/web`, `database/orders`), from the
    /// state file; nothing when there is none.
    #[command(name = "__names", hide = true)]
    Names,
}

impl Command {
    /// Hands the verb the state and instance flags, which belong to the top-level command so
    /// that they may come before the verb as well as after it.
    fn set_state(&mut self, state: StateArgs) {
        let slot = match self {
            Command::Up(a) => &mut a.common.state,
            Command::Sync(a) => &mut a.common.state,
            Command::Diff(a) => &mut a.common.state,
            Command::Get(a) => &mut a.state,
            Command::Describe(a) => &mut a.state,
            Command::Events(a) => &mut a.state,
            Command::Logs(a) => &mut a.state,
            Command::Exec(a) => &mut a.state,
            Command::Attach(a) => &mut a.state,
            Command::Db(a) => &mut a.state,
            Command::Apply(a) => &mut a.state,
            Command::Delete(a) => &mut a.state,
            Command::Clients(a) => &mut a.state,
            Command::Wait(a) => &mut a.state,
            Command::Down(a) => &mut a.target.state,
            Command::Stop(a) | Command::Start(a) | Command::Restart(a) => &mut a.state,
            Command::Scale(a) => &mut a.state,
            Command::Rollout(a) => &mut a.state,
            Command::Explain(_)
            | Command::Secret(_)
            | Command::Validate(_)
            | Command::Convert(_)
            | Command::Completion(_)
            | Command::Schema => return,
            Command::Names => return,
        };
        *slot = state;
    }

    /// Every verb but the controller: a reader that goes away (`| head`, `2>&1 | true`) ends
    /// it quietly, as it ends `cat`, instead of a panic on the failed write (exit 101). `up`
    /// keeps running whoever stops reading its output.
    fn ends_on_a_closed_pipe(&self) -> bool {
        !matches!(self, Command::Up(_))
    }
}

/// Restores the default action of SIGPIPE (Rust ignores it, so writes fail with EPIPE and
/// `println!` panics).
fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before other threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    let mut cli = Cli::parse();
    cli.command.set_state(cli.state.clone());
    let state = cli.state.clone();
    if cli.command.ends_on_a_closed_pipe() {
        default_sigpipe();
    }
    init_tracing(cli.log_format);
    crate::engine::docker::set_mode(cli.engine);
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
            Command::Attach(a) => attach::run(a).await,
            Command::Db(a) => db::run(a).await,
            Command::Secret(a) => secret::run(a).await,
            Command::Apply(a) => apply::run(a).await,
            Command::Delete(a) => delete::run(a).await,
            Command::Clients(a) => clients::run(a).await,
            Command::Convert(a) => convert::run(a).await,
            Command::Validate(a) => validate::run(a).await,
            Command::Explain(a) => explain::run(a).await,
            Command::Wait(a) => wait::run(a).await,
            Command::Down(a) => operate::down(a).await,
            Command::Stop(a) => operate::stop(a).await,
            Command::Start(a) => operate::start(a).await,
            Command::Restart(a) => operate::restart(a).await,
            Command::Scale(a) => operate::scale(a).await,
            Command::Rollout(a) => rollout::run(a).await,
            Command::Completion(a) => {
                use clap::CommandFactory;
                let mut cmd = Cli::command();
                clap_complete::generate(a.shell, &mut cmd, "dockhand", &mut std::io::stdout());
                print!("{}", completion_of_names(a.shell));
                Ok(ExitCode::SUCCESS)
            }
            Command::Names => {
                names(&state).await;
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

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKHAND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        // Colour codes only where a person reads them: a file or a pipe gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Verbs whose arguments are object names, for completion.
const NAMED_VERBS: &str =
    "logs exec attach describe get stop start restart scale wait delete rollout down";

/// What completion adds to clap's script for object names: a wrapper that offers the state
/// file's objects (`dockhand __names`) after the verbs that take them.
fn completion_of_names(shell: clap_complete::Shell) -> String {
    match shell {
        clap_complete::Shell::Bash => format!(
            r#"
# Object names, from the state file (honours DOCKHAND_STATE and DOCKHAND_INSTANCE).
_dockhand_with_names() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" verb="${{COMP_WORDS[1]}}"
    case " {NAMED_VERBS} " in
        *" $verb "*)
            if [[ $COMP_CWORD -ge 2 && "$cur" != -* ]]; then
                COMPREPLY=( $(compgen -W "$(dockhand __names 2>/dev/null)" -- "$cur") )
                [[ ${{#COMPREPLY[@]}} -gt 0 ]] && return 0
            fi
            ;;
    esac
    _dockhand "$@"
}}
complete -F _dockhand_with_names -o bashdefault -o default dockhand
"#
        ),
        clap_complete::Shell::Fish => format!(
            "\n# Object names, from the state file.\ncomplete -c dockhand -n '__fish_seen_subcommand_from {NAMED_VERBS}' -f -a '(dockhand __names 2>/dev/null)'\n"
        ),
        _ => String::new(),
    }
}

/// Prints the names completion offers; quietly nothing without a state file.
async fn names(state: &StateArgs) {
    if !state.state.exists() {
        return;
    }
    let Ok(store) = crate::store::Store::open(&state.state).await else {
        return;
    };
    let Ok(objects) = store.objects(&state.instance).await else {
        return;
    };
    for s in objects {
        let key = s.object.key();
        if key.kind == crate::manifest::Kind::Server {
            println!("{}", key.name);
        }
        println!("{key}");
    }
}
