//! What the engine says of the cluster it belongs to: whether it manages a swarm, and its
//! nodes (Podling's `nodes`). A standalone engine is one node of its own.

use std::collections::HashMap;

use super::convert::engine;
use super::DockerEngine;
use crate::engine::{EngineError, Node};

impl DockerEngine {
    /// The nodes of the swarm this engine manages, with their running tasks; a standalone
    /// engine (or a swarm worker, which cannot list them) answers with itself alone.
    pub async fn nodes(&self) -> Result<Vec<Node>, EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine("info", "", e))?;
        let swarm = info.swarm.clone().unwrap_or_default();
        if swarm.control_available != Some(true) {
            // A worker sees only itself; a manager is asked for the whole swarm.
            let in_swarm =
                swarm.local_node_state.map(|s| s.to_string()).as_deref() == Some("active");
            return Ok(vec![Node {
                id: swarm
                    .node_id
                    .filter(|_| in_swarm)
                    .or(info.id)
                    .unwrap_or_default(),
                hostname: info.name.unwrap_or_default(),
                role: if in_swarm { "worker" } else { "standalone" }.into(),
                availability: "active".into(),
                state: "ready".into(),
                leader: false,
                address: swarm.node_addr.filter(|_| in_swarm).unwrap_or_default(),
                engine_version: info.server_version.unwrap_or_default(),
                tasks: info.containers_running.unwrap_or_default().max(0) as usize,
            }]);
        }
        let nodes = self
            .docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await
            .map_err(|e| engine("list nodes", "", e))?;
        let tasks = self
            .docker
            .list_tasks(None::<bollard::query_parameters::ListTasksOptions>)
            .await
            .map_err(|e| engine("list tasks", "", e))?;
        let mut running: HashMap<String, usize> = HashMap::new();
        for t in tasks {
            let state = t.status.and_then(|s| s.state).map(|s| s.to_string());
            if let (Some(node), Some("running")) = (t.node_id, state.as_deref()) {
                *running.entry(node).or_default() += 1;
            }
        }
        let mut out: Vec<Node> = nodes
            .into_iter()
            .map(|n| {
                let id = n.id.unwrap_or_default();
                let spec = n.spec.unwrap_or_default();
                let description = n.description.unwrap_or_default();
                let status = n.status.unwrap_or_default();
                Node {
                    tasks: running.get(&id).copied().unwrap_or(0),
                    id,
                    hostname: description.hostname.unwrap_or_default(),
                    role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
                    availability: spec.availability.map(|a| a.to_string()).unwrap_or_default(),
                    state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                    leader: n.manager_status.and_then(|m| m.leader).unwrap_or(false),
                    address: status.addr.unwrap_or_default(),
                    engine_version: description
                        .engine
                        .and_then(|e| e.engine_version)
                        .unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(out)
    }
}
