//! `kind: Database` against the real engine and a real PostgreSQL (built from Debian's packages).

mod common;

use std::time::Duration;

use common::postgres::{database, env_with_postgres, query, url};
use common::{docker, eventually, text, Env, POSTGRES_IMAGE};

const WAIT: Duration = Duration::from_secs(60);

/// A server `app` with `DATABASE_URL` from database `db` (plus `more_env` lines), waiting until
/// the database is Healthy.
fn app_of(db: &str, more_env: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: app}}\nspec:\n  image: {POSTGRES_IMAGE}\n  entrypoint: [sleep, '3600']\n  env:\n    DATABASE_URL: {{fromDatabase: {db}}}\n{more_env}  dependsOn: [{{kind: Database, name: {db}, condition: Healthy}}]\n"
    )
}

/// Who server `app` logs in as, with its `DATABASE_URL` and a real client.
fn current_user(env: &Env) -> String {
    let app = env.container("app").expect("app");
    docker(&[
        "exec",
        &app.id,
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -tAc 'select current_user' 2>&1",
    ])
    .trim()
    .to_owned()
}

/// The tests of allocated ports run one at a time: each takes ports of the range on the host
/// (the first free one), which the other's allocation would otherwise race for.
fn auto_ports() -> std::sync::MutexGuard<'static, ()> {
    static AUTO_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    AUTO_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn volume_exists(name: &str) -> bool {
    docker(&["volume", "ls", "-q", "--filter", &format!("name=^{name}$")]).trim() == name
}

#[test]
fn a_database_is_created_and_its_url_works() {
    let Some(env) = env_with_postgres("db-create") else {
        return;
    };
    env.write("db.yaml", &database("orders", 5911, ""));
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let url = url(&env, "orders");
    assert!(
        url.starts_with("postgres://orders:") && url.ends_with("@127.0.0.1:5911/orders"),
        "{url}"
    );
    query(&url, "CREATE TABLE t (x text)").expect("create table");
    query(&url, "INSERT INTO t VALUES ('kept')").expect("insert");
    assert_eq!(query(&url, "SELECT x FROM t").expect("select"), "kept");

    let o = env.object_of("database", "orders").expect("stored");
    assert_eq!(o["status"]["phase"], "Ready");
    let c = &o["connection"];
    assert_eq!(
        (c["host"].as_str(), c["port"].as_u64()),
        (Some("127.0.0.1"), Some(5911))
    );
    assert_eq!(
        (c["database"].as_str(), c["user"].as_str()),
        (Some("orders"), Some("orders"))
    );
    assert_eq!(c["url"], "postgres://orders:***@127.0.0.1:5911/orders");
    assert!(c.get("password").is_none());
    // The manifest says nothing of a version (so "16"); what runs is the image's 15, and that
    // is what it shows.
    let described = text(&env.run("describe", &["database", "orders"]));
    assert!(
        described.contains("PostgreSQL 15.") && described.contains("accepted a login"),
        "{described}"
    );
}

