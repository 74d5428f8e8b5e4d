//! A narrow view of the container engine: exactly the calls the reconciler needs, no more.
//!
//! Keeping the surface small keeps the planner testable without an engine and makes the
//! engine-facing cost of a pass obvious (a no-op pass is one `list`). What people ask of a
//! container (logs, exec) is a trait of its own, `Attach`, that the reconciler never sees.

mod attach;
pub mod docker;
pub mod fake;
pub mod job;
pub mod labels;

use std::collections::HashMap;
use std::future::Future;

use futures_util::stream::BoxStream;

use crate::manifest::fields::{Protocol, PullPolicy};
use crate::manifest::ObjectKey;

pub use attach::{Attach, ExecSession, Output};
pub use docker::DockerEngine;
pub use job::{Job, JobOutput, Jobs};

/// The container that serves `key`, from one listing of this instance: its canonically named
/// container if there is one, else a running one (a StartFirst server's names carry a hash,
/// and during an update two containers serve it), else any. The API and the CLI both ask this.
pub async fn serving_container<E: Engine>(
    engine: &E,
    instance: &str,
    key: &ObjectKey,
) -> Result<Option<Observed>, EngineError> {
    let canonical = labels::container_name(instance, key.kind, &key.name);
    let mut mine: Vec<Observed> = engine
        .list(instance)
        .await?
        .into_iter()
        .filter(|c| c.key.as_ref() == Some(key))
        .collect();
    mine.sort_by_key(|c| {
        (
            c.name != canonical,
            c.state != State::Running,
            c.name.clone(),
        )
    });
    Ok(mine.into_iter().next())
}

/// What failed when talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the docker engine: {message}")]
    Unavailable { message: String },
    #[error("image {image} is not present and {reason}")]
    ImageMissing { image: String, reason: String },
    #[error("container name {name} is taken by a container this instance does not own; rename or remove it")]
    NameConflict { name: String },
    #[error(
        "volume {name} exists but this instance does not own it; it is never adopted or removed"
    )]
    VolumeConflict { name: String },
    #[error("building image {image} failed: {output}")]
    BuildFailed { image: String, output: String },
    #[error("host port {port}/{protocol} is already in use by {holder}: free it, or publish another host port (or none, and let the engine pick)")]
    PortInUse {
        port: u16,
        protocol: &'static str,
        holder: String,
    },
    #[error("{op} {target}: {message}")]
    Engine {
        op: &'static str,
        target: String,
        message: String,
    },
}

impl EngineError {
    /// Whether retrying soon may help (the engine went away) rather than the input being wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EngineError::Unavailable { .. })
    }
}

/// Life state of a container, as the engine lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Exited { code: Option<i64> },
    Dead,
    Removing,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub container: u16,
    pub protocol: Protocol,
    pub host: u16,
}

/// One machine of the cluster the engine belongs to (the engine itself when standalone).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager`, `worker`, or `standalone` for an engine outside any swarm.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    /// The swarm's leading manager.
    pub leader: bool,
    pub address: String,
    pub engine_version: String,
    /// Tasks (or, standalone, containers) running on it.
    pub tasks: usize,
}

/// Health as the engine reports it for containers with a healthcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One of this instance's containers, as one listing reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub id: String,
    pub name: String,
    /// The object the labels name; `None` when the labels are incomplete (then it is an orphan).
    pub key: Option<ObjectKey>,
    pub spec_hash: Option<String>,
    pub state: State,
    pub ports: Vec<PublishedPort>,
    /// `None` when the container has no healthcheck.
    pub health: Option<Health>,
    /// Objects this container's object depended on when it was created (for removal order).
    pub depends_on: Vec<ObjectKey>,
    /// A data volume to remove with this container, when its object says so.
    pub delete_volume: Option<String>,
    /// Its address on its (first) network, for routes.
    pub ip: Option<std::net::Ipv4Addr>,
    /// The identity of the state file whose controller created it; `None` for containers
    /// made before dockhand labelled them so (adopted as this controller's own).
    pub state_id: Option<String>,
    /// A swarm service's tasks (`None` for a container).
    pub tasks: Option<Tasks>,
    /// The image it was created from, as the listing names it (a container's only).
    pub image: Option<String>,
}

