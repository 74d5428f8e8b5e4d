//! `dockhand up`, the controller, against the real Docker engine.

mod common;

use std::time::{Duration, Instant};

use common::{docker, eventually, server, Env, FlakyEngine};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn up_picks_up_a_new_file_and_restarts_a_killed_container() {
    let Some(env) = Env::new("up-drift") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut up = env.up(&["--resync", "1h"]);
    let web = eventually(WAIT, "web to run", || {
        env.container("web").filter(|c| c.running())
    });

    env.write("b.yaml", &server("api", ""));
    eventually(WAIT, "api from the new file to run", || {
        env.container("api").filter(|c| c.running())
    });

    // With a one-hour resync, only the engine's events can bring it back this quickly.
    docker(&["kill", &web.id]);
    let killed = Instant::now();
    let back = eventually(WAIT, "killed web to run again", || {
        env.container("web").filter(|c| c.running())
    });
    eprintln!(
        "killed container running again after {:?}",
        killed.elapsed()
    );
    assert_eq!(
        back.id, web.id,
        "a killed container is restarted, not recreated"
    );

    // A removed container is recreated, also from events.
    docker(&["rm", "-f", &web.id]);
    eventually(WAIT, "removed web to be recreated", || {
        env.container("web")
            .filter(|c| c.running() && c.id != web.id)
    });

    env.remove("b.yaml");
    eventually(WAIT, "api to be pruned", || {
        env.container("api").is_none().then_some(())
    });

    let (status, took) = up.stop();
    assert!(status.success(), "{}", up.output());
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        env.container("web").is_some_and(|c| c.running()),
        "workloads must outlive the controller"
    );
}