#[test]
fn a_new_memory_limit_recreates_it_with_the_data_and_password_kept() {
    let Some(env) = env_with_postgres("db-memory") else {
        return;
    };
    env.write(
        "db.yaml",
        &database("shop", 5912, "  resources: {memory: 256m}\n"),
    );
    env.sync();
    let before = url(&env, "shop");
    query(
        &before,
        "CREATE TABLE t (x text); INSERT INTO t VALUES ('row')",
    )
    .expect("write");
    let old = env.container_of("database", "shop").expect("container");

    env.write(
        "db.yaml",
        &database("shop", 5912, "  resources: {memory: 320m}\n"),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let new = env.container_of("database", "shop").expect("container");
    assert_ne!(new.id, old.id, "a new memory limit recreates the container");
    assert_eq!(url(&env, "shop"), before, "the password stays the same");
    assert_eq!(query(&before, "SELECT x FROM t").expect("select"), "row");
}

#[test]
fn retain_keeps_the_volume_and_readding_brings_the_data_back() {
    let Some(env) = env_with_postgres("db-retain") else {
        return;
    };
    env.write("db.yaml", &database("keep", 5913, ""));
    env.sync();
    let u = url(&env, "keep");
    query(&u, "CREATE TABLE t (x text); INSERT INTO t VALUES ('back')").expect("write");
    let other = format!("{}\n---\n{}", common::server("other", ""), "");
    env.write("other.yaml", &other);
    env.remove("db.yaml");
    env.sync();
    assert!(
        env.container_of("database", "keep").is_none(),
        "the container goes"
    );
    let volume = format!("dh_{}_keep-data", env.instance);
    assert!(volume_exists(&volume), "the volume stays under Retain");

    env.write("db.yaml", &database("keep", 5913, ""));
    env.sync();
    assert_eq!(url(&env, "keep"), u, "the data's password is found again");
    assert_eq!(query(&u, "SELECT x FROM t").expect("select"), "back");
}

#[test]
fn delete_removes_the_volume_with_the_manifest() {
    let Some(env) = env_with_postgres("db-delete") else {
        return;
    };
    env.write(
        "db.yaml",
        &database("scratch", 5914, "  deletionPolicy: Delete\n"),
    );
    env.write("other.yaml", &common::server("other", ""));
    env.sync();
    let volume = format!("dh_{}_scratch-data", env.instance);
    assert!(volume_exists(&volume));
    env.remove("db.yaml");
    env.sync();
    assert!(env.container_of("database", "scratch").is_none());
    assert!(!volume_exists(&volume), "the volume goes under Delete");
}

#[test]
fn an_auto_port_skips_a_port_that_is_taken_on_the_host() {
    let Some(env) = env_with_postgres("db-port") else {
        return;
    };
    let _one_at_a_time = auto_ports();
    // Hold the first free port of the range, so the allocator must skip it.
    let held = (5433..=6000u16)
        .find_map(|p| {
            std::net::TcpListener::bind(("0.0.0.0", p))
                .ok()
                .map(|l| (p, l))
        })
        .expect("a free port");
    env.write(
        "db.yaml",
        &"apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: auto}\nspec:\n  image: IMAGE\n"
            .replace("IMAGE", POSTGRES_IMAGE),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let port = env.object_of("database", "auto").expect("stored")["connection"]["port"]
        .as_u64()
        .expect("port");
    assert_ne!(port, u64::from(held.0), "the allocator used a port in use");
    assert!((5433..=6000).contains(&port));
    query(&url(&env, "auto"), "SELECT 'ok'").expect("connect");
    drop(held);
}

#[test]
fn an_image_that_never_becomes_ready_is_cleaned_up_with_an_event() {
    let Some(env) = env_with_postgres("db-never") else {
        return;
    };
    // Runs, but never accepts a login.
    let build = std::process::Command::new("docker")
        .args(["build", "-q", "-t", "dockhand/sleeper:local", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"FROM dockhand/busybox:local\nCMD [\"sleep\", \"3600\"]\n")?;
            c.wait()
        })
        .expect("docker build");
    assert!(build.success());
    env.write(
        "db.yaml",
        &database("stuck", 5915, "  readyTimeout: 2s\n")
            .replace(POSTGRES_IMAGE, "dockhand/sleeper:local"),
    );
    let mut up = env.up(&["--backoff-base", "1s", "--resync", "1h"]);
    let first = eventually(WAIT, "the container", || {
        env.container_of("database", "stuck")
    });
    eventually(WAIT, "the cleanup", || {
        let events =
            String::from_utf8_lossy(&env.run("events", &["--for", "database/stuck"]).stdout)
                .into_owned();
        events.contains("not ready after 2s").then_some(())
    });
    eventually(WAIT, "a new attempt", || {
        env.container_of("database", "stuck")
            .filter(|c| c.id != first.id)
    });
    up.stop();
    let events = String::from_utf8_lossy(&env.run("events", &["--for", "database/stuck"]).stdout)
        .into_owned();
    assert!(events.contains("never-initialised volume"), "{events}");
    // The timeout is 2s, and giving up is not a database's 30s graceful stop: the cleanup is
    // recorded soon after the creation (it used to take over 30s).
    let at = |reason: &str| {
        events
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(reason))
            .and_then(|l| l.split_whitespace().next()?.split('T').nth(1))
            .and_then(|t| {
                let hms: Vec<f64> = t
                    .trim_end_matches('Z')
                    .split(':')
                    .filter_map(|p| p.parse().ok())
                    .collect();
                (hms.len() == 3).then(|| hms[0] * 3600.0 + hms[1] * 60.0 + hms[2])
            })
            .unwrap_or_else(|| panic!("no {reason} event: {events}"))
    };
    let took = at("removed") - at("created");
    assert!(
        (0.0..15.0).contains(&took),
        "cleaned up {took}s after creation:\n{events}"
    );
    // Waiting for the retry is a crash loop's phase, never Failed.
    let phase = env.status_of("database", "stuck").expect("status")["phase"].clone();
    assert_ne!(phase, "Failed", "{events}");
}

