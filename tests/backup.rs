//! Database backups and restores against the real engine and a real PostgreSQL: `pg_dump` and
//! `pg_restore` of the database's own image, files in a real volume or host directory.

mod common;

use std::time::Duration;

use common::postgres::{database, env_with_postgres, query, url};
use common::{docker, eventually, text, POSTGRES_IMAGE};

const WAIT: Duration = Duration::from_secs(90);

/// The files in a volume, listed by a container of the PostgreSQL image.
fn files_in(volume: &str) -> Vec<String> {
    let mut out: Vec<String> = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "ls",
        "-v",
        &format!("{volume}:/b"),
        POSTGRES_IMAGE,
        "-1",
        "/b",
    ])
    .lines()
    .map(str::to_owned)
    .collect();
    out.sort();
    out
}

#[test]
fn backups_are_verified_pruned_to_keep_listed_and_restored_only_when_confirmed() {
    let Some(env) = env_with_postgres("backup-cli") else {
        return;
    };
    env.write(
        "db.yaml",
        &database(
            "shop",
            5928,
            "  backup: {schedule: '0 3 * * *', keep: 2, to: {volume: shop-backups}}\n",
        ),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = url(&env, "shop");
    query(
        &db,
        "create table orders (id int); insert into orders values (42)",
    )
    .expect("write");

    // Three backups on demand (file names have seconds), two kept.
    for _ in 0..3 {
        let out = env.run("db", &["backup", "shop"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("verified"), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let volume = format!("dh_{}_shop-backups", env.instance);
    let files = files_in(&volume);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files
        .iter()
        .all(|f| f.starts_with("shop-") && f.ends_with(".dump")));
    let history = text(&env.run("db", &["backups", "shop"]));
    assert_eq!(history.matches(".dump").count(), 3, "{history}");
    let described = text(&env.run("describe", &["database", "shop"]));
    assert!(described.contains("Backup schedule:"), "{described}");
    assert!(described.contains("0 3 * * *"), "{described}");
    assert!(
        described.contains(&files[1]),
        "the newest is the last: {described}"
    );
    let events = text(&env.run("events", &["--for", "database/shop"]));
    assert_eq!(events.matches("backed-up").count(), 3, "{events}");

    // A restore without the confirmation changes nothing; with it, the data comes back.
    query(&db, "delete from orders; insert into orders values (7)").expect("write");
    let out = env.run("db", &["restore", "shop", "--from", "latest"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--yes-overwrite"), "{}", text(&out));
    assert_eq!(
        query(&db, "select id::text from orders").as_deref(),
        Ok("7")
    );
    let out = env.run(
        "db",
        &["restore", "shop", "--from", "latest", "--yes-overwrite"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&files[1]), "{}", text(&out));
    assert_eq!(
        query(&db, "select id::text from orders").as_deref(),
        Ok("42")
    );

    // A backup to a local file: mode 0600, PostgreSQL's custom format.
    let local = env.dir.path().join("shop.dump");
    let out = env.run(
        "db",
        &["backup", "shop", "-o", &local.display().to_string()],
    );
    assert!(out.status.success(), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&local).expect("the dump");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let head = std::fs::read(&local).expect("read the dump");
    assert!(head.starts_with(b"PGDMP"), "not a custom-format dump");

    // A broken file is refused before anything is touched (one transaction).
    let broken = env.dir.path().join("broken.dump");
    std::fs::write(&broken, b"PGDMP but not really").expect("write");
    let out = env.run(
        "db",
        &[
            "restore",
            "shop",
            "--from",
            &broken.display().to_string(),
            "--yes-overwrite",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        query(&db, "select id::text from orders").as_deref(),
        Ok("42")
    );
    let events = text(&env.run("events", &["--for", "database/shop"]));
    assert!(events.contains("restore-failed"), "{events}");

    // The local dump seeds a new database (restoreFrom, a file in the manifests directory).
    std::fs::copy(&local, env.manifests.join("seed.dump")).expect("copy");
    env.write(
        "copy.yaml",
        &database(
            "copy",
            5929,
            &format!(
                "  restoreFrom: {}\n",
                env.manifests.join("seed.dump").display()
            ),
        ),
    );
    let out = env.run("sync", &["--timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        query(&url(&env, "copy"), "select id::text from orders").as_deref(),
        Ok("42")
    );
    let events = text(&env.run("events", &["--for", "database/copy"]));
    assert!(
        events.contains("restored") && events.contains("seeded from"),
        "{events}"
    );
    // Seeded once: what it holds later is its own.
    query(&url(&env, "copy"), "insert into orders values (43)").expect("write");
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        query(&url(&env, "copy"), "select count(*)::text from orders").as_deref(),
        Ok("2")
    );
}

#[test]
fn scheduled_backups_run_under_up_and_a_failure_is_an_event_a_metric_and_a_notification() {
    let Some(env) = env_with_postgres("backup-schedule") else {
        return;
    };
    let missing = env.dir.path().join("no-such-dir");
    // Every minute: one to a volume, one to a host directory that does not exist.
    env.write(
        "good.yaml",
        &database(
            "good",
            5930,
            "  backup: {schedule: '* * * * *', to: {volume: good-backups}}\n",
        ),
    );
    env.write(
        "bad.yaml",
        &database(
            "bad",
            5932,
            &format!(
                "  backup: {{schedule: '* * * * *', to: {{path: {}}}}}\n",
                missing.display()
            ),
        ),
    );
    let (port, got) = common::receiver();
    let notify = format!("http://127.0.0.1:{port}/hook");
    let allowed = env.dir.path().display().to_string();
    let mut up = env.up(&[
        "--resync",
        "1h",
        "--notify",
        &notify,
        "--allow-host-path",
        &allowed,
    ]);
    eventually(WAIT, "both databases Ready", || {
        let good = env.status_of("database", "good")?;
        let bad = env.status_of("database", "bad")?;
        (good["phase"] == "Ready" && bad["phase"] == "Ready").then_some(())
    });
    // The next minute's backups (at most a minute and a scheduler tick away).
    eventually(
        Duration::from_secs(100),
        "a scheduled backup of each",
        || {
            let events = text(&env.run("events", &[]));
            (events.contains("backed-up") && events.contains("backup-failed")).then_some(())
        },
    );
    let files = files_in(&format!("dh_{}_good-backups", env.instance));
    assert_eq!(files.len(), 1, "{files:?}");
    eventually(Duration::from_secs(30), "the failure notified", || {
        let got = got.lock().expect("lock");
        got.iter()
            .any(|n| n["event"] == "backup-failed" && n["object"] == "database/bad")
            .then_some(())
    });
    let reply = common::http(
        "GET",
        &format!("{}/metrics", up.api_url()),
        Some(&up.api_token()),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let value = |series: &str, name: &str| {
        reply
            .text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series}{{name=\"{name}\"}} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let last = value("dockhand_database_backup_last_success_timestamp", "good")
        .unwrap_or_else(|| panic!("no timestamp:\n{}", reply.text));
    assert!(now - last < 300.0, "{last}");
    assert_eq!(
        value("dockhand_database_backup_last_failed", "good"),
        Some(0.0)
    );
    assert_eq!(
        value("dockhand_database_backup_last_failed", "bad"),
        Some(1.0)
    );
    assert_eq!(
        value("dockhand_database_backup_last_success_timestamp", "bad"),
        None
    );
    let described = text(&env.run("describe", &["database", "bad"]));
    assert!(
        described.contains("Last good backup:") && described.contains("<never>"),
        "{described}"
    );
    up.stop();
}
