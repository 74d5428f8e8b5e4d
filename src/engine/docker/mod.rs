//! The Docker engine behind the `Engine` trait, through bollard: the calls here, the model
//! translation in `convert`, attaching (`logs`, `exec`) in `attach`.

mod attach;
mod convert;
mod job;
mod ping;
mod ports;
mod service;
mod swarm;
mod tolerant;

pub use service::SERVICE_LABEL;
pub use tolerant::{docker_host_socket, percent_encode};

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::stream::{BoxStream, StreamExt};

use self::convert::{endpoint, engine, server_error, split_reference, unavailable};
use super::{
    ContainerSpec, ContainerStats, Endpoint, Engine, EngineError, EngineEvent, NetworkConfig,
    NetworkInfo, Observed,
};
use crate::engine::labels;
use crate::manifest::fields::PullPolicy;

/// How long the engine may take to answer a call (`DOCKHAND_ENGINE_TIMEOUT`, in seconds). An
/// engine that does not answer in time is unavailable: the call fails instead of hanging the
/// pass (this engine version can wedge under churn).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The deadline of the calls that wait for a container to stop or an image to arrive.
const SLOW_DEADLINE: Duration = Duration::from_secs(600);
/// How many of a failed build's last output lines its error keeps.
const BUILD_TAIL: usize = 8;

/// A connection to the engine named by `DOCKER_HOST` (or the default socket).
#[derive(Clone)]
pub struct DockerEngine {
    /// For every call but the slow ones; answers within `DEFAULT_DEADLINE`.
    docker: Docker,
    /// For stopping, restarting and pulling, which wait on containers and registries.
    slow: Docker,
    /// The deadline of `docker`'s calls, for the requests made beside bollard.
    deadline: Duration,
    /// Whether this is Podman's Docker API, whose listing carries no health: known from the
    /// connect's ping, else asked once by the first listing (not at start-up).
    podman: std::sync::Arc<tokio::sync::OnceCell<bool>>,
    /// Objects are swarm services on this engine (a swarm manager), not containers.
    swarm: bool,
    /// The default bridge's gateway (`host-gateway`), asked once when first needed.
    gateway: std::sync::Arc<tokio::sync::OnceCell<Option<std::net::IpAddr>>>,
    /// A swarm's nodes (name, address, state), listed at most every few seconds, or when a
    /// task names a node not in it.
    nodes: service::NodeCache,
}

/// What the engine's objects become: `auto` (services on a swarm manager, containers
/// elsewhere), `docker` (containers, even on a manager) or `swarm` (services; an engine that
/// does not manage a swarm is an error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineMode {
    #[default]
    Auto,
    Docker,
    Swarm,
}

static MODE: std::sync::OnceLock<EngineMode> = std::sync::OnceLock::new();

/// Sets the mode every later connection uses (the CLI's `--engine`); the first call wins.
pub fn set_mode(mode: EngineMode) {
    let _ = MODE.set(mode);
}

/// The mode set by `set_mode`, else `DOCKHAND_ENGINE`, else `auto`.
fn mode() -> EngineMode {
    if let Some(m) = MODE.get() {
        return *m;
    }
    match std::env::var("DOCKHAND_ENGINE").as_deref() {
        Ok("docker") => EngineMode::Docker,
        Ok("swarm") => EngineMode::Swarm,
        _ => EngineMode::Auto,
    }
}