#[test]
fn restarted_controller_makes_no_duplicates() {
    let Some(env) = Env::new("up-restart") else {
        return;
    };
    env.write(
        "a.yaml",
        &format!("{}---\n{}", server("one", ""), server("two", "")),
    );
    let mut up = env.up(&[]);
    eventually(WAIT, "both to run", || {
        (env.containers().iter().filter(|c| c.running()).count() == 2).then_some(())
    });
    up.stop();
    let before = env.containers();

    let mut up = env.up(&[]);
    // Let the new controller finish a full pass: its status write is visible through `get`.
    std::thread::sleep(Duration::from_secs(2));
    let out = env.run("get", &["-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert_eq!(
        env.containers(),
        before,
        "a restarted controller changed containers:\n{}",
        up.output()
    );
    up.stop();
}

#[test]
fn second_controller_on_the_same_state_file_refuses_to_start() {
    let Some(env) = Env::new("up-lock") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut first = env.up(&[]);
    eventually(WAIT, "web to run", || {
        env.container("web").filter(|c| c.running())
    });
    let mut second = env.up(&[]);
    let status = second.wait_exit(WAIT);
    assert_eq!(status.code(), Some(2));
    assert!(
        second.output().contains("already running"),
        "{}",
        second.output()
    );
    let sync = env.run("sync", &[]);
    assert_eq!(
        sync.status.code(),
        Some(2),
        "sync must not race a running controller"
    );
    first.stop();
}

#[test]
fn invalid_edit_under_up_keeps_the_running_container() {
    let Some(env) = Env::new("up-invalid") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut up = env.up(&[]);
    let web = eventually(WAIT, "web to run", || {
        env.container("web").filter(|c| c.running())
    });
    env.write("a.yaml", "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec: {image: 5, bogus: 1}\n");
    eventually(WAIT, "the error to be recorded", || {
        let out = env.run("get", &["-o", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        json[0]["lastError"].as_str().map(str::to_owned)
    });
    assert_eq!(env.container("web"), Some(web));
    up.stop();
}

#[test]
fn up_waits_for_the_engine_and_repairs_drift_after_it_comes_back() {
    let Some(env) = Env::new("up-reconnect") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut engine = FlakyEngine::new(env.dir.path().join("engine.sock"));
    let host = format!("unix://{}", engine.path.display());
    let mut up = env.up_with_env(&["--resync", "1h"], &[("DOCKER_HOST", host.as_str())]);

    // No engine yet: the controller waits instead of exiting.
    std::thread::sleep(Duration::from_secs(1));
    assert!(env.container("web").is_none());
    engine.restore();
    let web = eventually(WAIT, "web to run once the engine is reachable", || {
        env.container("web").filter(|c| c.running())
    });

    // The engine goes away; meanwhile the container dies. Nothing can repair it until the
    // engine is back, and then it must be repaired without waiting for the hour-long resync.
    engine.cut();
    docker(&["kill", &web.id]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!env.container("web").expect("web").running());
    engine.restore();
    eventually(WAIT, "web to run again after the engine came back", || {
        env.container("web").filter(|c| c.running())
    });
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
    let log = up.output();
    assert!(log.contains("cannot reach the docker engine"), "{log}");
}

/// Reading the manifests raises access events on the watched directory; a controller that
/// counted them as changes would run pass after pass forever. At rest it must run none.
#[test]
fn a_controller_at_rest_runs_no_passes() {
    let Some(env) = Env::new("up-rest") else {
        return;
    };
    for name in ["a", "b", "c"] {
        env.write(&format!("{name}.yaml"), &server(name, ""));
    }
    let up = env.up(&["--resync", "1h"]);
    let metrics = format!("{}/metrics", up.api_url());
    let passes = || {
        let text = common::http("GET", &metrics, Some(&env.api_token()), None).text;
        text.lines()
            .find_map(|l| l.strip_prefix("dockhand_reconcile_pass_duration_seconds_count "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("pass count")
    };
    eventually(WAIT, "all three running", || {
        (["a", "b", "c"]
            .iter()
            .all(|n| env.container(n).is_some_and(|c| c.running())))
        .then_some(())
    });
    // Settled: the confirming passes are done once the count stops moving for a second.
    let mut last = passes();
    eventually(WAIT, "passes to stop", || {
        std::thread::sleep(Duration::from_secs(1));
        let now = passes();
        let settled = now == last;
        last = now;
        settled.then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(passes(), last, "an idle controller ran passes");
}

#[test]
fn a_wedged_engine_fails_sync_and_diff_in_time_instead_of_hanging_them() {
    let Some(env) = Env::new("engine-hang") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut engine = FlakyEngine::new(env.dir.path().join("engine.sock"));
    engine.hang();
    let host = format!("unix://{}", engine.path.display());
    for (verb, args) in [("sync", &["--timeout", "5s"][..]), ("diff", &[][..])] {
        let mut cmd = env.command(verb);
        cmd.args(args)
            .env("DOCKER_HOST", &host)
            .env("DOCKHAND_ENGINE_TIMEOUT", "2")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = child.wait_with_output().expect("output");
        let status = status.unwrap_or_else(|| panic!("{verb} hung on a wedged engine"));
        assert_eq!(status.code(), Some(2), "{verb}: {}", common::text(&out));
    }
    engine.cut();
}

#[test]
fn deleting_the_state_file_under_up_stops_it_with_an_error_instead_of_failing_forever() {
    let Some(env) = Env::new("state-deleted") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let mut up = env.up(&["--resync", "1s"]);
    eventually(WAIT, "web running", || {
        env.container("web").filter(|c| c.running())
    });
    for suffix in ["", "-wal", "-shm"] {
        let mut p = env.state.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let status = up.wait_exit(WAIT);
    assert_eq!(status.code(), Some(2), "{}", up.output());
    assert!(
        up.output().contains("deleted or replaced"),
        "{}",
        up.output()
    );
    assert!(
        !env.state.exists(),
        "an empty state file was created in its place"
    );
    assert!(
        env.container("web").is_some_and(|c| c.running()),
        "workloads keep running"
    );
}

#[test]
fn a_long_write_lock_held_by_another_program_does_not_stop_drift_repair() {
    let Some(env) = Env::new("state-locked") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let _up = env.up(&["--resync", "1h"]);
    let web = eventually(WAIT, "web running", || {
        env.container("web").filter(|c| c.running())
    });
    let rt = common::http_runtime();
    // Another program takes the write lock and keeps it.
    let mut conn = rt.block_on(async {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&env.state);
        let mut c = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("connect");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .expect("lock");
        c
    });
    docker(&["kill", &web.id]);
    eventually(
        Duration::from_secs(60),
        "web repaired under the lock",
        || {
            env.container("web")
                .filter(|c| c.running() && c.id == web.id)
        },
    );
    rt.block_on(async {
        sqlx::query("ROLLBACK")
            .execute(&mut conn)
            .await
            .expect("unlock");
    });
}

#[test]
fn an_engine_restart_under_up_is_healed() {
    let Some(env) = Env::new("engine-restart") else {
        return;
    };
    let engine = common::PrivateEngine::start(env.dir.path(), common::IMAGE);
    env.write("a.yaml", &server("web", ""));
    let host = format!("unix://{}", engine.socket.display());
    let _up = env.up_with_env(&["--resync", "1h"], &[("DOCKER_HOST", host.as_str())]);
    let name = format!("dh_{}_server_web", env.instance);
    let running = || {
        let out = engine.docker(&[
            "ps",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.ID}}",
        ]);
        let id = out.trim().to_owned();
        (!id.is_empty()).then_some(id)
    };
    eventually(WAIT, "web running on the private engine", running);
    // The engine restarts: its containers stop (no live restore), the event stream ends.
    engine.restart();
    eventually(
        Duration::from_secs(60),
        "web running again after the restart",
        running,
    );
}

#[test]
fn a_crash_loop_is_notified_once_and_its_recovery_once_with_retries_and_no_secret_shown() {
    let Some(env) = Env::new("up-notify") else {
        return;
    };
    let (port, got) = common::receiver();
    let url = format!("http://127.0.0.1:{port}/hook?token=s3cret");
    env.write("web.yaml", &common::shell("web", "sleep 1; exit 3", ""));
    let mut up = env.up(&["--resync", "1h", "--notify", &url]);
    let said = |event: &str| {
        got.lock()
            .expect("the list")
            .iter()
            .filter(|n| n["event"] == event && n["object"] == "server/web")
            .cloned()
            .collect::<Vec<_>>()
    };
    let failing = eventually(Duration::from_secs(60), "a failing notification", || {
        said("failing").pop()
    });
    assert_eq!(failing["instance"], env.instance.as_str(), "{failing}");
    assert!(
        failing["phase"] == "CrashLoopBackOff" || failing["phase"] == "Failed",
        "{failing}"
    );
    // More crashes and restarts: still one message.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(said("failing").len(), 1, "{:?}", got.lock());

    env.write("web.yaml", &common::shell("web", "exec sleep 3600", ""));
    let recovered = eventually(Duration::from_secs(60), "a recovered notification", || {
        said("recovered").pop()
    });
    assert_eq!(recovered["phase"], "Ready", "{recovered}");
    assert_eq!(said("failing").len(), 1);

    // Each delivery is an event; the URL is shown by its host only.
    let events = eventually(WAIT, "the deliveries recorded", || {
        let out = env.run("events", &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("recovered of server/web sent to")
            .then_some(text)
    });
    assert!(
        events.contains(&format!(
            "failing of server/web sent to http://127.0.0.1:{port}"
        )),
        "{events}"
    );
    let (_, _) = up.stop();
    assert!(!events.contains("s3cret"), "{events}");
    assert!(!up.output().contains("s3cret"), "{}", up.output());
}

#[test]
fn notifications_reach_an_https_receiver_whose_certificate_the_host_trusts() {
    let Some(env) = Env::new("up-notify-tls") else {
        return;
    };
    if !common::tool_present("openssl") {
        return;
    }
    let (port, got, cert) = common::tls_receiver(env.dir.path());
    let url = format!("https://127.0.0.1:{port}/hook");
    env.write("web.yaml", &common::shell("web", "sleep 1; exit 3", ""));
    let cert = cert.to_str().expect("utf-8").to_owned();
    let mut up = env.up_with_env(
        &["--resync", "1h", "--notify", &url],
        &[("SSL_CERT_FILE", cert.as_str())],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let failing = loop {
        let found = got
            .lock()
            .expect("the list")
            .iter()
            .find(|n| n["event"] == "failing")
            .cloned();
        if let Some(f) = found {
            break f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failing notification over TLS:\n{}\n{}",
            common::text(&env.run("events", &[])),
            up.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(failing["object"], "server/web", "{failing}");
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
    let events = String::from_utf8_lossy(&env.run("events", &[]).stdout).into_owned();
    assert!(
        events.contains(&format!(
            "failing of server/web sent to https://127.0.0.1:{port}"
        )),
        "{events}"
    );

    // A controller that does not trust the receiver's certificate sends nothing, and says why.
    env.write("web.yaml", &common::shell("web", "exec sleep 3600", ""));
    let mut up = env.up(&["--resync", "1h", "--notify", &url]);
    let refused = eventually(Duration::from_secs(60), "a refused delivery", || {
        let out = env.run("events", &[]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("recovered of server/web not delivered"))
            .map(str::to_owned)
    });
    assert!(refused.contains("certificate"), "{refused}");
    up.stop();
    assert!(
        !got.lock()
            .expect("the list")
            .iter()
            .any(|n| n["event"] == "recovered"),
        "delivered to an untrusted receiver"
    );
}
