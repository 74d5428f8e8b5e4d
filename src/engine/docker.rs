//! The Docker engine behind the `Engine` trait, through bollard.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, MountType,
    PortBinding as BPortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::stream::{BoxStream, StreamExt};

use super::{
    ContainerSpec, ContainerStats, Engine, EngineError, EngineEvent, Health, NetworkConfig,
    NetworkInfo, Observed, PublishedPort, State,
};
use crate::engine::labels;
use crate::manifest::server::{Protocol, PullPolicy};

/// A connection to the engine named by `DOCKER_HOST` (or the default socket).
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
}

impl DockerEngine {
    /// Connects and agrees on an API version with the engine (old engines refuse newer clients).
    pub async fn connect() -> Result<Self, EngineError> {
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        Ok(Self { docker })
    }
}

/// A chunk of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

fn output(o: bollard::container::LogOutput) -> Option<Output> {
    use bollard::container::LogOutput as L;
    match o {
        L::StdOut { message } | L::Console { message } => Some(Output::Stdout(message.to_vec())),
        L::StdErr { message } => Some(Output::Stderr(message.to_vec())),
        L::StdIn { .. } => None,
    }
}

/// A command running in a container, attached.
pub struct ExecSession {
    pub id: String,
    pub output: BoxStream<'static, Result<Output, EngineError>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl super::Attach for DockerEngine {
    /// A container's output; with `follow`, until the container stops.
    fn logs(
        &self,
        container: &str,
        follow: bool,
        tail: Option<u64>,
    ) -> BoxStream<'static, Result<Output, EngineError>> {
        let opts = bollard::query_parameters::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let target = container.to_owned();
        self.docker
            .logs(container, Some(opts))
            .filter_map(move |r| {
                let r = match r {
                    Ok(o) => output(o).map(Ok),
                    Err(e) => Some(Err(engine("logs", &target, e))),
                };
                std::future::ready(r)
            })
            .boxed()
    }

    /// Starts `cmd` in a running container, attached to its output (and input if `stdin`).
    async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, EngineError> {
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(cmd),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| engine("exec in", container, e))?;
        let opts = bollard::exec::StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        match self.docker.start_exec(&created.id, Some(opts)).await {
            Ok(bollard::exec::StartExecResults::Attached { output: out, input }) => {
                let target = container.to_owned();
                let output = out
                    .filter_map(move |r| {
                        std::future::ready(match r {
                            Ok(o) => output(o).map(Ok),
                            Err(e) => Some(Err(engine("exec in", &target, e))),
                        })
                    })
                    .boxed();
                Ok(ExecSession {
                    id: created.id,
                    output,
                    input,
                })
            }
            Ok(bollard::exec::StartExecResults::Detached) => Err(EngineError::Engine {
                op: "exec in",
                target: container.to_owned(),
                message: "the engine did not attach".into(),
            }),
            Err(e) => Err(engine("exec in", container, e)),
        }
    }

    /// The exit code of a finished exec.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, EngineError> {
        let r = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| engine("inspect exec", exec_id, e))?;
        Ok(r.exit_code)
    }
}

/// A terminal's size for `exec -t`; the reconciler never needs it.
impl DockerEngine {
    /// Tells the engine the terminal's size.
    pub async fn resize_exec(
        &self,
        exec_id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), EngineError> {
        self.docker
            .resize_exec(
                exec_id,
                bollard::query_parameters::ResizeExecOptions {
                    h: height.into(),
                    w: width.into(),
                },
            )
            .await
            .map_err(|e| engine("resize exec", exec_id, e))
    }
}

fn unavailable(e: BollardError) -> EngineError {
    EngineError::Unavailable {
        message: e.to_string(),
    }
}

/// Status code and message of an engine reply, or `None` for transport failures.
fn server_error(e: &BollardError) -> Option<(u16, &str)> {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message)),
        _ => None,
    }
}

fn engine(op: &'static str, target: &str, e: BollardError) -> EngineError {
    match server_error(&e) {
        Some((_, message)) => EngineError::Engine {
            op,
            target: target.to_owned(),
            message: message.to_owned(),
        },
        None => unavailable(e),
    }
}

