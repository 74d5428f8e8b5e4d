//! What the verbs share: the state and instance flags, object references, the engine and
//! store connections, and how errors and output are printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::engine::labels::DEFAULT_INSTANCE;
use crate::engine::{DockerEngine, Output};
use crate::lifecycle::BackoffPolicy;
use crate::manifest::replicas::check_object_name;
use crate::manifest::{check_dns_label, Kind, ManifestError, ObjectKey};
use crate::policy::HostPolicy;
use crate::reconcile::{Options, Reconciler};
use crate::store::Store;

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

impl StateArgs {
    /// The sources a verb that writes the API source validates against: the state file's
    /// tables (the directory is the controller's to read).
    pub(crate) fn api_sources(&self, store: Store) -> crate::source::Sources {
        crate::source::Sources {
            dir: None,
            store,
            instance: self.instance.clone(),
            allow_empty: false,
            compose: Default::default(),
            git: Vec::new(),
        }
    }
}

impl Default for StateArgs {
    /// The defaults the flags have; `main` replaces them with what was parsed (the flags are
    /// the top-level command's, so they go before or after any verb).
    fn default() -> Self {
        Self {
            state: PathBuf::from("./dockhand.db"),
            instance: DEFAULT_INSTANCE.to_owned(),
        }
    }
}

/// `server/NAME`, or a bare `NAME` meaning a server.
pub(crate) fn object_ref(s: &str) -> anyhow::Result<ObjectKey> {
    crate::manifest::replicas::parse_object_ref(s).map_err(anyhow::Error::msg)
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
    state: &StateArgs,
    key: &ObjectKey,
) -> anyhow::Result<String> {
    if let Some(c) = crate::engine::serving_container(engine, &state.instance, key).await? {
        return Ok(c.id);
    }
    // No container: an object no source defines is "not found", not "not started yet".
    if state.state.exists() {
        let store = open_store(&state.state).await?;
        let known = store
            .objects(&state.instance)
            .await?
            .iter()
            .any(|o| o.object.key() == *key);
        if !known {
            anyhow::bail!(
                "{key} not found (no source of instance {} defines it)",
                state.instance
            );
        }
    }
    anyhow::bail!("{key} has no container yet")
}

