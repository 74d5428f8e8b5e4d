//! `spec.replicas`: a Server that asks for N containers becomes N objects that differ only in
//! name (`web`, `web.1`, …), right after validation. Everything downstream (store, planner,
//! status, events, `get`) then treats each replica as an object of its own, so a replica that
//! dies is repaired alone and scaling down removes only the surplus.
//!
//! Replica 0 keeps the server's own name and `replicas` stays out of the spec hash, so scaling
//! never recreates a running container.

use super::{check_dns_label, Kind, Object, ObjectKey, Spec};

/// The name of replica `index` of `server`: the server's own for 0, `server.index` otherwise.
/// A dot cannot appear in a DNS label, so no other object can take that name.
pub fn replica_name(server: &str, index: u32) -> String {
    if index == 0 {
        server.to_owned()
    } else {
        format!("{server}.{index}")
    }
}

/// The server a replica belongs to: `web` for `web.2` and for `web`.
pub fn replica_of(name: &str) -> &str {
    split(name).map_or(name, |(base, _)| base)
}

/// A replica's index: 0 for the server's own name.
pub fn replica_index(name: &str) -> u32 {
    split(name).map_or(0, |(_, i)| i)
}

fn split(name: &str) -> Option<(&str, u32)> {
    let (base, index) = name.rsplit_once('.')?;
    let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    (digits && !index.starts_with('0'))
        .then(|| index.parse().ok())
        .flatten()
        .map(|i| (base, i))
}

/// The key that stands for every replica of `key`'s server (`server/web` for `server/web.2`);
/// any other key stands for itself.
pub fn whole(key: &ObjectKey) -> ObjectKey {
    match key.kind {
        Kind::Server => ObjectKey::new(Kind::Server, replica_of(&key.name)),
        _ => key.clone(),
    }
}

/// `server/web`, `database/orders`, a replica `web.2`, or a bare name meaning a server: an
/// object as the CLI and the API take one.
pub fn parse_object_ref(s: &str) -> Result<ObjectKey, String> {
    let (kind, name) = match s.split_once('/') {
        Some((k, n)) => (
            Kind::parse_or_err(k).map_err(|e| format!("{e} (in {s:?})"))?,
            n,
        ),
        None => (Kind::Server, s),
    };
    check_object_name(name)?;
    Ok(ObjectKey::new(kind, name))
}

/// Checks a name given on the command line or in an API path: an object's DNS label, or a
/// replica's (`web.2`).
pub fn check_object_name(name: &str) -> Result<(), String> {
    match split(name) {
        Some((base, _)) => check_dns_label(base).map_err(|_| invalid(name)),
        None => check_dns_label(name).map_err(|_| invalid(name)),
    }
}

fn invalid(name: &str) -> String {
    format!(
        "invalid name {name:?}: expected a lowercase DNS label (a-z, 0-9 and '-', at most 63 characters, starting and ending with a letter or digit), or a replica's name like web.2"
    )
}

/// Every object, with each replicated Server followed by its further replicas.
pub fn expand(objects: Vec<Object>) -> Vec<Object> {
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        let count = match &o.spec {
            // `replicas: 0` keeps the object, stopped: it shows as `Stopped`, not gone.
            Spec::Server(s) => s.replica_count().max(1),
            _ => 1,
        };
        let copies: Vec<Object> = (1..count)
            .map(|i| Object {
                name: replica_name(&o.name, i),
                ..o.clone()
            })
            .collect();
        out.push(o);
        out.extend(copies);
    }
    out
}

/// The keys that stand for `key` when something depends on it: a replicated server's every
/// replica, found among `desired`'s names; just `key` otherwise.
pub fn dependency_keys<'a>(
    key: &'a ObjectKey,
    replicas: &'a std::collections::HashMap<&str, Vec<&str>>,
) -> impl Iterator<Item = ObjectKey> + 'a {
    let more = (key.kind == Kind::Server)
        .then(|| replicas.get(key.name.as_str()))
        .flatten()
        .into_iter()
        .flatten()
        .map(|n| ObjectKey::new(Kind::Server, *n));
    std::iter::once(key.clone()).chain(more)
}

