//! Objects as swarm services, for an engine that manages a swarm: the swarm schedules, restarts
//! and rolls out tasks itself; dockhand keeps the services matching the manifests, in
//! dependency order, and reads their tasks back as state.
//!
//! A service carries the owner labels and the spec hash; its task containers carry neither
//! (only `dockhand.service`), so a single-host controller on one of the nodes never takes them
//! for orphans of its own.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum as PortProtocol,
    EndpointPortConfigPublishModeEnum as PublishMode, EndpointSpec, EndpointSpecModeEnum,
    HealthConfig, Limit, Mount, MountType, MountVolumeOptions, NetworkAttachmentConfig,
    ResourceObject, ResourcesUlimits, SecretSpec, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum as RollbackFailure,
    ServiceSpecRollbackConfigOrderEnum as RollbackOrder, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum as UpdateFailure,
    ServiceSpecUpdateConfigOrderEnum as UpdateOrder, ServiceUpdateStatusStateEnum as UpdateState,
    Task, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum as Condition,
};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, UpdateServiceOptions};

use super::convert::{engine, server_error};
use super::DockerEngine;
use crate::engine::{
    labels, ContainerSpec, EngineError, Health, Observed, PublishedPort, State, TaskInfo, Tasks,
};
use crate::manifest::fields::Protocol;
use crate::manifest::server::RestartPolicy;

/// The label a service's task containers carry instead of the owner labels.
pub const SERVICE_LABEL: &str = "dockhand.service";

/// On a service whose tasks have a health check (`true`: the manifest's; `image`: the image's):
/// the engine answers with the check under a name bollard's model does not read
/// (`Healthcheck`, not `HealthCheck`), and an image's is not in the service at all.
const HEALTH_LABEL: &str = "dockhand.health-check";

/// How long a removal waits for the swarm to stop the service's tasks (so that its ports,
/// networks and volumes are free when `remove` returns), beyond the tasks' own stop timeout.
const REMOVAL_GRACE: Duration = Duration::from_secs(20);

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn unsupported(name: &str, what: &str) -> EngineError {
    EngineError::Engine {
        op: "create service",
        target: name.to_owned(),
        message: format!("{what} is not supported by swarm services"),
    }
}

/// A swarm secret holding one of a spec's secret variables or files.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SecretRef {
    /// The variable whose `<VAR>_FILE` names the file (none for a secret file).
    pub var: Option<String>,
    /// The file's name under /run/secrets, its owner, group and mode.
    pub file: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub id: String,
    pub name: String,
}

impl SecretRef {
    /// A secret variable's: `/run/secrets/<var in lowercase>`, readable inside the task (as
    /// Docker's CLI makes it): images such as postgres read it after dropping root.
    fn for_var(var: &str, id: String, name: String) -> SecretRef {
        SecretRef {
            var: Some(var.to_owned()),
            file: secret_file(var),
            uid: 0,
            gid: 0,
            mode: 0o444,
            id,
            name,
        }
    }
}

/// Where a task finds a secret variable's value: `/run/secrets/<var in lowercase>`.
fn secret_file(var: &str) -> String {
    var.to_ascii_lowercase()
}

/// The secret that holds `value` for `key` (a variable or a file name) of the service
/// `service`: named after both and a hash of the value (a swarm secret cannot change; a new
/// value is a new secret), at most 64 characters (the swarm's limit; the labels, not the name,
/// say whose it is).
pub(super) fn secret_name(service: &str, key: &str, value: &[u8]) -> String {
    let mut hashed = format!("{key}\0").into_bytes();
    hashed.extend_from_slice(value);
    let hash = crate::manifest::short_hash(&hashed);
    hashed.iter_mut().for_each(|b| *b = 0);
    let file: String = secret_file(key)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tail = format!("_{file}_{}", &hash[..12]);
    let room = 64usize.saturating_sub(tail.len());
    let head: String = service.chars().take(room).collect();
    format!("{head}{tail}")
}