/// `Up 5 seconds (healthy)` → healthy; no parenthesis → no healthcheck.
fn health(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Endpoint settings with an optional static address.
fn endpoint(ip: Option<std::net::Ipv4Addr>) -> bollard::models::EndpointSettings {
    bollard::models::EndpointSettings {
        ipam_config: ip.map(|ip| bollard::models::EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `Exited (137) 5 seconds ago` → 137.
fn exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

/// `busybox` → (`busybox`, `latest`); a digest reference is pulled as is.
fn split_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_owned(), None);
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rfind(':') {
        Some(i) => {
            let cut = image.len() - last_segment.len() + i;
            (image[..cut].to_owned(), Some(image[cut + 1..].to_owned()))
        }
        None => (image.to_owned(), Some("latest".to_owned())),
    }
}

impl DockerEngine {
    async fn pull(&self, image: &str) -> Result<(), EngineError> {
        let (from_image, tag) = split_reference(image);
        let opts = CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(match server_error(&e) {
                    Some((_, m)) => EngineError::ImageMissing {
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
    async fn list(&self, instance: &str) -> Result<Vec<Observed>, EngineError> {
        let filters = HashMap::from([("label".to_owned(), labels::instance_filters(instance))]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| engine("list", "containers", e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                // The engine filtered already; this guards rule 3 against any filter mishap.
                if !labels::is_ours(&labels, instance) {
                    return None;
                }
                let state = match c.state {
                    Some(ContainerSummaryStateEnum::RUNNING) => State::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => State::Paused,
                    Some(ContainerSummaryStateEnum::RESTARTING) => State::Restarting,
                    Some(ContainerSummaryStateEnum::EXITED) => State::Exited {
                        code: c.status.as_deref().and_then(exit_code),
                    },
                    Some(ContainerSummaryStateEnum::DEAD) => State::Dead,
                    Some(ContainerSummaryStateEnum::REMOVING) => State::Removing,
                    _ => State::Created,
                };
                let mut ports: Vec<PublishedPort> = c
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let protocol = match p.typ.map(|t| t.to_string()).as_deref() {
                            Some("udp") => Protocol::Udp,
                            _ => Protocol::Tcp,
                        };
                        Some(PublishedPort {
                            container: p.private_port,
                            protocol,
                            host: p.public_port?,
                        })
                    })
                    .collect();
                // The engine lists IPv4 and IPv6 bindings separately.
                ports.sort_by_key(|p| (p.container, p.protocol, p.host));
                ports.dedup();
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default();
                let mut observed =
                    Observed::from_labels(c.id.unwrap_or_default(), name, state, &labels);
                observed.ports = ports;
                observed.health = c.status.as_deref().and_then(health);
                observed.ip = c.network_settings.and_then(|n| n.networks).and_then(|n| {
                    let mut nets: Vec<_> = n.into_iter().collect();
                    nets.sort_by(|a, b| a.0.cmp(&b.0));
                    nets.into_iter()
                        .find_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty())?.parse().ok())
                });
                Some(observed)
            })
            .collect())
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), EngineError> {
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

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
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
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for p in &spec.ports {
            let key = format!("{}/{}", p.container, p.protocol.as_str());
            exposed.push(key.clone());
            // An empty host port asks the engine to pick one.
            let host_port = if p.host == 0 {
                String::new()
            } else {
                p.host.to_string()
            };
            port_bindings.insert(
                key,
                Some(vec![BPortBinding {
                    host_ip: None,
                    host_port: Some(host_port),
                }]),
            );
        }
        let mounts = spec
            .mounts
            .iter()
            .map(|m| bollard::models::Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.clone()),
                typ: Some(if m.volume {
                    MountType::VOLUME
                } else {
                    MountType::BIND
                }),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            labels: Some(spec.labels.clone()),
            exposed_ports: Some(exposed),
            stop_timeout: spec.stop_timeout,
            stop_signal: spec.stop_signal.clone(),
            healthcheck: spec
                .healthcheck
                .as_ref()
                .map(|h| bollard::models::HealthConfig {
                    test: Some(h.test.clone()),
                    interval: Some(h.interval.as_nanos() as i64),
                    timeout: Some(h.timeout.as_nanos() as i64),
                    retries: Some(i64::from(h.retries)),
                    start_period: Some(h.start_period.as_nanos() as i64),
                    ..Default::default()
                }),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                mounts: Some(mounts),
                memory: spec.memory,
                nano_cpus: spec.nano_cpus,
                extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
                network_mode: spec.network.clone(),
                // dockhand applies restart policies itself, so it sees and records every restart.
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            networking_config: spec
                .network
                .as_ref()
                .map(|net| bollard::models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(net.clone(), endpoint(spec.ip))])),
                }),
            ..body
        };
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match self.docker.create_container(Some(opts), body).await {
            Ok(r) => Ok(r.id),
            Err(e) if server_error(&e).map(|s| s.0) == Some(409) => {
                Err(EngineError::NameConflict {
                    name: spec.name.clone(),
                })
            }
            Err(e) => Err(engine("create container", &spec.name, e)),
        }
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) if server_error(&e).map(|s| s.0) == Some(304) => Ok(()),
            Err(e) => Err(engine("start container", id, e)),
        }
    }

    async fn restart(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .restart_container(
                id,
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|e| engine("restart container", id, e))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let gone = |e: &BollardError| matches!(server_error(e).map(|s| s.0), Some(404));
        match self
            .docker
            .stop_container(id, None::<StopContainerOptions>)
            .await
        {
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
                    name: n.name.unwrap_or_default(),
                    spec_hash: labels.get(labels::SPEC_HASH).cloned(),
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
            driver: Some(config.driver.clone()),
            ipam,
            labels: Some(config.labels.clone()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) => Err(engine("create network", &config.name, e)),
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
        let n = self
            .docker
            .inspect_network(name, None)
            .await
            .map_err(|e| engine("inspect network", name, e))?;
        Ok(n.containers.unwrap_or_default().into_keys().collect())
    }

    async fn connect_network(
        &self,
        name: &str,
        container: &str,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), EngineError> {
        let req = bollard::models::NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(endpoint(ip)),
        };
        self.docker
            .connect_network(name, req)
            .await
            .map_err(|e| engine("connect to network", name, e))
    }

    async fn disconnect_network(&self, name: &str, container: &str) -> Result<(), EngineError> {
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
        let opts = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(id, Some(opts));
        let Some(sample) = stream.next().await else {
            return Ok(None);
        };
        let s = sample.map_err(|e| engine("read stats of", id, e))?;
        let blk = |op: &str| -> u64 {
            s.blkio_stats
                .as_ref()
                .and_then(|b| b.io_service_bytes_recursive.as_ref())
                .map(|v| {
                    v.iter()
                        .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                        .filter_map(|e| e.value)
                        .sum()
                })
                .unwrap_or(0)
        };
        let nets = s.networks.as_ref();
        let net = |f: fn(&bollard::models::ContainerNetworkStats) -> Option<u64>| -> u64 {
            nets.map(|n| n.values().filter_map(f).sum()).unwrap_or(0)
        };
        Ok(Some(ContainerStats {
            cpu_ns: s
                .cpu_stats
                .as_ref()
                .and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory: s.memory_stats.as_ref().and_then(|m| m.usage).unwrap_or(0),
            memory_limit: s.memory_stats.as_ref().and_then(|m| m.limit).unwrap_or(0),
            net_rx: net(|n| n.rx_bytes),
            net_tx: net(|n| n.tx_bytes),
            block_read: blk("read"),
            block_write: blk("write"),
        }))
    }

    fn events(&self, instance: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_read_from_the_status_line() {
        assert_eq!(exit_code("Exited (137) 5 seconds ago"), Some(137));
        assert_eq!(exit_code("Up 3 minutes"), None);
    }

    #[test]
    fn references_without_a_tag_pull_latest_only() {
        assert_eq!(
            split_reference("busybox"),
            ("busybox".into(), Some("latest".into()))
        );
        assert_eq!(
            split_reference("localhost:5000/a/b:1"),
            ("localhost:5000/a/b".into(), Some("1".into()))
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a".into(), Some("latest".into()))
        );
        assert_eq!(split_reference("a@sha256:ff"), ("a@sha256:ff".into(), None));
    }
}