impl DockerEngine {
    /// Connects and agrees on an API version with the engine (old engines refuse newer clients).
    pub async fn connect() -> Result<Self, EngineError> {
        let deadline = std::env::var("DOCKHAND_ENGINE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_DEADLINE, Duration::from_secs);
        let mode = mode();
        let socket = tolerant::socket().filter(|s| s.exists());
        let pinged = match &socket {
            Some(s) => ping::ping(s, deadline).await,
            None => None,
        };
        let podman = std::sync::Arc::new(tokio::sync::OnceCell::new());
        let (docker, manager) = match (socket, pinged) {
            (Some(socket), Some(p)) => {
                let version = if p.api_version < *bollard::API_DEFAULT_VERSION {
                    p.api_version
                } else {
                    *bollard::API_DEFAULT_VERSION
                };
                let docker = Docker::connect_with_unix(
                    &socket.to_string_lossy(),
                    deadline.as_secs(),
                    &version,
                )
                .map_err(unavailable)?
                .with_timeout(deadline);
                let _ = podman.set(p.podman);
                (docker, p.manager == Some(true))
            }
            // Another transport (tcp, ssh), or an engine whose ping says too little.
            _ => negotiate(mode, deadline).await?,
        };
        let slow = docker.clone().with_timeout(SLOW_DEADLINE.max(deadline));
        if mode == EngineMode::Swarm && !manager {
            return Err(EngineError::Engine {
                op: "connect",
                target: "swarm".into(),
                message: "--engine swarm needs an engine that manages a swarm (run `docker swarm init`, or point DOCKER_HOST at a manager)".into(),
            });
        }
        // A manager that already runs dockhand's containers keeps them: `auto` does not turn a
        // working single-host setup into services behind its back.
        let swarm = match mode {
            EngineMode::Docker => false,
            EngineMode::Swarm => true,
            EngineMode::Auto if manager && has_dockhand_containers(&docker).await => {
                tracing::warn!("this swarm manager runs dockhand containers: objects stay containers (--engine swarm makes them services)");
                false
            }
            EngineMode::Auto => manager,
        };
        Ok(Self {
            docker,
            slow,
            deadline,
            podman,
            swarm,
            gateway: Default::default(),
            nodes: Default::default(),
        })
    }
}

/// Connects as `DOCKER_HOST` says, asking the engine's version and (unless containers are
/// asked for) its swarm role at once: whether it manages a swarm.
async fn negotiate(mode: EngineMode, deadline: Duration) -> Result<(Docker, bool), EngineError> {
    let docker = Docker::connect_with_defaults()
        .map_err(unavailable)?
        .with_timeout(deadline);
    let (negotiated, info) = tokio::join!(docker.clone().negotiate_version(), async {
        match mode {
            EngineMode::Docker => None,
            _ => Some(docker.info().await),
        }
    });
    let docker = negotiated.map_err(unavailable)?;
    let manager = match info {
        Some(info) => {
            let info = info.map_err(unavailable)?;
            info.swarm.and_then(|s| s.control_available) == Some(true)
        }
        None => false,
    };
    Ok((docker, manager))
}

/// An IPv4 bridge's gateway: the one its IPAM names, else the subnet's first address, which the
/// engine gives the bridge when none is named (its IPAM then shows the subnet only).
fn bridge_gateway(c: &bollard::models::IpamConfig) -> Option<std::net::IpAddr> {
    if let Some(g) = c.gateway.as_deref().filter(|g| !g.is_empty()) {
        return g.parse::<std::net::Ipv4Addr>().ok().map(Into::into);
    }
    let (net, bits) = c.subnet.as_deref()?.split_once('/')?;
    let net: std::net::Ipv4Addr = net.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if bits >= 31 {
        return None;
    }
    Some(std::net::Ipv4Addr::from(u32::from(net) + 1).into())
}

/// Whether the engine runs any container dockhand made (of any instance).
async fn has_dockhand_containers(docker: &Docker) -> bool {
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}=true", labels::MANAGED)],
    )]);
    let opts = ListContainersOptions {
        all: true,
        limit: Some(1),
        filters: Some(filters),
        ..Default::default()
    };
    docker
        .list_containers(Some(opts))
        .await
        .is_ok_and(|l| !l.is_empty())
}

