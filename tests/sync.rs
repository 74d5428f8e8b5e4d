//! `dockhand sync`, `diff` and `get` against the real Docker engine.

mod common;

use common::{containers_with_label, docker, server, text, Env, IMAGE};

#[test]
fn converge_creates_labelled_containers_with_deterministic_names() {
    let Some(env) = Env::new("converge") else {
        return;
    };
    env.write(
        "a.yaml",
        &server(
            "web",
            "  env: {GREETING: hello}\n  ports: [{container: 8080}]\n",
        ),
    );
    env.write(
        "nested/b.yaml",
        &format!("{}---\n{}", server("api", ""), server("worker", "")),
    );
    env.sync();

    let cs = env.containers();
    let names: Vec<_> = cs.iter().map(|c| c.name.clone()).collect();
    let i = &env.instance;
    assert_eq!(
        names,
        [
            format!("dh_{i}_server_api"),
            format!("dh_{i}_server_web"),
            format!("dh_{i}_server_worker")
        ]
    );
    for c in &cs {
        assert!(c.running(), "{c:?}");
        assert_eq!(c.label("dockhand.managed").as_deref(), Some("true"));
        assert_eq!(c.label("dockhand.instance").as_deref(), Some(i.as_str()));
        assert_eq!(c.label("dockhand.kind").as_deref(), Some("server"));
        assert!(c.label("dockhand.spec-hash").is_some_and(|h| h.len() == 16));
    }
    assert_eq!(cs[1].label("dockhand.name").as_deref(), Some("web"));
    let env_out = docker(&["exec", &cs[1].id, "sh", "-c", "echo $GREETING"]);
    assert_eq!(env_out.trim(), "hello");

    // The engine picked the host port; `get` reports it.
    let out = env.run("get", &["server", "web", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let item = &json[0];
    assert_eq!(item["kind"], "Server");
    assert_eq!(item["name"], "web");
    assert_eq!(item["spec"]["image"], IMAGE);
    assert_eq!(item["status"]["phase"], "Ready");
    assert_eq!(item["status"]["containerId"], cs[1].id.as_str());
    let host = item["status"]["ports"][0]["host"]
        .as_u64()
        .expect("host port");
    assert!(host > 0);
}

#[test]
fn noop_pass_keeps_every_container_id() {
    let Some(env) = Env::new("noop") else { return };
    env.write(
        "a.yaml",
        &format!("{}---\n{}", server("one", ""), server("two", "")),
    );
    env.sync();
    let before = env.containers();
    let out = env.sync();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("done"),
        "a no-op pass acted:\n{}",
        text(&out)
    );
    assert_eq!(env.containers(), before);

    let diff = env.run("diff", &[]);
    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("no changes"));
}

#[test]
fn spec_change_recreates_only_that_object() {
    let Some(env) = Env::new("change") else {
        return;
    };
    env.write("a.yaml", &server("keep", ""));
    env.write("b.yaml", &server("change", "  env: {V: '1'}\n"));
    env.sync();
    let keep = env.container("keep").expect("keep");
    let old = env.container("change").expect("change");

    env.write("b.yaml", &server("change", "  env: {V: '2'}\n"));
    let diff = env.run("diff", &[]);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff));
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("recreate server/change"),
        "{}",
        text(&diff)
    );
    assert_eq!(
        env.container("change").expect("unchanged by diff").id,
        old.id,
        "diff changed something"
    );

    env.sync();
    let new = env.container("change").expect("change");
    assert_ne!(new.id, old.id);
    assert!(new.running());
    assert_eq!(
        docker(&["exec", &new.id, "sh", "-c", "echo $V"]).trim(),
        "2"
    );
    assert_eq!(
        env.container("keep").expect("keep"),
        keep,
        "an unchanged object was touched"
    );
}

