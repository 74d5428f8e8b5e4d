//! `kind: Route`: what a route's proxy listens on and forwards to, and how its status reads.
//!
//! The proxy (`crate::proxy`) moves the bytes; this file decides which backends each route has
//! after a pass, merges the runtime per-client routes into the manifest's rules, and turns what
//! the proxy reports into statuses.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::engine::{Observed, State};
use crate::manifest::fields::ContainerPort;
use crate::manifest::network::{Cidr, RouteSpec, Rule, Target};
use crate::manifest::replicas::replica_of;
use crate::manifest::{Kind, Name, Object, ObjectKey, Phase, Spec};
use crate::plan::Plan;
use crate::proxy::{Backend, RouteState};
use crate::store::{ClientRoute, NewEvent, Status};

/// The routes among the desired objects, by name.
pub fn routes(desired: &[Object]) -> Vec<(String, RouteSpec)> {
    desired
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Route(r) => Some((o.name.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

/// Runtime per-client routes join the manifest's rules, and the most specific source wins: a
/// manifest rule for exactly the same clients is replaced, narrower ones stay ahead of a
/// client route for a network. Returns the raw addresses targeted, as backends of their own.
pub fn add_client_routes(
    routes: &mut [(String, RouteSpec)],
    clients: &BTreeMap<String, Vec<ClientRoute>>,
) -> HashMap<String, Vec<Backend>> {
    let mut raw = HashMap::new();
    for (name, spec) in routes.iter_mut() {
        for c in clients.get(name).into_iter().flatten() {
            let source: Cidr = c.client.0;
            if let Some(ip) = c.address() {
                raw.insert(c.server.clone(), vec![Backend::from(ip)]);
            }
            spec.rules.retain(|r| r.source != source);
            spec.rules.push(Rule {
                source,
                to: Target {
                    server: Name(c.server.clone()),
                    port: ContainerPort(c.port),
                },
            });
        }
    }
    raw
}

/// Every server's backends: the address of each replica's Ready container, or while a
/// StartFirst update is under way, of the old container that still runs.
pub fn backends(plan: &Plan, observed: &[Observed]) -> HashMap<String, Vec<Backend>> {
    let mut backends: HashMap<String, Vec<Backend>> = HashMap::new();
    for (key, v) in &plan.verdicts {
        if key.kind != Kind::Server {
            continue;
        }
        if let Some(c) = v.container.as_ref().filter(|c| c.tasks.is_some()) {
            backends.insert(key.name.clone(), service_backends(c));
            continue;
        }
        let ready = v
            .container
            .as_ref()
            .filter(|_| v.phase == Phase::Ready)
            .and_then(|c| c.ip);
        let fallback = || {
            observed
                .iter()
                .filter(|c| c.key.as_ref() == Some(key) && c.state == State::Running)
                .find_map(|c| c.ip)
        };
        if let Some(ip) = ready.or_else(fallback) {
            // Every replica of a server serves the routes that target it.
            backends
                .entry(replica_of(&key.name).to_owned())
                .or_default()
                .push(ip.into());
        }
    }
    backends
}

/// A swarm service's backends: the node of each running task, at the ports the service
/// publishes there (a port it does not publish is out of the proxy's reach: the tasks'
/// networks span the nodes, not this host).
fn service_backends(c: &Observed) -> Vec<Backend> {
    let ports: Vec<(u16, u16)> = c.ports.iter().map(|p| (p.container, p.host)).collect();
    if ports.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Backend> = c
        .tasks
        .iter()
        .flat_map(|t| &t.list)
        .filter(|t| t.state == "running")
        .filter_map(|t| t.address.as_deref()?.parse::<Ipv4Addr>().ok())
        .map(|ip| Backend {
            ip,
            ports: ports.clone(),
        })
        .collect();
    out.sort_by_key(|b| b.ip);
    out.dedup();
    out
}

/// Per route, what it cannot reach: a swarm service it targets that does not publish the
/// target port (the proxy is not on the tasks' networks; it reaches them at published ports).
pub fn unpublished_targets(
    routes: &[(String, RouteSpec)],
    plan: &Plan,
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (name, spec) in routes {
        for t in spec.targets() {
            let key = ObjectKey::new(Kind::Server, t.server.0.clone());
            let Some(service) = plan
                .verdicts
                .get(&key)
                .and_then(|v| v.container.as_ref())
                .filter(|c| c.tasks.is_some())
            else {
                continue;
            };
            let port = t.port.0;
            if service
                .ports
                .iter()
                .any(|p| p.container == port && p.protocol == spec.protocol)
            {
                continue;
            }
            let why = format!(
                "server/{} publishes no port {port}/{}: on a swarm a route reaches tasks at a published port (ports: [{{container: {port}, mode: host}}])",
                t.server.0,
                spec.protocol.as_str()
            );
            let notes = out.entry(name.clone()).or_default();
            if !notes.contains(&why) {
                notes.push(why);
            }
        }
    }
    out
}

/// A route is Ready while it listens and has a ready backend, Running while it listens with none
/// (or with a target it cannot reach),
/// Invalid when it cannot listen, and Pending outside `dockhand up`. A route that just became
/// Invalid gets an event.
pub fn statuses(
    desired: &[Object],
    serving: bool,
    states: &HashMap<String, RouteState>,
    previous: &HashMap<ObjectKey, Status>,
    generations: &HashMap<ObjectKey, i64>,
) -> (Vec<Status>, Vec<NewEvent>) {
    let mut events = Vec::new();
    let statuses = desired
        .iter()
        .filter_map(|o| match &o.spec {
            Spec::Route(r) => Some((o, r)),
            _ => None,
        })
        .map(|(o, r)| {
            let mut st = Status::pending(o.key());
            st.observed_generation = generations.get(&o.key()).copied().unwrap_or(1);
            let (phase, message) = match states.get(&o.name) {
                _ if !serving => (Phase::Pending, "served by dockhand up".to_owned()),
                None => (Phase::Pending, "not started".to_owned()),
                Some(s) => match &s.listening {
                    Err(e) => (Phase::Invalid, e.clone()),
                    // Listening, but nothing (or not every target) to send to.
                    Ok(()) if s.backends.is_empty() || !s.unreachable.is_empty() => {
                        (Phase::Running, s.message(r))
                    }
                    Ok(()) => (Phase::Ready, s.message(r)),
                },
            };
            if phase == Phase::Invalid
                && previous.get(&o.key()).map(|p| p.phase) != Some(Phase::Invalid)
            {
                events.push(NewEvent {
                    key: Some(o.key()),
                    reason: "invalid",
                    message: message.clone(),
                });
            }
            st.phase = phase;
            st.message = Some(message);
            st
        })
        .collect();
    (statuses, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PublishedPort, Tasks};
    use crate::manifest::fields::Protocol;
    use crate::manifest::network::ListenAddr;
    use crate::plan::Verdict;

    fn service(ports: Vec<PublishedPort>) -> Verdict {
        let mut c =
            Observed::from_labels("s1".into(), "web".into(), State::Running, &HashMap::new());
        c.tasks = Some(Tasks::default());
        c.ports = ports;
        Verdict {
            phase: Phase::Ready,
            message: None,
            lifecycle: Default::default(),
            container: Some(c),
            dep_runs: BTreeMap::new(),
        }
    }

    #[test]
    fn a_route_to_a_port_a_swarm_service_does_not_publish_says_how_to_publish_it() {
        let route = RouteSpec {
            protocol: Protocol::Tcp,
            listen: ListenAddr("127.0.0.1:18300".parse().expect("an address")),
            to: Target {
                server: Name("web".into()),
                port: ContainerPort(8080),
            },
            rules: Vec::new(),
            udp_idle_timeout: std::time::Duration::from_secs(30),
        };
        let routes = [("front".to_owned(), route)];
        let mut plan = Plan::default();
        plan.verdicts
            .insert(ObjectKey::new(Kind::Server, "web"), service(Vec::new()));
        let why = unpublished_targets(&routes, &plan);
        assert_eq!(
            why["front"],
            ["server/web publishes no port 8080/tcp: on a swarm a route reaches tasks at a published port (ports: [{container: 8080, mode: host}])"]
        );
        let published = PublishedPort {
            container: 8080,
            protocol: Protocol::Tcp,
            host: 18080,
        };
        plan.verdicts.insert(
            ObjectKey::new(Kind::Server, "web"),
            service(vec![published]),
        );
        assert!(unpublished_targets(&routes, &plan).is_empty());
    }
}
