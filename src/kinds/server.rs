//! `kind: Server`: how a Server object becomes one container on the engine.

use std::collections::HashMap;

use crate::engine::labels;
use crate::engine::{ContainerSpec, Healthcheck, Mount, PortBinding};
use crate::manifest::server::{engine_limits, DbKey, EnvValue, ServerSpec, VolumeType};
use crate::manifest::{Kind, Object};

/// Resolves `fromDatabase` values: the named database's part, or `None` while it has none yet.
pub type DbLookup<'a> = dyn Fn(&str, DbKey) -> Option<String> + 'a;

/// The hostname containers reach the host's published database ports by.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// The container a Server object asks for, labelled with this instance and the object's spec
/// hash; `None` while a `fromDatabase` value cannot be resolved yet.
pub fn container_spec(
    instance: &str,
    object: &Object,
    spec: &ServerSpec,
    spec_hash: &str,
    lookup: &DbLookup<'_>,
) -> Option<ContainerSpec> {
    let mut env = Vec::with_capacity(spec.env.len());
    for (k, v) in &spec.env {
        let value = match v {
            EnvValue::Literal(s) => s.0.clone(),
            EnvValue::FromDatabase { from_database, key } => lookup(from_database, *key)?,
        };
        env.push(format!("{}={value}", k.0));
    }
    let uses_database = spec.env.values().any(|v| v.database().is_some());
    let mut container_labels: HashMap<String, String> = object
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    container_labels.extend(owner_labels(instance));
    container_labels.insert(labels::KIND.into(), Kind::Server.label().into());
    container_labels.insert(labels::NAME.into(), object.name.clone());
    container_labels.insert(labels::SPEC_HASH.into(), spec_hash.into());
    if !spec.depends_on.is_empty() {
        let deps: Vec<String> = spec
            .depends_on
            .iter()
            .map(|d| d.key().to_string())
            .collect();
        container_labels.insert(labels::DEPENDS_ON.into(), deps.join(","));
    }
    let (memory, nano_cpus) = engine_limits(spec.resources.as_ref());
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
        image: spec.image.0.clone(),
        pull_policy: spec.pull_policy,
        command: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env,
        working_dir: spec.working_dir.as_ref().map(|p| p.0.clone()),
        user: spec.user.as_ref().map(|u| u.0.clone()),
        ports: spec
            .ports
            .iter()
            .map(|p| PortBinding {
                container: p.container.0,
                host: p.host.0,
                protocol: p.protocol,
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
            })
            .collect(),
        memory,
        nano_cpus,
        stop_timeout: spec.stop_grace_period.map(|d| d.as_secs().max(1) as i64),
        labels: container_labels,
        stop_signal: None,
        network: None,
        ip: None,
        extra_hosts: if uses_database {
            vec![format!("{HOST_ALIAS}:host-gateway")]
        } else {
            Vec::new()
        },
        healthcheck: spec.health_check.as_ref().map(|h| Healthcheck {
            test: h.probe.engine_test(h.timeout),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
        }),
    })
}

/// Labels on everything this instance creates (containers and volumes).
pub fn owner_labels(instance: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::INSTANCE.to_owned(), instance.to_owned()),
    ])
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
        let c = container_spec("prod", obj, spec, "abc", &|_, _| None).expect("no database values");
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