#[test]
fn stopped_container_is_started() {
    let Some(env) = Env::new("stopped") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let c = env.container("web").expect("web");
    docker(&["stop", "-t", "1", &c.id]);
    assert!(!env.container("web").expect("web").running());
    env.sync();
    let after = env.container("web").expect("web");
    assert_eq!(
        after.id, c.id,
        "a stopped container is started, not recreated"
    );
    assert!(after.running());
}

#[test]
fn restart_policy_never_leaves_a_finished_container_alone() {
    let Some(env) = Env::new("never") else { return };
    let text_ = format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: job}}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: [\"true\"]\n  restartPolicy: Never\n"
    );
    env.write("job.yaml", &text_);
    env.sync();
    let job = common::eventually(std::time::Duration::from_secs(20), "job to exit", || {
        env.container("job").filter(|c| c.state == "exited")
    });
    env.sync();
    assert_eq!(
        env.container("job").expect("job"),
        job,
        "a finished Never job was touched"
    );
}

#[test]
fn orphan_is_removed_after_manifest_deleted_and_its_volume_kept() {
    let Some(env) = Env::new("orphan") else {
        return;
    };
    env.write("a.yaml", &server("keep", ""));
    env.write(
        "b.yaml",
        &server(
            "gone",
            "  volumes: [{type: volume, source: data, target: /data}]\n",
        ),
    );
    env.sync();
    let gone = env.container("gone").expect("gone");
    docker(&["exec", &gone.id, "sh", "-c", "echo precious > /data/file"]);

    env.remove("b.yaml");
    env.sync();
    assert!(env.container("gone").is_none(), "orphan still there");
    assert!(env.container("keep").is_some());
    let volume = format!("dh_{}_data", env.instance);
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]).trim(),
        volume
    );

    // Re-adding the server mounts the same data again.
    env.write(
        "b.yaml",
        &server(
            "gone",
            "  volumes: [{type: volume, source: data, target: /data}]\n",
        ),
    );
    env.sync();
    let back = env.container("gone").expect("back");
    assert_eq!(
        docker(&["exec", &back.id, "cat", "/data/file"]).trim(),
        "precious"
    );
}

