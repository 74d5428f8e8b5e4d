//! Image updates against a real registry (Debian's `docker-registry` on 127.0.0.1): a server
//! following its tag runs it pinned to a digest; a new image pushed under the same tag is
//! pulled and rolled out; a broken one is rolled back to the last good digest and notified, and
//! not tried again; an unreachable registry keeps what runs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{docker, eventually, free_port, text, Env, Served, IMAGE};

/// `docker-registry serve` on 127.0.0.1:`port`, storing under `dir`, until dropped.
fn registry(dir: &Path, port: u16) -> Served {
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("registry-data").display()
        ),
    )
    .expect("write the registry's configuration");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config);
    Served::start(cmd, port, "the registry answering")
}

/// Builds version `v` of the test app from the test image and pushes it as `tag`; `healthy`
/// images carry the file the server's command needs.
fn push(tag: &str, v: u32, healthy: bool) {
    let ok = if healthy { " && touch /ok" } else { "" };
    let dockerfile = format!("FROM {IMAGE}\nRUN echo {v} > /version{ok}\n");
    let mut build = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    {
        use std::io::Write;
        build
            .stdin
            .take()
            .expect("stdin")
            .write_all(dockerfile.as_bytes())
            .expect("write the Dockerfile");
    }
    let out = build.wait_with_output().expect("docker build");
    assert!(out.status.success(), "build {tag}: {}", text(&out));
    let out = Command::new("docker")
        .args(["push", "-q", tag])
        .output()
        .expect("docker push");
    assert!(out.status.success(), "push {tag}: {}", text(&out));
}

/// The registry digest the tag points at now.
fn digest_of(tag: &str) -> String {
    let out = docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", tag]);
    let list: Vec<String> = serde_json::from_str(out.trim()).unwrap_or_default();
    let repo = tag.rsplit_once(':').map_or(tag, |(r, _)| r);
    list.iter()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_owned))
        .expect("a repo digest")
}

#[test]
fn a_moved_tag_is_rolled_out_a_broken_one_rolled_back_and_notified_and_a_lost_registry_keeps_what_runs(
) {
    let Some(env) = Env::new("images") else {
        return;
    };
    if !common::tool_present("docker-registry") {
        return;
    }
    let port = free_port();
    let registry = registry(env.dir.path(), port);
    let tag = format!("127.0.0.1:{port}/{}/app:live", env.instance);
    push(&tag, 1, true);
    let first = digest_of(&tag);
    env.write(
        "app.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: app}}\nspec:\n  image: {tag}\n  command: [sh, -c, \"trap 'exit 0' TERM; test -f /ok || exit 3; sleep 3600 & wait\"]\n  update: {{image: Poll, failureAction: Rollback, monitor: 5s}}\n"
        ),
    );
    let (receiver_port, got) = common::receiver();
    let notify = format!("http://127.0.0.1:{receiver_port}/hook");
    let mut up = env.up(&[
        "--resync",
        "1h",
        "--image-interval",
        "1s",
        "--notify",
        &notify,
    ]);
    let version = |env: &Env| {
        let c = env.container("app").filter(|c| c.running())?;
        Some(
            docker(&["exec", &c.id, "cat", "/version"])
                .trim()
                .to_owned(),
        )
    };
    let pinned = |env: &Env| {
        env.object("app")
            .and_then(|o| o["spec"]["image"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(60), "version 1 running", || {
        (version(&env)? == "1").then_some(())
    });
    assert_eq!(pinned(&env), format!("{tag}@{first}"));

    // The same tag, a new image: pulled and rolled out with no manifest change.
    push(&tag, 2, true);
    let second = digest_of(&tag);
    assert_ne!(second, first);
    eventually(Duration::from_secs(60), "version 2 running", || {
        (version(&env)? == "2").then_some(())
    });
    assert_eq!(pinned(&env), format!("{tag}@{second}"));
    let described = text(&env.run("describe", &["server", "app"]));
    assert!(described.contains(&second), "{described}");

    // A broken image under the tag: rolled out, failing, rolled back to the second digest
    // (the last revision dockhand saw Ready).
    eventually(Duration::from_secs(30), "revision 2 Ready", || {
        let o = env.object("app")?;
        (o["status"]["phase"] == "Ready" && o["status"]["observedGeneration"] == o["generation"])
            .then_some(())
    });
    // Accepted once Ready through its whole monitor window (5s).
    std::thread::sleep(Duration::from_secs(6));
    let good = env.container("app").expect("app").id;
    push(&tag, 3, false);
    let third = digest_of(&tag);
    let rolled_back = eventually(
        Duration::from_secs(90),
        "a rolled-back notification",
        || {
            got.lock()
                .expect("the list")
                .iter()
                .find(|n| n["event"] == "rolled-back")
                .cloned()
        },
    );
    assert_eq!(rolled_back["object"], "server/app", "{rolled_back}");
    let back = std::time::Instant::now() + Duration::from_secs(60);
    let back_on_two = |env: &Env| {
        env.container("app")
            .filter(|c| c.running() && c.id != good)
            .is_some_and(|_| version(env).as_deref() == Some("2"))
    };
    while !back_on_two(&env) {
        assert!(
            std::time::Instant::now() < back,
            "version 2 not running again:\n{}\n{}\n{}",
            text(&env.run("get", &[])),
            text(&env.run("events", &["--limit", "50"])),
            up.output()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = env.status_of("server", "app").expect("status");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("rolled back")),
        "{status}"
    );
    // The broken digest stays recorded (so it is not tried again); what runs is the second.
    assert_eq!(pinned(&env), format!("{tag}@{third}"));
    let running = env.container("app").expect("app").id;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(env.container("app").expect("app").id, running, "no retry");
    let history = text(&env.run("rollout", &["history", "app"]));
    assert_eq!(
        history.lines().filter(|l| l.contains("app.yaml")).count(),
        3,
        "{history}"
    );

    // The registry gone: one event says so, and what runs stays.
    drop(registry);
    eventually(
        Duration::from_secs(30),
        "an image-check-failed event",
        || {
            let events = text(&env.run("events", &["--limit", "200"]));
            events.contains("image-check-failed").then_some(())
        },
    );
    assert_eq!(env.container("app").expect("app").id, running);
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
    let events = text(&env.run("events", &["--limit", "200"]));
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("image-check-failed") && !l.contains("notified"))
            .count(),
        1,
        "one event per distinct failure:\n{events}"
    );
    assert!(events.contains("image-updated"), "{events}");
    let repo = tag.rsplit_once(':').map_or(tag.as_str(), |(r, _)| r);
    let images = docker(&["images", "-q", repo]);
    for id in images.split_whitespace() {
        docker(&["rmi", "-f", id]);
    }
}