impl DockerEngine {
    /// Whether this is Podman: as the ping said, else whether the engine's version names
    /// Podman among its components (a failed answer counts as not Podman, and is asked again
    /// next time).
    async fn is_podman(&self) -> bool {
        let asked = self
            .podman
            .get_or_try_init(|| async {
                self.docker.version().await.map(|v| {
                    v.components
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.name.to_ascii_lowercase().contains("podman"))
                })
            })
            .await;
        asked.is_ok_and(|p| *p)
    }

    /// Podman's listing says nothing of health: read it from each running container's
    /// inspection (one call per running container, on Podman only). A container that cannot
    /// be inspected keeps `None`, and the next pass asks again.
    async fn podman_health(&self, observed: &mut [Observed]) {
        use crate::engine::{Health, State};
        use bollard::models::HealthStatusEnum as H;
        for o in observed
            .iter_mut()
            .filter(|o| o.state == State::Running && o.health.is_none())
        {
            let c = match self.docker.inspect_container(&o.id, None).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("health of {}: cannot inspect it: {e}", o.name);
                    continue;
                }
            };
            let status = c.state.and_then(|s| s.health).and_then(|h| h.status);
            o.health = match status {
                Some(H::STARTING) => Some(Health::Starting),
                Some(H::HEALTHY) => Some(Health::Healthy),
                Some(H::UNHEALTHY) => Some(Health::Unhealthy),
                _ => None,
            };
        }
    }

    /// Removes the server's earlier builds that no container uses (the engine refuses to
    /// remove one in use, and the next build tries again), so a context edited a hundred times
    /// leaves one image, not a hundred. Best effort: a failure only leaves an image behind.
    async fn prune_builds(&self, current: &str) {
        let Some((repo, _)) = current.rsplit_once(':') else {
            return;
        };
        let filters = HashMap::from([("reference".to_owned(), vec![repo.to_owned()])]);
        let opts = bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(images) = self.docker.list_images(Some(opts)).await else {
            return;
        };
        let prefix = format!("{repo}:");
        for tag in images.iter().flat_map(|i| i.repo_tags.iter()) {
            if tag.as_str() == current || !tag.starts_with(&prefix) {
                continue;
            }
            let opts = bollard::query_parameters::RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            if let Err(e) = self.docker.remove_image(tag, Some(opts), None).await {
                tracing::debug!("earlier build {tag} stays: {e}");
            }
        }
    }

    async fn pull(&self, image: &str) -> Result<(), EngineError> {
        let (from_image, tag) = split_reference(image);
        let opts = CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        };
        let mut stream = self.slow.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                // A registry's refusal arrives in the stream (Podman sends every pull error
                // so): it is the image's problem, not an unreachable engine.
                let refused = match &e {
                    bollard::errors::Error::DockerStreamError { error } => Some(error.as_str()),
                    _ => server_error(&e).map(|(_, m)| m),
                };
                return Err(match refused {
                    Some(m) => EngineError::ImageMissing {
                        image: image.to_owned(),
                        reason: format!("pulling it failed: {m}"),
                    },
                    None => unavailable(e),
                });
            }
        }
        Ok(())
    }
}

impl Engine for DockerEngine {
    async fn nodes(&self) -> Result<Vec<crate::engine::Node>, EngineError> {
        DockerEngine::nodes(self).await
    }

    fn is_swarm(&self) -> bool {
        self.swarm
    }

    async fn host_gateway(&self) -> Result<Option<std::net::IpAddr>, EngineError> {
        let found = self
            .gateway
            .get_or_try_init(|| async {
                let n = self
                    .docker
                    .inspect_network("bridge", None)
                    .await
                    .map_err(|e| engine("inspect network", "bridge", e))?;
                let configs = n.ipam.and_then(|i| i.config).unwrap_or_default();
                Ok::<_, EngineError>(configs.iter().find_map(bridge_gateway))
            })
            .await?;
        Ok(*found)
    }

    async fn replace(&self, old: &str, spec: &ContainerSpec) -> Result<String, EngineError> {
        if self.swarm {
            return self.update_service(old, spec).await;
        }
        super::recreate(self, old, spec).await
    }