/// Flags shared by the verbs that reconcile.
#[derive(Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Directory of manifests, read recursively; `compose.yaml` (and the other names Compose
    /// reads) in it are compose projects.
    #[arg(long, env = "DOCKHAND_MANIFESTS", default_value = "./manifests")]
    pub manifests: PathBuf,
    /// A compose file to read as a project (repeatable); its directory may be bound from
    /// like the manifests directory.
    #[arg(long = "compose", value_name = "FILE")]
    pub compose_files: Vec<PathBuf>,
    /// Activate the compose services of this profile (repeatable; COMPOSE_PROFILES adds more).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// A git repository to read manifests from (repeatable), fetched with the git CLI at start
    /// and every --git-interval; a failed fetch keeps the last good commit.
    #[arg(long = "git", value_name = "URL")]
    pub git: Vec<String>,
    /// The branch, tag or commit of each --git, in the same order (a single value applies to
    /// every --git; default: the remote's HEAD).
    #[arg(long = "git-ref", value_name = "REF")]
    pub git_refs: Vec<String>,
    /// The folder of each --git to read, in the same order (a single value applies to every
    /// --git; default: the repository's root).
    #[arg(long = "git-path", value_name = "DIR")]
    pub git_paths: Vec<String>,
    /// A file whose first line (`TOKEN` or `USER:TOKEN`) logs in to each --git repository over
    /// HTTP(S), in the same order (a single one applies to every --git). Read at each fetch,
    /// never shown.
    #[arg(long = "git-token-file", value_name = "FILE")]
    pub git_token_files: Vec<PathBuf>,
    /// An SSH private key that logs in to each --git repository over SSH, in the same order (a
    /// single one applies to every --git); the host key is learnt on first use.
    #[arg(long = "git-ssh-key", value_name = "FILE")]
    pub git_ssh_keys: Vec<PathBuf>,
    /// How often `up` fetches the --git repositories.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub git_interval: Duration,
    #[arg(skip)]
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
    /// How long an object must be gone from its file or table row before its containers are
    /// removed (a file being rewritten removes nothing); API deletions act at once.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub prune_delay: Duration,
    /// Networks that name no subnet take one from this pool (a /24 each, or the size after a
    /// second slash: 10.213.0.0/16/26) instead of one of the engine's ~31 default pools, so
    /// that hundreds of instances and projects fit.
    #[arg(long, value_name = "CIDR", env = "DOCKHAND_SUBNET_POOL", value_parser = crate::kinds::network::SubnetPool::parse)]
    pub subnet_pool: Option<crate::kinds::network::SubnetPool>,
    /// Replace this instance's containers that another state file's controller created (after
    /// moving the controller to a new state file). Without it they are left alone.
    #[arg(long)]
    pub take_over: bool,
    /// Host policy: allow bind mounts of host paths under PREFIX (repeatable). Without it,
    /// manifests may bind only files inside the manifests directory.
    #[arg(
        long = "allow-host-path",
        value_name = "PREFIX",
        env = "DOCKHAND_ALLOW_HOST_PATH",
        value_delimiter = ','
    )]
    pub allow_host_paths: Vec<PathBuf>,
    /// Host policy: allow bind mounts that expose the engine's socket (root on the host).
    #[arg(long, env = "DOCKHAND_ALLOW_ENGINE_SOCKET")]
    pub allow_engine_socket: bool,
    /// Host policy: allow `network: host` (the host's network stack).
    #[arg(long, env = "DOCKHAND_ALLOW_HOST_NETWORK")]
    pub allow_host_network: bool,
    /// Host policy: allow `privileged: true` (root on the host).
    #[arg(long, env = "DOCKHAND_ALLOW_PRIVILEGED")]
    pub allow_privileged: bool,
    /// Host policy: allow `devices` under PREFIX, like /dev/fuse (repeatable).
    #[arg(
        long = "allow-device",
        value_name = "PREFIX",
        env = "DOCKHAND_ALLOW_DEVICE",
        value_delimiter = ','
    )]
    pub allow_devices: Vec<PathBuf>,
    /// Host policy: allow `capAdd` of CAP beyond a default container's, like NET_ADMIN
    /// (repeatable; ALL allows any).
    #[arg(
        long = "allow-capability",
        value_name = "CAP",
        env = "DOCKHAND_ALLOW_CAPABILITY",
        value_delimiter = ','
    )]
    pub allow_capabilities: Vec<String>,
    /// Host policy: allow `securityOpt` entries that lift confinement (seccomp=unconfined,
    /// apparmor=unconfined, label=disable, systempaths=unconfined).
    #[arg(long, env = "DOCKHAND_ALLOW_UNCONFINED")]
    pub allow_unconfined: bool,
    /// Host policy: let a Secret read the controller's variable NAME (repeatable; NAME* allows
    /// a prefix). Without it, `env:` secrets are refused.
    #[arg(
        long = "allow-secret-env",
        value_name = "NAME",
        env = "DOCKHAND_ALLOW_SECRET_ENV",
        value_delimiter = ','
    )]
    pub allow_secret_env: Vec<String>,
    /// The age identity file (AGE-SECRET-KEY-1… lines) that opens encrypted Secrets (repeatable).
    #[arg(
        long = "age-identity",
        value_name = "FILE",
        env = "DOCKHAND_AGE_IDENTITY"
    )]
    pub age_identities: Vec<PathBuf>,
}

impl ReconcileArgs {
    /// Every source of desired state: the directory and the state file's tables.
    pub fn sources(&self, store: Store) -> crate::source::Sources {
        crate::source::Sources {
            dir: Some(self.manifests.clone()),
            store,
            instance: self.state.instance.clone(),
            allow_empty: self.allow_empty,
            compose: crate::source::directory::ComposeFiles {
                files: self.compose_files.clone(),
                options: crate::compose::Options {
                    profiles: self.profiles.clone(),
                    // A controller's environment is not the manifest writer's to read, and the
                    // files a compose file names lie where the host policy allows.
                    allowed_env: Some(self.allow_secret_env.clone()),
                    confine: Some(self.options().host_policy.roots(Some(&self.manifests))),
                    missing_binds_warn: false,
                },
            },
            git: self.git_sources(),
        }
    }

