//! Checks across objects: dependency cycles, `Healthy` on a dependency whose health check is
//! switched off, and
//! two servers publishing the same host port.
//!
//! Works on object keys, so any kind can depend on any other once it exists. A dependency that
//! is not defined is no error: it blocks only the objects that need it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::depends::Condition;
use super::{ManifestError, Object, ObjectKey, Spec};

/// The dependencies an object declares.
pub fn dependencies(o: &Object) -> &[super::depends::Dependency] {
    match &o.spec {
        Spec::Server(s) => &s.depends_on,
        Spec::Database(_) | Spec::Network(_) | Spec::Route(_) | Spec::Secret(_) => &[],
    }
}

/// Whether the object can become healthy: a Server whose health check is not switched off (an
/// image's own HEALTHCHECK counts when the manifest has none), or any Database (healthy once
/// dockhand connected to it).
pub fn can_be_healthy(o: &Object) -> bool {
    match &o.spec {
        Spec::Server(s) => !s.health_check.as_ref().is_some_and(|h| h.is_disabled()),
        Spec::Database(_) => true,
        Spec::Network(_) | Spec::Route(_) | Spec::Secret(_) => false,
    }
}

/// Host ports an object publishes, with protocol, host address (every one when `None`) and
/// where in the spec they are.
fn host_ports(o: &Object) -> Vec<(u16, &'static str, Option<IpAddr>, String)> {
    match &o.spec {
        Spec::Server(s) => s
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.host.0 != 0)
            .map(|(i, p)| {
                (
                    p.host.0,
                    p.protocol.as_str(),
                    p.host_ip,
                    format!("spec.ports[{i}].host"),
                )
            })
            .collect(),
        Spec::Database(d) if d.port.0 != 0 => {
            vec![(d.port.0, "tcp", None, "spec.port".to_owned())]
        }
        Spec::Route(r) => vec![(
            r.listen.0.port(),
            r.protocol.as_str(),
            Some(r.listen.0.ip()),
            "spec.listen".to_owned(),
        )],
        Spec::Database(_) | Spec::Network(_) | Spec::Secret(_) => Vec::new(),
    }
}

/// Every problem, reported on the file of each object involved.
pub fn check(objects: &[Object]) -> Vec<ManifestError> {
    let by_key: BTreeMap<ObjectKey, &Object> = objects.iter().map(|o| (o.key(), o)).collect();
    let mut errors = Vec::new();
    for o in objects {
        for (i, d) in dependencies(o).iter().enumerate() {
            if d.condition == Condition::Healthy
                && by_key.get(&d.key()).is_some_and(|dep| !can_be_healthy(dep))
            {
                errors.push(error(
                    o,
                    format!("spec.dependsOn[{i}]"),
                    format!(
                        "condition Healthy needs a health check on {}, whose healthCheck is disabled",
                        d.key()
                    ),
                ));
            }
        }
    }
    type Slot<'s> = (u16, &'s str, Option<IpAddr>);
    let mut ports: Vec<(Slot<'_>, &Object)> = Vec::new();
    for o in objects {
        for (port, protocol, ip, field) in host_ports(o) {
            // Two addresses clash when either is every address, or both are the same.
            let clash = ports.iter().find(|((p, proto, other_ip), other)| {
                (*p, *proto) == (port, protocol)
                    && other.key() != o.key()
                    && (ip.is_none_or(|a| a.is_unspecified())
                        || other_ip.is_none_or(|a| a.is_unspecified())
                        || *other_ip == ip)
            });
            match clash.map(|(_, other)| *other) {
                Some(other) => {
                    let what = format!("host port {port}/{protocol}");
                    errors.push(error(
                        o,
                        field,
                        format!(
                            "{what} is also published by {} ({}:{})",
                            other.key(),
                            other.source,
                            other.line
                        ),
                    ));
                    errors.push(error(
                        other,
                        "spec.ports".into(),
                        format!(
                            "{what} is also published by {} ({}:{})",
                            o.key(),
                            o.source,
                            o.line
                        ),
                    ));
                }
                None => ports.push(((port, protocol, ip), o)),
            }
        }
    }
    errors.extend(check_addresses(objects, &by_key));
    errors.extend(check_route_targets(objects, &by_key));
    for cycle in cycles(&by_key) {
        let path: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(ToString::to_string)
            .collect();
        for key in &cycle {
            if let Some(o) = by_key.get(key) {
                errors.push(error(
                    o,
                    "spec.dependsOn".into(),
                    format!("dependency cycle: {}", path.join(" -> ")),
                ));
            }
        }
    }
    errors
}