/// The service a container spec becomes; `pin` is the node its task must stay on, `secrets`
/// the swarm secrets made for its secret variables.
pub(super) fn service_spec(
    spec: &ContainerSpec,
    pin: Option<&str>,
    secrets: &[SecretRef],
) -> Result<ServiceSpec, EngineError> {
    let o = &spec.options;
    let s = &spec.service;
    let refuse = |what: &str| Err(unsupported(&spec.name, what));
    if o.privileged {
        return refuse("privileged");
    }
    if !o.devices.is_empty() {
        return refuse("devices");
    }
    if o.shm_size.is_some() {
        return refuse("shmSize");
    }
    if o.pids_limit.is_some()
        || !o.dns.is_empty()
        || !o.dns_search.is_empty()
        || !o.dns_options.is_empty()
    {
        return refuse("pidsLimit or dns");
    }
    if !o.security_opt.is_empty() {
        return refuse("securityOpt");
    }
    if spec.network_mode.is_some() {
        return refuse("network host or none");
    }
    if spec.endpoints.iter().any(|e| e.ip.is_some()) {
        return refuse("a static ip");
    }
    if spec.ports.iter().any(|p| p.host_ip.is_some()) {
        return refuse("a port's host address");
    }
    let mut service_labels = spec.labels.clone();
    // `NONE` (a check the manifest disables) is no check at all.
    if spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"))
    {
        service_labels.insert(HEALTH_LABEL.into(), "true".into());
    }
    if let Some(hash) = &s.spec_hash {
        service_labels.insert(labels::SPEC_HASH.into(), hash.clone());
    }
    let mut task_labels: HashMap<String, String> = spec
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != labels::INSTANCE && k.as_str() != labels::MANAGED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    task_labels.insert(SERVICE_LABEL.into(), spec.name.clone());
    let volume_labels =
        labels::owner_labels(spec.labels.get(labels::INSTANCE).map_or("", String::as_str));
    let mut mounts: Vec<Mount> = spec
        .mounts
        .iter()
        .map(|m| Mount {
            // Made on the node that runs the task: with the owner labels.
            volume_options: m.volume.then(|| MountVolumeOptions {
                labels: Some(volume_labels.clone()),
                ..Default::default()
            }),
            ..super::convert::mount(m)
        })
        .collect();
    let mut tmpfs: Vec<&String> = o.tmpfs.keys().collect();
    tmpfs.sort();
    mounts.extend(tmpfs.into_iter().map(|target| Mount {
        target: Some(target.clone()),
        typ: Some(MountType::TMPFS),
        ..Default::default()
    }));
    // `host:address` (the container form) is `address host` in a service.
    let hosts: Vec<String> = spec
        .extra_hosts
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(_, addr)| *addr != "host-gateway")
        .map(|(host, addr)| format!("{addr} {host}"))
        .collect();
    let mut env = spec.env.clone();
    env.extend(
        secrets
            .iter()
            .filter_map(|r| Some(format!("{}_FILE=/run/secrets/{}", r.var.as_ref()?, r.file))),
    );
    let secret_refs: Vec<TaskSpecContainerSpecSecrets> = secrets
        .iter()
        .map(|r| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(r.file.clone()),
                uid: Some(r.uid.to_string()),
                gid: Some(r.gid.to_string()),
                mode: Some(r.mode),
            }),
            secret_id: Some(r.id.clone()),
            secret_name: Some(r.name.clone()),
        })
        .collect();
    let container = TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        secrets: (!secret_refs.is_empty()).then_some(secret_refs),
        labels: Some(task_labels),
        // A service's `command` is a container's entrypoint, its `args` the command.
        command: spec.entrypoint.clone(),
        args: spec.command.clone(),
        hostname: o.hostname.clone(),
        env: Some(env),
        dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        tty: Some(o.tty),
        open_stdin: Some(o.stdin),
        read_only: Some(o.read_only_root),
        mounts: Some(mounts),
        stop_signal: spec.stop_signal.clone(),
        stop_grace_period: spec.stop_timeout.map(|t| t.saturating_mul(1_000_000_000)),
        health_check: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(ns(h.interval)),
            timeout: Some(ns(h.timeout)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(ns(h.start_period)),
            ..Default::default()
        }),
        hosts: (!hosts.is_empty()).then_some(hosts),
        init: o.init.then_some(true),
        sysctls: (!o.sysctls.is_empty()).then(|| o.sysctls.clone()),
        capability_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
        capability_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
        ulimits: (!o.ulimits.is_empty()).then(|| {
            o.ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        ..Default::default()
    };
    let reserved = spec.memory_reservation.is_some() || spec.cpu_reservation.is_some();
    let resources = TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: spec.nano_cpus,
            memory_bytes: spec.memory,
            ..Default::default()
        }),
        reservations: reserved.then(|| ResourceObject {
            nano_cpus: spec.cpu_reservation,
            memory_bytes: spec.memory_reservation,
            ..Default::default()
        }),
        ..Default::default()
    };
    let restart_policy = TaskSpecRestartPolicy {
        condition: Some(match s.restart {
            RestartPolicy::Always => Condition::ANY,
            RestartPolicy::OnFailure => Condition::ON_FAILURE,
            RestartPolicy::Never => Condition::NONE,
        }),
        delay: s.restart_delay.map(ns),
        max_attempts: s.max_restarts.map(i64::from),
        window: s.restart_window.map(ns),
    };
    let mut constraints = s.constraints.clone();
    if let Some(node) = pin {
        constraints.push(format!("node.id == {node}"));
    }
    let placement = TaskSpecPlacement {
        constraints: (!constraints.is_empty()).then_some(constraints),
        preferences: (!s.spread.is_empty()).then(|| {
            s.spread
                .iter()
                .map(|d| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(d.clone()),
                    }),
                })
                .collect()
        }),
        max_replicas: s.max_replicas_per_node.map(i64::from),
        ..Default::default()
    };
    let networks: Vec<NetworkAttachmentConfig> = spec
        .endpoints
        .iter()
        .map(|e| NetworkAttachmentConfig {
            target: Some(e.network.clone()),
            aliases: (!e.aliases.is_empty()).then(|| e.aliases.clone()),
            ..Default::default()
        })
        .collect();
    let ports: Vec<EndpointPortConfig> = spec
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(match p.protocol {
                Protocol::Tcp => PortProtocol::TCP,
                Protocol::Udp => PortProtocol::UDP,
            }),
            target_port: Some(i64::from(p.container)),
            published_port: (p.host != 0).then_some(i64::from(p.host)),
            publish_mode: Some(if p.host_mode {
                PublishMode::HOST
            } else {
                PublishMode::INGRESS
            }),
            ..Default::default()
        })
        .collect();
    let u = &s.update;
    let monitor = u.monitor.map(ns);
    let parallelism = Some(i64::from(u.parallelism.unwrap_or(1)));
    Ok(ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(service_labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(resources),
            restart_policy: Some(restart_policy),
            placement: Some(placement),
            networks: (!networks.is_empty()).then_some(networks),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(s.replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism,
            delay: u.delay.map(ns),
            failure_action: Some(if u.rollback {
                UpdateFailure::ROLLBACK
            } else {
                UpdateFailure::PAUSE
            }),
            monitor,
            order: Some(if u.start_first {
                UpdateOrder::START_FIRST
            } else {
                UpdateOrder::STOP_FIRST
            }),
            ..Default::default()
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism,
            failure_action: Some(RollbackFailure::PAUSE),
            monitor,
            order: Some(if u.start_first {
                RollbackOrder::START_FIRST
            } else {
                RollbackOrder::STOP_FIRST
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(if s.dnsrr {
                EndpointSpecModeEnum::DNSRR
            } else {
                EndpointSpecModeEnum::VIP
            }),
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..Default::default()
    })
}

/// The node a pinned service's old spec keeps its task on.
fn pinned_node(spec: &ServiceSpec) -> Option<String> {
    spec.task_template
        .as_ref()?
        .placement
        .as_ref()?
        .constraints
        .as_ref()?
        .iter()
        .find_map(|c| c.strip_prefix("node.id == ").map(str::to_owned))
}

fn task_state(t: &Task) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// A swarm node as task listings need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct NodeInfo {
    pub name: String,
    pub addr: String,
    /// `ready`, `down`, `unknown`, `disconnected`: a task on a node that is not ready is
    /// not counted as running, whatever its last reported state (the swarm's own count keeps
    /// it for as long as the node is gone).
    pub state: String,
}

/// The nodes by ID, and when they were listed.
pub(super) type NodeCache =
    std::sync::Arc<std::sync::Mutex<(Option<std::time::Instant>, HashMap<String, NodeInfo>)>>;

/// How long a listing of the nodes is used before it is asked again.
const NODES_TTL: Duration = Duration::from_secs(5);

fn on_ready_node(t: &Task, nodes: &HashMap<String, NodeInfo>) -> bool {
    t.node_id
        .as_ref()
        .and_then(|n| nodes.get(n))
        .is_none_or(|n| n.state == "ready")
}

fn task_info(t: &Task, nodes: &HashMap<String, NodeInfo>) -> TaskInfo {
    let status = t.status.clone().unwrap_or_default();
    let node = t.node_id.clone().unwrap_or_default();
    let info = nodes.get(&node);
    let node_down = info
        .filter(|n| n.state != "ready")
        .map(|n| format!("node {} is {}", n.name, n.state));
    TaskInfo {
        id: t.id.clone().unwrap_or_default(),
        slot: t.slot.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        address: info.map(|n| n.addr.clone()).filter(|a| !a.is_empty()),
        node: info.map_or(node, |n| n.name.clone()),
        state: task_state(t),
        desired: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        error: node_down.or(status.err.filter(|e| !e.is_empty())),
        exit_code: status.container_status.and_then(|c| c.exit_code),
        since: status.timestamp.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// One service as dockhand sees it, from its listing (with status) and its tasks.
pub(super) fn observed_service(
    s: Service,
    tasks: &[Task],
    nodes: &HashMap<String, NodeInfo>,
    instance: &str,
) -> Option<Observed> {
    let spec = s.spec.clone().unwrap_or_default();
    let service_labels = spec.labels.clone().unwrap_or_default();
    if !labels::is_ours(&service_labels, instance) {
        return None;
    }
    let id = s.id.clone().unwrap_or_default();
    let mine: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
        .collect();
    // Per slot, the task desired to run, else the newest.
    let mut by_slot: std::collections::BTreeMap<i64, &Task> = std::collections::BTreeMap::new();
    for t in &mine {
        let slot = t.slot.unwrap_or(0);
        let wanted =
            |t: &Task| t.desired_state.map(|d| d.to_string()).as_deref() == Some("running");
        let newer = |a: &Task, b: &Task| {
            let at = |t: &Task| t.status.as_ref().and_then(|s| s.timestamp.clone());
            at(a).map(|t| t.to_string()) > at(b).map(|t| t.to_string())
        };
        match by_slot.get(&slot) {
            Some(cur) if wanted(cur) && !wanted(t) => {}
            Some(cur) if wanted(cur) == wanted(t) && !newer(t, cur) => {}
            _ => {
                by_slot.insert(slot, t);
            }
        }
    }
    let current: Vec<&Task> = by_slot.into_values().collect();
    let count = |states: &[&str]| {
        current
            .iter()
            .filter(|t| states.contains(&task_state(t).as_str()) && on_ready_node(t, nodes))
            .count() as u64
    };
    let status = s.service_status.clone().unwrap_or_default();
    let desired = status.desired_tasks.unwrap_or(0);
    let running = count(&["running"]);
    let up = count(&["running", "starting"]);
    let one_shot = spec
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref())
        .and_then(|r| r.condition)
        == Some(Condition::NONE);
    let failed = current
        .iter()
        .find(|t| matches!(task_state(t).as_str(), "failed" | "rejected"));
    let exit_code = |t: &Task| {
        t.status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.exit_code)
    };
    let state = if up > 0 {
        State::Running
    } else if one_shot
        && !current.is_empty()
        // A completed run stays completed when its node goes away later.
        && current.iter().all(|t| task_state(t) == "complete")
    {
        State::Exited { code: Some(0) }
    } else if let (true, Some(t)) = (one_shot, failed) {
        State::Exited {
            code: exit_code(t).or(Some(1)),
        }
    } else {
        // The swarm is (re)starting tasks on its own schedule.
        State::Restarting
    };
    let has_health = service_labels.contains_key(HEALTH_LABEL);
    let name = spec.name.clone().unwrap_or_default();
    let mut o = Observed::from_labels(id, name, state, &service_labels);
    // A task counts as running once healthy: the swarm holds it in `starting` until then.
    if has_health && o.state == State::Running {
        o.health = Some(if running >= desired.max(1) {
            Health::Healthy
        } else {
            Health::Starting
        });
    }
    o.ports = s
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    Some(PublishedPort {
                        container: u16::try_from(p.target_port?).ok()?,
                        protocol: match p.protocol {
                            Some(PortProtocol::UDP) => Protocol::Udp,
                            _ => Protocol::Tcp,
                        },
                        host: u16::try_from(p.published_port?).ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let update_state = s.update_status.as_ref().and_then(|u| u.state);
    let update_message = s
        .update_status
        .as_ref()
        .and_then(|u| u.message.clone())
        .unwrap_or_default();
    let said = |what: &str| match update_message.as_str() {
        "" => what.to_owned(),
        m => format!("{what}: {m}"),
    };
    o.tasks = Some(Tasks {
        running,
        desired,
        list: current.iter().map(|t| task_info(t, nodes)).collect(),
        rolled_back: match update_state {
            Some(UpdateState::ROLLBACK_STARTED) => Some(said("rolling back")),
            Some(UpdateState::ROLLBACK_COMPLETED) => Some(said("rolled back")),
            Some(UpdateState::ROLLBACK_PAUSED) => Some(said("rollback paused")),
            _ => None,
        },
        rolling_back: update_state == Some(UpdateState::ROLLBACK_STARTED),
        updating: match update_state {
            Some(UpdateState::UPDATING) => Some(said("updating")),
            _ => None,
        },
        update_failed: match update_state {
            Some(UpdateState::PAUSED) => Some(said("update paused")),
            _ => None,
        },
    });
    Some(o)
}

impl DockerEngine {
    /// This instance's services with their tasks: one listing of each.
    pub(super) async fn list_services(&self, instance: &str) -> Result<Vec<Observed>, EngineError> {
        let filters = HashMap::from([("label".to_owned(), labels::instance_filters(instance))]);
        let opts = ListServicesOptions {
            filters: Some(filters),
            status: Some(true),
        };
        let services = self
            .docker
            .list_services(Some(opts))
            .await
            .map_err(|e| engine("list", "services", e))?;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        let opts = ListTasksOptions {
            filters: Some(HashMap::from([("service".to_owned(), ids)])),
        };
        let tasks = self
            .docker
            .list_tasks(Some(opts))
            .await
            .map_err(|e| engine("list", "tasks", e))?;
        let known = |nodes: &HashMap<String, NodeInfo>| {
            tasks
                .iter()
                .filter_map(|t| t.node_id.as_ref())
                .all(|n| nodes.contains_key(n))
        };
        let (at, cached) = self.nodes.lock().map(|n| n.clone()).unwrap_or_default();
        let fresh_enough = at.is_some_and(|at| at.elapsed() < NODES_TTL);
        let nodes = if fresh_enough && known(&cached) {
            cached
        } else {
            let fresh = self.node_names().await;
            if let Ok(mut n) = self.nodes.lock() {
                *n = (Some(std::time::Instant::now()), fresh.clone());
            }
            fresh
        };
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            out.extend(observed_service(s, &tasks, &nodes, instance));
        }
        Ok(out)
    }

    /// The nodes by ID, for task listings (empty when they cannot be listed).
    async fn node_names(&self) -> HashMap<String, NodeInfo> {
        let nodes = self
            .docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await
            .unwrap_or_default();
        nodes
            .into_iter()
            .filter_map(|n| {
                let name = n.description?.hostname?;
                let status = n.status.unwrap_or_default();
                let info = NodeInfo {
                    name,
                    addr: status.addr.unwrap_or_default(),
                    state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                };
                Some((n.id?, info))
            })
            .collect()
    }

    /// A service's health check as the engine holds it (read from its own answer: bollard's
    /// model drops it), so that sending the spec back keeps it.
    async fn health_check_of(&self, id: &str) -> Result<Option<HealthConfig>, EngineError> {
        let failed = |message: String| EngineError::Engine {
            op: "inspect service",
            target: id.to_owned(),
            message,
        };
        let socket = super::tolerant::socket()
            .ok_or_else(|| failed("restarting a service needs the engine's unix socket".into()))?;
        let version = self.docker.client_version().to_string();
        let path = format!("/v{version}/services/{}", super::percent_encode(id));
        let body = tokio::time::timeout(self.deadline, super::tolerant::get(&socket, &path))
            .await
            .map_err(|_| failed("no answer in time".into()))?
            .map_err(failed)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))?;
        match v.pointer("/Spec/TaskTemplate/ContainerSpec/Healthcheck") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(h) => serde_json::from_value(h.clone())
                .map(Some)
                .map_err(|e| failed(e.to_string())),
        }
    }

    /// A spec without a health check of its own runs its image's, if the image has one: the
    /// service is labelled as checked when the image is on this (the manager's) engine and
    /// has a check. One image inspection per create or update, never per pass.
    async fn mark_image_health(&self, spec: &ContainerSpec, body: &mut ServiceSpec) {
        if spec.healthcheck.is_some() {
            return;
        }
        let checked = match self.docker.inspect_image(&spec.image).await {
            Ok(image) => image
                .config
                .and_then(|c| c.healthcheck)
                .and_then(|h| h.test)
                .is_some_and(|test| !test.is_empty() && test[0] != "NONE"),
            Err(e) => {
                tracing::debug!("image {} not inspected for a health check: {e}", spec.image);
                false
            }
        };
        if checked {
            body.labels
                .get_or_insert_with(HashMap::new)
                .insert(HEALTH_LABEL.into(), "image".into());
        }
    }

    /// This engine's own node, which pinned services stay on.
    async fn local_node(&self) -> Result<String, EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine("info", "", e))?;
        info.swarm
            .and_then(|s| s.node_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| EngineError::Engine {
                op: "create service",
                target: String::new(),
                message: "the engine is not a swarm node".into(),
            })
    }

    pub(super) async fn create_service(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let pin = match spec.service.pinned {
            true => Some(self.local_node().await?),
            false => None,
        };
        let secrets = self.ensure_secrets(spec).await?;
        let mut body = service_spec(spec, pin.as_deref(), &secrets)?;
        self.mark_image_health(spec, &mut body).await;
        match self.docker.create_service(body, None).await {
            Ok(r) => Ok(r.id.unwrap_or_else(|| spec.name.clone())),
            Err(e) if server_error(&e).map(|s| s.0) == Some(409) => {
                Err(EngineError::NameConflict {
                    name: spec.name.clone(),
                })
            }
            Err(e) => Err(engine("create service", &spec.name, e)),
        }
    }

    /// Sends the full new spec with the service's current version; a pinned service keeps its
    /// node.
    pub(super) async fn update_service(
        &self,
        old: &str,
        spec: &ContainerSpec,
    ) -> Result<String, EngineError> {
        let current = self
            .docker
            .inspect_service(old, None)
            .await
            .map_err(|e| engine("inspect service", old, e))?;
        let version = current.version.and_then(|v| v.index).unwrap_or(0);
        let pin = match (
            spec.service.pinned,
            current.spec.as_ref().and_then(pinned_node),
        ) {
            (true, Some(node)) => Some(node),
            (true, None) => Some(self.local_node().await?),
            (false, _) => None,
        };
        let secrets = self.ensure_secrets(spec).await?;
        let mut body = service_spec(spec, pin.as_deref(), &secrets)?;
        self.mark_image_health(spec, &mut body).await;
        let opts = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        self.docker
            .update_service(old, body, opts, None)
            .await
            .map_err(|e| engine("update service", &spec.name, e))?;
        let keep: Vec<&str> = secrets.iter().map(|r| r.id.as_str()).collect();
        self.prune_secrets(instance_of(&spec.labels), &spec.name, &keep)
            .await;
        Ok(current.id.unwrap_or_else(|| old.to_owned()))
    }

    /// Replaces every task with the same spec (the swarm's own rolling order).
    pub(super) async fn force_update(&self, id: &str) -> Result<(), EngineError> {
        let current = self
            .docker
            .inspect_service(id, None)
            .await
            .map_err(|e| engine("inspect service", id, e))?;
        let version = current.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = current.spec.unwrap_or_default();
        let health = self.health_check_of(id).await?;
        if let Some(t) = spec.task_template.as_mut() {
            t.force_update = Some(t.force_update.unwrap_or(0) + 1);
            if let Some(c) = t.container_spec.as_mut() {
                c.health_check = health;
            }
        }
        let opts = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        self.docker
            .update_service(id, spec, opts, None)
            .await
            .map(|_| ())
            .map_err(|e| engine("update service", id, e))
    }

    /// Removes the service and waits (bounded) until its tasks are gone, so that what they
    /// held is free when this returns.
    pub(super) async fn delete_service(&self, id: &str) -> Result<(), EngineError> {
        let (name, owner) = match self.docker.inspect_service(id, None).await {
            Ok(s) => {
                let spec = s.spec.unwrap_or_default();
                (spec.name, spec.labels.unwrap_or_default())
            }
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => return Ok(()),
            Err(e) => return Err(engine("inspect service", id, e)),
        };
        match self.docker.delete_service(id).await {
            Ok(()) => {}
            Err(e) if server_error(&e).map(|s| s.0) == Some(404) => return Ok(()),
            Err(e) => return Err(engine("remove service", id, e)),
        }
        // The tasks of a removed service are listed (desired state `remove`) until their
        // nodes have stopped them; a filter by service no longer finds them.
        let until = tokio::time::Instant::now() + REMOVAL_GRACE;
        while tokio::time::Instant::now() < until {
            let all = self
                .docker
                .list_tasks(None::<ListTasksOptions>)
                .await
                .map_err(|e| engine("list", "tasks", e))?;
            if !all.iter().any(|t| t.service_id.as_deref() == Some(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The swarm keeps a stopped task's container a while: on this engine's node, where a
        // pinned database's volume is, they go now, so the volume can be removed with them.
        if let Some(name) = name {
            self.remove_task_containers(&name).await;
            self.prune_secrets(instance_of(&owner), &name, &[]).await;
        }
        Ok(())
    }
}

impl DockerEngine {
    /// Service events of this instance (created, updated, removed by anyone): the swarm
    /// repairs tasks itself, so a service changed behind dockhand's back is what needs a pass.
    pub(super) fn service_events(
        &self,
        instance: &str,
    ) -> futures_util::stream::BoxStream<'static, Result<crate::engine::EngineEvent, EngineError>>
    {
        use futures_util::StreamExt;
        let filters = HashMap::from([("type".to_owned(), vec!["service".to_owned()])]);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let instance = instance.to_owned();
        self.docker
            .events(Some(opts))
            .filter_map(move |r| {
                let out = match r {
                    Err(e) => Some(Err(super::convert::unavailable(e))),
                    Ok(m) => {
                        let actor = m.actor.unwrap_or_default();
                        let attrs = actor.attributes.unwrap_or_default();
                        attrs
                            .get("name")
                            .and_then(|n| event_key(n, &instance))
                            .map(|key| {
                                Ok(crate::engine::EngineEvent {
                                    id: actor.id.unwrap_or_default(),
                                    action: m.action.unwrap_or_default(),
                                    key: Some(key),
                                })
                            })
                    }
                };
                std::future::ready(out)
            })
            .boxed()
    }
}

impl DockerEngine {
    /// Removes the containers this engine runs for the (removed) service `name`: only ones
    /// labelled with it, which carry this instance's name in it. Best effort.
    async fn remove_task_containers(&self, name: &str) {
        let filters =
            HashMap::from([("label".to_owned(), vec![format!("{SERVICE_LABEL}={name}")])]);
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(list) = self.docker.list_containers(Some(opts)).await else {
            return;
        };
        for c in list {
            let ours = c
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_LABEL))
                .is_some_and(|n| n == name);
            let Some(id) = c.id.filter(|_| ours) else {
                continue;
            };
            let opts = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = self.docker.remove_container(&id, Some(opts)).await {
                tracing::debug!("task container {id} of {name} stays: {e}");
            }
        }
    }
}

