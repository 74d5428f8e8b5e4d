//! Dependency ordering, health checks and `restart: true`, against the real Docker engine.

mod common;

use std::time::Duration;

use common::{docker, eventually, shell, text, Env};

const WAIT: Duration = Duration::from_secs(40);

/// `docker inspect` of one field of one container.
fn inspect(id: &str, field: &str) -> String {
    docker(&["inspect", "-f", &format!("{{{{{field}}}}}"), id])
        .trim()
        .to_owned()
}

#[test]
fn chain_starts_in_dependency_order_and_is_removed_in_reverse() {
    let Some(env) = Env::new("chain") else { return };
    env.write(
        "job.yaml",
        &shell(
            "job",
            "sleep 1; echo migrated",
            "  restartPolicy: OnFailure\n",
        ),
    );
    env.write(
        "api.yaml",
        &shell(
            "api",
            "sleep 1; touch /tmp/ready; sleep 3600 & wait",
            "  dependsOn: [{name: job, condition: Completed}]\n  healthCheck: {exec: [test, -f, /tmp/ready], interval: 300ms, retries: 1, startPeriod: 10s}\n",
        ),
    );
    env.write(
        "web.yaml",
        &shell(
            "web",
            "sleep 3600 & wait",
            "  dependsOn: [{name: api, condition: Healthy}]\n",
        ),
    );
    env.write(
        "worker.yaml",
        &shell("worker", "sleep 3600 & wait", "  dependsOn: [web]\n"),
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));

    let id = |n: &str| env.container(n).unwrap_or_else(|| panic!("{n} missing")).id;
    let (job, api, web, worker) = (id("job"), id("api"), id("web"), id("worker"));
    let job_done = inspect(&job, ".State.FinishedAt");
    let api_start = inspect(&api, ".State.StartedAt");
    let web_start = inspect(&web, ".State.StartedAt");
    let worker_start = inspect(&worker, ".State.StartedAt");
    // RFC 3339 with the same zone and precision compares as text.
    assert!(
        job_done < api_start,
        "api started before job completed: {job_done} / {api_start}"
    );
    assert!(
        api_start < web_start,
        "web started before api: {api_start} / {web_start}"
    );
    assert!(
        web_start < worker_start,
        "worker started before web: {web_start} / {worker_start}"
    );
    assert_eq!(inspect(&api, ".State.Health.Status"), "healthy");
    assert_eq!(
        env.status_of("server", "job").expect("job")["phase"],
        "Completed"
    );
    let api_status = env.status_of("server", "api").expect("api");
    assert_eq!(api_status["phase"], "Ready");
    assert_eq!(api_status["health"], "healthy");

    let events =
        String::from_utf8_lossy(&env.run("events", &["--for", "server/web"]).stdout).into_owned();
    assert!(
        events.contains("waiting for server/api to be healthy"),
        "{events}"
    );

    // Everything goes: dependents are removed first.
    for f in ["job.yaml", "api.yaml", "web.yaml", "worker.yaml"] {
        env.remove(f);
    }
    let out = env.run("sync", &["--allow-empty", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&env.run("events", &["--limit", "1000"]).stdout).into_owned();
    let removed = |n: &str| {
        log.lines()
            .position(|l| l.contains("removed") && l.contains(&format!("server_{n} ")))
            .unwrap_or_else(|| panic!("{n} not removed:\n{log}"))
    };
    assert!(removed("worker") < removed("web"), "{log}");
    assert!(removed("web") < removed("api"), "{log}");
}

#[test]
fn a_cycle_is_rejected_and_nothing_runs() {
    let Some(env) = Env::new("cycle") else { return };
    env.write(
        "a.yaml",
        &shell("a", "sleep 3600 & wait", "  dependsOn: [b]\n"),
    );
    env.write(
        "b.yaml",
        &shell("b", "sleep 3600 & wait", "  dependsOn: [a]\n"),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "a.yaml:3:0: spec.dependsOn: dependency cycle: server/a -> server/b -> server/a"
        ),
        "{err}"
    );
    assert!(err.contains("b.yaml:"), "{err}");
    assert!(env.containers().is_empty());
}