impl Observed {
    /// What a readiness proof holds for: the container, or a service's running tasks (a task
    /// the swarm replaced has to prove itself again, though the service stays).
    pub fn run_id(&self) -> String {
        let Some(tasks) = &self.tasks else {
            return self.id.clone();
        };
        let mut running: Vec<&str> = tasks
            .list
            .iter()
            .filter(|t| t.state == "running")
            .map(|t| t.id.as_str())
            .collect();
        running.sort_unstable();
        format!("{}/{}", self.id, running.join(","))
    }
}

/// What a swarm says of one service's tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tasks {
    pub running: u64,
    pub desired: u64,
    /// The current tasks (desired to run, or the last of each slot), oldest slot first.
    pub list: Vec<TaskInfo>,
    /// The swarm rolled (or is rolling) the service's last update back: what it says of it.
    pub rolled_back: Option<String>,
    /// That rollback is still under way (its tasks are being replaced).
    pub rolling_back: bool,
    /// An update (or rollback) the swarm is carrying out, what it says of it.
    pub updating: Option<String>,
    /// An update (or rollback) the swarm paused on a failure, what it says of it.
    pub update_failed: Option<String>,
}

/// One task of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    pub id: String,
    pub slot: u64,
    pub node: String,
    /// The node's address (where the service's host-mode ports are published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `new`, `pending`, `assigned`, `preparing`, `starting`, `running`, `complete`,
    /// `failed`, `shutdown`, `rejected`, `orphaned` or `remove`.
    pub state: String,
    pub desired: String,
    pub message: String,
    pub error: Option<String>,
    pub exit_code: Option<i64>,
    /// When the task reached its state (RFC 3339).
    pub since: String,
}

impl Observed {
    /// What a container's labels say about it: its object, spec hash, dependencies and the
    /// volume to remove with it. Ports, health and address are the listing's to fill in.
    pub fn from_labels(
        id: String,
        name: String,
        state: State,
        container_labels: &HashMap<String, String>,
    ) -> Observed {
        Observed {
            id,
            name,
            key: labels::object_key(container_labels),
            spec_hash: container_labels.get(labels::SPEC_HASH).cloned(),
            state,
            ports: Vec::new(),
            health: None,
            depends_on: labels::depends_on(container_labels),
            delete_volume: container_labels.get(labels::DELETE_VOLUME).cloned(),
            ip: None,
            state_id: container_labels.get(labels::STATE_ID).cloned(),
            tasks: None,
            image: None,
        }
    }
}

/// A network this instance created, as one listing reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub spec_hash: Option<String>,
    /// When the engine created it (RFC 3339), to keep the oldest of same-named networks.
    pub created: String,
}

/// A network to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub labels: HashMap<String, String>,
    /// No route out of the network.
    pub internal: bool,
    /// The driver's options.
    pub options: HashMap<String, String>,
    /// Where a subnet is picked when none is named (`--subnet-pool`); `None`: the engine's
    /// default address pools.
    pub pool: Option<crate::kinds::network::SubnetPool>,
}