/// Static ips: on a declared network, inside its subnet, not its gateway, and each held once.
fn check_addresses(
    objects: &[Object],
    by_key: &BTreeMap<ObjectKey, &Object>,
) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut held: BTreeMap<(String, std::net::Ipv4Addr), (&Object, String)> = BTreeMap::new();
    for o in objects {
        let Spec::Server(s) = &o.spec else { continue };
        for (field, net, ip) in s.static_ips() {
            let declared = by_key.get(&ObjectKey::new(super::Kind::Network, net.to_owned()));
            let subnet = declared.and_then(|n| match &n.spec {
                Spec::Network(n) => n.subnet.map(|sub| (sub, n.gateway)),
                _ => None,
            });
            let problem = match subnet {
                None => Some(format!(
                    "ip {ip} needs network {net} to be declared (kind: Network) with a subnet"
                )),
                Some((sub, _)) if !sub.contains(ip) || sub.is_reserved(ip) => Some(format!(
                    "ip {ip} does not lie in network {net}'s subnet {sub}"
                )),
                Some((_, Some(g))) if g == ip => {
                    Some(format!("ip {ip} is network {net}'s gateway"))
                }
                _ => None,
            };
            if let Some(message) = problem {
                errors.push(error(o, field, message));
                continue;
            }
            match held.get(&(net.to_owned(), ip)) {
                Some((other, other_field)) => {
                    let message =
                        format!("ip {ip} on network {net} is also held by {}", other.key());
                    errors.push(error(o, field.clone(), message));
                    errors.push(error(
                        other,
                        other_field.clone(),
                        format!("ip {ip} on network {net} is also held by {}", o.key()),
                    ));
                }
                None => {
                    held.insert((net.to_owned(), ip), (o, field));
                }
            }
        }
    }
    errors
}

/// A route's targets name Servers: naming another kind's object is an error.
fn check_route_targets(
    objects: &[Object],
    by_key: &BTreeMap<ObjectKey, &Object>,
) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    for o in objects {
        let Spec::Route(r) = &o.spec else { continue };
        let targets = std::iter::once(("spec.to.server".to_owned(), &r.to)).chain(
            r.rules
                .iter()
                .enumerate()
                .map(|(i, rule)| (format!("spec.rules[{i}].to.server"), &rule.to)),
        );
        for (field, t) in targets {
            let name = &t.server.0;
            if by_key.contains_key(&ObjectKey::new(super::Kind::Server, name.clone())) {
                continue;
            }
            if let Some(other) = super::Kind::ALL
                .into_iter()
                .find(|k| by_key.contains_key(&ObjectKey::new(*k, name.clone())))
            {
                errors.push(error(
                    o,
                    field,
                    format!("route target {name} is a {}, not a Server", other.as_str()),
                ));
            }
        }
    }
    errors
}

fn error(o: &Object, field: String, message: String) -> ManifestError {
    ManifestError {
        file: o.source.clone(),
        line: o.line,
        column: 0,
        field,
        message,
    }
}