impl DockerEngine {
    /// This instance's secrets made for the service `service`: one listing, by label.
    async fn secrets_of(
        &self,
        instance: &str,
        service: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let mut wanted = labels::instance_filters(instance);
        wanted.push(format!("{SERVICE_LABEL}={service}"));
        let opts = bollard::query_parameters::ListSecretsOptions {
            filters: Some(HashMap::from([("label".to_owned(), wanted)])),
        };
        let list = self
            .docker
            .list_secrets(Some(opts))
            .await
            .map_err(|e| engine("list", "secrets", e))?;
        // The engine filtered by label; what is not ours by its own labels is never touched.
        Ok(list
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                labels::is_ours(spec.labels.as_ref()?, instance).then_some((s.id?, spec.name?))
            })
            .collect())
    }

    /// The swarm secrets a spec's secret variables need, made where missing (with the owner
    /// labels and the service's name). No engine call for a spec without any.
    async fn ensure_secrets(&self, spec: &ContainerSpec) -> Result<Vec<SecretRef>, EngineError> {
        if spec.secret_env.is_empty() && spec.secret_files.is_empty() {
            return Ok(Vec::new());
        }
        let instance = instance_of(&spec.labels);
        let existing = self.secrets_of(instance, &spec.name).await?;
        let mut refs = Vec::with_capacity(spec.secret_env.len() + spec.secret_files.len());
        let wanted = spec
            .secret_env
            .iter()
            .map(|s| (s.var.as_str(), s.value.as_bytes(), None))
            .chain(
                spec.secret_files
                    .iter()
                    .map(|f| (f.name.as_str(), f.value.bytes(), Some(f))),
            );
        for (key, value, file) in wanted {
            let name = secret_name(&spec.name, key, value);
            let found = existing.iter().find(|(_, n)| *n == name);
            let id = match found {
                Some((id, _)) => id.clone(),
                None => {
                    self.create_secret(&name, instance, &spec.name, value)
                        .await?
                }
            };
            refs.push(match file {
                None => SecretRef::for_var(key, id, name),
                Some(f) => SecretRef {
                    var: None,
                    file: f.name.clone(),
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                    id,
                    name,
                },
            });
        }
        Ok(refs)
    }

    async fn create_secret(
        &self,
        name: &str,
        instance: &str,
        service: &str,
        value: &[u8],
    ) -> Result<String, EngineError> {
        use base64::Engine as _;
        let mut secret_labels = labels::owner_labels(instance);
        secret_labels.insert(SERVICE_LABEL.into(), service.to_owned());
        let body = SecretSpec {
            name: Some(name.to_owned()),
            labels: Some(secret_labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        };
        match self.docker.create_secret(body).await {
            Ok(r) => Ok(r.id),
            // Someone else's secret of that name: never taken over.
            Err(e) if server_error(&e).map(|s| s.0) == Some(409) => {
                Err(EngineError::NameConflict {
                    name: name.to_owned(),
                })
            }
            Err(e) => Err(engine("create secret", name, e)),
        }
    }

    /// Removes this instance's secrets made for `service` but those in `keep`. Best effort: a
    /// secret a service still uses is refused by the swarm, and goes with a later update or
    /// removal.
    async fn prune_secrets(&self, instance: &str, service: &str, keep: &[&str]) {
        let Ok(list) = self.secrets_of(instance, service).await else {
            return;
        };
        for (id, name) in list {
            if keep.contains(&id.as_str()) {
                continue;
            }
            if let Err(e) = self.docker.delete_secret(&id).await {
                tracing::debug!("secret {name} of {service} stays: {e}");
            }
        }
    }
}

