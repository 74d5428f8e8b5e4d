//! Major version upgrades against the real engine: PostgreSQL 15 (Debian 12's) to 17 (Debian
//! 13's), both built from Debian's packages by scripts/build-postgres-image.sh.

mod common;

use common::postgres::query;
use common::{build_image, docker, postgres_image, text, Env, POSTGRES_IMAGE};

const NEW_IMAGE: &str = "dockhand/postgres:17";

fn database(image: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: ledger}}\nspec:\n  image: {image}\n  port: 5933\n"
    )
}

/// A server that reaches the database by name, once it is Healthy.
const APP: &str = "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: app}\nspec:\n  image: IMAGE\n  entrypoint: [sleep, '3600']\n  env:\n    DATABASE_URL: {fromDatabase: ledger}\n  dependsOn: [{kind: Database, name: ledger, condition: Healthy}]\n";

fn volume_exists(name: &str) -> bool {
    docker(&["volume", "ls", "-q", "--filter", &format!("name=^{name}$")]).trim() == name
}

/// `dockhand/postgres:17` whose entrypoint cannot start a server: an upgrade to it fails.
fn broken_image() -> String {
    let image = "dockhand-test/postgres-broken:17".to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("docker-entrypoint.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'this server is broken' >&2\nexit 1\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let c = docker(&["create", NEW_IMAGE]).trim().to_owned();
    docker(&[
        "cp",
        &script.display().to_string(),
        &format!("{c}:/usr/local/bin/docker-entrypoint.sh"),
    ]);
    docker(&["commit", &c, &image]);
    docker(&["rm", "-f", &c]);
    image
}

#[test]
fn a_new_major_version_moves_the_data_to_a_new_volume_and_a_failed_upgrade_keeps_the_old_server() {
    let Some(env) = Env::new("db-upgrade") else {
        return;
    };
    postgres_image();
    build_image("build-postgres-image.sh", NEW_IMAGE);
    env.write("db.yaml", &database(POSTGRES_IMAGE));
    env.write("app.yaml", &APP.replace("IMAGE", POSTGRES_IMAGE));
    let out = env.run("sync", &["--timeout", "120s"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = common::postgres::url(&env, "ledger");
    query(&db, "create table entries (id int primary key, amount int); insert into entries values (1, 100), (2, -40)")
        .expect("write");
    let old_volume = format!("dh_{}_ledger-data", env.instance);

    // An upgrade that fails (the new server cannot start) leaves 15 serving, writable.
    env.write("db.yaml", &database(&broken_image()));
    let out = env.run("sync", &["--timeout", "120s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let events = text(&env.run("events", &["--for", "database/ledger"]));
    assert!(events.contains("upgrade-failed"), "{events}");
    assert!(events.contains("this server is broken"), "{events}");
    let status = env.status_of("database", "ledger").expect("a status");
    assert_eq!(status["phase"], "Invalid", "{status}");
    assert!(
        query(&db, "select version()").is_ok_and(|v| v.contains("PostgreSQL 15")),
        "15 serves on"
    );
    query(&db, "insert into entries values (3, 5)").expect("still writable");
    assert!(!volume_exists(&format!(
        "dh_{}_ledger-data-pg17",
        env.instance
    )));
    // Not tried again while the manifest says the same.
    let out = env.run("sync", &["--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let events = text(&env.run("events", &["--for", "database/ledger"]));
    assert_eq!(events.matches("upgrade-failed").count(), 1, "{events}");

    // The real 17: dumped, restored into a new volume, checked, switched; the server follows.
    env.write("db.yaml", &database(NEW_IMAGE));
    let out = env.run("sync", &["--timeout", "180s"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = common::postgres::url(&env, "ledger");
    assert!(
        query(&db, "select version()").is_ok_and(|v| v.contains("PostgreSQL 17")),
        "17 serves"
    );
    assert_eq!(
        query(&db, "select sum(amount)::text from entries").as_deref(),
        Ok("65"),
        "every row came along"
    );
    query(&db, "insert into entries values (4, 1)").expect("writable after the upgrade");
    let app = env.container("app").expect("app");
    let seen = docker(&[
        "exec",
        &app.id,
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -tAc 'select count(*) from entries' 2>&1",
    ]);
    assert_eq!(seen.trim(), "4", "the server reaches the new one");
    let described = text(&env.run("describe", &["database", "ledger"]));
    assert!(
        described.contains(&format!("dh_{}_ledger-data-pg17", env.instance)),
        "{described}"
    );
    assert!(described.contains("--finish"), "{described}");
    assert!(volume_exists(&old_volume), "the old data is kept");
    let events = text(&env.run("events", &["--for", "database/ledger"]));
    assert!(events.contains("upgraded"), "{events}");

    // A downgrade is refused, and 17 runs on.
    env.write("db.yaml", &database(POSTGRES_IMAGE));
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot run"), "{}", text(&out));
    assert!(query(&db, "select version()").is_ok_and(|v| v.contains("PostgreSQL 17")));

    // --finish removes the old volume.
    env.write("db.yaml", &database(NEW_IMAGE));
    let out = env.run("db", &["upgrade", "ledger", "--finish"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!volume_exists(&old_volume), "the old data is removed");
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        query(
            &common::postgres::url(&env, "ledger"),
            "select count(*)::text from entries"
        )
        .as_deref(),
        Ok("4")
    );
}
