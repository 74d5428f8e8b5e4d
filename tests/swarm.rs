//! A real three-node Docker Swarm on this machine (`scripts/swarm-lab.sh`: one dockerd per
//! network namespace, joined into one swarm), and dockhand pointed at its manager with
//! `DOCKER_HOST`. The machine's own engine is not touched. Without root or the tools the test
//! fails in CI and is skipped elsewhere.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{docker_ready, eventually, http, text, Env};

/// The lab, up for as long as the test holds it.
struct Lab;

impl Lab {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/swarm-lab.sh")
    }

    fn up() -> Option<Lab> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let tools = ["ip", "nsenter", "unshare", "dockerd"].iter().all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !(root && tools && docker_ready()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "the swarm lab needs root, iproute2, util-linux and dockerd in CI"
            );
            eprintln!("skipping: the swarm lab needs root, iproute2, util-linux and dockerd");
            return None;
        }
        // A lab a killed run left behind goes first.
        let _ = Command::new(Self::script()).arg("down").output();
        let out = Command::new(Self::script())
            .arg("up")
            .output()
            .expect("run swarm-lab.sh");
        assert!(out.status.success(), "swarm-lab up: {}", text(&out));
        Some(Lab)
    }

    fn node(&self, n: u32) -> String {
        format!("unix:///run/dhlab/n{n}/docker.sock")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(Self::script()).arg("down").output();
    }
}

#[test]
fn get_nodes_lists_every_node_of_a_real_swarm_and_a_worker_sees_itself() {
    let Some(env) = Env::new("swarm-nodes") else {
        return;
    };
    let Some(lab) = Lab::up() else {
        return;
    };
    let get = |host: &str, args: &[&str]| {
        let out = env
            .command("get")
            .arg("nodes")
            .args(args)
            .env("DOCKER_HOST", host)
            .output()
            .expect("run get nodes");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = get(&lab.node(1), &[]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains("manager (leader)"))
            .count(),
        1,
        "{table}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.contains(" worker ")).count(),
        2,
        "{table}"
    );
    assert!(rows.iter().all(|r| r.contains(" ready ")), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&get(&lab.node(1), &["-o", "json"])).expect("json");
    let hosts: Vec<&str> = json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|n| n["hostname"].as_str())
        .collect();
    assert_eq!(hosts, ["dhlab-node1", "dhlab-node2", "dhlab-node3"]);
    // A worker cannot list the swarm: it answers for itself.
    let worker = get(&lab.node(2), &[]);
    assert_eq!(worker.lines().count(), 2, "{worker}");
    assert!(
        worker.contains("dhlab-node2") && worker.contains("worker"),
        "{worker}"
    );

    // The same through a controller on the manager.
    let mut up = env.up_with_env(&["--resync", "1h"], &[("DOCKER_HOST", &lab.node(1))]);
    let url = format!("{}/api/v1/nodes", up.api_url());
    let nodes = eventually(std::time::Duration::from_secs(30), "the nodes API", || {
        let r = http("GET", &url, Some(&env.api_token()), None);
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(nodes.as_array().map(Vec::len), Some(3), "{nodes}");
    up.stop();
}