#[test]
fn a_health_check_that_starts_failing_gets_the_container_restarted() {
    let Some(env) = Env::new("unhealthy") else {
        return;
    };
    env.write(
        "a.yaml",
        &shell(
            "web",
            "rm -f /tmp/broken; sleep 3600 & wait",
            "  healthCheck: {exec: [sh, -c, 'test ! -f /tmp/broken'], interval: 300ms, retries: 2}\n",
        ),
    );
    let mut up = env.up(&["--resync", "1h"]);
    let web = eventually(WAIT, "web to be ready", || {
        let s = env.status_of("server", "web")?;
        (s["phase"] == "Ready")
            .then(|| env.container("web"))
            .flatten()
    });
    docker(&["exec", &web.id, "touch", "/tmp/broken"]);
    let s = eventually(WAIT, "a restart for health", || {
        let s = env.status_of("server", "web")?;
        (s["restartCount"].as_u64()? >= 1 && s["phase"] == "Ready").then_some(s)
    });
    assert_eq!(
        env.container("web").expect("web").id,
        web.id,
        "restarted, not recreated"
    );
    let events =
        String::from_utf8_lossy(&env.run("events", &["--for", "server/web"]).stdout).into_owned();
    for want in [
        "is healthy",
        "is unhealthy",
        "restarted server/web: unhealthy (restart 1)",
    ] {
        assert!(events.contains(want), "missing {want:?}:\n{events}\n{s}");
    }
    up.stop();
}

#[test]
fn a_restart_true_dependent_restarts_when_its_dependency_is_recreated() {
    let Some(env) = Env::new("deprestart") else {
        return;
    };
    env.write(
        "db.yaml",
        &shell("db", "sleep 3600 & wait", "  env: {VERSION: '1'}\n"),
    );
    env.write(
        "app.yaml",
        &shell(
            "app",
            "sleep 3600 & wait",
            "  dependsOn: [{name: db, restart: true}]\n",
        ),
    );
    env.sync();
    let app = env.container("app").expect("app");
    let started = inspect(&app.id, ".State.StartedAt");

    env.write(
        "db.yaml",
        &shell("db", "sleep 3600 & wait", "  env: {VERSION: '2'}\n"),
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = env.container("app").expect("app");
    assert_eq!(
        after.id, app.id,
        "the dependent is restarted, not recreated"
    );
    assert!(
        inspect(&after.id, ".State.StartedAt") > started,
        "app was not restarted:\n{}",
        text(&out)
    );
    assert_eq!(
        env.status_of("server", "app").expect("app")["restartCount"],
        1
    );
    let events =
        String::from_utf8_lossy(&env.run("events", &["--for", "server/app"]).stdout).into_owned();
    assert!(events.contains("server/db ran anew"), "{events}");
}

#[test]
fn the_example_app_converges_with_http_and_tcp_health_checks() {
    let Some(env) = Env::new("example-app") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    for entry in std::fs::read_dir(&dir).expect("examples/app") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        env.write(&name, &std::fs::read_to_string(&path).expect("read"));
    }
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    for (name, phase) in [("migrate", "Completed"), ("api", "Ready"), ("web", "Ready")] {
        assert_eq!(
            env.status_of("server", name).expect(name)["phase"],
            phase,
            "{name}"
        );
    }
    let api = env.container("api").expect("api");
    assert_eq!(inspect(&api.id, ".State.Health.Status"), "healthy");
    // The page the job wrote is served on the port the engine picked.
    let port = env.status_of("server", "api").expect("api")["ports"][0]["host"]
        .as_u64()
        .expect("port");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port as u16)).expect("connect");
    use std::io::{Read, Write};
    conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("response");
    assert!(page.contains("<h1>shop</h1>"), "{page}");
}