/// The instance named by an owner's labels.
fn instance_of(l: &HashMap<String, String>) -> &str {
    l.get(labels::INSTANCE).map_or("", String::as_str)
}

/// The object a service event names: `dh_<instance>_<kind>_<name>` of this instance.
pub(super) fn event_key(name: &str, instance: &str) -> Option<crate::manifest::ObjectKey> {
    let rest = name.strip_prefix(&format!("dh_{instance}_"))?;
    let (kind, object) = rest.split_once('_')?;
    Some(crate::manifest::ObjectKey::new(
        crate::manifest::Kind::parse(kind)?,
        object,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Endpoint, PortBinding, ServiceOptions};

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "dh_t_server_web".into(),
            image: "busybox".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            labels: labels::owner_labels("t"),
            ports: vec![PortBinding {
                container: 80,
                host: 8080,
                host_ip: None,
                protocol: Protocol::Tcp,
                host_mode: true,
            }],
            endpoints: vec![Endpoint {
                network: "dh_t_default".into(),
                ip: None,
                aliases: vec!["web".into()],
            }],
            service: ServiceOptions {
                replicas: 3,
                spec_hash: Some("abc".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn task_containers_do_not_carry_the_owner_labels() {
        let s = service_spec(&spec(), None, &[]).unwrap();
        let labels = s.labels.unwrap();
        assert_eq!(
            labels.get(labels::SPEC_HASH).map(String::as_str),
            Some("abc")
        );
        assert!(labels::is_ours(&labels, "t"));
        let task = s.task_template.unwrap().container_spec.unwrap();
        let task_labels = task.labels.unwrap();
        assert!(!task_labels.contains_key(labels::INSTANCE));
        assert_eq!(task_labels[SERVICE_LABEL], "dh_t_server_web");
        // The container's command is the service's args (the image's entrypoint stays).
        assert_eq!(task.command, None);
        assert_eq!(task.args.unwrap(), ["httpd", "-f"]);
    }

    #[test]
    fn only_a_check_that_runs_labels_the_service_as_checked() {
        let check = |test: &[&str]| crate::engine::Healthcheck {
            test: test.iter().map(|t| t.to_string()).collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 1,
            start_period: Duration::ZERO,
        };
        let mut s = spec();
        s.healthcheck = Some(check(&["CMD", "true"]));
        let labels = service_spec(&s, None, &[]).unwrap().labels.unwrap();
        assert_eq!(labels[HEALTH_LABEL], "true");
        s.healthcheck = Some(check(&["NONE"]));
        let labels = service_spec(&s, None, &[]).unwrap().labels.unwrap();
        assert!(!labels.contains_key(HEALTH_LABEL));
    }

    #[test]
    fn a_pinned_service_keeps_its_node_constraint() {
        let s = service_spec(&spec(), Some("n1"), &[]).unwrap();
        assert_eq!(pinned_node(&s).as_deref(), Some("n1"));
        assert_eq!(s.mode.unwrap().replicated.unwrap().replicas, Some(3));
    }

    #[test]
    fn what_a_service_cannot_do_is_refused_by_name() {
        let mut s = spec();
        s.endpoints[0].ip = Some("10.0.0.5".parse().unwrap());
        let err = service_spec(&s, None, &[]).unwrap_err().to_string();
        assert!(
            err.contains("a static ip is not supported by swarm services"),
            "{err}"
        );
    }

    /// The container part of the service `s` becomes with `refs`.
    fn task_of(s: &ContainerSpec, refs: &[SecretRef]) -> TaskSpecContainerSpec {
        service_spec(s, None, refs)
            .unwrap()
            .task_template
            .unwrap()
            .container_spec
            .unwrap()
    }

    #[test]
    fn a_secret_variable_is_a_file_the_service_names_and_never_plain_env() {
        let mut s = spec();
        s.secret_env = vec![crate::engine::SecretEnv {
            var: "POSTGRES_PASSWORD".into(),
            value: "hunter2".into(),
        }];
        let refs = [SecretRef::for_var(
            "POSTGRES_PASSWORD",
            "sid".into(),
            secret_name(&s.name, "POSTGRES_PASSWORD", b"hunter2"),
        )];
        let task = task_of(&s, &refs);
        let env = task.env.unwrap();
        assert!(env.contains(&"POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password".into()));
        assert!(!env.iter().any(|e| e.contains("hunter2")), "{env:?}");
        let secret = &task.secrets.unwrap()[0];
        assert_eq!(secret.secret_id.as_deref(), Some("sid"));
        assert_eq!(
            secret.file.as_ref().and_then(|f| f.name.as_deref()),
            Some("postgres_password")
        );
        // One host takes it as plain env; nothing prints the value.
        assert!(s
            .env_with_secrets()
            .contains(&"POSTGRES_PASSWORD=hunter2".into()));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_secret_file_is_a_swarm_secret_with_its_owner_and_mode() {
        let s = spec();
        let refs = [SecretRef {
            var: None,
            file: "key.pem".into(),
            uid: 1000,
            gid: 2000,
            mode: 0o440,
            id: "sid".into(),
            name: secret_name(&s.name, "key.pem", b"k"),
        }];
        let task = task_of(&s, &refs);
        assert!(!task
            .env
            .unwrap_or_default()
            .iter()
            .any(|e| e.contains("_FILE=")));
        let file = task.secrets.unwrap()[0].file.clone().unwrap();
        assert_eq!(file.name.as_deref(), Some("key.pem"));
        assert_eq!(
            (file.uid.as_deref(), file.gid.as_deref()),
            (Some("1000"), Some("2000"))
        );
        assert_eq!(file.mode, Some(0o440));
        assert!(refs[0].name.contains("_key.pem_"), "{}", refs[0].name);
    }

    #[test]
    fn secret_names_fit_the_swarm_and_change_with_the_value() {
        let long = format!("dh_{}_database_{}", "i".repeat(63), "d".repeat(63));
        let a = secret_name(&long, "POSTGRES_PASSWORD", b"a");
        assert!(a.len() <= 64, "{a}");
        assert!(a.ends_with(&a[a.len() - 12..]));
        assert_ne!(a, secret_name(&long, "POSTGRES_PASSWORD", b"b"));
        assert_eq!(
            secret_name("dh_t_database_orders", "POSTGRES_PASSWORD", b"a").len(),
            "dh_t_database_orders_postgres_password_".len() + 12
        );
    }

    #[test]
    fn a_job_that_completed_stays_completed_when_its_node_goes_down() {
        use bollard::models::{ServiceSpec, TaskState, TaskStatus};
        let mut labels = labels::owner_labels("t");
        labels.insert(labels::KIND.into(), "server".into());
        labels.insert(labels::NAME.into(), "migrate".into());
        let service = Service {
            id: Some("s1".into()),
            spec: Some(ServiceSpec {
                name: Some("dh_t_server_migrate".into()),
                labels: Some(labels),
                task_template: Some(TaskSpec {
                    restart_policy: Some(TaskSpecRestartPolicy {
                        condition: Some(Condition::NONE),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let task = |state| Task {
            service_id: Some("s1".into()),
            node_id: Some("n3".into()),
            slot: Some(1),
            status: Some(TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        };
        let nodes = HashMap::from([(
            "n3".to_owned(),
            NodeInfo {
                name: "node3".into(),
                addr: "10.0.0.13".into(),
                state: "down".into(),
            },
        )]);
        let done = observed_service(service.clone(), &[task(TaskState::COMPLETE)], &nodes, "t")
            .expect("ours");
        assert_eq!(done.state, State::Exited { code: Some(0) });
        // A running task on a node that is down does not run, as far as anyone can tell.
        let lost =
            observed_service(service, &[task(TaskState::RUNNING)], &nodes, "t").expect("ours");
        assert_eq!(lost.state, State::Restarting);
    }

    #[test]
    fn service_events_name_their_object() {
        let key = event_key("dh_t_server_web", "t").unwrap();
        assert_eq!(key.to_string(), "server/web");
        assert_eq!(event_key("dh_other_server_web", "t"), None);
    }
}