#[test]
fn the_password_never_appears_in_output_logs_or_events() {
    let Some(env) = env_with_postgres("db-secret") else {
        return;
    };
    env.write("db.yaml", &database("quiet", 5916, ""));
    let mut seen = String::new();
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "ready", || {
        let o = env.object_of("database", "quiet")?;
        (o["status"]["phase"] == "Ready").then_some(())
    });
    up.stop();
    seen.push_str(&up.output());
    let u = url(&env, "quiet");
    let password = u
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .expect("password")
        .to_owned();
    assert!(password.len() >= 24);
    for args in [
        vec!["get"],
        vec!["get", "-o", "json"],
        vec!["get", "-o", "yaml"],
        vec!["describe", "database", "quiet"],
        vec!["events", "--limit", "1000"],
    ] {
        let (verb, rest) = args.split_first().expect("verb");
        seen.push_str(&text(&env.run(verb, rest)));
    }
    seen.push_str(&text(&env.run("sync", &["--timeout", "60s"])));
    assert!(!seen.contains(&password), "the password leaked:\n{seen}");
    // Only when asked.
    let shown = env.run(
        "get",
        &["database", "quiet", "-o", "json", "--show-secrets"],
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&password));
}

#[test]
fn a_server_with_from_database_receives_a_working_url() {
    let Some(env) = env_with_postgres("db-wiring") else {
        return;
    };
    env.write("db.yaml", &database("orders", 5917, ""));
    env.write(
        "app.yaml",
        &app_of("orders", "    PGPORT: {fromDatabase: orders, key: port}\n"),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(current_user(&env), "orders");
    let app = env.container("app").expect("app");
    // On the default network they share, the database is reached by name on its own port.
    assert_eq!(
        docker(&["exec", &app.id, "sh", "-c", "echo $PGPORT"]).trim(),
        "5432"
    );
}

#[test]
fn a_volume_this_instance_does_not_own_makes_it_invalid() {
    let Some(env) = env_with_postgres("db-conflict") else {
        return;
    };
    let volume = format!("dh_{}_taken-data", env.instance);
    docker(&["volume", "create", &volume]);
    env.write("db.yaml", &database("taken", 5918, ""));
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let o = env.object_of("database", "taken").expect("stored");
    assert_eq!(o["status"]["phase"], "Invalid", "{o}");
    assert!(
        volume_exists(&volume),
        "a stranger's volume is never removed"
    );
    docker(&["volume", "rm", &volume]);
}

#[test]
fn a_lost_state_file_never_costs_a_databases_data() {
    let Some(env) = env_with_postgres("db-lost-state") else {
        return;
    };
    env.write(
        "db.yaml",
        &database("orders", 5919, "  readyTimeout: 60s\n"),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = url(&env, "orders");
    query(
        &before,
        "CREATE TABLE t (x text); INSERT INTO t VALUES ('kept')",
    )
    .expect("write");
    let password = before
        .strip_prefix("postgres://orders:")
        .and_then(|r| r.split('@').next())
        .expect("password in url")
        .to_owned();
    let volume = format!("dh_{}_orders-data", env.instance);

    // A short readyTimeout from now on: waiting past it must not dispose of anything.
    env.write("db.yaml", &database("orders", 5919, "  readyTimeout: 3s\n"));
    // The state file is gone (deleted with its WAL): it no longer knows the password.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = env.state.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    env.run("sync", &["--timeout", "10s"]);
    std::thread::sleep(Duration::from_secs(4));
    env.run("sync", &["--timeout", "10s"]);
    let status = env.status_of("database", "orders").expect("status");
    assert_eq!(status["phase"], "Invalid", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("db adopt orders"), "{message}");
    assert!(
        !message.contains(&password),
        "the message shows the password"
    );
    assert!(volume_exists(&volume), "the data volume was removed");

    // Re-supplying the password brings the same data back.
    let file = env.dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).expect("write password file");
    let out = env.run(
        "db",
        &[
            "adopt",
            "orders",
            "--password-file",
            &file.to_string_lossy(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    env.write(
        "db.yaml",
        &database("orders", 5919, "  readyTimeout: 60s\n"),
    );
    // Its container was made under the lost state file's identity: claimed explicitly.
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(text(&out).contains("--take-over"), "{}", text(&out));
    let out = env.run("sync", &["--timeout", "90s", "--take-over"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(url(&env, "orders"), before);
    assert_eq!(query(&before, "SELECT x FROM t").expect("select"), "kept");
}

#[test]
fn stop_keeps_a_databases_data_and_down_volumes_starts_it_afresh() {
    let Some(env) = env_with_postgres("db-down") else {
        return;
    };
    env.write("db.yaml", &database("notes", 5931, ""));
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = url(&env, "notes");
    query(
        &first,
        "CREATE TABLE t (x text); INSERT INTO t VALUES ('kept')",
    )
    .expect("write");
    let volume = format!("dh_{}_notes-data", env.instance);

    // Stopped and started: the same data, the same password.
    assert!(env.run("stop", &["database/notes"]).status.success());
    assert!(env.container_of("database", "notes").is_none());
    assert!(volume_exists(&volume));
    assert!(env.run("start", &["database/notes"]).status.success());
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(query(&first, "SELECT x FROM t").expect("select"), "kept");

    // down --volumes: the data goes, and the database comes back empty, with a new password.
    let out = env.run("down", &["database/notes", "--volumes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!volume_exists(&volume));
    assert!(env.run("start", &["database/notes"]).status.success());
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = url(&env, "notes");
    assert_ne!(second, first, "a new password for the new data");
    assert!(
        query(&second, "SELECT x FROM t").is_err(),
        "the old table is gone"
    );
}

#[test]
fn a_database_takes_its_password_from_a_secret_and_its_users_log_in_with_it() {
    let Some(env) = env_with_postgres("db-from-secret") else {
        return;
    };
    std::fs::write(env.manifests.join("pw.txt"), "chosen-pass-4e1b").expect("write");
    env.write(
        "secret.yaml",
        "apiVersion: dockhand/v1\nkind: Secret\nmetadata: {name: pw}\nspec: {file: pw.txt}\n",
    );
    env.write(
        "db.yaml",
        &database("ledger", 5924, "  password: {fromSecret: pw}\n"),
    );
    env.write("app.yaml", &app_of("ledger", ""));
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let u = url(&env, "ledger");
    assert!(
        u.contains(":chosen-pass-4e1b@"),
        "db url gives the secret's value"
    );
    assert_eq!(query(&u, "select current_user").as_deref(), Ok("ledger"));
    assert_eq!(current_user(&env), "ledger");
    let shown = text(&env.run("describe", &["database", "ledger"]));
    assert!(!shown.contains("chosen-pass-4e1b"), "{shown}");

    // A new value: the role is altered (logged in with the old password), then the new one is
    // recorded, and the server that uses it follows; the data stays.
    query(&u, "create table kept (x int)").expect("create a table");
    let app = env.container("app").expect("app").id;
    std::fs::write(env.manifests.join("pw.txt"), "rotated-pass-77c1").expect("write");
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let rotated = url(&env, "ledger");
    assert!(
        rotated.contains(":rotated-pass-77c1@"),
        "db url gives the new value"
    );
    assert_eq!(
        query(&rotated, "select count(*)::text from kept").as_deref(),
        Ok("0")
    );
    assert!(
        query(&u, "select 1").is_err(),
        "the old password still logs in"
    );
    assert_ne!(env.container("app").expect("app").id, app, "app follows");
    assert_eq!(current_user(&env), "ledger");
    let events = text(&env.run("events", &["--limit", "200"]));
    assert!(events.contains("password-rotated"), "{events}");
    assert!(
        !events.contains("rotated-pass-77c1") && !events.contains("chosen-pass-4e1b"),
        "{events}"
    );
}

#[test]
fn an_invalid_database_leaves_no_volume_and_its_password_and_port_go_with_its_manifest() {
    let Some(env) = env_with_postgres("db-clash") else {
        return;
    };
    // A stranger holds the container name the database would take.
    let name = format!("dh_{}_database_clash", env.instance);
    docker(&["create", "--name", &name, common::IMAGE, "true"]);
    env.write("db.yaml", &database("clash", 5925, ""));
    let out = env.run("sync", &["--timeout", "20s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let status = env.status_of("database", "clash").expect("status");
    assert_eq!(status["phase"], "Invalid", "{status}");
    let volume = format!("dh_{}_clash-data", env.instance);
    assert!(
        !volume_exists(&volume),
        "a volume was left for a database that never ran"
    );

    // Gone from the manifests: its password and port are released, the stranger stays.
    env.remove("db.yaml");
    let out = env.run(
        "sync",
        &["--timeout", "20s", "--allow-empty", "--prune-delay", "0s"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let events = text(&env.run("events", &["--for", "database/clash"]));
    assert!(events.contains("forgotten"), "{events}");
    let out = env.run("db", &["url", "clash"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        docker(&["inspect", "-f", "{{.Name}}", &name]).trim(),
        format!("/{name}")
    );
    docker(&["rm", "-f", &name]);
}

#[test]
fn an_allocated_port_taken_by_another_program_moves_the_database_with_its_data() {
    let Some(env) = env_with_postgres("db-port-moved") else {
        return;
    };
    let _one_at_a_time = auto_ports();
    env.write(
        "db.yaml",
        &"apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: moving}\nspec:\n  image: IMAGE\n"
            .replace("IMAGE", POSTGRES_IMAGE),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let first = url(&env, "moving");
    query(&first, "create table kept (x int)").expect("write");
    let port = |u: &str| {
        u.rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a port")
    };
    // Stopped (as by a host reboot), and its port taken by another program meanwhile.
    let c = env
        .container_of("database", "moving")
        .expect("the database");
    docker(&["stop", &c.id]);
    // (The engine's proxy may hold it a moment after the stop.)
    let taken = eventually(Duration::from_secs(10), "the port free to take", || {
        std::net::TcpListener::bind(("0.0.0.0", port(&first))).ok()
    });
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let moved = url(&env, "moving");
    assert_ne!(port(&moved), port(&first), "still on the taken port");
    assert_eq!(
        query(&moved, "select count(*)::text from kept").as_deref(),
        Ok("0"),
        "the data moved with it"
    );
    let events = text(&env.run("events", &["--for", "database/moving"]));
    assert!(events.contains("port-moved"), "{events}");
    drop(taken);
}

#[test]
fn metrics_show_each_ready_databases_connections_and_size() {
    let Some(env) = env_with_postgres("db-metrics") else {
        return;
    };
    env.write("db.yaml", &database("sized", 5926, ""));
    let mut up = env.up(&["--resync", "1h"]);
    eventually(WAIT, "the database Ready", || {
        let s = env.status_of("database", "sized")?;
        (s["phase"] == "Ready").then_some(())
    });
    let reply = common::http(
        "GET",
        &format!("{}/metrics", up.api_url()),
        Some(&up.api_token()),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let value = |series: &str| {
        reply
            .text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series}{{name=\"sized\"}} ")))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no {series}:\n{}", reply.text))
    };
    assert_eq!(value("dockhand_database_up"), 1);
    assert!(value("dockhand_database_connections") >= 1);
    assert!(
        value("dockhand_database_size_bytes") > 1_000_000,
        "an empty database is a few MB"
    );
    up.stop();
}

/// The host addresses a container's PostgreSQL port is published on, sorted.
fn published_on(id: &str) -> Vec<String> {
    let mut out: Vec<String> = docker(&["port", id, "5432/tcp"])
        .lines()
        .filter_map(|l| Some(l.trim().rsplit_once(':')?.0.to_owned()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_database_is_published_on_loopback_and_on_the_gateway_only_for_servers_that_need_it() {
    let Some(env) = env_with_postgres("db-publish") else {
        return;
    };
    env.write("db.yaml", &database("quiet", 5927, ""));
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = env.container_of("database", "quiet").expect("the database");
    assert_eq!(published_on(&db.id), ["127.0.0.1"]);
    assert!(url(&env, "quiet").contains("@127.0.0.1:5927/"));
    query(&url(&env, "quiet"), "select 1").expect("the host logs in on loopback");

    // A server on a network the database does not join reaches it through the host gateway,
    // where the database is then published too (a loopback port is out of a container's reach).
    env.write(
        "app.yaml",
        &app_of("quiet", "").replace("spec:\n", "spec:\n  network: front\n"),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let app = env.container("app").expect("app");
    assert!(
        docker(&["exec", &app.id, "sh", "-c", "echo $DATABASE_URL"])
            .contains("@host.docker.internal:5927/"),
        "reached through the host"
    );
    let db = env.container_of("database", "quiet").expect("the database");
    let on = published_on(&db.id);
    assert_eq!(on.len(), 2, "{on:?}");
    assert!(on.contains(&"127.0.0.1".to_owned()), "{on:?}");
    assert!(!on.contains(&"0.0.0.0".to_owned()), "{on:?}");
    assert_eq!(current_user(&env), "quiet");

    // hostIp: 0.0.0.0 publishes it on every address; the host still connects on loopback.
    env.remove("app.yaml");
    env.write("db.yaml", &database("quiet", 5927, "  hostIp: 0.0.0.0\n"));
    let out = env.run("sync", &["--timeout", "90s", "--prune-delay", "0s"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = env.container_of("database", "quiet").expect("the database");
    assert_eq!(published_on(&db.id), ["0.0.0.0"]);
    assert_eq!(
        query(&url(&env, "quiet"), "select current_user::text").as_deref(),
        Ok("quiet")
    );
}