/// Everything needed to create one container. Built from a spec by the kind's module.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub pull_policy: PullPolicy,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    /// Variables whose values are secrets: plain `env` on one host; on a swarm, a swarm secret
    /// mounted under `/run/secrets/` with `<VAR>_FILE` naming it (the official images'
    /// convention), so the value is not in the service's spec for anyone who can inspect it.
    pub secret_env: Vec<SecretEnv>,
    /// Files under `/run/secrets`: copied into a container before it starts (never through a
    /// host file); on a swarm, swarm secrets.
    pub secret_files: Vec<SecretFile>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<Mount>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    /// Reserved memory (bytes) and CPUs (nano-CPUs); a single host uses only the memory, as a
    /// soft limit.
    pub memory_reservation: Option<i64>,
    pub cpu_reservation: Option<i64>,
    pub stop_timeout: Option<i64>,
    pub labels: HashMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    /// The signal that stops it (the image's, when `None`).
    pub stop_signal: Option<String>,
    /// `host:address` entries for /etc/hosts (`host-gateway` is the engine's host).
    pub extra_hosts: Vec<String>,
    /// `host` or `none` instead of networks.
    pub network_mode: Option<String>,
    /// The engine networks to join, the first at creation and the others before it starts.
    pub endpoints: Vec<Endpoint>,
    pub options: ContainerOptions,
    /// Build the image (tagged `image`) from source when the engine lacks it.
    pub build: Option<BuildSpec>,
    /// What a swarm service adds to the container (a single host ignores it).
    pub service: ServiceOptions,
}

/// One secret environment variable; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub var: String,
    pub value: String,
}

/// One secret file, `/run/secrets/<name>`; its `Debug` never shows the value.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretFile {
    pub name: String,
    pub value: std::sync::Arc<crate::kinds::secret::Value>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.var)
    }
}

impl ContainerSpec {
    /// The environment as a single container takes it: `env` and the secret variables.
    pub fn env_with_secrets(&self) -> Vec<String> {
        let secrets = self
            .secret_env
            .iter()
            .map(|s| format!("{}={}", s.var, s.value));
        self.env.iter().cloned().chain(secrets).collect()
    }
}

/// The parts of a swarm service that are not one container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceOptions {
    pub replicas: u64,
    pub restart: crate::manifest::server::RestartPolicy,
    pub restart_delay: Option<std::time::Duration>,
    pub restart_window: Option<std::time::Duration>,
    pub max_restarts: Option<u32>,
    pub update: ServiceUpdate,
    pub constraints: Vec<String>,
    /// Node attributes to spread over, in order.
    pub spread: Vec<String>,
    pub max_replicas_per_node: Option<u32>,
    /// The name resolves to the tasks' addresses rather than one virtual address.
    pub dnsrr: bool,
    /// Its one task stays on one node (a database's, whose volume is local to that node): the
    /// node the controller's engine runs on when first created, kept on every update.
    pub pinned: bool,
    /// The service's own spec hash (with what only a service has, such as its replica count),
    /// for its labels; the task containers carry the container's.
    pub spec_hash: Option<String>,
}

/// How a swarm replaces a service's tasks on an update.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceUpdate {
    pub start_first: bool,
    pub parallelism: Option<u32>,
    pub delay: Option<std::time::Duration>,
    /// Roll back to the previous spec when the update fails within `monitor`.
    pub rollback: bool,
    pub monitor: Option<std::time::Duration>,
}

/// An image to build: the tag it gets and the context to send.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSpec {
    /// The tag, derived from a digest of everything the build sees.
    pub tag: String,
    pub context: std::path::PathBuf,
    /// Relative to the context.
    pub dockerfile: String,
    pub args: HashMap<String, String>,
    pub target: Option<String>,
    /// The context's files after `.dockerignore`, relative to it.
    pub files: std::sync::Arc<Vec<String>>,
    /// One more name for the built image (the manifest's `image`).
    pub also: Option<String>,
    /// The owner labels the image carries, so it can be told apart (and cleaned up).
    pub labels: HashMap<String, String>,
}