/// Further replicas (index 1 and up) by server name.
pub fn further_replicas(desired: &[Object]) -> std::collections::HashMap<&str, Vec<&str>> {
    let mut out: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for o in desired {
        if matches!(o.spec, Spec::Server(_)) && split(&o.name).is_some() {
            out.entry(replica_of(&o.name)).or_default().push(&o.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn server(name: &str, extra: &str) -> String {
        format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n{extra}")
    }

    #[test]
    fn a_replicated_server_becomes_one_object_per_replica() {
        let text = [server("web", "  replicas: 3\n"), server("db", "")].join("---\n");
        let objects = expand(parse_str(&text, "a.yaml", None).expect("parses"));
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["web", "web.1", "web.2", "db"]);
        assert!(objects.iter().all(|o| o.source == "a.yaml"));
        let hashes: std::collections::BTreeSet<String> =
            objects[..3].iter().map(Object::spec_hash).collect();
        assert_eq!(hashes.len(), 1, "replicas share one spec hash");
    }

    #[test]
    fn scaling_changes_no_spec_hash() {
        let one = parse_str(&server("web", ""), "a.yaml", None).expect("parses");
        let three = parse_str(&server("web", "  replicas: 3\n"), "a.yaml", None).expect("parses");
        let explicit_one =
            parse_str(&server("web", "  replicas: 1\n"), "a.yaml", None).expect("parses");
        assert_eq!(one[0].spec_hash(), three[0].spec_hash());
        assert_eq!(one[0].spec_hash(), explicit_one[0].spec_hash());
        let other = parse_str(
            &server("web", "  replicas: 3\n  command: [sleep, '1']\n"),
            "a.yaml",
            None,
        )
        .expect("parses");
        assert_ne!(one[0].spec_hash(), other[0].spec_hash());
    }

    #[test]
    fn replica_names_round_trip_and_cannot_collide_with_objects() {
        assert_eq!(replica_name("web", 0), "web");
        assert_eq!(replica_name("web", 2), "web.2");
        assert_eq!(replica_of("web.2"), "web");
        assert_eq!(replica_of("web"), "web");
        assert_eq!(replica_of("web.02"), "web.02");
        assert_eq!((replica_index("web"), replica_index("web.12")), (0, 12));
        for ok in ["web", "web.1", "web-2.10"] {
            assert!(check_object_name(ok).is_ok(), "{ok}");
        }
        for bad in ["web.", "web.01", "Web.1", ".1", "web.x", "web.1.2", ""] {
            assert!(check_object_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replicas_are_checked() {
        for (extra, field) in [
            ("  replicas: 65\n", "spec.replicas"),
            (
                "  replicas: 2\n  ports: [{container: 80, host: 8080}]\n",
                "spec.ports[0].host",
            ),
            (
                "  replicas: 2\n  network: n\n  ip: 10.0.0.5\n",
                "spec.replicas",
            ),
        ] {
            let errs = parse_str(&server("web", extra), "a.yaml", None).expect_err(extra);
            assert_eq!(errs[0].field, field, "{extra}: {errs:?}");
        }
        let ok = "  replicas: 2\n  ports: [{container: 80}]\n";
        assert!(parse_str(&server("web", ok), "a.yaml", None).is_ok());
    }

    #[test]
    fn zero_replicas_keep_the_object_to_show_it_stopped() {
        let text = server("web", "  replicas: 0\n");
        let objects = expand(parse_str(&text, "a.yaml", None).expect("parses"));
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["web"]);
    }

    #[test]
    fn depending_on_a_replicated_server_means_on_every_replica() {
        let text = server("web", "  replicas: 3\n");
        let objects = expand(parse_str(&text, "a.yaml", None).expect("parses"));
        let replicas = further_replicas(&objects);
        let key = ObjectKey::new(Kind::Server, "web");
        let keys: Vec<String> = dependency_keys(&key, &replicas)
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, ["server/web", "server/web.1", "server/web.2"]);
        let db = ObjectKey::new(Kind::Database, "web");
        assert_eq!(dependency_keys(&db, &replicas).count(), 1);
    }
}