    async fn list(&self, instance: &str) -> Result<Vec<Observed>, EngineError> {
        if self.swarm {
            return self.list_services(instance).await;
        }
        let filters = HashMap::from([("label".to_owned(), labels::instance_filters(instance))]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        // Whether this is Podman is asked once, beside the first listing.
        let (listed, podman) =
            tokio::join!(self.docker.list_containers(Some(opts)), self.is_podman());
        let list = match listed {
            Ok(list) => list,
            // A state the model does not know (a Docker-compatible engine's own): list again
            // on the socket, reading unknown states as known ones.
            Err(
                e @ (bollard::errors::Error::JsonDataError { .. }
                | bollard::errors::Error::JsonSerdeError { .. }),
            ) => {
                let Some(socket) = tolerant::socket() else {
                    return Err(engine("list", "containers", e));
                };
                let version = self.docker.client_version().to_string();
                tolerant::list(
                    &socket,
                    &version,
                    &labels::instance_filters(instance),
                    self.deadline,
                )
                .await
                .map_err(|message| EngineError::Engine {
                    op: "list",
                    target: "containers".into(),
                    message: format!("{e}; listing again tolerantly: {message}"),
                })?
            }
            Err(e) => return Err(engine("list", "containers", e)),
        };
        let mut observed: Vec<Observed> = list
            .into_iter()
            .filter_map(|c| convert::observed(c, instance))
            .collect();
        if podman {
            self.podman_health(&mut observed).await;
        }
        Ok(observed)
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), EngineError> {
        if self.swarm {
            // Each node resolves (and pulls) the image for its own tasks.
            return Ok(());
        }
        if policy == PullPolicy::Always {
            return self.pull(image).await;
        }
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => match policy {
                PullPolicy::Never => Err(EngineError::ImageMissing {
                    image: image.to_owned(),
                    reason: "pullPolicy is Never".into(),
                }),
                _ => self.pull(image).await,
            },
            Err(e) => Err(engine("inspect image", image, e)),
        }
    }

