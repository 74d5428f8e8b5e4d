//! The HTTP API, the manifests table and the kubectl-style verbs, against a real `dockhand up`
//! on port 0, the real engine and a real state file.

mod common;

use std::time::Duration;

use common::{docker, eventually, http, read_sse_until, server, shell, text, Env, SLEEPER};

const WAIT: Duration = Duration::from_secs(40);

/// A server manifest with labels, as a request body.
fn labelled(name: &str, labels: &str) -> String {
    let text = server(name, "");
    let named = format!("metadata:\n  name: {name}\n");
    assert!(text.contains(&named));
    text.replacen(&named, &format!("{named}  labels: {{{labels}}}\n"), 1)
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn objects_are_applied_listed_selected_reported_and_deleted_over_http() {
    let Some(env) = Env::new("api-crud") else {
        return;
    };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&[]);
    let api = format!("{}/api/v1", up.api_url());

    let put = |name: &str, body: &str| {
        http(
            "PUT",
            &format!("{api}/servers/{name}"),
            Some(&env.api_token()),
            Some(body),
        )
    };
    let r = put("web", &labelled("web", "mode: skywars, tier: prod"));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["result"], "created");
    let r = put("web", &labelled("web", "mode: skywars, tier: prod"));
    assert_eq!(
        (r.status, r.body["result"].as_str()),
        (200, Some("unchanged"))
    );
    // JSON bodies are manifests too.
    let lobby = serde_json::json!({
        "apiVersion": "dockhand/v1", "kind": "Server",
        "metadata": {"name": "lobby", "labels": {"mode": "lobby", "tier": "test"}},
        "spec": {"image": common::IMAGE, "pullPolicy": "Never",
                 "command": serde_json::from_str::<serde_json::Value>(SLEEPER).expect("json")}
    });
    let r = put("lobby", &lobby.to_string());
    assert_eq!(r.status, 201, "{r:?}");

    for name in ["web", "lobby"] {
        eventually(WAIT, &format!("{name} running"), || {
            env.container(name).filter(|c| c.running())
        });
    }
    let web = eventually(WAIT, "web Ready over the API", || {
        let r = http(
            "GET",
            &format!("{api}/servers/web"),
            Some(&env.api_token()),
            None,
        );
        (r.body["status"]["phase"] == "Ready").then_some(r.body)
    });
    assert_eq!(web["source"], "api:server/web");
    assert_eq!(web["labels"]["mode"], "skywars");

    let list = |q: &str| {
        http(
            "GET",
            &format!("{api}/servers{q}"),
            Some(&env.api_token()),
            None,
        )
    };
    assert_eq!(names(&list("").body), ["lobby", "web"]);
    assert_eq!(names(&list("?labelSelector=mode=skywars").body), ["web"]);
    assert_eq!(names(&list("?labelSelector=tier!%3Dtest").body), ["web"]);
    assert_eq!(
        names(&list("?labelSelector=mode,!canary").body),
        ["lobby", "web"]
    );
    eventually(WAIT, "both Ready", || {
        (names(&list("?phase=Ready").body).len() == 2).then_some(())
    });
    let bad = list("?labelSelector==x");
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (400, Some("bad_request"))
    );
    assert_eq!(list("?nonsense=1").status, 400);

    // Reports: merged, queryable, and removable field by field.
    let report = |name: &str, body: &str| {
        http(
            "PATCH",
            &format!("{api}/servers/{name}/report"),
            Some(&env.api_token()),
            Some(body),
        )
    };
    let r = report(
        "web",
        r#"{"mode": "skywars", "players": 4, "maxPlayers": 8}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = report("web", r#"{"players": 5, "maxPlayers": null}"#);
    assert_eq!(r.body, serde_json::json!({"mode": "skywars", "players": 5}));
    assert_eq!(names(&list("?report.mode=skywars").body), ["web"]);
    assert_eq!(
        names(&list("?report.players=5&labelSelector=tier=prod").body),
        ["web"]
    );
    assert!(names(&list("?report.players=4").body).is_empty());
    // Potassium's HasReadyMatch: any match that is ready.
    assert!(names(&list("?report.matches.*.ready=true").body).is_empty());
    let r = report(
        "web",
        r#"{"matches": {"m1": {"ready": false}, "m2": {"ready": true}}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(names(&list("?report.matches.*.ready=true").body), ["web"]);
    assert_eq!(
        names(&list("?labelSelector=report.matches.m1.ready!=true").body),
        ["lobby", "web"],
        "!= holds where the field is missing, as in kubectl"
    );
    let r = report("web", r#"{"matches": null}"#);
    assert_eq!(r.body, serde_json::json!({"mode": "skywars", "players": 5}));
    assert_eq!(
        http(
            "GET",
            &format!("{api}/servers/web"),
            Some(&env.api_token()),
            None
        )
        .body["report"]["players"],
        5
    );
    assert_eq!(report("nope", "{}").status, 404);
    assert_eq!(report("web", "[1]").status, 400);
    assert_eq!(report("web", "not json").status, 400);

    // Bad bodies: 400 with the field, line and what was expected.
    let r = put("web", &server("web", "  ports: [{hots: 80}]\n"));
    assert_eq!(r.status, 400, "{r:?}");
    let d = &r.body["details"][0];
    assert_eq!(d["field"], "spec.ports[0].hots", "{r:?}");
    assert!(d["line"].as_u64().is_some_and(|l| l > 0), "{r:?}");
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("hots")),
        "{r:?}"
    );
    let r = put("other", &server("web", ""));
    assert_eq!(r.status, 400, "a body naming another object: {r:?}");
    let r = http(
        "PUT",
        &format!("{api}/servers/web"),
        Some(&env.api_token()),
        Some("\u{0}\u{1}"),
    );
    assert_eq!(r.status, 400);
    let r = http(
        "PUT",
        &format!("{api}/widgets/web"),
        Some(&env.api_token()),
        Some(""),
    );
    assert_eq!(r.status, 404);
    let r = http(
        "PUT",
        &format!("{api}/servers/Bad_Name"),
        Some(&env.api_token()),
        Some(""),
    );
    assert_eq!(r.status, 400);

    // An object a file defines belongs to the file.
    env.write("file.yaml", &server("filed", ""));
    eventually(WAIT, "filed running", || {
        env.container("filed").filter(|c| c.running())
    });
    let r = put("filed", &server("filed", ""));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("file.yaml")),
        "{r:?}"
    );
    let r = http(
        "DELETE",
        &format!("{api}/servers/filed"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 409, "{r:?}");

    let r = http(
        "DELETE",
        &format!("{api}/servers/lobby"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    eventually(WAIT, "lobby removed", || {
        env.container("lobby").is_none().then_some(())
    });
    assert_eq!(
        http(
            "DELETE",
            &format!("{api}/servers/lobby"),
            Some(&env.api_token()),
            None
        )
        .status,
        404
    );
    assert_eq!(
        http(
            "GET",
            &format!("{api}/servers/lobby"),
            Some(&env.api_token()),
            None
        )
        .status,
        404
    );
    assert!(env.container("web").is_some_and(|c| c.running()));
}

#[test]
fn the_last_applied_object_can_be_deleted() {
    let Some(env) = Env::new("api-last") else {
        return;
    };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&[]);
    let api = format!("{}/api/v1", up.api_url());
    let r = http(
        "PUT",
        &format!("{api}/servers/solo"),
        Some(&env.api_token()),
        Some(&server("solo", "")),
    );
    assert_eq!(r.status, 201, "{r:?}");
    eventually(WAIT, "solo running", || {
        env.container("solo").filter(|c| c.running())
    });
    // An explicit delete is not an empty source: the container goes.
    assert_eq!(
        http(
            "DELETE",
            &format!("{api}/servers/solo"),
            Some(&env.api_token()),
            None
        )
        .status,
        200
    );
    eventually(WAIT, "solo removed", || {
        env.container("solo").is_none().then_some(())
    });
}

#[test]
fn a_token_is_required_off_loopback_and_checked_when_given() {
    let Some(env) = Env::new("api-token") else {
        return;
    };
    let out = env.run("up", &["--api", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token-file"),
        "{}",
        text(&out)
    );

    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write");
    let token = token_file.to_str().expect("utf-8");
    let up = env.up(&["--api", "0.0.0.0:0", "--token-file", token]);
    let base = up.api_url().replace("0.0.0.0", "127.0.0.1");
    assert_eq!(
        http("GET", &format!("{base}/healthz"), None, None).status,
        200
    );
    for path in ["/readyz", "/metrics", "/api/v1/servers", "/api/v1/events"] {
        let r = http("GET", &format!("{base}{path}"), None, None);
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let r = http("GET", &format!("{base}{path}"), Some("wrong"), None);
        assert_eq!(r.status, 401, "{path}");
    }
    let r = http(
        "GET",
        &format!("{base}/api/v1/servers"),
        Some("s3cret-token"),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");

    // The CLI talks to it with --server and --token-file.
    let r = env.run(
        "apply",
        &["-f", "-", "--server", &base, "--token-file", token],
    );
    assert_eq!(r.status.code(), Some(1), "no stdin objects: {}", text(&r));
    let file = env.dir.path().join("remote.yaml");
    std::fs::write(&file, labelled("remote", "mode: skywars")).expect("write");
    let f = file.to_str().expect("utf-8");
    let r = env.run(
        "apply",
        &["-f", f, "--server", &base, "--token-file", token],
    );
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "server/remote created"
    );
    let r = env.run("apply", &["-f", f, "--server", &base]);
    assert_eq!(r.status.code(), Some(1), "without the token: {}", text(&r));
    eventually(WAIT, "remote Ready", || {
        let r = env.run(
            "get",
            &[
                "servers",
                "-l",
                "mode=skywars",
                "-o",
                "json",
                "--server",
                &base,
                "--token-file",
                token,
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).ok()?;
        (v[0]["status"]["phase"] == "Ready").then_some(())
    });
    let remote = ["--server", &base, "--token-file", token];
    let r = env.run("describe", &[&["server", "remote"][..], &remote].concat());
    let page = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(r.status.success(), "{}", text(&r));
    for want in [
        "Source:       api:server/remote",
        "Phase:        Ready",
        "Events:",
        "created",
    ] {
        assert!(page.contains(want), "{want:?} missing:\n{page}");
    }
    let r = env.run(
        "events",
        &[&["--for", "server/remote"][..], &remote].concat(),
    );
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("server/remote"),
        "{}",
        text(&r)
    );
    let r = env.run(
        "delete",
        &["server", "remote", "--server", &base, "--token-file", token],
    );
    assert!(r.status.success(), "{}", text(&r));
    let r = env.run(
        "delete",
        &["server", "remote", "--server", &base, "--token-file", token],
    );
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
}

#[test]
fn logs_exec_and_diff_work_against_a_remote_controller() {
    let Some(env) = Env::new("api-attach") else {
        return;
    };
    env.write(
        "talker.yaml",
        &shell(
            "talker",
            "echo hello-from-talker; while true; do sleep 1; done",
            "",
        ),
    );
    let up = env.up(&[]);
    let base = up.api_url();
    let remote = ["--server", base.as_str()];
    eventually(WAIT, "talker Ready", || {
        let r = http(
            "GET",
            &format!("{base}/api/v1/servers/talker"),
            Some(&env.api_token()),
            None,
        );
        (r.body["status"]["phase"] == "Ready").then_some(())
    });

    let r = http(
        "GET",
        &format!("{base}/api/v1/servers/talker/logs?tail=5"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.text.contains("hello-from-talker"), "{r:?}");
    let out = env.run("logs", &[&["talker"][..], &remote].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-from-talker\n");
    for (path, status) in [
        ("/api/v1/servers/nobody/logs", 404),
        ("/api/v1/networks/talker/logs", 400),
        // An unknown parameter is refused (`since` is a known one now: see below).
        ("/api/v1/servers/talker/logs?nonsense=1", 400),
        ("/api/v1/servers/talker/logs?since=not-a-number", 400),
    ] {
        let r = http(
            "GET",
            &format!("{base}{path}"),
            Some(&env.api_token()),
            None,
        );
        assert_eq!(r.status, status, "{path}: {r:?}");
    }

    // `since` in epoch seconds: nothing was written after a time to come.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let r = http(
        "GET",
        &format!("{base}/api/v1/servers/talker/logs?since={later}"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!((r.status, r.text.as_str()), (200, ""), "{r:?}");
    let r = http(
        "GET",
        &format!("{base}/api/v1/servers/talker/logs?since=1"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.text, "hello-from-talker\n", "{r:?}");

    // Standard input goes in whole; stdout, stderr and the exit code come back apart.
    let mut child = env
        .command("exec")
        .args(["talker", "-i", "--server", &base, "--"])
        .args(["sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("exec");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("exec output");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to-stderr"),
        "{}",
        text(&out)
    );
    let out = env.run(
        "exec",
        &[&["talker", "-t"][..], &remote, &["--", "true"]].concat(),
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "no remote terminal: {}",
        text(&out)
    );
    let r = http(
        "POST",
        &format!("{base}/api/v1/servers/talker/exec"),
        Some(&env.api_token()),
        Some(r#"{"command": []}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");

    // The controller's own dry run: nothing to do once converged.
    let r = http(
        "GET",
        &format!("{base}/api/v1/plan"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["actions"], serde_json::json!([]), "{r:?}");
    let out = env.run("diff", &[&remote[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no changes\n");
    // `apply --dry-run` through the API: the controller plans the input, stores nothing.
    let input = env.dir.path().join("extra.yaml");
    std::fs::write(&input, server("extra", "")).expect("write");
    let input = input.to_str().expect("utf-8");
    let out = env.run(
        "apply",
        &[&["-f", input, "--dry-run"][..], &remote].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("create server/extra"),
        "{}",
        text(&out)
    );
    let r = http(
        "GET",
        &format!("{base}/api/v1/servers/extra"),
        Some(&env.api_token()),
        None,
    );
    assert_eq!(r.status, 404, "nothing stored: {r:?}");
    let r = http(
        "POST",
        &format!("{base}/api/v1/plan"),
        Some(&env.api_token()),
        Some("kind: Server\n"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    drop(up);
}

#[test]
fn the_event_stream_delivers_new_events() {
    let Some(env) = Env::new("api-sse") else {
        return;
    };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&[]);
    let base = up.api_url();
    eventually(WAIT, "ready", || {
        (http(
            "GET",
            &format!("{base}/readyz"),
            Some(&env.api_token()),
            None,
        )
        .status
            == 200)
            .then_some(())
    });
    let file = env.dir.path().join("streamed.yaml");
    std::fs::write(&file, server("streamed", "")).expect("write");
    let seen = read_sse_until(
        &format!("{base}/api/v1/events?follow=true"),
        &env.api_token(),
        WAIT,
        || {
            let r = env.run("apply", &["-f", file.to_str().expect("utf-8")]);
            assert!(r.status.success(), "{}", text(&r));
        },
        "\"name\":\"streamed\"",
    );
    assert!(
        seen.contains("event: event") && seen.contains("\"name\":\"streamed\""),
        "{seen}"
    );
    let r = http(
        "GET",
        &format!("{base}/api/v1/events?kind=server&name=streamed"),
        Some(&env.api_token()),
        None,
    );
    assert!(r.body.as_array().is_some_and(|a| !a.is_empty()), "{r:?}");
    assert_eq!(
        http(
            "GET",
            &format!("{base}/api/v1/events?follow=maybe"),
            Some(&env.api_token()),
            None
        )
        .status,
        400
    );
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let Some(env) = Env::new("api-metrics") else {
        return;
    };
    env.write("web.yaml", &server("web", ""));
    let up = env.up(&[]);
    let base = up.api_url();
    eventually(WAIT, "web running", || {
        env.container("web").filter(|c| c.running())
    });
    let body = eventually(WAIT, "container metrics", || {
        let r = http(
            "GET",
            &format!("{base}/metrics"),
            Some(&env.api_token()),
            None,
        );
        r.text
            .contains("dockhand_container_memory_bytes{kind=\"server\",name=\"web\"}")
            .then_some(r.text)
    });
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus text");
    let has = |name: &str| scrape.samples.iter().any(|s| s.metric == name);
    for m in [
        "dockhand_reconcile_pass_duration_seconds_count",
        "dockhand_actions_total",
        "dockhand_queue_depth",
        "dockhand_objects",
        "dockhand_engine_errors_total",
        "dockhand_container_cpu_seconds_total",
        "dockhand_container_memory_bytes",
        "dockhand_container_network_receive_bytes_total",
        "dockhand_container_block_read_bytes_total",
    ] {
        assert!(has(m), "{m} missing from:\n{body}");
    }
    let created = scrape.samples.iter().find(|s| {
        s.metric == "dockhand_actions_total"
            && s.labels.get("action") == Some("create")
            && s.labels.get("result") == Some("ok")
    });
    assert!(created.is_some(), "{body}");
    let memory = scrape
        .samples
        .iter()
        .find(|s| s.metric == "dockhand_container_memory_bytes")
        .expect("memory sample");
    assert!(
        matches!(memory.value, prometheus_parse::Value::Gauge(v) if v > 0.0),
        "{body}"
    );
}

/// The manifests table, written with an ordinary SQLite driver as any program would.
async fn table(env: &Env, sql: &str, binds: &[&str]) {
    let url = format!("sqlite://{}", env.state.display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open state file");
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&pool).await.expect("write manifests table");
    pool.close().await;
}

fn write_table(env: &Env, sql: &str, binds: &[&str]) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(table(env, sql, binds));
}

#[test]
fn a_row_inserted_into_the_manifests_table_becomes_a_running_container() {
    let Some(env) = Env::new("table") else { return };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&["--resync", "1h"]);
    let _ = up.api_url();
    let inst = env.instance.as_str();
    write_table(
        &env,
        "INSERT INTO manifests (instance, name, yaml) VALUES (?, 'row', ?)",
        &[inst, &server("fromrow", "")],
    );
    let c = eventually(WAIT, "fromrow running", || {
        env.container("fromrow").filter(|c| c.running())
    });
    let obj = env.object("fromrow").expect("stored");
    assert_eq!(obj["source"], "table:row");

    // A broken row keeps the last good spec and says why, with the row's line and field.
    write_table(
        &env,
        "UPDATE manifests SET yaml = ? WHERE instance = ? AND name = 'row'",
        &[&server("fromrow", "  ports: [{hots: 1}]\n"), inst],
    );
    let err = eventually(WAIT, "the row's error", || {
        let o = env.object("fromrow")?;
        o["lastError"].as_str().map(str::to_owned)
    });
    assert!(
        err.starts_with("table:row:") && err.contains("spec.ports[0]"),
        "{err}"
    );
    assert_eq!(env.container("fromrow").map(|c| c.id), Some(c.id.clone()));

    // The same object in a file and a row is an error on both; neither is applied anew.
    write_table(
        &env,
        "UPDATE manifests SET yaml = ? WHERE instance = ? AND name = 'row'",
        &[&server("fromrow", ""), inst],
    );
    env.write("dup.yaml", &server("fromrow", "  env: {A: b}\n"));
    let err = eventually(WAIT, "the duplicate error", || {
        let out = env.run("get", &[]);
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        (e.contains("dup.yaml") && e.contains("table:row")).then_some(e)
    });
    assert!(err.contains("also defined in"), "{err}");
    assert_eq!(env.container("fromrow").map(|c| c.id), Some(c.id.clone()));
    env.remove("dup.yaml");

    // Deleting the row removes the object, like deleting its file.
    write_table(&env, "DELETE FROM manifests WHERE instance = ?", &[inst]);
    env.write("keep.yaml", &server("keep", ""));
    eventually(WAIT, "fromrow removed", || {
        env.container("fromrow").is_none().then_some(())
    });
    drop(up);
    let _ = docker(&["ps"]);
}

#[test]
fn without_the_generated_token_nobody_may_change_or_exec_through_the_api() {
    let Some(env) = Env::new("api-default-token") else {
        return;
    };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&[]);
    let base = up.api_url();
    let token = up.api_token();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.token_file())
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    assert_eq!(token.len(), 32);

    let body = server(
        "intruder",
        "  volumes:\n    - {type: bind, source: /, target: /host}\n",
    );
    let put = http(
        "PUT",
        &format!("{base}/api/v1/servers/intruder"),
        None,
        Some(&body),
    );
    assert_eq!(put.status, 401, "{put:?}");
    let exec = http(
        "POST",
        &format!("{base}/api/v1/servers/any/exec"),
        None,
        Some(r#"{"command": ["cat", "/etc/shadow"]}"#),
    );
    assert_eq!(exec.status, 401, "{exec:?}");
    let r = http(
        "GET",
        &format!("{base}/api/v1/servers"),
        Some("guess"),
        None,
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        http("GET", &format!("{base}/healthz"), None, None).status,
        200
    );
    assert!(env.container("intruder").is_none());

    // The same user's CLI finds the token next to the state file by itself.
    let r = env.run("get", &["servers", "-o", "json", "--server", &base]);
    assert!(r.status.success(), "{}", text(&r));

    // Even with the token, the host policy refuses a bind of the host's root.
    let url = format!("{base}/api/v1/servers/intruder");
    let put = http("PUT", &url, Some(&token), Some(&body));
    assert_eq!(put.status, 201, "{put:?}");
    let status = eventually(WAIT, "intruder Invalid", || {
        let r = http("GET", &url, Some(&token), None);
        (r.body["status"]["phase"] == "Invalid").then_some(r.body["status"].clone())
    });
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("--allow-host-path"), "{message}");
    assert!(
        env.container("intruder").is_none(),
        "the container was created"
    );
}

#[test]
fn idle_connections_and_big_bodies_never_starve_the_controller() {
    let Some(env) = Env::new("api-limits") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let up = env.up(&["--resync", "1h"]);
    let base = up.api_url();
    let token = up.api_token();
    let web = eventually(WAIT, "web running", || {
        env.container("web").filter(|c| c.running())
    });

    // Hundreds of connections that never send a request.
    let addr = base.trim_start_matches("http://").to_owned();
    let idle: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() > 200, "only {} connections", idle.len());
    // Drift is still repaired meanwhile.
    docker(&["kill", &web.id]);
    eventually(WAIT, "web repaired while the API is flooded", || {
        env.container("web")
            .filter(|c| c.running() && c.id == web.id)
    });
    // The server closes a connection that sends no request within the header timeout.
    let mut first = idle[0].try_clone().expect("clone");
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut first, &mut buf);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "an idle connection was kept: {read:?}"
    );
    drop(idle);
    eventually(WAIT, "the API to answer after the flood", || {
        (http("GET", &format!("{base}/healthz"), None, None).status == 200).then_some(())
    });

    let url = format!("{base}/api/v1/servers/web/report");
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024));
    let r = http("PATCH", &url, Some(&token), Some(&big));
    assert_eq!(r.status, 413, "{r:?}");
    let mut last = 0;
    for i in 0..20 {
        let part = format!("{{\"k{i}\": \"{}\"}}", "b".repeat(30 * 1024));
        last = http("PATCH", &url, Some(&token), Some(&part)).status;
        if last == 413 {
            break;
        }
    }
    assert_eq!(last, 413, "a report grew past its cap");
    let huge = "#".repeat(5 * 1024 * 1024);
    let r = http(
        "PUT",
        &format!("{base}/api/v1/servers/x"),
        Some(&token),
        Some(&huge),
    );
    assert_eq!(r.status, 413, "{:?}", r.status);
}

#[test]
fn a_body_that_drips_in_is_cut_off() {
    let Some(env) = Env::new("api-slow-body") else {
        return;
    };
    std::fs::create_dir_all(&env.manifests).expect("mkdir");
    let up = env.up(&[]);
    let base = up.api_url();
    let token = up.api_token();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    write!(
        s,
        "PUT /api/v1/servers/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\napiVersion"
    )
    .expect("send");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("did not arrive"), "{reply}");
}

#[test]
fn a_report_is_cleared_when_its_container_is_replaced() {
    let Some(env) = Env::new("api-report-clear") else {
        return;
    };
    env.write("web.yaml", &server("web", ""));
    let mut up = env.up(&[]);
    let api = format!("{}/api/v1", up.api_url());
    let token = up.api_token();
    let web = eventually(WAIT, "web to run", || {
        env.container("web").filter(|c| c.running())
    });
    let url = format!("{api}/servers/web/report");
    let r = http(
        "PATCH",
        &url,
        Some(&token),
        Some(r#"{"match": "m1", "ready": true}"#),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let get = || http("GET", &format!("{api}/servers/web"), Some(&token), None).body;
    assert_eq!(get()["report"]["match"], "m1");
    // The container goes; the one that replaces it has not said anything yet.
    docker(&["rm", "-f", &web.id]);
    eventually(WAIT, "web replaced", || {
        env.container("web")
            .filter(|c| c.running() && c.id != web.id)
    });
    eventually(WAIT, "the old report to be gone", || {
        let r = get()["report"].clone();
        (r.is_null() || r == serde_json::json!({})).then_some(())
    });
    up.stop();
}
