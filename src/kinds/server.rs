//! `kind: Server`: how a Server object becomes one container on the engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{database, Context};
use crate::engine::labels;
use crate::engine::{
    ContainerOptions, ContainerSpec, Device, Healthcheck, Mount, PortBinding, ServiceOptions,
    ServiceUpdate,
};
use crate::lifecycle::Lifecycle;
use crate::manifest::depends::Condition;
use crate::manifest::fields::{engine_limits, engine_reservations, PublishMode};
use crate::manifest::health::OnUnhealthy;
use crate::manifest::replicas::dependency_keys;
use crate::manifest::server::{DbKey, EndpointMode, EnvValue, ServerSpec, VolumeType};
use crate::manifest::{short_hash, Kind, Object, ObjectKey, Spec};
use crate::plan::{Dep, Desired};

/// Resolves `fromDatabase` values: the named database's part, or `None` while it has none yet.
pub type DbLookup<'a> = dyn Fn(&str, DbKey) -> Option<String> + 'a;

/// The env files' contents, by path.
pub type EnvFiles = HashMap<String, std::sync::Arc<super::env_file::Loaded>>;

/// What a container spec takes from outside its manifest.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// `fromDatabase` values.
    pub lookup: &'a DbLookup<'a>,
    pub env_files: &'a EnvFiles,
    /// The image build, for a server with `build`.
    pub build: Option<&'a crate::engine::BuildSpec>,
    /// The values of the Secrets it uses.
    pub secrets: &'a HashMap<String, std::sync::Arc<super::secret::Value>>,
}

/// The hostname containers reach the host's published database ports by.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// The container a Server object asks for, labelled with this instance and the object's spec
/// hash; `None` while a `fromDatabase` value cannot be resolved yet.
pub fn container_spec(
    instance: &str,
    state_id: &str,
    object: &Object,
    spec: &ServerSpec,
    spec_hash: &str,
    inputs: &Inputs<'_>,
) -> Option<ContainerSpec> {
    let Inputs {
        lookup,
        env_files,
        build,
        secrets,
    } = *inputs;
    let mut env = Vec::with_capacity(spec.env.len());
    // Env files first, a later one over an earlier one; then `env` over them all.
    let mut from_files: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &spec.env_file.0 {
        for (k, v) in env_files
            .get(&f.0)
            .map(|l| l.vars.as_slice())
            .unwrap_or_default()
        {
            if !spec.env.keys().any(|n| n.0 == *k) {
                from_files.insert(k, v);
            }
        }
    }
    env.extend(from_files.iter().map(|(k, v)| format!("{k}={v}")));
    for (k, v) in &spec.env {
        let value = match v {
            EnvValue::Literal(s) => s.0.clone(),
            EnvValue::FromDatabase { from_database, key } => lookup(from_database, *key)?,
            EnvValue::FromSecret { from_secret } => {
                secrets.get(from_secret)?.text().ok()?.to_owned()
            }
        };
        env.push(format!("{}={value}", k.0));
    }
    let uses_database = spec.env.values().any(|v| v.database().is_some());
    let mut container_labels = labels::for_object(instance, state_id, object, spec_hash);
    if !spec.depends_on.is_empty() {
        let deps: Vec<String> = spec
            .depends_on
            .iter()
            .map(|d| d.key().to_string())
            .collect();
        container_labels.insert(labels::DEPENDS_ON.into(), deps.join(","));
    }
    let (memory, nano_cpus) = engine_limits(spec.resources.as_ref());
    let (memory_reservation, cpu_reservation) = engine_reservations(spec.resources.as_ref());
    Some(ContainerSpec {
        // StartFirst runs two containers at once during an update: the name carries the spec.
        name: if spec.start_first() {
            format!(
                "{}-{}",
                labels::container_name(instance, Kind::Server, &object.name),
                &spec_hash[..spec_hash.len().min(8)]
            )
        } else {
            labels::container_name(instance, Kind::Server, &object.name)
        },
        image: match build {
            Some(b) => b.tag.clone(),
            None => spec.image.as_ref()?.0.clone(),
        },
        // A built image is never pulled: it exists only here.
        pull_policy: if build.is_some() {
            crate::manifest::fields::PullPolicy::Never
        } else {
            spec.pull_policy
        },
        command: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env,
        secret_env: Vec::new(),
        secret_files: spec
            .secrets
            .iter()
            .map(|m| {
                let (mode, uid, gid) = m.ownership(spec.user.as_ref().map(|u| u.0.as_str()));
                Some(crate::engine::SecretFile {
                    name: m.file_name().to_owned(),
                    value: secrets.get(&m.name)?.clone(),
                    uid,
                    gid,
                    mode,
                })
            })
            .collect::<Option<Vec<_>>>()?,
        working_dir: spec.working_dir.as_ref().map(|p| p.0.clone()),
        user: spec.user.as_ref().map(|u| u.0.clone()),
        ports: spec
            .ports
            .iter()
            .map(|p| PortBinding {
                container: p.container.0,
                host: p.host.0,
                host_ip: p.host_ip.map(|ip| ip.to_string()),
                protocol: p.protocol,
                host_mode: p.mode == Some(PublishMode::Host),
            })
            .collect(),
        mounts: spec
            .volumes
            .iter()
            .map(|v| Mount {
                volume: v.kind == VolumeType::Volume,
                source: match v.kind {
                    VolumeType::Volume => labels::volume_name(instance, &v.source),
                    VolumeType::Bind => v.source.clone(),
                },
                target: v.target.0.clone(),
                read_only: v.read_only,
                relabel: v.relabel.map(crate::manifest::server::Relabel::option),
            })
            .collect(),
        memory,
        nano_cpus,
        memory_reservation,
        cpu_reservation,
        service: service_options(spec),
        stop_timeout: spec.stop_grace_period.map(|d| d.as_secs().max(1) as i64),
        labels: container_labels,
        stop_signal: spec.stop_signal.as_ref().map(|s| s.0.clone()),
        network_mode: None,
        endpoints: Vec::new(),
        extra_hosts: extra_hosts(spec, uses_database),
        options: options(spec),
        build: build.cloned(),
        healthcheck: spec.health_check.as_ref().map(|h| Healthcheck {
            test: h.probe.engine_test(h.timeout),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
        }),
    })
}