impl BuildSpec {
    /// Writes the context as the tar archive the engine's build API takes, file by file (never
    /// held whole). A link goes as a link, as the engine's own client sends it, and is
    /// resolved by the build inside the context: no file outside the context is ever read.
    /// Files are opened below the context by descriptor; sparse files go as plain ones.
    pub fn write_archive<W: std::io::Write>(&self, w: W) -> std::io::Result<()> {
        let mut tar = tar::Builder::new(w);
        tar.follow_symlinks(false);
        tar.sparse(false);
        let roots = [self.context.clone()];
        for f in self.files.iter() {
            let path = self.context.join(f);
            let mut header = tar::Header::new_gnu();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, f, std::fs::read_link(&path)?)?;
                continue;
            }
            // The header is the opened file's: what is sent is what was checked.
            let (file, meta) = crate::hostfs::open_confined(&path, &roots)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            tar.append_data(&mut header, f, file)?;
        }
        tar.into_inner()?.flush()
    }
}

/// The rest of what a container may be given (all off by default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerOptions {
    pub hostname: Option<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub devices: Vec<Device>,
    pub sysctls: HashMap<String, String>,
    pub shm_size: Option<i64>,
    /// Mount point → mount options.
    pub tmpfs: HashMap<String, String>,
    /// Name, soft and hard limit.
    pub ulimits: Vec<(String, i64, i64)>,
    pub init: bool,
    pub read_only_root: bool,
    pub security_opt: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub pids_limit: Option<i64>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

/// A host device in the container.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

/// A container on one engine network: a static address and the names it answers to there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub network: String,
    pub ip: Option<std::net::Ipv4Addr>,
    pub aliases: Vec<String>,
}

/// The engine's healthcheck for a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub retries: u32,
    pub start_period: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PortBinding {
    pub container: u16,
    pub host: u16,
    /// The host address to publish on (every address when `None`).
    pub host_ip: Option<String>,
    pub protocol: Protocol,
    /// On a swarm, whether only the nodes running a task publish it (not the routing mesh).
    pub host_mode: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    /// A named volume (created with `volume_labels` if missing) or a host path.
    pub volume: bool,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// SELinux relabelling by the engine (`z` or `Z`); such a mount goes as a bind string,
    /// the only form the engine relabels.
    pub relabel: Option<&'static str>,
}

/// A container event that may need a reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineEvent {
    pub id: String,
    pub action: String,
    pub key: Option<ObjectKey>,
}

/// A container's resource use, as one engine sample reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContainerStats {
    pub cpu_ns: u64,
    pub memory: u64,
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// Removes `old`, then creates and starts a container from `spec`: `Engine::replace` for an
/// engine whose objects are containers.
pub async fn recreate<E: Engine>(
    engine: &E,
    old: &str,
    spec: &ContainerSpec,
) -> Result<String, EngineError> {
    engine.remove(old).await?;
    let id = engine.create(spec).await?;
    engine.start(&id).await?;
    Ok(id)
}

