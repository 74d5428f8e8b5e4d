//! The operator's verbs (down, stop, start, restart, scale) on the real engine and a real
//! state file: with no controller running, through a running `up`, and through its API.

mod common;

use std::time::Duration;

use common::{docker, eventually, http, server, text, Env};

const WAIT: Duration = Duration::from_secs(60);

fn phase(env: &Env, name: &str) -> String {
    env.status_of("server", name)
        .and_then(|s| s["phase"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The running container of a server, whatever its name (StartFirst names carry the spec).
fn running(env: &Env, name: &str) -> Option<String> {
    env.containers()
        .into_iter()
        .find(|c| c.running() && c.label("dockhand.name").as_deref() == Some(name))
        .map(|c| c.id)
}

fn events(env: &Env) -> String {
    text(&env.run("events", &[]))
}

#[test]
fn down_stops_dependents_first_and_no_sync_brings_them_back_until_start() {
    let Some(env) = Env::new("op-down") else {
        return;
    };
    env.write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            server("db", ""),
            server("web", "  replicas: 2\n  dependsOn: [{name: db}]\n")
        ),
    );
    env.sync();
    assert_eq!(env.containers().len(), 3);

    let out = env.run("down", &[]);
    assert!(out.status.success(), "{}", text(&out));
    for name in ["db", "web", "web.1"] {
        assert!(
            text(&out).contains(&format!("server/{name} stopped")),
            "{}",
            text(&out)
        );
        assert_eq!(phase(&env, name), "Stopped");
    }
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    // Dependents went first: web's removal is logged before db's.
    let log = events(&env);
    let web = log.find(&format!("dh_{}_server_web (stopped)", env.instance));
    let db = log.find(&format!("dh_{}_server_db (stopped)", env.instance));
    assert!(web.is_some() && db.is_some() && web < db, "{log}");

    // Stopped is desired state: a reload of the sources does not undo it.
    let out = env.sync();
    assert!(text(&out).contains("converged"), "{}", text(&out));
    assert!(env.containers().is_empty(), "{:?}", env.containers());

    // Waiting for a stopped object to be Ready ends at once, saying why.
    let started = std::time::Instant::now();
    let out = env.run("wait", &["web", "--for", "Ready", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is Stopped"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait out the timeout"
    );

    let out = env.run("start", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("next `dockhand sync`"),
        "{}",
        text(&out)
    );
    // web waits for db, which is still stopped.
    let out = env.run("sync", &["--timeout", "3s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(phase(&env, "web"), "Blocked");
    assert!(env.run("start", &["server/db"]).status.success());
    env.sync();
    assert_eq!(env.containers().len(), 3);
}

#[test]
fn stop_refuses_what_it_cannot_stop_and_says_why() {
    let Some(env) = Env::new("op-refuse") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    for (args, expected) in [
        (&["nosuch"][..], "server/nosuch not found"),
        (&["-l", "tier=none"], "no object matches selector"),
    ] {
        let out = env.run("stop", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
    let out = env.run("stop", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("dockhand down"), "{}", text(&out));
    // A file's object is scaled in its file.
    let out = env.run("scale", &["web", "--replicas", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("a.yaml") && text(&out).contains("spec.replicas to 3"),
        "{}",
        text(&out)
    );
    assert!(env.container("web").is_some_and(|c| c.running()));
}

#[test]
fn zero_replicas_show_the_server_stopped_and_run_nothing() {
    let Some(env) = Env::new("op-zero") else {
        return;
    };
    env.write("a.yaml", &server("web", "  replicas: 2\n"));
    env.sync();
    assert_eq!(env.containers().len(), 2);
    env.write("a.yaml", &server("web", "  replicas: 0\n"));
    env.sync();
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert_eq!(phase(&env, "web"), "Stopped");
    let message = env.status_of("server", "web").expect("status")["message"].clone();
    assert_eq!(message, "replicas: 0");
}

#[test]
fn down_volumes_removes_named_volumes_only_when_asked() {
    let Some(env) = Env::new("op-volumes") else {
        return;
    };
    let volume = format!("dh_{}_data", env.instance);
    env.write(
        "a.yaml",
        &server(
            "web",
            "  volumes: [{type: volume, source: data, target: /data}]\n",
        ),
    );
    env.sync();
    let out = env.run("down", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        docker(&["volume", "ls", "-q"]).lines().any(|v| v == volume),
        "plain down keeps the volume"
    );
    assert!(env.run("start", &["web"]).status.success());
    env.sync();
    let out = env.run("down", &["--volumes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("volume {volume} removed")),
        "{}",
        text(&out)
    );
    assert!(!docker(&["volume", "ls", "-q"]).lines().any(|v| v == volume));
}

#[test]
fn a_running_controller_stops_starts_restarts_and_scales_through_its_api() {
    let Some(env) = Env::new("op-api") else {
        return;
    };
    env.write("a.yaml", &server("web", "  update: {order: StartFirst}\n"));
    let mut up = env.up(&[]);
    let url = up.api_url();
    let remote = |verb: &str, args: &[&str]| {
        let mut cmd = env.command(verb);
        cmd.args(["--server", &url, "--token-file"])
            .arg(env.token_file())
            .args(args);
        cmd.output().expect("run")
    };
    let first = eventually(WAIT, "web running", || running(&env, "web"));

    // Locally, with the controller doing the work: the verb waits for it.
    let out = env.run("stop", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("server/web stopped"), "{}", text(&out));
    assert!(running(&env, "web").is_none());
    let out = remote("start", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = eventually(WAIT, "web running again", || {
        running(&env, "web").filter(|id| *id != first)
    });

    // A restart replaces the container with the same spec.
    let out = remote("restart", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("server/web restart requested"),
        "{}",
        text(&out)
    );
    eventually(WAIT, "web replaced", || {
        running(&env, "web").filter(|id| *id != second)
    });
    eventually(WAIT, "web ready", || {
        (phase(&env, "web") == "Ready").then_some(())
    });

    // Scale works on the API's own objects.
    let token = env.api_token();
    let body = server("api", "");
    let r = http(
        "PUT",
        &format!("{url}/api/v1/servers/api"),
        Some(&token),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let out = remote("scale", &["api", "--replicas", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    eventually(WAIT, "two api replicas", || {
        (env.container("api").is_some() && env.container("api.1").is_some()).then_some(())
    });
    let r = http(
        "POST",
        &format!("{url}/api/v1/servers/web/scale"),
        Some(&token),
        Some(r#"{"replicas": 2}"#),
    );
    assert_eq!(r.status, 409, "{r:?}");
    let r = http(
        "POST",
        &format!("{url}/api/v1/stop"),
        Some(&token),
        Some(r#"{"objects": ["nosuch"]}"#),
    );
    assert_eq!(r.status, 404, "{r:?}");
    let r = http("POST", &format!("{url}/api/v1/stop"), None, Some("{}"));
    assert_eq!(r.status, 401, "{r:?}");
    // apply --prune -l through the API: the selected applied objects the input lacks go.
    let labelled = |name: &str| {
        server(name, "").replacen(
            &format!("metadata:\n  name: {name}\n"),
            &format!("metadata:\n  name: {name}\n  labels: {{app: shop}}\n"),
            1,
        )
    };
    let both = env.dir.path().join("both.yaml");
    std::fs::write(&both, format!("{}---\n{}", labelled("p1"), labelled("p2"))).expect("write");
    let out = remote("apply", &["-f", both.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let one = env.dir.path().join("one.yaml");
    std::fs::write(&one, labelled("p1")).expect("write");
    let out = remote(
        "apply",
        &[
            "-f",
            one.to_str().expect("utf-8"),
            "--prune",
            "-l",
            "app=shop",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("server/p2 pruned"), "{}", text(&out));
    assert!(!text(&out).contains("server/api"), "{}", text(&out));
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
}

#[test]
fn rollout_history_keeps_every_spec_and_undo_prints_the_change_a_file_needs() {
    let Some(env) = Env::new("op-history") else {
        return;
    };
    env.write("a.yaml", &server("web", "  env: {COLOR: blue}\n"));
    env.sync();
    env.write("a.yaml", &server("web", "  env: {COLOR: green}\n"));
    env.sync();
    let out = env.run("rollout", &["history", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 2, "{}", text(&out));
    assert!(
        rows[0].starts_with("1 ") && rows[1].starts_with("2 "),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.ends_with("a.yaml")), "{rows:?}");

    let out = env.run("rollout", &["undo", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("defined by file a.yaml"), "{said}");
    assert!(
        said.contains("-     COLOR: green") && said.contains("+     COLOR: blue"),
        "{said}"
    );
    let out = env.run("rollout", &["undo", "web", "--to-revision", "9"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no revision 9"), "{}", text(&out));
    let out = env.run("rollout", &["status", "web", "--timeout", "5s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revision 2 is ready"), "{}", text(&out));
}

#[test]
fn rollout_undo_applies_an_api_object_again_and_keeps_its_replicas() {
    let Some(env) = Env::new("op-undo") else {
        return;
    };
    let file = env.dir.path().join("web.yaml");
    let apply = |extra: &str| {
        std::fs::write(&file, server("web", extra)).expect("write");
        let out = env.run("apply", &["-f", file.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}", text(&out));
        env.sync();
    };
    apply("  env: {COLOR: blue}\n");
    apply("  env: {COLOR: green}\n  replicas: 2\n");
    let color = |name: &str| {
        let c = env.container(name).expect("a container");
        docker(&["exec", &c.id, "sh", "-c", "echo $COLOR"])
            .trim()
            .to_owned()
    };
    assert_eq!(color("web"), "green");
    let out = env.run("rollout", &["undo", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("rolled back to revision 1"),
        "{}",
        text(&out)
    );
    env.sync();
    assert_eq!(color("web"), "blue");
    assert_eq!(color("web.1"), "blue", "the replica count stays");
    // Undo is a new revision, as in kubectl.
    let out = env.run("rollout", &["history", "web"]);
    assert_eq!(
        std::str::from_utf8(&out.stdout)
            .expect("utf-8")
            .lines()
            .count(),
        4,
        "{}",
        text(&out)
    );
}

#[test]
fn a_rollout_that_never_gets_ready_is_rolled_back_reported_failed_and_retried_on_a_new_spec() {
    let Some(env) = Env::new("op-rollback") else {
        return;
    };
    let update = "  update: {failureAction: Rollback, monitor: 3s}\n";
    let version = |v: &str, script: &str| {
        common::shell(
            "web",
            script,
            &format!("{update}  env: {{VERSION: \"{v}\"}}\n"),
        )
    };
    let running_version = || {
        let id = running(&env, "web").expect("web runs");
        docker(&["exec", &id, "sh", "-c", "echo $VERSION"])
            .trim()
            .to_owned()
    };
    env.write("a.yaml", &version("1", "sleep 3600 & wait"));
    env.sync();
    assert_eq!(running_version(), "1");

    // Version 2 crashes at once: after 3 s it is rolled back to version 1.
    env.write("a.yaml", &version("2", "exit 3"));
    let out = env.run("sync", &["--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("server/web failed to roll out: rolled back to revision 1"),
        "{}",
        text(&out)
    );
    assert_eq!(running_version(), "1");
    let status = env.status_of("server", "web").expect("status");
    assert_eq!(status["phase"], "Ready");
    let message = status["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("revision 2 was failing within its 3s monitor (exited with code 3)"),
        "{message}"
    );
    assert!(events(&env).contains("rolled back"), "{}", events(&env));
    let described = text(&env.run("describe", &["server/web"]));
    assert!(described.contains("RolledOut       False"), "{described}");
    // It stays rolled back: another sync does not try version 2 again.
    let out = env.run("sync", &["--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(running_version(), "1");

    // A new spec is tried.
    env.write("a.yaml", &version("3", "sleep 3600 & wait"));
    env.sync();
    assert_eq!(running_version(), "3");
    let message = env.status_of("server", "web").expect("status")["message"].clone();
    assert!(message.is_null(), "{message}");
}