/// `/etc/hosts` entries: the manifest's, and the host alias databases are reached by (unless
/// the manifest points it elsewhere).
fn extra_hosts(spec: &ServerSpec, uses_database: bool) -> Vec<String> {
    let mut out: Vec<String> = spec
        .extra_hosts
        .iter()
        .map(|(name, addr)| format!("{}:{}", name.0, addr.0))
        .collect();
    if uses_database && !spec.extra_hosts.keys().any(|h| h.0 == HOST_ALIAS) {
        out.push(format!("{HOST_ALIAS}:host-gateway"));
    }
    out
}

/// What a swarm service makes of the spec beyond one container.
fn service_options(spec: &ServerSpec) -> ServiceOptions {
    let update = spec.update.as_ref();
    let placement = spec.placement.clone().unwrap_or_default();
    ServiceOptions {
        replicas: spec.replica_count().into(),
        restart: spec.restart_policy,
        restart_delay: spec.restart_delay,
        restart_window: spec.restart_window,
        max_restarts: spec.max_restarts,
        update: ServiceUpdate {
            start_first: spec.start_first(),
            parallelism: update.and_then(|u| u.parallelism),
            delay: update.and_then(|u| u.delay),
            rollback: spec.rollback_after().is_some(),
            monitor: update.and_then(|u| u.monitor).or(spec.rollback_after()),
        },
        constraints: placement.constraints.into_iter().map(|c| c.0).collect(),
        spread: placement
            .preferences
            .into_iter()
            .map(|p| p.spread.0)
            .collect(),
        max_replicas_per_node: placement.max_replicas_per_node,
        dnsrr: spec.endpoint_mode == Some(EndpointMode::Dnsrr),
        pinned: false,
        spec_hash: None,
    }
}