/// The engine as the reconciler sees it. Implementations must be cheap to share.
pub trait Engine: job::Jobs + Clone + Send + Sync + 'static {
    /// All containers (running or not) that carry this instance's labels: one engine call.
    fn list(
        &self,
        instance: &str,
    ) -> impl Future<Output = Result<Vec<Observed>, EngineError>> + Send;

    /// Makes the image available according to the pull policy.
    fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// The registry digest the engine's local copy of `image` was pulled at, if it has one
    /// from that repository.
    fn local_digest(
        &self,
        _image: &str,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send {
        std::future::ready(Ok(None))
    }

    /// The digest `image`'s tag points at in its registry now (asked through the engine, with
    /// its registry credentials).
    fn registry_digest(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<String, EngineError>> + Send {
        std::future::ready(Err(EngineError::Engine {
            op: "ask the registry about",
            target: image.to_owned(),
            message: "this engine reaches no registry".into(),
        }))
    }

    /// Pulls `reference` (a tag or a digest).
    fn pull_image(&self, reference: &str) -> impl Future<Output = Result<(), EngineError>> + Send {
        self.ensure_image(reference, PullPolicy::Always)
    }

    /// Builds `spec.tag` unless the engine has it already (then tags it `spec.also` too).
    fn ensure_built(
        &self,
        spec: &BuildSpec,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Creates a named volume with labels if it does not exist. An existing one is used only if
    /// it carries the same instance label; otherwise `VolumeConflict`.
    fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Creates (does not start) a container; returns its id.
    fn create(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;

    /// Starts a container; starting a running one is not an error.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Restarts a container (stop with its own grace period, then start).
    fn restart(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Stops (with the container's own grace period) and removes a container, keeping its
    /// volumes. Removing a container that is already gone is not an error.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Like `remove`, with at most `grace` between the stop signal and the kill: for a
    /// container that never became ready, whose own grace period (a database's is 30 s) would
    /// only delay the retry.
    fn remove_within(
        &self,
        id: &str,
        _grace: std::time::Duration,
    ) -> impl Future<Output = Result<(), EngineError>> + Send {
        self.remove(id)
    }

    /// The labels of a named volume, or `None` if there is no such volume (whoever owns it).
    fn volume_labels(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<HashMap<String, String>>, EngineError>> + Send;

    /// Removes a named volume; one that is already gone is not an error.
    fn remove_volume(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Whether objects become swarm services (not containers) on this engine.
    fn is_swarm(&self) -> bool {
        false
    }

    /// The address a container's `host-gateway` stands for (the default bridge network's
    /// gateway), if the engine has one.
    fn host_gateway(
        &self,
    ) -> impl Future<Output = Result<Option<std::net::IpAddr>, EngineError>> + Send {
        async { Ok(None) }
    }

    /// Replaces `old` by a container (or service) made from `spec`: removes it, then creates
    /// and starts the new one. A swarm updates the service in place instead.
    fn replace(
        &self,
        old: &str,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, EngineError>> + Send {
        recreate(self, old, spec)
    }

    /// The machines the engine spans: a swarm's nodes, or the engine itself.
    fn nodes(&self) -> impl Future<Output = Result<Vec<Node>, EngineError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The networks this instance created.
    fn list_networks(
        &self,
        instance: &str,
    ) -> impl Future<Output = Result<Vec<NetworkInfo>, EngineError>> + Send;

    /// Whether a network of that name exists at all (anyone's).
    fn network_exists(&self, name: &str) -> impl Future<Output = Result<bool, EngineError>> + Send;

    fn create_network(
        &self,
        config: &NetworkConfig,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes a network; one that is already gone is not an error.
    fn remove_network(&self, name: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// The ids of the containers attached to a network.
    fn network_containers(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<String>, EngineError>> + Send;

    /// Joins a container to `endpoint.network` with its address and aliases.
    fn connect_network(
        &self,
        container: &str,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    fn disconnect_network(
        &self,
        name: &str,
        container: &str,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Container events for this instance, until the engine goes away.
    fn events(&self, instance: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>>;

    /// Returns once the engine has finished recording a container's last state change. The
    /// Docker engine publishes `die` before its listing shows the container stopped (it
    /// unmounts first: 150-300 ms on fuse-overlayfs), while its inspection waits on the
    /// container's lock, which that handling holds: a listing after this shows the exit.
    fn settled(&self, _id: &str) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// One sample of a running container's resource use; `None` where the engine has none.
    fn stats(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<ContainerStats>, EngineError>> + Send {
        std::future::ready(Ok(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_task_is_a_new_run_of_its_service_and_a_container_is_its_own() {
        let mut c =
            Observed::from_labels("c1".into(), "db".into(), State::Running, &HashMap::new());
        assert_eq!(c.run_id(), "c1");
        let task = |id: &str, state: &str| TaskInfo {
            id: id.into(),
            state: state.into(),
            ..TaskInfo::default()
        };
        c.tasks = Some(Tasks {
            list: vec![task("t1", "running")],
            ..Tasks::default()
        });
        let first = c.run_id();
        c.tasks = Some(Tasks {
            list: vec![task("t2", "running")],
            ..Tasks::default()
        });
        assert_ne!(c.run_id(), first);
        assert!(c.run_id().starts_with("c1/"));
    }
}