    /// `--git` with its `--git-ref` and `--git-path` (the i-th of each, or the only one).
    fn git_sources(&self) -> Vec<crate::source::git::GitSource> {
        use crate::source::git::Credentials;
        fn nth<T: Clone>(values: &[T], i: usize) -> Option<T> {
            values
                .get(i)
                .or(if values.len() == 1 {
                    values.first()
                } else {
                    None
                })
                .cloned()
        }
        self.git
            .iter()
            .enumerate()
            .map(|(i, url)| {
                // A key for SSH remotes, a token for the others.
                let ssh = url.starts_with("ssh://")
                    || (!url.contains("://") && url.contains('@') && url.contains(':'));
                let credentials = match (nth(&self.git_token_files, i), nth(&self.git_ssh_keys, i))
                {
                    (_, Some(key)) if ssh => Some(Credentials::SshKey(key)),
                    (Some(token), _) => Some(Credentials::Token(token)),
                    (None, Some(key)) => Some(Credentials::SshKey(key)),
                    (None, None) => None,
                };
                crate::source::git::GitSource::new(
                    url,
                    nth(&self.git_refs, i).as_deref(),
                    nth(&self.git_paths, i).as_deref().unwrap_or(""),
                    &self.state.state,
                )
                .with_credentials(credentials)
            })
            .collect()
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
            host_policy: HostPolicy {
                // A compose file named by the operator may bind its own project's files.
                host_paths: self
                    .allow_host_paths
                    .iter()
                    .cloned()
                    .chain(self.compose_files.iter().map(|f| {
                        let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
                        f.parent()
                            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                    }))
                    .collect(),
                engine_socket: self.allow_engine_socket,
                host_network: self.allow_host_network,
                privileged: self.allow_privileged,
                devices: self.allow_devices.clone(),
                capabilities: self.allow_capabilities.clone(),
                unconfined: self.allow_unconfined,
                secret_env: self.allow_secret_env.clone(),
            },
            manifests: Some(self.manifests.clone()),
            prune_delay: self.prune_delay,
            take_over: self.take_over,
            subnet_pool: self.subnet_pool.clone(),
        }
    }
}

/// Warns (never echoing them) of credentials in this process's command line: a `--git` URL
/// with a password, a `--notify` URL with a query or a password. Every user sees the command
/// line in `ps`; the token-file flags and the variables keep them out of it.
pub(crate) fn warn_of_argv_credentials() {
    use std::io::Write as _;
    for (flag, why) in argv_credentials(std::env::args()) {
        // Never a panic if stderr is closed (`up` keeps running).
        let _ = writeln!(
            std::io::stderr(),
            "warning: a {flag} URL on the command line carries {why}, which every user of this machine can read in `ps`; {}",
            match flag {
                "--git" => "give it with --git-token-file FILE instead",
                _ => "give it with --notify-file FILE or DOCKHAND_NOTIFY instead",
            }
        );
    }
}

/// The flags among `args` whose URL carries a credential, and what it carries.
fn argv_credentials(args: impl Iterator<Item = String>) -> Vec<(&'static str, &'static str)> {
    let args: Vec<String> = args.collect();
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) if f == "--git" || f == "--notify" => (f, Some(v.to_owned())),
            _ if a == "--git" || a == "--notify" => (a.as_str(), args.get(i + 1).cloned()),
            _ => continue,
        };
        let Some(value) = value else { continue };
        let flag: &'static str = if flag == "--git" { "--git" } else { "--notify" };
        let authority = value
            .split_once("://")
            .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
        if authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
        {
            out.push((flag, "a password"));
        } else if flag == "--notify" && value.contains('?') {
            out.push((flag, "a query (a token, as webhook URLs have)"));
        }
    }
    out
}

fn parse_instance(s: &str) -> Result<String, String> {
    check_dns_label(s).map(|()| s.to_owned())
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?}: {e} (expected e.g. 30s, 2m, 1h)"))
}

pub(crate) async fn open_store(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(path).await?)
}

/// The state file for a verb that only reads it: one that does not exist is an error, never
/// created (a mistyped `--state` must not answer "nothing here").
pub(crate) async fn open_existing_store(path: &Path) -> anyhow::Result<Store> {
    if !path.exists() {
        anyhow::bail!(
            "state file {} does not exist: no controller has run with it (check --state or DOCKHAND_STATE)",
            path.display()
        );
    }
    open_store(path).await
}

/// A reconciler on the engine, and the sources it reads.
pub(crate) async fn reconciler(
    args: &ReconcileArgs,
) -> anyhow::Result<(Reconciler<DockerEngine>, crate::source::Sources)> {
    // The state file and the engine at once: each takes a few milliseconds that every sync
    // would otherwise pay one after the other.
    let (store, runtime) = tokio::join!(open_store(&args.state.state), DockerEngine::connect());
    reconciler_with(args, store?, runtime?)
}