fn options(spec: &ServerSpec) -> ContainerOptions {
    ContainerOptions {
        hostname: spec.hostname.as_ref().map(|h| h.0.clone()),
        cap_add: spec.cap_add.iter().map(|c| c.0.clone()).collect(),
        cap_drop: spec.cap_drop.iter().map(|c| c.0.clone()).collect(),
        privileged: spec.privileged,
        devices: spec
            .devices
            .iter()
            .map(|d| Device {
                host: d.host.clone(),
                container: d.container.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        sysctls: spec
            .sysctls
            .iter()
            .map(|(k, v)| (k.0.clone(), v.0.clone()))
            .collect(),
        shm_size: spec.shm_size.map(|s| s.0 as i64),
        tmpfs: spec
            .tmpfs
            .iter()
            .map(|t| (t.path.clone(), t.options.clone()))
            .collect(),
        ulimits: spec
            .ulimits
            .iter()
            .map(|(k, u)| (k.0.clone(), u.soft, u.hard))
            .collect(),
        init: spec.init,
        read_only_root: spec.read_only_root_filesystem,
        security_opt: spec.security_opt.iter().map(|o| o.0.clone()).collect(),
        tty: spec.tty,
        stdin: spec.stdin,
        pids_limit: spec.pids_limit,
        dns: spec.dns.iter().map(ToString::to_string).collect(),
        dns_search: spec.dns_search.iter().map(|d| d.0.clone()).collect(),
        dns_options: spec.dns_options.iter().map(|d| d.0.clone()).collect(),
    }
}

/// A Server as the planner sees it, and the container it asks for.
///
/// A server that takes values from databases is recreated when where they are changes (never
/// because of the password, which stays the same), and depends on each (at least Started).
/// Depending on a replicated server means depending on every replica of it.
pub fn desired(
    objects: &[Object],
    o: &Object,
    s: &ServerSpec,
    replicas: &HashMap<&str, Vec<&str>>,
    ctx: &Context<'_>,
    lifecycle: Lifecycle,
) -> (Desired, Option<ContainerSpec>) {
    let key = o.key();
    let databases: BTreeSet<&str> = s.env.values().filter_map(|v| v.database()).collect();
    let joins = s.joins(&o.name);
    let lookup = |name: &str, part: DbKey| -> Option<String> {
        let (obj, spec) = objects.iter().find_map(|x| match &x.spec {
            Spec::Database(d) if x.name == name => Some((x, d)),
            _ => None,
        })?;
        let secret = ctx.secrets.get(name)?;
        let conn = match database::reach(&o.name, s, obj, spec) {
            database::Reach::Network => database::Connection::on_network(obj, spec, secret),
            database::Reach::Host => database::Connection::from_host(obj, spec, secret),
            database::Reach::Gateway => database::Connection::new(HOST_ALIAS, obj, spec, secret),
        };
        Some(match part {
            DbKey::Url => conn.url(Some(&secret.password)),
            DbKey::Host => conn.host,
            DbKey::Port => conn.port.to_string(),
            DbKey::Database => conn.database,
            DbKey::User => conn.user,
            DbKey::Password => secret.password.clone(),
        })
    };
    let mut hash = o.spec_hash();
    let build = s.build.as_ref().and_then(|_| {
        ctx.files
            .builds
            .get(crate::manifest::replicas::replica_of(&o.name))
    });
    let configs: Vec<&str> = s
        .volumes
        .iter()
        .filter(|v| v.kind == VolumeType::Bind && v.read_only)
        .map(|v| v.source.as_str())
        .collect();
    let secrets = super::secret::used_by(s);
    if !databases.is_empty()
        || !s.env_file.is_empty()
        || !configs.is_empty()
        || build.is_some()
        || !secrets.is_empty()
    {
        for db in &databases {
            for part in [DbKey::Host, DbKey::Port, DbKey::Database, DbKey::User] {
                hash.push('|');
                hash.push_str(&lookup(db, part).unwrap_or_default());
            }
            // A password from a Secret can be rotated: its servers follow. (A generated one
            // never changes, and never joined the hash.)
            let rotatable = objects.iter().any(|x| {
                x.name == *db && matches!(&x.spec, Spec::Database(d) if d.password.is_some())
            });
            if rotatable {
                hash.push('|');
                let password = lookup(db, DbKey::Password).unwrap_or_default();
                hash.push_str(&short_hash(password.as_bytes()));
            }
        }
        // An edited env file recreates the container.
        for f in &s.env_file.0 {
            hash.push('|');
            hash.push_str(ctx.files.env.get(&f.0).map_or("", |l| l.digest.as_str()));
        }
        // And a new build (its tag is the digest of its context).
        if let Some(b) = &build {
            hash.push('|');
            hash.push_str(&b.tag);
        }
        // So does an edited config file that it mounts read-only.
        for path in configs {
            hash.push('|');
            hash.push_str(ctx.files.config.get(path).map_or("", String::as_str));
        }
        // And a Secret's new value.
        for (_, name) in &secrets {
            hash.push('|');
            hash.push_str(
                ctx.files
                    .secrets
                    .get(*name)
                    .map_or("", |v| v.digest.as_str()),
            );
        }
        hash = short_hash(hash.as_bytes());
    }
    let hash = ctx.with_restarts(&key, hash);
    let container = container_spec(
        ctx.instance,
        ctx.state_id,
        o,
        s,
        &hash,
        &Inputs {
            lookup: &lookup,
            env_files: &ctx.files.env,
            build,
            secrets: &ctx.files.secrets,
        },
    )
    .map(|mut c| {
        (c.network_mode, c.endpoints) = ctx.networks.endpoints(&joins);
        c
    });
    // A service is one object for every replica: its hash has what only a service has (the
    // replica count, placement, update settings), the task containers' the rest, so scaling
    // or a new update delay changes the service without replacing its tasks.
    let (hash, container) = if ctx.swarm {
        let service_hash = short_hash(format!("{hash}|swarm:{}", o.service_hash()).as_bytes());
        let container = container.map(|mut c| {
            c.name = labels::container_name(ctx.instance, Kind::Server, &o.name);
            c.service.spec_hash = Some(service_hash.clone());
            c
        });
        (service_hash, container)
    } else {
        (hash, container)
    };
    let mut deps: Vec<Dep> = s
        .depends_on
        .iter()
        .flat_map(|d| {
            let key = d.key();
            dependency_keys(&key, replicas)
                .map(|key| Dep {
                    key,
                    condition: d.condition,
                    restart: d.restart,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    for db in databases {
        let db_key = ObjectKey::new(Kind::Database, db);
        if !deps.iter().any(|d| d.key == db_key) {
            deps.push(Dep {
                key: db_key,
                condition: Condition::Started,
                restart: false,
            });
        }
    }
    let desired = Desired {
        key,
        spec_hash: hash,
        restart: s.restart_policy,
        max_restarts: s.max_restarts,
        // An image's own HEALTHCHECK restarts it too, as a manifest's would by default.
        restart_unhealthy: !ctx.swarm
            && s.health_check
                .as_ref()
                .is_none_or(|h| h.on_unhealthy == OnUnhealthy::Restart && !h.is_disabled()),
        readiness: None,
        // On a swarm, its update order, rollback and health restarts are the swarm's.
        start_first: s.start_first() && !ctx.swarm,
        hold: None,
        stopped: None,
        revision: o.spec_hash(),
        rollback_after: s.rollback_after().filter(|_| !ctx.swarm),
        rolled_back: None,
        deps,
        lifecycle,
    };
    (desired, container)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_str, Spec};

    #[test]
    fn container_carries_the_label_contract_and_namespaced_volumes() {
        let text = "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web, labels: {tier: front}}\nspec:\n  image: busybox\n  volumes: [{type: volume, source: data, target: /data}]\n  resources: {memory: 64m}\n";
        let obj = &parse_str(text, "w.yaml", None).expect("parses")[0];
        let Spec::Server(spec) = &obj.spec else {
            panic!("a server")
        };
        let c = container_spec(
            "prod",
            "id",
            obj,
            spec,
            "abc",
            &Inputs {
                lookup: &|_, _| None,
                env_files: &HashMap::new(),
                build: None,
                secrets: &HashMap::new(),
            },
        )
        .expect("no database values");
        assert_eq!(c.name, "dh_prod_server_web");
        for (k, v) in [
            ("dockhand.managed", "true"),
            ("dockhand.instance", "prod"),
            ("dockhand.kind", "server"),
            ("dockhand.name", "web"),
            ("dockhand.spec-hash", "abc"),
            ("tier", "front"),
        ] {
            assert_eq!(c.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(c.mounts[0].source, "dh_prod_data");
        assert_eq!(c.memory, Some(64 << 20));
    }
}
