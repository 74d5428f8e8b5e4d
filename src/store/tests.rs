use super::*;
use crate::manifest::parse_str;
use crate::manifest::{Kind, Object, ObjectKey};

fn objects(text: &str, file: &str) -> Vec<Object> {
    parse_str(text, file, None).expect("parses")
}

async fn apply(store: &Store, desired: &[Object], prune: bool) -> ApplyReport {
    let existing = store.objects("i").await.expect("reads");
    store
        .apply_desired("i", &existing, desired, &[], prune)
        .await
        .expect("applies")
}

const WEB: &str =
    "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec: {image: busybox}\n";

#[tokio::test]
async fn state_file_is_private_and_objects_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.expect("opens");
    use std::os::unix::fs::PermissionsExt;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .expect("journal mode");
    assert_eq!(journal, "wal");
    let mode = std::fs::metadata(&path)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let web = objects(WEB, "a.yaml");
    let r = apply(&store, &web, true).await;
    assert_eq!(r.changed.len(), 1);
    let again = apply(&store, &web, true).await;
    assert_eq!(
        again,
        ApplyReport::default(),
        "a no-op apply changes nothing"
    );
    let changed = objects(&WEB.replace("busybox", "busybox:2"), "a.yaml");
    let r = apply(&store, &changed, true).await;
    assert_eq!(r.changed[0].1, 2, "generation bumps on a spec change");
    assert_eq!(store.objects("other").await.expect("reads").len(), 0);

    // One kind is read alone.
    let db = objects(
        "apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: orders}\nspec: {}\n",
        "b.yaml",
    );
    apply(&store, &[changed, db].concat(), true).await;
    let dbs = store
        .objects_of_kind("i", Kind::Database)
        .await
        .expect("reads");
    let names: Vec<&str> = dbs.iter().map(|s| s.object.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(store.objects("i").await.expect("reads").len(), 2);
}

#[tokio::test]
async fn concurrent_opens_of_a_new_state_file_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("race.db");
    let opens = (0..8).map(|_| {
        let path = path.clone();
        tokio::spawn(async move { Store::open(&path).await.map(|_| ()) })
    });
    for r in futures_util::future::join_all(opens).await {
        r.expect("task").expect("open");
    }
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut r = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
    merge_patch(
        &mut r,
        &serde_json::json!({"a": null, "b": {"c": 5, "d": null}, "e": [1]}),
    );
    assert_eq!(r, serde_json::json!({"b": {"c": 5}, "e": [1]}));
}

#[tokio::test]
async fn source_writes_bump_the_version_and_status_writes_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let store = Store::open(&path).await.expect("opens");
    let mut watch = VersionWatch::open(&path).await.expect("watch");
    let v0 = watch.source_version().await.expect("version");
    let d0 = watch.data_version().await.expect("data version");
    store
        .append_events(
            "i",
            &[NewEvent {
                key: None,
                reason: "x",
                message: "y".into(),
            }],
        )
        .await
        .expect("event");
    assert_ne!(
        watch.data_version().await.expect("dv"),
        d0,
        "any commit moves data_version"
    );
    assert_eq!(
        watch.source_version().await.expect("v"),
        v0,
        "an event is not a source change"
    );
    let key = ObjectKey::new(Kind::Server, "web");
    assert!(store.put_applied("i", &key, WEB).await.expect("put"));
    assert!(!store.put_applied("i", &key, WEB).await.expect("put again"));
    let v1 = watch.source_version().await.expect("v");
    assert_eq!(v1, v0 + 1, "an unchanged put writes nothing");
    assert!(store.delete_applied("i", &key).await.expect("delete"));
    assert_eq!(watch.source_version().await.expect("v"), v1 + 1);
    // Per-client routes written by another process must wake `up` too.
    let r = ClientRoute::new("10.0.0.7", "web", 8080).expect("valid");
    store.set_route_client("i", "game", &r).await.expect("set");
    assert_eq!(watch.source_version().await.expect("v"), v1 + 2);
    let ip = r.client;
    assert!(store
        .delete_route_client("i", "game", ip)
        .await
        .expect("delete"));
    assert_eq!(watch.source_version().await.expect("v"), v1 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_then_write_transactions_never_fail_as_locked() {
    // A deferred transaction that reads and then writes cannot wait for another writer
    // in WAL mode: SQLite answers SQLITE_BUSY at once. Every such transaction here must
    // take the write lock up front so the busy timeout applies.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("opens");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..40 {
                let key = ObjectKey::new(Kind::Server, format!("s{}", n % 5));
                let yaml = WEB.replace("busybox", &format!("busybox:{t}-{n}"));
                store.put_applied("i", &key, &yaml).await?;
                store
                    .patch_report("i", &key, &serde_json::json!({ "n": n, "t": t }))
                    .await?;
                store
                    .append_events(
                        "i",
                        &[NewEvent {
                            key: Some(key.clone()),
                            reason: "x",
                            message: "y".into(),
                        }],
                    )
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await
            .expect("joins")
            .expect("no transaction fails as locked");
    }
}