    async fn local_digest(&self, image: &str) -> Result<Option<String>, EngineError> {
        let found = match self.docker.inspect_image(image).await {
            Ok(i) => i,
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => return Ok(None),
            Err(e) => return Err(engine("inspect image", image, e)),
        };
        let repository = convert::split_reference(image).0;
        Ok(found
            .repo_digests
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.split_once('@'))
            .find(|(repo, _)| *repo == repository)
            .map(|(_, digest)| digest.to_owned()))
    }

    async fn registry_digest(&self, image: &str) -> Result<String, EngineError> {
        let found = self
            .slow
            .inspect_registry_image(image, None)
            .await
            .map_err(|e| engine("ask the registry about", image, e))?;
        found.descriptor.digest.ok_or_else(|| EngineError::Engine {
            op: "ask the registry about",
            target: image.to_owned(),
            message: "its answer names no digest".into(),
        })
    }

    async fn pull_image(&self, reference: &str) -> Result<(), EngineError> {
        self.pull(reference).await
    }

    async fn ensure_built(&self, spec: &super::BuildSpec) -> Result<(), EngineError> {
        if self.swarm {
            return Err(EngineError::BuildFailed {
                image: spec.tag.clone(),
                output: "building is not supported on a swarm (build, push to a registry every node reaches, and name the image)".into(),
            });
        }
        match self.docker.inspect_image(&spec.tag).await {
            Ok(_) => return Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => {}
            Err(e) => return Err(engine("inspect image", &spec.tag, e)),
        }
        // The context streams to the engine as it is archived (a few chunks in flight), so a
        // big file in it costs a chunk of memory, not its size.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let build = spec.clone();
        // Detached: it ends with the archive, or at its next chunk once the request is gone.
        drop(tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = build.write_archive(&mut out) {
                let _ = tx.blocking_send(Err(e));
            }
        }));
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let opts = bollard::query_parameters::BuildImageOptions {
            dockerfile: spec.dockerfile.clone(),
            t: Some(spec.tag.clone()),
            buildargs: (!spec.args.is_empty()).then(|| spec.args.clone()),
            target: spec.target.clone().unwrap_or_default(),
            labels: Some(spec.labels.clone()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream = self
            .slow
            .build_image(opts, None, Some(bollard::body_try_stream(body)));
        // The build's own output, for the log; the last lines go into a failure.
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut keep = |line: &str| {
            for l in line.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(image = %spec.tag, "build: {l}");
                if tail.len() == BUILD_TAIL {
                    tail.pop_front();
                }
                tail.push_back(l.to_owned());
            }
        };
        let failed = |tail: &std::collections::VecDeque<String>, last: &str| {
            let mut lines: Vec<&str> = tail.iter().map(String::as_str).collect();
            if !last.is_empty() {
                lines.push(last);
            }
            EngineError::BuildFailed {
                image: spec.tag.clone(),
                output: lines.join(" | "),
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream.as_deref() {
                        keep(line);
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(&tail, &err));
                    }
                }
                // A step that failed arrives as a stream error; the engine refusing the
                // request (a bad Dockerfile path, say) as a server error.
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(&tail, &error))
                }
                Err(e) => {
                    return Err(match server_error(&e) {
                        Some((_, m)) => failed(&tail, m),
                        None => unavailable(e),
                    })
                }
            }
        }
        if let Some(image) = spec.also.as_deref() {
            let (repo, tag) = split_reference(image);
            let opts = bollard::query_parameters::TagImageOptions {
                repo: Some(repo),
                tag,
            };
            self.docker
                .tag_image(&spec.tag, Some(opts))
                .await
                .map_err(|e| engine("tag image", image, e))?;
        }
        self.prune_builds(&spec.tag).await;
        Ok(())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        if self.swarm {
            // Created on the node that runs the task, with the labels its mount gives.
            return Ok(());
        }
        match self.docker.inspect_volume(name).await {
            Ok(v) => {
                let owner = v.labels.get(labels::INSTANCE);
                return if owner.is_some() && owner == labels.get(labels::INSTANCE) {
                    Ok(())
                } else {
                    Err(EngineError::VolumeConflict {
                        name: name.to_owned(),
                    })
                };
            }
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => {}
            Err(e) => return Err(engine("inspect volume", name, e)),
        }
        let req = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map_err(|e| engine("create volume", name, e))?;
        Ok(())
    }

    async fn volume_labels(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, EngineError> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels)),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => Ok(None),
            Err(e) => Err(engine("inspect volume", name, e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => Ok(()),
            Err(e) => Err(engine("remove volume", name, e)),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        if self.swarm {
            return self.create_service(spec).await;
        }
        let body = convert::create_body(spec);
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let id = match self.docker.create_container(Some(opts), body).await {
            Ok(r) => r.id,
            Err(e) if server_error(&e).map(|s| s.0) == Some(409) => {
                return Err(EngineError::NameConflict {
                    name: spec.name.clone(),
                })
            }
            Err(e) => return Err(engine("create container", &spec.name, e)),
        };
        // A container left on fewer networks than its spec would look converged: remove it.
        for e in spec.endpoints.iter().skip(1) {
            if let Err(err) = self.connect_network(&id, e).await {
                let _ = self.remove(&id).await;
                return Err(err);
            }
        }
        // Nor may one start without its secrets.
        if let Err(err) = self.copy_secret_files(&id, spec).await {
            let _ = self.remove(&id).await;
            return Err(err);
        }
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        if self.swarm {
            // A service's tasks start as soon as it exists.
            return Ok(());
        }
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(304) => Ok(()),
            Err(e) => {
                let taken = server_error(&e).and_then(|(_, m)| ports::conflict(m));
                match taken {
                    Some((port, protocol)) => Err(EngineError::PortInUse {
                        port,
                        protocol,
                        holder: ports::holder(&self.docker, port, protocol).await,
                    }),
                    None => Err(engine("start container", id, e)),
                }
            }
        }
    }

    async fn restart(&self, id: &str) -> Result<(), EngineError> {
        if self.swarm {
            return self.force_update(id).await;
        }
        self.slow
            .restart_container(
                id,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|e| engine("restart container", id, e))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.stop_and_remove(id, None).await
    }

    async fn remove_within(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.stop_and_remove(id, Some(grace)).await
    }

    async fn list_networks(&self, instance: &str) -> Result<Vec<NetworkInfo>, EngineError> {
        let filters = HashMap::from([("label".to_owned(), labels::instance_filters(instance))]);
        let opts = bollard::query_parameters::ListNetworksOptions {
            filters: Some(filters),
        };
        let list = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(|e| engine("list", "networks", e))?;
        Ok(list
            .into_iter()
            .filter_map(|n| {
                let labels = n.labels.unwrap_or_default();
                labels::is_ours(&labels, instance).then(|| NetworkInfo {
                    id: n.id.unwrap_or_default(),
                    name: n.name.unwrap_or_default(),
                    spec_hash: labels.get(labels::SPEC_HASH).cloned(),
                    created: n.created.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn network_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => Ok(false),
            Err(e) => Err(engine("inspect network", name, e)),
        }
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<(), EngineError> {
        let ipam = config.subnet.as_ref().map(|subnet| bollard::models::Ipam {
            config: Some(vec![bollard::models::IpamConfig {
                subnet: Some(subnet.clone()),
                gateway: config.gateway.clone(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let req = bollard::models::NetworkCreateRequest {
            name: config.name.clone(),
            // A swarm's networks span its nodes; attachable, so plain containers may join.
            driver: Some(if self.swarm {
                "overlay".to_owned()
            } else {
                config.driver.clone()
            }),
            attachable: self.swarm.then_some(true),
            internal: config.internal.then_some(true),
            options: (!config.options.is_empty()).then(|| config.options.clone()),
            ipam,
            labels: Some(config.labels.clone()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) => Err(pool_remedy(engine("create network", &config.name, e))),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => Ok(()),
            Err(e) => Err(engine("remove network", name, e)),
        }
    }

    async fn network_containers(&self, name: &str) -> Result<Vec<String>, EngineError> {
        if self.swarm {
            // Services attach through their specs; no container is joined by hand.
            return Ok(Vec::new());
        }
        let n = self
            .docker
            .inspect_network(name, None)
            .await
            .map_err(|e| engine("inspect network", name, e))?;
        Ok(n.containers.unwrap_or_default().into_keys().collect())
    }

    async fn connect_network(&self, container: &str, e: &Endpoint) -> Result<(), EngineError> {
        if self.swarm {
            return Ok(());
        }
        let req = bollard::models::NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(endpoint(e)),
        };
        self.docker
            .connect_network(&e.network, req)
            .await
            .map_err(|err| engine("connect to network", &e.network, err))
    }

    async fn disconnect_network(&self, name: &str, container: &str) -> Result<(), EngineError> {
        if self.swarm {
            return Ok(());
        }
        let req = bollard::models::NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        match self.docker.disconnect_network(name, req).await {
            Ok(()) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => Ok(()),
            Err(e) => Err(engine("disconnect from network", name, e)),
        }
    }

    async fn stats(&self, id: &str) -> Result<Option<ContainerStats>, EngineError> {
        if self.swarm {
            // A service's tasks run on other nodes' engines.
            return Ok(None);
        }
        let opts = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(id, Some(opts));
        let Some(sample) = stream.next().await else {
            return Ok(None);
        };
        let s = sample.map_err(|e| engine("read stats of", id, e))?;
        Ok(Some(convert::stats(&s)))
    }

    async fn settled(&self, id: &str) {
        if !self.swarm {
            // The answer does not matter (a container already removed is settled too).
            let _ = self.docker.inspect_container(id, None).await;
        }
    }

    fn events(&self, instance: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
        if self.swarm {
            return self.service_events(instance);
        }
        let label = labels::instance_filters(instance);
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), label),
        ]);
        let opts = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .events(Some(opts))
            .map(|r| {
                let m = r.map_err(unavailable)?;
                let actor = m.actor.unwrap_or_default();
                Ok(EngineEvent {
                    id: actor.id.unwrap_or_default(),
                    action: m.action.unwrap_or_default(),
                    key: labels::object_key(&actor.attributes.unwrap_or_default()),
                })
            })
            .boxed()
    }
}

impl DockerEngine {
    /// Copies a spec's secret files into its created container, under `/run/secrets`, with
    /// their owner and mode: the engine unpacks them into the container's own filesystem, so
    /// no host file ever holds a value and they go with the container.
    async fn copy_secret_files(&self, id: &str, spec: &ContainerSpec) -> Result<(), EngineError> {
        if spec.secret_files.is_empty() {
            return Ok(());
        }
        let archive = zeroize::Zeroizing::new(secrets_tar(&spec.secret_files).map_err(|e| {
            EngineError::Engine {
                op: "pack the secret files of",
                target: spec.name.clone(),
                message: e.to_string(),
            }
        })?);
        let opts = bollard::query_parameters::UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        let body = bollard::body_full(archive.to_vec().into());
        self.docker
            .upload_to_container(id, Some(opts), body)
            .await
            .map_err(|e| {
                let op = if spec.options.read_only_root {
                    "copy the secret files (copied into a container before it starts, which a read-only root filesystem refuses on one host) into"
                } else {
                    "copy the secret files into"
                };
                engine(op, &spec.name, e)
            })
    }
}

/// A tar archive of secret files at `run/secrets/<name>`.
fn secrets_tar(files: &[crate::engine::SecretFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.value.bytes().len() as u64);
        h.set_mode(f.mode);
        h.set_uid(u64::from(f.uid));
        h.set_gid(u64::from(f.gid));
        h.set_mtime(now);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("run/secrets/{}", f.name), f.value.bytes())?;
    }
    b.into_inner()
}

impl DockerEngine {
    /// Stops a container (within `grace`, or its own grace period) and removes it, keeping its
    /// volumes; a service is deleted. One already gone is not an error.
    async fn stop_and_remove(&self, id: &str, grace: Option<Duration>) -> Result<(), EngineError> {
        if self.swarm {
            return self.delete_service(id).await;
        }
        let gone = |e: &BollardError| matches!(server_error(e).map(|s| s.0), Some(404));
        let opts = grace.map(|g| StopContainerOptions {
            t: Some(g.as_secs() as i32),
            ..Default::default()
        });
        match self.slow.stop_container(id, opts).await {
            Ok(()) => {}
            Err(e) if gone(&e) || server_error(&e).map(|s| s.0) == Some(304) => {}
            Err(e) => return Err(engine("stop container", id, e)),
        }
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            // 409: removal already in progress.
            Err(e) if server_error(&e).map(|s| s.0) == Some(409) => Ok(()),
            Err(e) => Err(engine("remove container", id, e)),
        }
    }
}

/// An engine out of default address pools says so in words no user can act on: the error
/// then names the cause and the remedy.
fn pool_remedy(e: EngineError) -> EngineError {
    match e {
        EngineError::Engine {
            op,
            target,
            message,
        } if message.contains("non-overlapping IPv4 address pool") => EngineError::Engine {
            op,
            target,
            message: format!(
                "{message}: the engine's default address pools (about 31, one per network) are all taken; give dockhand a pool of its own with --subnet-pool 10.213.0.0/16 (a /24 per network), or remove unused networks (docker network ls)"
            ),
        },
        other => other,
    }
}

/// The size of one chunk of a build context on its way to the engine.
const CHUNK: usize = 64 << 10;

/// Writes into a channel in chunks, for a body streamed from a blocking thread.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the build request ended")
        })
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::{bridge_gateway, pool_remedy, EngineError};
    use bollard::models::IpamConfig;

    #[test]
    fn an_engine_out_of_address_pools_is_told_the_cause_and_the_remedy() {
        let e = pool_remedy(EngineError::Engine {
            op: "create network",
            target: "dh_x_default".into(),
            message: "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
        });
        let m = e.to_string();
        assert!(m.contains("--subnet-pool 10.213.0.0/16"), "{m}");
        assert!(m.contains("about 31"), "{m}");
    }

    fn config(subnet: Option<&str>, gateway: Option<&str>) -> IpamConfig {
        IpamConfig {
            subnet: subnet.map(str::to_owned),
            gateway: gateway.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn a_bridge_gateway_is_the_named_one_else_the_subnets_first_address() {
        let named = config(Some("172.17.0.0/16"), Some("172.17.0.254"));
        assert_eq!(bridge_gateway(&named), "172.17.0.254".parse().ok());
        let implied = config(Some("172.17.0.0/16"), None);
        assert_eq!(bridge_gateway(&implied), "172.17.0.1".parse().ok());
        assert_eq!(bridge_gateway(&config(Some("fd00::/64"), None)), None);
        assert_eq!(bridge_gateway(&config(None, None)), None);
    }
}