/// The state a plan reads without creating any: the state file, or (when it does not exist) an
/// empty scratch one, whose directory the caller removes with `ScratchState`'s drop.
pub(crate) async fn plan_store(path: &Path, verb: &str) -> anyhow::Result<(Store, ScratchState)> {
    if path.exists() {
        return Ok((open_store(path).await?, ScratchState(None)));
    }
    let dir = std::env::temp_dir().join(format!("dockhand-{verb}-{}", std::process::id()));
    let scratch = ScratchState(Some(dir.clone()));
    Ok((Store::open(&dir.join("state.db")).await?, scratch))
}

/// A scratch state directory, removed when dropped.
pub(crate) struct ScratchState(Option<PathBuf>);

impl Drop for ScratchState {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A reconciler on the engine with `store` as its state.
pub(crate) async fn reconciler_on(
    args: &ReconcileArgs,
    store: Store,
) -> anyhow::Result<(Reconciler<DockerEngine>, crate::source::Sources)> {
    reconciler_with(args, store, DockerEngine::connect().await?)
}

fn reconciler_with(
    args: &ReconcileArgs,
    store: Store,
    runtime: DockerEngine,
) -> anyhow::Result<(Reconciler<DockerEngine>, crate::source::Sources)> {
    let identities = age_identities(&args.age_identities)?;
    let sources = args.sources(store.clone());
    let reconciler =
        Reconciler::new(runtime, store, args.options()).with_age_identities(identities);
    Ok((reconciler, sources))
}

/// The identities in the --age-identity files; a file that cannot be read or holds none is an
/// error at start, not a Secret failing later.
pub(crate) fn age_identities(files: &[PathBuf]) -> anyhow::Result<Vec<crate::age::Identity>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--age-identity {}: {e}", f.display()))?;
        let ids = crate::age::Identity::parse_file(&text, &f.display().to_string())
            .map_err(|e| anyhow::anyhow!("--age-identity {}: {e}", f.display()))?;
        out.extend(ids);
    }
    Ok(out)
}

/// Prints the errors of the sources, each as `file:line:column: field: message`.
pub(crate) fn print_manifest_errors(errors: &[ManifestError]) {
    print_invalid(errors);
    if !errors.is_empty() {
        eprintln!(
            "objects of invalid files keep their last good spec; nothing they defined is removed"
        );
    }
}

/// Where `up` keeps the API token it generates when given none: `<state>.token`, mode 0600,
/// so that exactly the users who may read the state file may use the API.
pub fn default_token_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".token");
    PathBuf::from(name)
}

/// The API token of `up` without `--token-file`: read from `<state>.token`, or generated there
/// (32 characters from the kernel's CSPRNG) on first start. A token file others could read is
/// made private again.
pub fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let token = crate::store::generate_secret()
                .map_err(|e| anyhow::anyhow!("cannot generate an API token: {e}"))?;
            file.write_all(format!("{token}\n").as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot write token file {}: {e}", path.display()))?;
            tracing::info!("api token generated in {}", path.display());
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let made_private = crate::store::make_private(path).map_err(|e| {
                anyhow::anyhow!("cannot make token file {} private: {e}", path.display())
            })?;
            if made_private {
                tracing::warn!(
                    "token file {} was readable by others; made it private",
                    path.display()
                );
            }
            read_token(path)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot create token file {}: {e}",
            path.display()
        )),
    }
}

/// Reads a token file: its content, without surrounding whitespace, must not be empty.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

/// Prints each error as `invalid: <error>` (manifest errors read `file:line:column: field: ...`).
pub(crate) fn print_invalid<E: std::fmt::Display>(errors: &[E]) {
    for e in errors {
        eprintln!("invalid: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_command_line_are_found_and_never_repeated() {
        let args = |a: &[&str]| argv_credentials(a.iter().map(|s| (*s).to_owned()));
        assert_eq!(
            args(&["dockhand", "up", "--git", "https://u:tok@h/x.git"]),
            [("--git", "a password")]
        );
        assert_eq!(
            args(&[
                "dockhand",
                "up",
                "--notify=https://hooks.example/x?token=abc"
            ]),
            [("--notify", "a query (a token, as webhook URLs have)")]
        );
        assert!(args(&[
            "dockhand",
            "up",
            "--git",
            "https://h/x.git",
            "--notify",
            "http://h/x"
        ])
        .is_empty());
        assert!(args(&["dockhand", "up", "--git", "git@h:x.git"]).is_empty());
    }
}