/// The cycles among defined objects, each once, starting at its smallest key.
fn cycles(by_key: &BTreeMap<ObjectKey, &Object>) -> Vec<Vec<ObjectKey>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit(
        key: &ObjectKey,
        by_key: &BTreeMap<ObjectKey, &Object>,
        marks: &mut BTreeMap<ObjectKey, Mark>,
        stack: &mut Vec<ObjectKey>,
        found: &mut BTreeSet<Vec<ObjectKey>>,
    ) {
        marks.insert(key.clone(), Mark::Active);
        stack.push(key.clone());
        if let Some(o) = by_key.get(key) {
            for d in dependencies(o) {
                let next = d.key();
                if !by_key.contains_key(&next) {
                    continue;
                }
                match marks.get(&next) {
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|k| *k == next).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, k)| (*k).clone())
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        found.insert(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => visit(&next, by_key, marks, stack, found),
                }
            }
        }
        stack.pop();
        marks.insert(key.clone(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for key in by_key.keys() {
        if !marks.contains_key(key) {
            visit(key, by_key, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn server(name: &str, extra: &str) -> Object {
        let text = format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n{extra}");
        parse_str(&text, &format!("{name}.yaml"), None)
            .expect("parses")
            .remove(0)
    }

    #[test]
    fn a_cycle_is_named_on_every_member() {
        let objs = [
            server("a", "  dependsOn: [b]\n"),
            server("b", "  dependsOn: [{name: c}]\n"),
            server("c", "  dependsOn: [a]\n"),
            server("d", "  dependsOn: [a]\n"),
        ];
        let errs = check(&objs);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs.iter()
                .all(|e| e.message
                    == "dependency cycle: server/a -> server/b -> server/c -> server/a")
        );
        let files: BTreeSet<_> = errs.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files, BTreeSet::from(["a.yaml", "b.yaml", "c.yaml"]));
    }

    #[test]
    fn depending_on_itself_is_a_cycle() {
        let errs = check(&[server("a", "  dependsOn: [a]\n")]);
        assert_eq!(errs[0].message, "dependency cycle: server/a -> server/a");
    }

    #[test]
    fn healthy_needs_a_health_check_that_is_not_disabled() {
        let objs = [
            server("db", "  healthCheck: {disable: true}\n"),
            server("api", "  dependsOn: [{name: db, condition: Healthy}]\n"),
        ];
        let errs = check(&objs);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (errs[0].file.as_str(), errs[0].field.as_str()),
            ("api.yaml", "spec.dependsOn[0]")
        );
        // A probe in the manifest, or none (the image's own HEALTHCHECK may count).
        for hc in ["  healthCheck: {tcp: {port: 5432}}\n", ""] {
            let fixed = [
                server("db", hc),
                server("api", "  dependsOn: [{name: db, condition: Healthy}]\n"),
            ];
            assert!(check(&fixed).is_empty(), "{hc}");
        }
    }

    #[test]
    fn the_same_host_port_on_two_servers_is_an_error_on_both() {
        let objs = [
            server("a", "  ports: [{container: 80, host: 8080}]\n"),
            server("b", "  ports: [{container: 81, host: 8080}, {container: 53, host: 8080, protocol: udp}]\n"),
            server("c", "  ports: [{container: 80}, {container: 81}]\n"),
        ];
        let errs = check(&objs);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            (errs[0].file.as_str(), errs[0].field.as_str()),
            ("b.yaml", "spec.ports[0].host")
        );
        assert!(
            errs[0]
                .message
                .contains("host port 8080/tcp is also published by server/a"),
            "{}",
            errs[0]
        );
        assert_eq!(errs[1].file, "a.yaml");
    }

    #[test]
    fn one_host_port_on_two_addresses_is_fine_but_not_beside_every_address() {
        let objs = [
            server("a", "  ports: ['127.0.0.1:8080:80']\n"),
            server("b", "  ports: ['127.0.0.2:8080:80']\n"),
        ];
        assert!(check(&objs).is_empty());
        let objs = [
            server("a", "  ports: ['127.0.0.1:8080:80']\n"),
            server("b", "  ports: ['8080:80']\n"),
        ];
        assert_eq!(check(&objs).len(), 2);
    }

    fn object(kind: &str, name: &str, spec: &str) -> Object {
        let text = format!(
            "apiVersion: dockhand/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        );
        parse_str(&text, &format!("{name}.yaml"), None)
            .expect("parses")
            .remove(0)
    }

    #[test]
    fn static_ips_must_fit_their_declared_network_and_be_unique() {
        let net = object(
            "Network",
            "banananet",
            "{subnet: 10.99.0.0/24, gateway: 10.99.0.1}",
        );
        let ok = server("a", "  network: banananet\n  ip: 10.99.0.10\n");
        assert!(check(&[net.clone(), ok.clone()]).is_empty());
        let outside = server("b", "  network: banananet\n  ip: 10.98.0.10\n");
        let gateway = server("c", "  network: banananet\n  ip: 10.99.0.1\n");
        let twice = server("d", "  network: banananet\n  ip: 10.99.0.10\n");
        let undeclared = server("e", "  network: other\n  ip: 10.99.0.11\n");
        let errs = check(&[net, ok, outside, gateway, twice, undeclared]);
        let msgs: Vec<_> = errs
            .iter()
            .map(|e| format!("{}: {}", e.file, e.message))
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("b.yaml") && m.contains("does not lie in")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("c.yaml") && m.contains("gateway")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("d.yaml") && m.contains("also held by server/a")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("a.yaml") && m.contains("also held by server/d")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("e.yaml") && m.contains("declared")),
            "{msgs:?}"
        );
    }

    #[test]
    fn route_targets_must_be_servers_and_listen_ports_are_host_ports() {
        let db = object("Database", "lobby", "{}");
        let route = object(
            "Route",
            "game",
            "{listen: '0.0.0.0:25565', to: {server: lobby, port: 5520}}",
        );
        let errs = check(&[db, route.clone()]);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("is a Database, not a Server")),
            "{errs:?}"
        );
        let web = server("web", "  ports: [{container: 80, host: 25565}]\n");
        let errs = check(&[web, route]);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("host port 25565/tcp")),
            "{errs:?}"
        );
    }

    #[test]
    fn start_first_rejects_static_ips_and_fixed_host_ports() {
        let text = |extra: &str| {
            format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: a}}\nspec:\n  image: x\n  update: {{order: StartFirst}}\n{extra}")
        };
        assert!(parse_str(&text(""), "a.yaml", None).is_ok());
        let e = &parse_str(
            &text("  ports: [{container: 80, host: 8080}]\n"),
            "a.yaml",
            None,
        )
        .expect_err("fixed port")[0];
        assert!(e.message.contains("StartFirst"), "{e}");
        let e = &parse_str(&text("  network: n\n  ip: 10.0.0.5\n"), "a.yaml", None)
            .expect_err("static ip")[0];
        assert!(e.message.contains("StartFirst"), "{e}");
    }

    #[test]
    fn a_missing_dependency_is_not_an_error() {
        assert!(check(&[server("a", "  dependsOn: [ghost]\n")]).is_empty());
    }

    #[test]
    fn dependency_forms_parse_and_bad_ones_are_rejected() {
        let o = server("a", "  dependsOn:\n    - api\n    - {kind: Server, name: migrate, condition: Completed, restart: true}\n");
        let deps = dependencies(&o);
        assert_eq!(deps[0].condition, Condition::Started);
        assert_eq!(
            (deps[1].name.as_str(), deps[1].condition, deps[1].restart),
            ("migrate", Condition::Completed, true)
        );
        let text = "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: a}\nspec:\n  image: x\n  dependsOn: [{name: b, condition: Soon}]\n";
        let e = &parse_str(text, "a.yaml", None).expect_err("bad condition")[0];
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("Started"), "{e}");
    }

    #[test]
    fn health_checks_need_exactly_one_probe() {
        let text = |hc: &str| {
            format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: a}}\nspec:\n  image: x\n  healthCheck: {hc}\n")
        };
        assert!(parse_str(&text("{exec: [true], interval: 1s}"), "a.yaml", None).is_ok());
        assert!(parse_str(&text("{http: {port: 80, path: /healthz}}"), "a.yaml", None).is_ok());
        let e = &parse_str(&text("{exec: [true], tcp: {port: 1}}"), "a.yaml", None)
            .expect_err("two probes")[0];
        assert!(
            e.message.contains("exactly one of exec, http or tcp"),
            "{e}"
        );
        assert_eq!(e.field, "spec.healthCheck");
        assert!(parse_str(&text("{}"), "a.yaml", None).is_err());
    }
}