#[test]
fn client_routes_check_address_server_and_port() {
    let r = ClientRoute::new("192.168.1.50", "skywars-1", 5520).expect("valid");
    assert_eq!(
        (r.client.to_string(), r.port),
        ("192.168.1.50".into(), 5520)
    );
    for (client, server, port, why) in [
        ("192.168.1", "web", 80, "invalid client address"),
        ("::1", "web", 80, "invalid client address"),
        ("10.0.0.1", "Web_1", 80, "server:"),
        ("10.0.0.1", "web", 0, "port: expected 1-65535"),
    ] {
        let e = ClientRoute::new(client, server, port).expect_err(client);
        assert!(e.contains(why), "{e}");
    }
}

#[tokio::test]
async fn objects_are_deleted_only_when_pruning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("opens");
    apply(&store, &objects(WEB, "a.yaml"), true).await;
    let r = apply(&store, &[], false).await;
    assert!(r.deleted.is_empty());
    let r = apply(&store, &[], true).await;
    assert_eq!(r.deleted.len(), 1);
}

#[tokio::test]
async fn a_state_file_others_could_read_is_made_private_with_its_wal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    drop(Store::open(&path).await.expect("open"));
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("s.db{suffix}"));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    let store = Store::open(&path).await.expect("reopen");
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("s.db{suffix}"));
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(
                m.permissions().mode() & 0o077,
                0,
                "s.db{suffix} is readable by others"
            );
        }
    }
    assert_eq!(store.identity().len(), 32);
    let again = Store::open(&path).await.expect("third open");
    assert_eq!(
        again.identity(),
        store.identity(),
        "the identity is made once"
    );
}

#[tokio::test]
async fn a_manifests_row_that_is_not_text_spoils_only_itself_and_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let good =
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec: {image: busybox}\n";
    for (name, sql) in [
        (
            "good",
            "INSERT INTO manifests (instance, name, yaml) VALUES ('default', ?, ?)",
        ),
        (
            "blob",
            "INSERT INTO manifests (instance, name, yaml) VALUES ('default', ?, X'00ff')",
        ),
        (
            "number",
            "INSERT INTO manifests (instance, name, yaml) VALUES ('default', ?, 42)",
        ),
    ] {
        let mut q = sqlx::query(sql).bind(name);
        if name == "good" {
            q = q.bind(good);
        }
        q.execute(&store.pool).await.expect("insert");
    }
    let part = crate::source::table::read_rows(&store, "default")
        .await
        .expect("the table stays readable");
    assert_eq!(part.files.len(), 1, "{:?}", part.files.keys());
    let errors: Vec<String> = part.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("table:blob") && e.contains("blob")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("table:number")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn the_event_log_keeps_only_the_newest_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let batch: Vec<NewEvent> = (0..1000)
        .map(|i| NewEvent {
            key: None,
            reason: "test",
            message: format!("event {i}"),
        })
        .collect();
    for _ in 0..(events::EVENT_RETENTION / 1000 + 2) {
        store.append_events("i", &batch).await.expect("append");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE instance = 'i'")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    assert_eq!(count, events::EVENT_RETENTION);
    store.checkpoint().await.expect("checkpoint");
}

#[tokio::test]
async fn a_full_disk_does_not_break_the_state_file_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.db")).await.expect("open");
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&store.pool)
        .await
        .expect("page count");
    // Every pooled connection sees a database that cannot grow: SQLITE_FULL.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = store.pool.acquire().await.expect("acquire");
        sqlx::query(&format!("PRAGMA max_page_count = {}", pages + 1))
            .execute(&mut *c)
            .await
            .expect("limit");
        held.push(c);
    }
    drop(held);
    let big: Vec<NewEvent> = (0..200)
        .map(|i| NewEvent {
            key: None,
            reason: "test",
            message: format!("{i} {}", "x".repeat(4000)),
        })
        .collect();
    let full = store.append_events("i", &big).await;
    assert!(full.is_err(), "the write should have hit the page limit");
    // Room again: every connection may grow (a stuck one would refuse every write from now on).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = store.pool.acquire().await.expect("acquire");
        sqlx::query("PRAGMA max_page_count = 1073741823")
            .execute(&mut *c)
            .await
            .expect("unlimit");
        held.push(c);
    }
    drop(held);
    for _ in 0..8 {
        store
            .append_events("i", &big[..2])
            .await
            .expect("writes work again after the disk had room");
    }
}

#[test]
fn tokens_compare_whole() {
    assert!(constant_time_eq(b"secret", b"secret"));
    assert!(!constant_time_eq(b"secret", b"secreT"));
    assert!(!constant_time_eq(b"secret", b"secret2"));
    assert!(!constant_time_eq(b"", b"x"));
}
