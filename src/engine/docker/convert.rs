//! Translation between dockhand's engine types and bollard's models, so that each `Engine`
//! method reads as one request and its reply.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerStatsResponse, ContainerSummary, ContainerSummaryStateEnum,
    HostConfig, MountType, PortBinding as BPortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::engine::{
    labels, ContainerSpec, ContainerStats, Endpoint, EngineError, Health, Observed, PublishedPort,
    State,
};
use crate::manifest::fields::Protocol;

pub(super) fn unavailable(e: BollardError) -> EngineError {
    EngineError::Unavailable {
        message: e.to_string(),
    }
}

/// Status code and message of an engine reply, or `None` for transport failures.
pub(super) fn server_error(e: &BollardError) -> Option<(u16, &str)> {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => Some((*status_code, message)),
        _ => None,
    }
}

pub(super) fn engine(op: &'static str, target: &str, e: BollardError) -> EngineError {
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

/// Endpoint settings: an optional static address and the names answered to.
pub(super) fn endpoint(e: &Endpoint) -> bollard::models::EndpointSettings {
    bollard::models::EndpointSettings {
        ipam_config: e.ip.map(|ip| bollard::models::EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        aliases: (!e.aliases.is_empty()).then(|| e.aliases.clone()),
        ..Default::default()
    }
}

/// `Exited (137) 5 seconds ago` → 137.
fn exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

/// `busybox` → (`busybox`, `latest`); a digest reference is pulled as is.
pub(super) fn split_reference(image: &str) -> (String, Option<String>) {
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

/// One listed container as dockhand sees it; `None` when it is not this instance's.
pub(super) fn observed(c: ContainerSummary, instance: &str) -> Option<Observed> {
    let labels = c.labels.unwrap_or_default();
    // The engine filtered already; this guards rule 3 against any filter mishap.
    if !labels::is_ours(&labels, instance) {
        return None;
    }
    // A job's container is never an object's, whatever labels its image gave it (an image
    // dockhand built carries the instance's label): a pass that took a running backup for an
    // orphan killed it (exit 137) whenever it outlasted the next pass.
    if labels.contains_key(crate::engine::job::JOB_LABEL) {
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
    let listed: Vec<(bool, PublishedPort)> = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let protocol = match p.typ.map(|t| t.to_string()).as_deref() {
                Some("udp") => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let v6 = p.ip.as_deref().is_some_and(|ip| ip.contains(':'));
            Some((
                v6,
                PublishedPort {
                    container: p.private_port,
                    protocol,
                    host: p.public_port?,
                },
            ))
        })
        .collect();
    let ports = published(listed);
    let name = c
        .names
        .and_then(|n| n.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default();
    let mut observed = Observed::from_labels(c.id.unwrap_or_default(), name, state, &labels);
    observed.ports = ports;
    observed.image = c.image.clone();
    // The listing's own health field where the engine fills it (newer Docker), else the
    // status text (`Up 5 seconds (healthy)`).
    use bollard::models::ContainerSummaryHealthStatusEnum as H;
    let listed = c.health.and_then(|h| h.status).and_then(|s| match s {
        H::STARTING => Some(Health::Starting),
        H::HEALTHY => Some(Health::Healthy),
        H::UNHEALTHY => Some(Health::Unhealthy),
        H::NONE | H::EMPTY => None,
    });
    observed.health = listed.or_else(|| c.status.as_deref().and_then(health));
    observed.ip = c.network_settings.and_then(|n| n.networks).and_then(|n| {
        let mut nets: Vec<_> = n.into_iter().collect();
        nets.sort_by(|a, b| a.0.cmp(&b.0));
        nets.into_iter()
            .find_map(|(_, e)| e.ip_address.filter(|ip| !ip.is_empty())?.parse().ok())
    });
    Some(observed)
}

/// A named volume or a host path, as the engine mounts it (in a container or a service).
pub(super) fn mount(m: &crate::engine::Mount) -> bollard::models::Mount {
    bollard::models::Mount {
        target: Some(m.target.clone()),
        source: Some(m.source.clone()),
        typ: Some(if m.volume {
            MountType::VOLUME
        } else {
            MountType::BIND
        }),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

/// The engine's create request for a container spec.
pub(super) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
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
        // One container port may be published on several host addresses.
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(BPortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(host_port),
            });
    }
    exposed.sort();
    exposed.dedup();
    // Relabelled mounts go as bind strings (`src:dst:ro,Z`): the mounts API cannot relabel.
    let mounts = spec
        .mounts
        .iter()
        .filter(|m| m.relabel.is_none())
        .map(mount)
        .collect();
    let binds: Vec<String> = spec
        .mounts
        .iter()
        .filter_map(|m| {
            let relabel = m.relabel?;
            let mode = if m.read_only { "ro" } else { "rw" };
            Some(format!("{}:{}:{mode},{relabel}", m.source, m.target))
        })
        .collect();
    let o = &spec.options;
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: o.hostname.clone(),
        tty: Some(o.tty),
        open_stdin: Some(o.stdin),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env_with_secrets()),
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
            binds: (!binds.is_empty()).then_some(binds),
            memory: spec.memory,
            nano_cpus: spec.nano_cpus,
            memory_reservation: spec.memory_reservation,
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            network_mode: spec
                .network_mode
                .clone()
                .or_else(|| spec.endpoints.first().map(|e| e.network.clone())),
            privileged: Some(o.privileged),
            cap_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
            cap_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
            devices: (!o.devices.is_empty()).then(|| {
                o.devices
                    .iter()
                    .map(|d| bollard::models::DeviceMapping {
                        path_on_host: Some(d.host.clone()),
                        path_in_container: Some(d.container.clone()),
                        cgroup_permissions: Some(d.permissions.clone()),
                    })
                    .collect()
            }),
            sysctls: (!o.sysctls.is_empty()).then(|| o.sysctls.clone()),
            shm_size: o.shm_size,
            pids_limit: o.pids_limit,
            dns: (!o.dns.is_empty()).then(|| o.dns.clone()),
            dns_search: (!o.dns_search.is_empty()).then(|| o.dns_search.clone()),
            dns_options: (!o.dns_options.is_empty()).then(|| o.dns_options.clone()),
            tmpfs: (!o.tmpfs.is_empty()).then(|| o.tmpfs.clone()),
            ulimits: (!o.ulimits.is_empty()).then(|| {
                o.ulimits
                    .iter()
                    .map(|(name, soft, hard)| bollard::models::ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(*soft),
                        hard: Some(*hard),
                    })
                    .collect()
            }),
            init: o.init.then_some(true),
            readonly_rootfs: Some(o.read_only_root),
            security_opt: (!o.security_opt.is_empty()).then(|| o.security_opt.clone()),
            // dockhand applies restart policies itself, so it sees and records every restart.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // One network at creation (engines before API 1.44 take no more); `create` joins the rest.
    let body = ContainerCreateBody {
        networking_config: spec
            .endpoints
            .first()
            .map(|e| bollard::models::NetworkingConfig {
                endpoints_config: Some(HashMap::from([(e.network.clone(), endpoint(e))])),
            }),
        ..body
    };
    body
}

/// One stats sample, summed over block devices and networks.
pub(super) fn stats(s: &ContainerStatsResponse) -> ContainerStats {
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
    ContainerStats {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_image_carries_the_instance_label_is_never_listed_as_an_orphan() {
        // A backup of a database whose image dockhand built: the job container inherits the
        // image's owner labels, and a pass removed it as an orphan mid-dump.
        let mut with = labels::owner_labels("i");
        with.extend(crate::engine::job::job_labels("i", "backup/orders"));
        let job = ContainerSummary {
            id: Some("j".into()),
            names: Some(vec!["/dh_i_job_orders-backup".into()]),
            labels: Some(with),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            ..Default::default()
        };
        assert!(observed(job.clone(), "i").is_none());
        let orphan = ContainerSummary {
            labels: Some(labels::owner_labels("i")),
            ..job
        };
        assert!(
            observed(orphan, "i").is_some(),
            "a real orphan is still listed"
        );
    }

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

/// The host ports a container publishes, from the engine's listing of `(is IPv6, port)`.
///
/// The engine lists IPv4 and IPv6 bindings apart, and for a port it picks itself it may pick a
/// different one for each: the IPv4 one is what `127.0.0.1` reaches, so an IPv6 binding counts
/// only for a container port with no IPv4 one.
fn published(listed: Vec<(bool, PublishedPort)>) -> Vec<PublishedPort> {
    let v4: std::collections::BTreeSet<(u16, Protocol)> = listed
        .iter()
        .filter(|(v6, _)| !v6)
        .map(|(_, p)| (p.container, p.protocol))
        .collect();
    let mut ports: Vec<PublishedPort> = listed
        .into_iter()
        .filter(|(v6, p)| !v6 || !v4.contains(&(p.container, p.protocol)))
        .map(|(_, p)| p)
        .collect();
    ports.sort_by_key(|p| (p.container, p.protocol, p.host));
    ports.dedup();
    ports
}

#[cfg(test)]
mod published_tests {
    use super::*;

    #[test]
    fn an_ipv6_binding_on_another_port_does_not_hide_the_ipv4_one() {
        let port = |container, host| PublishedPort {
            container,
            protocol: Protocol::Tcp,
            host,
        };
        // The engine picked 32791 for IPv4 and 32790 for IPv6.
        let got = published(vec![(false, port(8080, 32791)), (true, port(8080, 32790))]);
        assert_eq!(got, [port(8080, 32791)]);
        // The same port on both: once. Only IPv6: kept.
        let got = published(vec![
            (false, port(80, 8080)),
            (true, port(80, 8080)),
            (true, port(53, 5353)),
        ]);
        assert_eq!(got, [port(53, 5353), port(80, 8080)]);
    }
}
