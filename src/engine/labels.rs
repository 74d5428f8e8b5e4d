//! The label schema and naming contract: the only way dockhand recognises what it owns.
//!
//! Everything dockhand creates on the engine carries these labels, and every query it sends is
//! filtered by `dockhand.instance`, so two instances (or a stranger's containers) never mix.

use std::collections::HashMap;

use crate::manifest::{Kind, Object, ObjectKey};

pub const MANAGED: &str = "dockhand.managed";
pub const INSTANCE: &str = "dockhand.instance";
pub const KIND: &str = "dockhand.kind";
pub const NAME: &str = "dockhand.name";
pub const SPEC_HASH: &str = "dockhand.spec-hash";
/// The objects a container's object depends on (`server/a,server/b`), so that orphans can be
/// removed dependents first even after their manifests are gone.
pub const DEPENDS_ON: &str = "dockhand.depends-on";
/// The identity of the state file whose controller created the container. A controller leaves
/// containers of another identity alone (two state files on one instance never fight).
pub const STATE_ID: &str = "dockhand.state-id";
/// A data volume to remove together with the container (a Database with deletionPolicy Delete).
pub const DELETE_VOLUME: &str = "dockhand.delete-volume";
pub use crate::manifest::RESERVED_PREFIX;

/// The instance used when neither `--instance` nor `DOCKHAND_INSTANCE` is given.
pub const DEFAULT_INSTANCE: &str = "default";

/// Deterministic container name: `dh_<instance>_<kind>_<name>`.
///
/// Instances, kinds and object names are DNS labels (no `_`), so the name is unambiguous and a
/// crash between any two steps is healed by the next pass finding the same name again.
pub fn container_name(instance: &str, kind: Kind, name: &str) -> String {
    format!("dh_{instance}_{}_{name}", kind.label())
}

/// Deterministic name of a named volume a manifest declares: `dh_<instance>_<source>`.
pub fn volume_name(instance: &str, source: &str) -> String {
    format!("dh_{instance}_{source}")
}

/// Deterministic name of a network dockhand creates: `dh_<instance>_<name>`.
pub fn network_name(instance: &str, name: &str) -> String {
    format!("dh_{instance}_{name}")
}

/// Label filters that select exactly this instance's objects on the engine.
pub fn instance_filters(instance: &str) -> Vec<String> {
    vec![format!("{MANAGED}=true"), format!("{INSTANCE}={instance}")]
}

/// Labels on everything this instance creates (containers, volumes, networks).
pub fn owner_labels(instance: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (INSTANCE.to_owned(), instance.to_owned()),
    ])
}

/// The labels of the container an object asks for: the user's labels, the owner labels (with
/// the state file's identity), the object's kind and name, and the hash of the spec it was
/// created from.
pub fn for_object(
    instance: &str,
    state_id: &str,
    object: &Object,
    spec_hash: &str,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = object
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(owner_labels(instance));
    labels.insert(KIND.into(), object.spec.kind().label().into());
    labels.insert(NAME.into(), object.name.clone());
    labels.insert(SPEC_HASH.into(), spec_hash.into());
    labels.insert(STATE_ID.into(), state_id.into());
    labels
}

/// Whether labels carry this instance's mark.
pub fn is_ours(labels: &HashMap<String, String>, instance: &str) -> bool {
    labels.get(INSTANCE).map(String::as_str) == Some(instance)
}

/// The object a container's labels name, if they name one completely.
pub fn object_key(labels: &HashMap<String, String>) -> Option<ObjectKey> {
    let kind = Kind::parse(labels.get(KIND)?)?;
    Some(ObjectKey::new(kind, labels.get(NAME)?.clone()))
}

/// The objects a container's object depends on (`server/a,server/b`); unreadable entries are
/// skipped.
pub fn depends_on(labels: &HashMap<String, String>) -> Vec<ObjectKey> {
    labels
        .get(DEPENDS_ON)
        .map(|v| {
            v.split(',')
                .filter_map(|k| {
                    let (kind, name) = k.split_once('/')?;
                    Some(ObjectKey::new(Kind::parse(kind)?, name))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_differ_between_instances_with_dashes() {
        let a = container_name("a-b", Kind::Server, "c");
        let b = container_name("a", Kind::Server, "b-c");
        assert_ne!(a, b);
        assert_eq!(a, "dh_a-b_server_c");
    }
}
