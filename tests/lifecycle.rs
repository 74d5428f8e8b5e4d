//! Restart policies, backoff, jobs, and the `events`, `logs`, `exec` and `describe` verbs,
//! against the real Docker engine.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{docker, eventually, server, shell, text, Env};

const WAIT: Duration = Duration::from_secs(40);

fn events_of(env: &Env, name: &str) -> String {
    let out = env.run(
        "events",
        &["--for", &format!("server/{name}"), "--limit", "1000"],
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn crashing_container_backs_off_with_a_rising_restart_count() {
    let Some(env) = Env::new("crashloop") else {
        return;
    };
    env.write("a.yaml", &shell("crash", "echo crashing; exit 3", ""));
    let mut up = env.up(&[
        "--backoff-base",
        "1s",
        "--backoff-cap",
        "2s",
        "--resync",
        "1h",
    ]);

    let mut phases = Vec::new();
    let status = eventually(WAIT, "three restarts", || {
        let s = env.object("crash")?["status"].clone();
        phases.push(s["phase"].as_str().unwrap_or_default().to_owned());
        (s["restartCount"].as_u64()? >= 3).then_some(s)
    });
    assert_eq!(status["lastExitCode"], 3);
    assert!(
        phases.iter().any(|p| p == "CrashLoopBackOff"),
        "never seen backing off: {phases:?}"
    );

    let log = events_of(&env, "crash");
    assert!(log.contains("exited with code 3"), "{log}");
    let first = log
        .find("restarting in 1s")
        .unwrap_or_else(|| panic!("no 1s backoff:\n{log}"));
    let second = log
        .find("restarting in 2s")
        .unwrap_or_else(|| panic!("no 2s backoff:\n{log}"));
    assert!(first < second, "backoff must grow:\n{log}");
    assert!(log.contains("restart 3"), "{log}");
    up.stop();
}

#[test]
fn max_restarts_ends_in_failed_and_sync_reports_it() {
    let Some(env) = Env::new("maxrestarts") else {
        return;
    };
    env.write("a.yaml", &shell("flaky", "exit 1", "  maxRestarts: 2\n"));
    let mut up = env.up(&["--backoff-base", "200ms", "--resync", "1h"]);
    let status = eventually(WAIT, "the controller to give up", || {
        let s = env.object("flaky")?["status"].clone();
        (s["phase"] == "Failed").then_some(s)
    });
    assert_eq!(status["restartCount"], 2);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("gave up after 2 restarts")),
        "{status}"
    );
    up.stop();
    assert!(events_of(&env, "flaky").contains("gave up after 2 restarts"));

    // A later sync leaves it alone and says why it fails.
    let out = env.run("sync", &["--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("gave up after 2 restarts"),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.object("flaky").expect("flaky")["status"]["restartCount"],
        2
    );
}

#[test]
fn completed_job_is_not_rerun_on_the_next_pass() {
    let Some(env) = Env::new("job") else { return };
    env.write("job.yaml", &shell("job", "echo ran >> /data/runs", "  restartPolicy: OnFailure\n  volumes: [{type: volume, source: runs, target: /data}]\n"));
    env.sync();
    let done = eventually(WAIT, "the job to exit", || {
        env.container("job").filter(|c| c.state == "exited")
    });
    env.sync();
    assert_eq!(
        env.object("job").expect("job")["status"]["phase"],
        "Completed"
    );
    assert_eq!(
        env.container("job"),
        Some(done.clone()),
        "a completed job was touched"
    );

    // Even with its container gone, a completed job is not run again while its spec is unchanged.
    docker(&["rm", &done.id]);
    env.sync();
    assert!(
        env.container("job").is_none(),
        "a completed job was run again"
    );
    assert_eq!(
        env.object("job").expect("job")["status"]["phase"],
        "Completed"
    );
    assert!(events_of(&env, "job").contains("completed"));

    // A new spec is a new job.
    env.write("job.yaml", &shell("job", "echo ran >> /data/runs", "  restartPolicy: OnFailure\n  volumes: [{type: volume, source: runs, target: /data}]\n  env: {RUN: '2'}\n"));
    env.sync();
    eventually(WAIT, "the new job to run", || env.container("job"));
}

#[test]
fn never_job_that_fails_is_failed_and_sync_says_so() {
    let Some(env) = Env::new("neverfail") else {
        return;
    };
    env.write(
        "job.yaml",
        &shell("job", "exit 4", "  restartPolicy: Never\n"),
    );
    env.sync();
    eventually(WAIT, "the job to exit", || {
        env.container("job").filter(|c| c.state == "exited")
    });
    let out = env.run("sync", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = env.object("job").expect("job")["status"].clone();
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["lastExitCode"], 4);
}

#[test]
fn logs_and_exec_find_a_start_first_servers_container_whose_name_carries_a_hash() {
    let Some(env) = Env::new("exec-sf") else {
        return;
    };
    env.write(
        "a.yaml",
        &shell(
            "web",
            "echo hello-from-web; sleep 600 & wait",
            "  update: {order: StartFirst}\n",
        ),
    );
    env.sync();
    let prefix = format!("dh_{}_server_web-", env.instance);
    let c = eventually(WAIT, "the hashed container", || {
        env.containers()
            .into_iter()
            .find(|c| c.name.starts_with(&prefix) && c.state == "running")
    });
    assert!(
        env.container("web").is_none(),
        "no container has the plain name"
    );

    let out = env.run("logs", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-from-web\n");

    let out = env.run("exec", &["web", "--", "hostname"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        &c.id[..12],
        "exec ran in the server's container"
    );
}

#[test]
fn exec_returns_the_commands_exit_code_and_output() {
    let Some(env) = Env::new("exec") else { return };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let mut cmd = env.command("exec");
    cmd.args([
        "web",
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 7",
    ]);
    let out = cmd.output().expect("exec");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");

    let mut cmd = env.command("exec");
    cmd.args(["-i", "server/web", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("exec -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");

    // With -it on a real terminal the command gets a TTY.
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let line = format!("{bin} exec -it web --instance {} -- tty", env.instance);
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out)
    );
}

#[test]
fn logs_show_the_containers_output() {
    let Some(env) = Env::new("logs") else { return };
    env.write(
        "a.yaml",
        &shell(
            "talker",
            "echo first; echo second; echo oops >&2; sleep 3600",
            "  stopGracePeriod: 1s\n",
        ),
    );
    env.sync();
    let out = eventually(WAIT, "output", || {
        let mut cmd = env.command("logs");
        cmd.arg("talker");
        let out = cmd.output().expect("logs");
        String::from_utf8_lossy(&out.stdout)
            .contains("second")
            .then_some(out)
    });
    assert_eq!(String::from_utf8_lossy(&out.stdout), "first\nsecond\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut cmd = env.command("logs");
    cmd.args(["talker", "--tail", "1"]);
    let out = cmd.output().expect("logs --tail");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("first"),
        "{}",
        text(&out)
    );
    // --since: a window back from now, or a time.
    let since = |arg: &str| {
        let mut cmd = env.command("logs");
        cmd.args(["talker", "--since", arg]);
        cmd.output().expect("logs --since")
    };
    assert!(String::from_utf8_lossy(&since("1h").stdout).contains("first"));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let out = since("1s");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{}", text(&out));
    assert!(String::from_utf8_lossy(&since("2000-01-01T00:00:00Z").stdout).contains("first"));
    assert_eq!(since("yesterday-ish").status.code(), Some(2));
}

#[test]
fn describe_shows_spec_status_and_events() {
    let Some(env) = Env::new("describe") else {
        return;
    };
    env.write("a.yaml", &server("web", "  env: {MODE: demo}\n"));
    env.sync();
    let out = env.run("describe", &["server", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Name:         web",
        &format!("Instance:     {}", env.instance),
        "Phase:        Ready",
        "Source:       a.yaml:4",
        "Restarts:     0",
        "Conditions:",
        "Ready           True",
        "Healthy         n/a (no health check)",
        "MODE: demo",
        "created",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    let missing = env.run("describe", &["server", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn events_follow_prints_new_events() {
    let Some(env) = Env::new("follow") else {
        return;
    };
    env.write("a.yaml", &server("one", ""));
    env.sync();
    let mut follow = env
        .command("events")
        // Nothing from before: only what is recorded while following counts.
        .args(["--follow", "--limit", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("events --follow");
    env.write("b.yaml", &server("two", ""));
    env.sync();
    let mut stdout = follow.stdout.take().expect("stdout");
    let seen = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&buf).contains("created and started server/two") {
                return true;
            }
        }
        false
    });
    let deadline = std::time::Instant::now() + WAIT;
    while !seen.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.join().unwrap_or(false),
        "the followed log never showed the new event"
    );
}

#[test]
fn wait_blocks_until_ready_completed_or_deleted_and_fails_fast_on_failure() {
    let Some(env) = Env::new("wait") else { return };
    env.write("web.yaml", &server("web", ""));
    env.write(
        "job.yaml",
        &shell("job", "sleep 1; exit 0", "  restartPolicy: Never\n"),
    );
    env.write(
        "bad.yaml",
        &shell("bad", "exit 3", "  restartPolicy: Never\n"),
    );
    // Waiting starts before the controller has made its state file.
    let early = env
        .command("wait")
        .args(["web", "--for", "ready", "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wait");
    std::thread::sleep(Duration::from_millis(500));
    let mut up = env.up(&[]);
    let out = early.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "server/web Ready\n");
    let wait = |args: &[&str]| env.run("wait", args);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "server/web Ready\n");
    let out = wait(&["server/job", "--for", "completed", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let started = std::time::Instant::now();
    let out = wait(&["bad", "--for", "completed", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("server/bad is Failed"),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not fail fast"
    );
    env.remove("web.yaml");
    let out = wait(&["web", "--for", "deleted", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = wait(&["nosuch", "--for", "ready", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not defined"), "{}", text(&out));
    up.stop();
}
