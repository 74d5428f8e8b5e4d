//! A real three-node Docker Swarm on this machine (`scripts/swarm-lab.sh`: one dockerd per
//! network namespace, joined into one swarm), and dockhand pointed at its manager with
//! `DOCKER_HOST`. The machine's own engine is not touched. Without root or the tools the test
//! fails in CI and is skipped elsewhere.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{docker_ready, eventually, http, shell, text, Env};

/// One lab at a time: each test brings up its own and takes it down.
static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lab, up for as long as the test holds it.
struct Lab {
    _one: std::sync::MutexGuard<'static, ()>,
}

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
        let one = LAB.lock().unwrap_or_else(|e| e.into_inner());
        // A lab a killed run left behind goes first.
        let _ = Command::new(Self::script()).arg("down").output();
        let out = Command::new(Self::script())
            .arg("up")
            .output()
            .expect("run swarm-lab.sh");
        assert!(out.status.success(), "swarm-lab up: {}", text(&out));
        Some(Lab { _one: one })
    }

    fn node(&self, n: u32) -> String {
        format!("unix:///run/dhlab/n{n}/docker.sock")
    }

    /// `docker -H <node n> ARGS`, which must succeed; its output.
    fn docker(&self, n: u32, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.node(n))
            .args(args)
            .output()
            .expect("run docker");
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Lab {
    /// Drains a node (`drain`) or makes it take tasks again (`active`).
    fn availability(&self, node: &str, availability: &str) {
        self.docker(1, &["node", "update", "--availability", availability, node]);
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

/// `dockhand VERB` against the lab's manager.
fn on_swarm(env: &Env, lab: &Lab, verb: &str, args: &[&str]) -> std::process::Output {
    env.command(verb)
        .args(args)
        .env("DOCKER_HOST", lab.node(1))
        .output()
        .expect("run dockhand")
}

fn sync_ok(env: &Env, lab: &Lab) -> String {
    let out = on_swarm(
        env,
        lab,
        "sync",
        &["--timeout", "90s", "--prune-delay", "0s"],
    );
    assert!(out.status.success(), "sync on the swarm:\n{}", text(&out));
    text(&out)
}

/// One column (a `docker service ps` format) of a service's tasks desired to run, sorted.
fn task_column(lab: &Lab, service: &str, column: &str) -> Vec<String> {
    let out = lab.docker(
        1,
        &[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            column,
            service,
        ],
    );
    let mut values: Vec<String> = out.lines().map(str::to_owned).collect();
    values.sort();
    values
}

/// The IDs of a service's tasks that are desired to run.
fn running_tasks(lab: &Lab, service: &str) -> Vec<String> {
    task_column(lab, service, "{{.ID}}")
}

/// The nodes of a service's tasks that are desired to run.
fn nodes_of(lab: &Lab, service: &str) -> Vec<String> {
    task_column(lab, service, "{{.Node}}")
}

fn inspect(lab: &Lab, service: &str, format: &str) -> String {
    lab.docker(1, &["service", "inspect", service, "--format", format])
}

const WEB: &str = "  replicas: 2\n  restartDelay: 1s\n  endpointMode: dnsrr\n  ports: [{container: 8080, host: 18181, mode: host}]\n  dependsOn: [{name: db, condition: Healthy}]\n";

fn web(env_extra: &str) -> String {
    shell(
        "web",
        "exec httpd -f -p 8080 -h /",
        &format!("{WEB}{env_extra}"),
    )
}

#[test]
fn servers_become_services_that_start_in_order_scale_restart_heal_roll_back_route_and_prune_on_a_real_swarm(
) {
    let Some(env) = Env::new("swarm-svc") else {
        return;
    };
    let Some(lab) = Lab::up() else {
        return;
    };
    let svc = |name: &str| format!("dh_{}_server_{name}", env.instance);
    // db turns healthy only after 3 s; web depends on it being Healthy.
    env.write(
        "db.yaml",
        &shell(
            "db",
            "sleep 3; touch /tmp/ready; exec sleep 3600",
            "  healthCheck: {exec: [test, -f, /tmp/ready], interval: 500ms, retries: 1, startPeriod: 10s}\n",
        ),
    );
    env.write("web.yaml", &web(""));
    sync_ok(&env, &lab);

    // Two services, the dependent one created only once its dependency was healthy.
    let created = |name: &str| {
        let at = inspect(&lab, &svc(name), "{{.CreatedAt.Unix}}");
        at.parse::<i64>().expect("a creation time")
    };
    assert!(
        created("web") - created("db") >= 2,
        "web was created before db was healthy"
    );
    assert_eq!(running_tasks(&lab, &svc("web")).len(), 2);
    let status = env.status_of("server", "web").expect("web's status");
    assert_eq!(status["phase"], "Ready", "{status}");
    assert_eq!(status["message"], "2/2 tasks running", "{status}");
    // The task containers do not carry the owner labels (a single-host controller on a node
    // would take them for its orphans).
    let labels = inspect(
        &lab,
        &svc("web"),
        "{{json .Spec.TaskTemplate.ContainerSpec.Labels}}",
    );
    assert!(!labels.contains("dockhand.instance"), "{labels}");
    let describe = on_swarm(&env, &lab, "describe", &["server", "web"]);
    let describe = String::from_utf8_lossy(&describe.stdout).into_owned();
    assert!(describe.contains("Tasks:"), "{describe}");
    assert_eq!(describe.matches(" running ").count(), 2, "{describe}");

    // Scaling changes the service, not its running tasks.
    let before = running_tasks(&lab, &svc("web"));
    env.write("web.yaml", &web("").replace("replicas: 2", "replicas: 3"));
    sync_ok(&env, &lab);
    let after = running_tasks(&lab, &svc("web"));
    assert_eq!(after.len(), 3);
    assert!(
        before.iter().all(|t| after.contains(t)),
        "{before:?} -> {after:?}"
    );

    // `restart` rolls every task (the swarm's update order), keeping the service.
    let before = running_tasks(&lab, &svc("web"));
    let out = on_swarm(&env, &lab, "restart", &["web", "--no-wait"]);
    assert!(out.status.success(), "{}", text(&out));
    sync_ok(&env, &lab);
    let after = running_tasks(&lab, &svc("web"));
    assert_eq!(after.len(), 3);
    assert!(
        before.iter().all(|t| !after.contains(t)),
        "{before:?} -> {after:?}"
    );

    // A task killed on its node is replaced by the swarm; dockhand reports it whole again.
    let (node, container) = (1..=3)
        .find_map(|n| {
            let filter = format!("label=dockhand.service={}", svc("web"));
            let ids = lab.docker(n, &["ps", "-q", "--filter", &filter]);
            ids.lines().next().map(|c| (n, c.to_owned()))
        })
        .expect("a task container of web on some node");
    lab.docker(node, &["kill", &container]);
    until_status(
        &env,
        &lab,
        "web",
        "3/3 tasks running",
        60,
        "web's task replaced",
    );

    // A drained node's task cannot go elsewhere (the other nodes publish the host port
    // already): reported as 2 of 3, then whole again when the node is back.
    lab.availability("dhlab-node2", "drain");
    eventually(
        std::time::Duration::from_secs(60),
        "web off the drained node",
        || {
            let _ = on_swarm(&env, &lab, "sync", &["--timeout", "3s"]);
            let s = env.status_of("server", "web")?;
            let message = s["message"].as_str()?.to_owned();
            (message.starts_with("2/3 tasks running") && s["phase"] == "Running").then_some(())
        },
    );
    assert!(!nodes_of(&lab, &svc("web")).contains(&"dhlab-node2".to_owned()));
    lab.availability("dhlab-node2", "active");
    until_status(
        &env,
        &lab,
        "web",
        "3/3 tasks running",
        60,
        "web whole again",
    );

    // A worker whose link is cut: the swarm counts its task lost and cannot place another
    // (the other nodes publish the host port already): reported short, whole again once the
    // link is back.
    link(3, "down");
    eventually(
        std::time::Duration::from_secs(120),
        "web short of the cut node's task",
        || {
            let _ = on_swarm(&env, &lab, "sync", &["--timeout", "3s"]);
            let s = env.status_of("server", "web")?;
            let message = s["message"].as_str()?.to_owned();
            (message.starts_with("2/3 tasks running") && s["phase"] == "Running").then_some(())
        },
    );
    link(3, "up");
    until_status(
        &env,
        &lab,
        "web",
        "3/3 tasks running",
        180,
        "web whole again once the link is back",
    );

    // An update that fails is rolled back by the swarm and reported failed, not sent again.
    let good = inspect(
        &lab,
        &svc("web"),
        "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
    );
    env.write(
        "web.yaml",
        &shell(
            "web",
            "exit 1",
            &format!("{WEB}  update: {{failureAction: Rollback, monitor: 3s}}\n")
                .replace("replicas: 2", "replicas: 3"),
        ),
    );
    let out = on_swarm(&env, &lab, "sync", &["--timeout", "90s"]);
    assert!(
        !out.status.success(),
        "a rolled-back update is a failure:\n{}",
        text(&out)
    );
    let status = env.status_of("server", "web").expect("web's status");
    assert_eq!(status["phase"], "Failed", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("rolled the update back"), "{status}");
    // The swarm puts the previous spec back as its rollback starts (the rollback of the
    // tasks takes its own monitor periods).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let args = inspect(
            &lab,
            &svc("web"),
            "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
        );
        if args == good {
            break;
        }
        let state = inspect(&lab, &svc("web"), "{{json .UpdateStatus}}");
        assert!(
            std::time::Instant::now() < until,
            "the previous spec is not back: {args} ({state})"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Another pass reports it again and sends nothing.
    let out = on_swarm(&env, &lab, "sync", &["--timeout", "5s"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("update server/web"),
        "updated again:\n{}",
        text(&out)
    );

    // A controller killed with SIGKILL and started again leaves one service per object, and
    // updates none of them.
    env.write("web.yaml", &web(""));
    sync_ok(&env, &lab);
    let versions = |lab: &Lab| {
        lab.docker(1, &["service", "ls", "--format", "{{.Name}}"])
            .lines()
            .filter(|n| n.contains(&env.instance))
            .map(|n| format!("{n}@{}", inspect(lab, n, "{{.Version.Index}}")))
            .collect::<Vec<_>>()
    };
    let before = versions(&lab);
    assert_eq!(before.len(), 2, "{before:?}");
    let mut up = env.up_with_env(&["--resync", "1s"], &[("DOCKER_HOST", &lab.node(1))]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    up.kill();
    sync_ok(&env, &lab);
    assert_eq!(versions(&lab), before);

    // A route in a controller on the manager reaches the tasks at their nodes' host ports
    // (the controller runs in node 1's network namespace, where the nodes' addresses are).
    env.write(
        "front.yaml",
        "apiVersion: dockhand/v1\nkind: Route\nmetadata: {name: front}\nspec:\n  protocol: tcp\n  listen: 127.0.0.1:18300\n  to: {server: web, port: 8080}\n",
    );
    // A port the service does not publish is out of the proxy's reach: the route says so.
    env.write(
        "back.yaml",
        "apiVersion: dockhand/v1\nkind: Route\nmetadata: {name: back}\nspec:\n  protocol: tcp\n  listen: 127.0.0.1:18301\n  to: {server: web, port: 9090}\n",
    );
    let mut up = Command::new("ip")
        .args([
            "netns",
            "exec",
            "dhlab-n1",
            env!("CARGO_BIN_EXE_dockhand"),
            "up",
        ])
        .arg("--manifests")
        .arg(&env.manifests)
        .arg("--state")
        .arg(&env.state)
        .args(["--instance", &env.instance, "--api", "127.0.0.1:0"])
        .env("DOCKER_HOST", lab.node(1))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start up in node 1's namespace");
    let answered = eventually(
        std::time::Duration::from_secs(60),
        "an answer through the route",
        || {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    "dhlab-n1",
                    "curl",
                    "-s",
                    "-m",
                    "2",
                    "-o",
                    "/dev/null",
                ])
                .args(["-w", "%{http_code}", "http://127.0.0.1:18300/"])
                .output()
                .ok()?;
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            (code != "000" && !code.is_empty()).then_some(code)
        },
    );
    // busybox httpd has no index here: any HTTP answer came from a task.
    assert_eq!(answered, "404");
    let route = env.status_of("route", "front").expect("the route's status");
    assert_eq!(route["phase"], "Ready", "{route}");
    let back = env.status_of("route", "back").expect("the route's status");
    assert_eq!(back["phase"], "Running", "{back}");
    assert!(
        back["message"]
            .as_str()
            .is_some_and(|m| m.contains("server/web publishes no port 9090/tcp")),
        "{back}"
    );
    let _ = up.kill();
    let _ = up.wait();
    env.remove("front.yaml");
    env.remove("back.yaml");

    // A removed manifest's service is pruned; the other stays.
    env.remove("web.yaml");
    sync_ok(&env, &lab);
    let names = lab.docker(1, &["service", "ls", "--format", "{{.Name}}"]);
    assert!(!names.contains(&svc("web")), "{names}");
    assert!(names.contains(&svc("db")), "{names}");

    // `down` removes the rest.
    let out = on_swarm(&env, &lab, "down", &["--no-wait"]);
    assert!(out.status.success(), "{}", text(&out));
    sync_ok(&env, &lab);
    let names = lab.docker(1, &["service", "ls", "--format", "{{.Name}}"]);
    assert!(!names.contains(&env.instance), "{names}");
    // Its objects are Stopped, not gone: their network stays until no object names it.
    env.remove("db.yaml");
    let out = on_swarm(
        &env,
        &lab,
        "sync",
        &["--timeout", "60s", "--prune-delay", "0s", "--allow-empty"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let networks = lab.docker(1, &["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.contains(&env.instance), "{networks}");
}

/// Cuts (`down`) or restores (`up`) node `n`'s link to the lab's bridge.
fn link(n: u32, state: &str) {
    let out = Command::new("ip")
        .args(["-n", "dhlab-br", "link", "set", &format!("p{n}"), state])
        .output()
        .expect("run ip link");
    assert!(out.status.success(), "{}", text(&out));
}

/// Syncs until the server's status says `message` (and the sync succeeds), or fails the test.
fn until_status(env: &Env, lab: &Lab, server: &str, message: &str, within: u64, what: &str) {
    eventually(std::time::Duration::from_secs(within), what, || {
        let out = on_swarm(env, lab, "sync", &["--timeout", "10s"]);
        let s = env.status_of("server", server)?;
        (out.status.success() && s["message"] == message).then_some(())
    });
}

#[test]
fn an_applied_server_scales_and_rolls_back_in_place_and_its_tasks_leave_a_drained_or_cut_node() {
    let Some(env) = Env::new("swarm-ops") else {
        return;
    };
    let Some(lab) = Lab::up() else {
        return;
    };
    let svc = format!("dh_{}_server_worker", env.instance);
    // No published port: the swarm may put its tasks anywhere.
    let file = env.dir.path().join("worker.yaml");
    let apply = |color: &str| {
        let manifest = shell(
            "worker",
            "echo worker $COLOR up; exec sleep 3600",
            &format!("  replicas: 3\n  restartDelay: 1s\n  endpointMode: dnsrr\n  env: {{COLOR: {color}}}\n  dependsOn: [{{name: migrate, condition: Completed}}]\n"),
        );
        std::fs::write(&file, manifest).expect("write the manifest");
        let out = on_swarm(&env, &lab, "apply", &["-f", file.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}", text(&out));
        sync_ok(&env, &lab);
    };
    let env_of = |lab: &Lab| inspect(lab, &svc, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    // A one-shot job (a file's) that the worker (an API object) waits on to complete.
    env.write(
        "migrate.yaml",
        &shell(
            "migrate",
            "sleep 2; echo migrated",
            "  restartPolicy: Never\n",
        ),
    );
    // An image's own health check counts on a swarm too: `after` waits for `checked`, whose
    // manifest has no check, to be healthy (the image's check says when; built on the
    // manager, where `checked` is placed).
    let build = Command::new("docker")
        .args([
            "-H",
            &lab.node(1),
            "build",
            "-q",
            "-t",
            "dockhand/checked:local",
            "-",
        ])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let dockerfile = format!(
                "FROM {}\nHEALTHCHECK --interval=1s --start-period=10s --retries=1 CMD test -f /tmp/ready\n",
                common::IMAGE
            );
            child
                .stdin
                .take()
                .map(|mut i| i.write_all(dockerfile.as_bytes()))
                .transpose()?;
            child.wait_with_output()
        })
        .expect("build an image with a health check");
    assert!(build.status.success(), "{}", text(&build));
    env.write(
        "checked.yaml",
        &shell(
            "checked",
            "sleep 2; touch /tmp/ready; exec sleep 3600",
            "  placement: {constraints: [node.role == manager]}\n",
        )
        .replace(common::IMAGE, "dockhand/checked:local"),
    );
    env.write(
        "after.yaml",
        &shell(
            "after",
            "exec sleep 3600",
            "  dependsOn: [{name: checked, condition: Healthy}]\n",
        ),
    );
    apply("blue");
    let job = format!("dh_{}_server_migrate", env.instance);
    let created = |name: &str| {
        let at = inspect(&lab, name, "{{.CreatedAt.Unix}}");
        at.parse::<i64>().expect("a creation time")
    };
    assert!(
        created(&svc) - created(&job) >= 2,
        "the worker was created before the job completed"
    );
    let status = env
        .status_of("server", "migrate")
        .expect("the job's status");
    assert_eq!(status["phase"], "Completed", "{status}");
    let named = |name: &str| format!("dh_{}_server_{name}", env.instance);
    assert!(
        created(&named("after")) - created(&named("checked")) >= 2,
        "after was created before checked was healthy"
    );
    env.remove("after.yaml");
    env.remove("checked.yaml");
    apply("green");
    assert!(env_of(&lab).contains("COLOR=green"), "{}", env_of(&lab));
    // The swarm spreads the tasks: one per node.
    assert_eq!(
        nodes_of(&lab, &svc),
        ["dhlab-node1", "dhlab-node2", "dhlab-node3"]
    );

    // `scale` changes the service, not its running tasks.
    let before = running_tasks(&lab, &svc);
    let out = on_swarm(&env, &lab, "scale", &["worker", "--replicas", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    sync_ok(&env, &lab);
    let after = running_tasks(&lab, &svc);
    assert_eq!(after.len(), 4);
    assert!(
        before.iter().all(|t| after.contains(t)),
        "{before:?} -> {after:?}"
    );

    // `rollout undo` goes back to the first spec in place, keeping the replica count.
    let out = on_swarm(&env, &lab, "rollout", &["undo", "worker"]);
    assert!(out.status.success(), "{}", text(&out));
    sync_ok(&env, &lab);
    assert!(env_of(&lab).contains("COLOR=blue"), "{}", env_of(&lab));
    assert_eq!(
        inspect(&lab, &svc, "{{.Spec.Mode.Replicated.Replicas}}"),
        "4"
    );
    let status = env.status_of("server", "worker").expect("worker's status");
    assert_eq!(status["message"], "4/4 tasks running", "{status}");
    // `logs` reads every task's output through the manager, whichever node runs it.
    let out = on_swarm(&env, &lab, "logs", &["worker"]);
    assert!(out.status.success(), "{}", text(&out));
    let logs = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(logs.contains("worker blue up"), "{logs}");

    // A drained node's tasks move to the other nodes.
    lab.availability("dhlab-node2", "drain");
    eventually(
        std::time::Duration::from_secs(60),
        "worker's tasks off the drained node",
        || {
            let out = on_swarm(&env, &lab, "sync", &["--timeout", "5s"]);
            let s = env.status_of("server", "worker")?;
            let nodes = nodes_of(&lab, &svc);
            (out.status.success()
                && s["message"] == "4/4 tasks running"
                && nodes.len() == 4
                && !nodes.iter().any(|n| n == "dhlab-node2"))
            .then_some(())
        },
    );
    lab.availability("dhlab-node2", "active");

    // A worker whose link is cut: once the swarm takes the node for down, its tasks run
    // elsewhere, and only then does dockhand (which never counts a task on a node that is not
    // ready) report the server whole.
    let on_node3 = nodes_of(&lab, &svc)
        .iter()
        .filter(|n| *n == "dhlab-node3")
        .count();
    assert!(on_node3 > 0, "{:?}", nodes_of(&lab, &svc));
    link(3, "down");
    let started = std::time::Instant::now();
    let off_node3 = |s: &serde_json::Value| {
        s["tasks"].as_array().map_or(0, |l| {
            l.iter()
                .filter(|t| t["state"] == "running" && t["node"] != "dhlab-node3")
                .count()
        })
    };
    loop {
        let out = on_swarm(&env, &lab, "sync", &["--timeout", "5s"]);
        let s = env.status_of("server", "worker").unwrap_or_default();
        if out.status.success() && s["message"] == "4/4 tasks running" && off_node3(&s) == 4 {
            break;
        }
        let last = format!("{}\n{s}", text(&out));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "worker's tasks not rescheduled off the cut node; last seen:\n{last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    eprintln!(
        "rescheduled off the cut node in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    link(3, "up");
    until_status(
        &env,
        &lab,
        "worker",
        "4/4 tasks running",
        120,
        "worker whole once the link is back",
    );
}

#[test]
fn a_database_is_one_task_pinned_to_the_managers_node_with_its_volume_and_its_server_logs_in() {
    let Some(env) = Env::new("swarm-db") else {
        return;
    };
    common::postgres_image();
    let Some(lab) = Lab::up() else {
        return;
    };
    // Only the manager's node has the image: the database is pinned there, and so is the
    // server (by a constraint of its own).
    let save = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save {} | docker -H {} load",
            common::POSTGRES_IMAGE,
            lab.node(1)
        ))
        .output()
        .expect("load the postgres image");
    assert!(save.status.success(), "{}", text(&save));
    let db = format!("dh_{}_database_orders", env.instance);
    // Secrets that are not this instance's, one even naming its service: never touched.
    let stranger = format!("stranger-{}", env.instance);
    let other = format!("other-{}", env.instance);
    let secret = |name: &str, labels: &[String]| {
        let mut args = vec!["secret".to_owned(), "create".to_owned()];
        for l in labels {
            args.extend(["--label".to_owned(), l.clone()]);
        }
        args.extend([name.to_owned(), "/etc/hostname".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.docker(1, &args);
    };
    secret(&stranger, &[]);
    secret(
        &other,
        &[
            "dockhand.managed=true".into(),
            "dockhand.instance=someone-else".into(),
            format!("dockhand.service={db}"),
        ],
    );
    let secrets = |lab: &Lab| lab.docker(1, &["secret", "ls", "--format", "{{.Name}}"]);
    env.write(
        "orders.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: orders}}\nspec:\n  engine: postgres\n  image: {}\n  deletionPolicy: Delete\n  readyTimeout: 60s\n",
            common::POSTGRES_IMAGE
        ),
    );
    // A Secret given to the server as a file: a swarm secret with the file's mode.
    std::fs::write(env.manifests.join("token.txt"), "swarm-file-value").expect("write");
    env.write(
        "token.yaml",
        "apiVersion: dockhand/v1\nkind: Secret\nmetadata: {name: api-token}\nspec: {file: token.txt}\n",
    );
    env.write(
        "api.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: api}}\nspec:\n  image: {}\n  entrypoint: [\"sh\", \"-c\", \"psql \\\"$DATABASE_URL\\\" -c 'select 1' && exec sleep 3600\"]\n  env:\n    DATABASE_URL: {{fromDatabase: orders}}\n  secrets: [{{name: api-token, mode: '0440'}}]\n  dependsOn: [{{kind: Database, name: orders, condition: Healthy}}]\n  restartDelay: 1s\n  placement: {{constraints: [node.role == manager]}}\n",
            common::POSTGRES_IMAGE
        ),
    );
    // The readiness login goes to the port the database publishes on its node: the
    // controller runs in node 1's network namespace.
    let sync = |args: &[&str]| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                "dhlab-n1",
                env!("CARGO_BIN_EXE_dockhand"),
                "sync",
            ])
            .arg("--manifests")
            .arg(&env.manifests)
            .arg("--state")
            .arg(&env.state)
            .args(["--instance", &env.instance, "--prune-delay", "0s"])
            .args(args)
            .env("DOCKER_HOST", lab.node(1))
            .output()
            .expect("run sync in node 1's namespace")
    };
    let out = sync(&["--timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    let manager = lab.docker(1, &["info", "--format", "{{.Swarm.NodeID}}"]);
    let constraints = inspect(
        &lab,
        &db,
        "{{json .Spec.TaskTemplate.Placement.Constraints}}",
    );
    assert!(
        constraints.contains(&format!("node.id == {manager}")),
        "{constraints}"
    );
    let status = env
        .status_of("database", "orders")
        .expect("the database's status");
    assert_eq!(status["phase"], "Ready", "{status}");
    // The server logged in with the URL it was given (psql runs before it sleeps).
    let api = env.status_of("server", "api").expect("the server's status");
    assert_eq!(api["phase"], "Ready", "{api}");
    assert_eq!(api["message"], "1/1 tasks running", "{api}");
    let api_task = lab.docker(
        1,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=dockhand.service=dh_{}_server_api", env.instance),
        ],
    );
    assert_eq!(
        lab.docker(
            1,
            &[
                "exec",
                api_task.trim(),
                "sh",
                "-c",
                "stat -c %a /run/secrets/api-token; cat /run/secrets/api-token",
            ],
        ),
        "440\nswarm-file-value"
    );
    // A task the swarm replaces proves itself again: a second login, and Ready once more.
    let task = lab.docker(
        1,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=dockhand.service={db}"),
        ],
    );
    lab.docker(1, &["kill", task.trim()]);
    eventually(
        std::time::Duration::from_secs(90),
        "the replaced task logged in to",
        || {
            let out = sync(&["--timeout", "10s"]);
            let events = env.run("events", &[]);
            let logins = String::from_utf8_lossy(&events.stdout)
                .matches("database/orders accepted a login")
                .count();
            let s = env.status_of("database", "orders")?;
            (out.status.success() && logins == 2 && s["phase"] == "Ready").then_some(())
        },
    );
    // The password is a swarm secret of this instance's, given as a file: the service's spec
    // (which anyone who can inspect it reads) holds no password.
    let env_vars = inspect(&lab, &db, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert!(
        env_vars.contains("POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password")
            && !env_vars.contains("POSTGRES_PASSWORD="),
        "{env_vars}"
    );
    let ours = lab.docker(
        1,
        &[
            "secret",
            "ls",
            "--filter",
            &format!("label=dockhand.instance={}", env.instance),
            "--format",
            "{{.Name}}",
        ],
    );
    // Named after the service (cut to the swarm's 64 characters) and the variable; the
    // server's file is a secret of its own.
    let ours: String = ours
        .lines()
        .filter(|l| l.contains("_postgres_password_"))
        .collect();
    assert_eq!(ours.lines().count(), 1, "{ours}");
    let (head, tail) = ours.split_at(ours.len() - 12);
    assert!(
        head.ends_with("_postgres_password_") && db.starts_with(&head[..head.len() - 19]),
        "{ours}"
    );
    assert!(tail.bytes().all(|b| b.is_ascii_hexdigit()), "{ours}");
    let volume = format!("dh_{}_orders-data", env.instance);
    assert_eq!(
        lab.docker(
            1,
            &["volume", "ls", "-q", "--filter", &format!("name={volume}")]
        ),
        volume
    );

    // deletionPolicy Delete: the manifest's removal takes the volume with it.
    env.remove("api.yaml");
    env.remove("orders.yaml");
    let out = sync(&["--timeout", "60s", "--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually(
        std::time::Duration::from_secs(30),
        "the volume removed",
        || {
            let _ = sync(&["--timeout", "5s", "--allow-empty"]);
            lab.docker(
                1,
                &["volume", "ls", "-q", "--filter", &format!("name={volume}")],
            )
            .is_empty()
            .then_some(())
        },
    );
    let names = lab.docker(1, &["service", "ls", "--format", "{{.Name}}"]);
    assert!(!names.contains(&env.instance), "{names}");
    // Its secret went with it; the others stay.
    let left = secrets(&lab);
    assert!(!left.contains(&db), "{left}");
    assert!(left.contains(&stranger) && left.contains(&other), "{left}");
}

/// The routing mesh and VIP load balancing need IPVS in the kernel; without it (as on this
/// project's machine) the test says so and checks nothing.
#[test]
fn an_ingress_port_answers_on_every_node_through_the_routing_mesh_where_the_kernel_has_ipvs() {
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipping: no IPVS in this kernel (/proc/net/ip_vs), so no routing mesh or VIP");
        return;
    }
    let Some(env) = Env::new("swarm-mesh") else {
        return;
    };
    let Some(lab) = Lab::up() else {
        return;
    };
    env.write(
        "mesh.yaml",
        &shell(
            "mesh",
            "exec httpd -f -p 8080 -h /",
            "  replicas: 2\n  init: true\n  ports: [{container: 8080, host: 18383}]\n",
        ),
    );
    sync_ok(&env, &lab);
    // Two tasks, three nodes: every node answers, and so does the service's virtual address.
    for node in ["10.77.0.11", "10.77.0.12", "10.77.0.13"] {
        let code = eventually(
            std::time::Duration::from_secs(60),
            "an answer through the mesh",
            || {
                let out = Command::new("ip")
                    .args(["netns", "exec", "dhlab-n1", "curl", "-s", "-m", "2"])
                    .args(["-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!("http://{node}:18383/"))
                    .output()
                    .ok()?;
                let code = String::from_utf8_lossy(&out.stdout).into_owned();
                (code != "000" && !code.is_empty()).then_some(code)
            },
        );
        assert_eq!(code, "404", "{node}");
    }
}