#[test]
fn another_instances_container_is_untouched() {
    let Some(env) = Env::new("strangers") else {
        return;
    };
    let other = format!("{}-other", env.instance);
    let foreign = docker(&[
        "run",
        "-d",
        "--name",
        &format!("dh_{other}_server_web"),
        "--label",
        "dockhand.managed=true",
        "--label",
        &format!("dockhand.instance={other}"),
        "--label",
        "dockhand.kind=server",
        "--label",
        "dockhand.name=web",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let unlabelled = docker(&[
        "run",
        "-d",
        "--label",
        &format!("test.owner={}", env.instance),
        IMAGE,
        "sleep",
        "3600",
    ]);
    let foreign = foreign.trim().to_owned();
    let unlabelled = unlabelled.trim().to_owned();
    assert!(!foreign.is_empty() && !unlabelled.is_empty());

    env.write("a.yaml", &server("web", ""));
    env.sync();
    env.remove("a.yaml");
    let out = env.run("sync", &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.containers().is_empty());

    let running = |id: &str| docker(&["inspect", "-f", "{{.State.Running}}", id]).trim() == "true";
    assert!(
        running(&foreign),
        "another instance's container was touched"
    );
    assert!(running(&unlabelled), "an unlabelled container was touched");
    assert_eq!(
        containers_with_label(&format!("dockhand.instance={other}")).len(),
        1
    );
    docker(&["rm", "-f", &foreign, &unlabelled]);
}

#[test]
fn invalid_yaml_deletes_nothing_and_names_file_line_and_field() {
    let Some(env) = Env::new("invalid") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.write("b.yaml", &server("api", ""));
    env.sync();
    let before = env.containers();

    env.write(
        "a.yaml",
        &format!("{}  prots: [{{container: 80}}]\n", server("web", "")),
    );
    env.write(
        "b.yaml",
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: api\n",
    );
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.yaml:9:3: spec.prots: unknown field `prots`, expected one of"),
        "{err}"
    );
    assert!(err.contains("b.yaml:"), "{err}");
    assert_eq!(
        env.containers(),
        before,
        "an invalid manifest changed containers"
    );

    let get = env.run("get", &["-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).expect("json");
    assert_eq!(
        json.as_array().map(Vec::len),
        Some(2),
        "objects were dropped from the store"
    );
    assert!(
        json[1]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("a.yaml:9:3")),
        "{json}"
    );
    assert!(json[1]["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("last good spec")));
}

#[test]
fn empty_source_guard_holds_until_allow_empty() {
    let Some(env) = Env::new("empty") else { return };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let before = env.containers();
    env.remove("a.yaml");

    let out = env.run("sync", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused to prune"),
        "{}",
        text(&out)
    );
    assert_eq!(env.containers(), before);

    // A vanished directory is no different.
    std::fs::remove_dir(&env.manifests).expect("rmdir");
    let out = env.run("sync", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("source vanished"),
        "{}",
        text(&out)
    );
    assert_eq!(env.containers(), before);

    let out = env.run("sync", &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.containers().is_empty());
}

#[test]
fn missing_image_fails_with_a_clear_report_and_keeps_the_old_container() {
    let Some(env) = Env::new("noimage") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let before = env.container("web").expect("web");
    env.write(
        "a.yaml",
        &server("web", "").replace(IMAGE, "dockhand/does-not-exist:1"),
    );
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("dockhand/does-not-exist:1") && all.contains("pullPolicy is Never"),
        "{all}"
    );
    assert_eq!(
        env.container("web"),
        Some(before),
        "the old container must survive a failed recreate"
    );
}

#[test]
fn get_lists_objects_as_table_json_and_yaml() {
    let Some(env) = Env::new("get") else { return };
    env.write(
        "a.yaml",
        &server("web", "  ports: [{container: 80, host: 0}]\n"),
    );
    env.sync();
    let table = env.run("get", &[]);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.starts_with("NAME"), "{t}");
    assert!(
        t.contains("server/web") && t.contains("Ready") && t.contains("->80/tcp"),
        "{t}"
    );
    let yaml = env.run("get", &["servers", "-o", "yaml"]);
    assert!(
        String::from_utf8_lossy(&yaml.stdout).contains("phase: Ready"),
        "{}",
        text(&yaml)
    );
    let missing = env.run("get", &["server", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn a_name_taken_by_a_stranger_is_invalid_and_the_stranger_is_untouched() {
    let Some(env) = Env::new("conflict") else {
        return;
    };
    let name = format!("dh_{}_server_web", env.instance);
    let stranger = docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "3600"]);
    let stranger = stranger.trim().to_owned();
    assert!(!stranger.is_empty());
    env.write("a.yaml", &server("web", ""));
    let out = env.run("sync", &["--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let get = env.run("get", &["server", "web", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).expect("json");
    assert_eq!(json[0]["status"]["phase"], "Invalid", "{json}");
    assert!(
        json[0]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not own")),
        "{json}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &stranger]).trim(),
        "true"
    );
    docker(&["rm", "-f", &stranger]);
}

#[test]
fn replicas_scale_up_and_down_without_recreating_the_ones_that_stay() {
    let Some(env) = Env::new("replicas") else {
        return;
    };
    let ids = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| {
                let c = env.container(n).unwrap_or_else(|| panic!("{n} missing"));
                assert!(c.running(), "{n} is {}", c.state);
                assert_eq!(c.label("dockhand.name").as_deref(), Some(*n));
                c.id
            })
            .collect()
    };
    let replicated = |n: u32| {
        server(
            "web",
            &format!("  replicas: {n}\n  ports: [{{container: 8080}}]\n"),
        )
    };

    env.write("web.yaml", &replicated(3));
    env.sync();
    let three = ids(&["web", "web.1", "web.2"]);
    let out = env.run("get", &["servers"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in ["server/web ", "server/web.1 ", "server/web.2 "] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(name) && l.contains("Ready")),
            "{name}: {table}"
        );
    }
    // Each replica publishes its container port on a host port of its own.
    let ports: std::collections::BTreeSet<String> = ["web", "web.1", "web.2"]
        .iter()
        .map(|n| env.object(n).expect("stored")["status"]["ports"][0]["host"].to_string())
        .collect();
    assert_eq!(ports.len(), 3, "{ports:?}");

    // Down to 2: only the surplus goes.
    env.write("web.yaml", &replicated(2));
    env.sync();
    assert_eq!(ids(&["web", "web.1"]), three[..2]);
    assert!(env.container("web.2").is_none());
    assert!(env.object("web.2").is_none(), "its object is gone too");

    // Up to 4: the two that stay are untouched.
    env.write("web.yaml", &replicated(4));
    env.sync();
    let four = ids(&["web", "web.1", "web.2", "web.3"]);
    assert_eq!(four[..2], three[..2]);

    // One replica removed behind dockhand's back is the only one recreated.
    docker(&["rm", "-f", &format!("dh_{}_server_web.2", env.instance)]);
    env.sync();
    let again = ids(&["web", "web.1", "web.2", "web.3"]);
    assert_eq!((&again[..2], &again[3]), (&four[..2], &four[3]));
    assert_ne!(again[2], four[2]);

    // A spec change rolls through every replica (one at a time: the planner's unit tests),
    // and sync waits until the last one is on the new spec.
    env.write(
        "web.yaml",
        &server(
            "web",
            "  replicas: 4\n  ports: [{container: 8080}]\n  env: {V: '2'}\n",
        ),
    );
    let out = env.sync();
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    for n in ["web", "web.1", "web.2", "web.3"] {
        assert!(
            log.contains(&format!("recreate server/{n} (spec changed): done")),
            "{n}: {log}"
        );
    }
    let rolled = ids(&["web", "web.1", "web.2", "web.3"]);
    assert!(rolled.iter().all(|id| !again.contains(id)), "{log}");
    let again = rolled;

    // Per replica on the command line: describe, and a clear error for a bad name.
    let out = env.run("describe", &["server", "web.3"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.run("describe", &["server", "web.03"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replica"),
        "{}",
        text(&out)
    );

    // A fixed host port cannot be shared: the file is refused and nothing changes.
    env.write(
        "web.yaml",
        &server(
            "web",
            "  replicas: 2\n  ports: [{container: 8080, host: 18999}]\n",
        ),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("web.yaml") && text(&out).contains("spec.ports[0].host"),
        "{}",
        text(&out)
    );
    assert_eq!(ids(&["web", "web.1", "web.2", "web.3"]), again);
}

#[test]
fn a_second_state_file_on_the_same_instance_never_replaces_or_removes_its_containers() {
    let Some(env) = Env::new("two-states") else {
        return;
    };
    env.write("web.yaml", &server("web", ""));
    env.sync();
    let first = env.container("web").expect("web").id;

    // Another controller of the same instance, with a state file of its own.
    let other_state = env.dir.path().join("other.db");
    let empty = env.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let other = |manifests: &std::path::Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .arg("sync")
            .arg("--manifests")
            .arg(manifests)
            .arg("--state")
            .arg(&other_state)
            .args([
                "--instance",
                &env.instance,
                "--timeout",
                "30s",
                "--prune-delay",
                "0s",
            ])
            .args(extra)
            .output()
            .expect("run dockhand")
    };
    let out = other(&env.manifests, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--take-over"), "{}", text(&out));
    assert_eq!(env.container("web").expect("web").id, first, "replaced");
    let out = other(&empty, &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.container("web").expect("web").id, first, "removed");

    let out = other(&env.manifests, &["--take-over"]);
    assert!(out.status.success(), "{}", text(&out));
    let taken = env.container("web").expect("web").id;
    assert_ne!(taken, first, "not taken over");
    // Now the first controller leaves the other's container alone in turn.
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(env.container("web").expect("web").id, taken, "fought back");
}

#[test]
fn progress_lines_always_name_what_sync_waits_for() {
    let Some(env) = Env::new("progress") else {
        return;
    };
    env.write("a.yaml", &server("one", ""));
    env.write("b.yaml", &server("two", ""));
    let first = env.sync();
    env.remove("b.yaml");
    // The removal waits out --prune-delay: the wait is named, never an empty list.
    let second = env.sync();
    for out in [&first, &second] {
        let err = String::from_utf8_lossy(&out.stderr);
        for line in err.lines().filter(|l| l.starts_with("progress:")) {
            assert!(!line.trim_end().ends_with("waiting for"), "{line}\n{err}");
        }
    }
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("removal of server/two (--prune-delay)"),
        "{err}"
    );
}

#[test]
fn a_taken_host_port_is_named_with_its_holder_once() {
    let Some(env) = Env::new("port-taken") else {
        return;
    };
    let holder = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    env.write(
        "a.yaml",
        &server(
            "web",
            &format!("  ports: [{{container: 80, host: {port}}}]\n"),
        ),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let expected = format!("host port {port}/tcp is already in use by process");
    assert!(said.contains(&expected), "{said}");
    assert!(
        said.contains(&format!("(pid {})", std::process::id())),
        "{said}"
    );
    // The same failure pass after pass is one event, not one per pass.
    let events = env.run("events", &[]);
    let n = String::from_utf8_lossy(&events.stdout)
        .lines()
        .filter(|l| l.contains(&expected))
        .count();
    assert_eq!(n, 1, "{}", text(&events));
    drop(holder);
}

#[test]
fn sync_says_converged_only_when_it_exits_zero_and_lists_every_reason_otherwise() {
    let Some(env) = Env::new("sync-outcome") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let out = env.sync();
    assert!(String::from_utf8_lossy(&out.stdout).contains("converged: 1 object(s)"));
    // An invalid file: everything runs, yet sync is not done.
    env.write("b.yaml", &server("api", "  bogus: 1\n"));
    let out = env.run("sync", &["--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("converged:"),
        "{said}"
    );
    assert!(said.contains("not converged after"), "{said}");
    assert!(said.contains("1 manifest error(s)"), "{said}");
    // Out of time while an object is still on its way: it is named, with its phase and why.
    env.remove("b.yaml");
    env.write(
        "c.yaml",
        &server(
            "slow",
            "  healthCheck: {exec: ['false'], interval: 1s, startPeriod: 120s}\n",
        ),
    );
    let out = env.run("sync", &["--timeout", "4s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("still pending"), "{said}");
    assert!(
        said.contains("server/slow is Running: health: starting"),
        "{said}"
    );
}

#[test]
fn the_progress_bar_on_a_terminal_fits_its_width() {
    let Some(env) = Env::new("sync-bar") else {
        return;
    };
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "script(1) is missing in CI"
        );
        return;
    }
    env.write(
        "a.yaml",
        &common::shell(
            "slow-to-be-ready-with-a-name-longer-than-the-terminal",
            "sleep 2; touch /ok; sleep 3600 & wait",
            "  healthCheck: {exec: [test, -f, /ok], interval: 300ms}\n",
        ),
    );
    let cmd = env.command("sync");
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 24 cols 40; {line}"),
            "/dev/null",
        ])
        .output()
        .expect("run script");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("settled"), "no bar was drawn: {said}");
    // Every redraw of the bar fits in the 40 columns, so none wraps.
    for draw in said
        .split(['\r', '\n'])
        .map(|d| d.replace("\x1b[2K", ""))
        .filter(|d| d.contains("settled"))
    {
        assert!(draw.chars().count() <= 40, "{draw:?} is wider than 40");
    }
}
