//! `dockhand attach` against the real engine: a server's own terminal, locally and through the
//! controller's API, and the detach keys that leave it running.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, text, Env, IMAGE};

/// An interactive shell as a server's main process, on a terminal of its own.
fn shell_server() -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: term}}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: [sh]\n  tty: true\n  stdin: true\n"
    )
}

/// Types a command into an attached `dockhand attach`, sees its answer, then detaches.
fn type_and_detach(mut child: Child, what: &str) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    // The answer differs from the echoed command line, so it proves the shell ran it.
    let answer = eventually(
        Duration::from_secs(20),
        &format!("{what}: the shell's answer"),
        || {
            let _ = stdin.write_all(b"echo attached-$((6*7))\n");
            let _ = stdin.flush();
            std::thread::sleep(Duration::from_millis(300));
            let text = String::from_utf8_lossy(&out.lock().expect("lock")).into_owned();
            text.contains("attached-42").then_some(text)
        },
    );
    assert!(answer.contains("attached-42"));
    // ctrl-p ctrl-q: the engine ends the session and the process runs on.
    stdin.write_all(&[0x10, 0x11]).expect("detach keys");
    stdin.flush().expect("flush");
    let status = eventually(
        Duration::from_secs(20),
        &format!("{what}: detached"),
        || child.try_wait().expect("wait"),
    );
    assert!(status.success(), "{what}: {status}");
}

fn attach(env: &Env, extra: &[&str]) -> Child {
    let mut cmd = env.command("attach");
    cmd.arg("term")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("spawn dockhand attach")
}

#[test]
fn attach_reaches_a_servers_own_terminal_and_detach_leaves_it_running() {
    let Some(env) = Env::new("attach") else {
        return;
    };
    env.write("term.yaml", &shell_server());
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = env.container("term").expect("container");
    type_and_detach(attach(&env, &[]), "local");
    let after = env.container("term").expect("container");
    assert_eq!(after.id, before.id);
    assert!(after.running(), "detaching stopped it: {}", after.state);
    // Again: the shell is still there for the next attach.
    type_and_detach(attach(&env, &[]), "local, again");
}

#[test]
fn attach_through_the_api_needs_the_token_and_reaches_the_same_terminal() {
    let Some(env) = Env::new("attach-api") else {
        return;
    };
    env.write("term.yaml", &shell_server());
    let mut up = env.up(&[]);
    let base = up.api_url();
    eventually(Duration::from_secs(60), "term running", || {
        env.container("term").filter(|c| c.running())
    });
    let token = env.token_file();
    let token = token.to_str().expect("utf-8");
    type_and_detach(
        attach(&env, &["--server", &base, "--token-file", token]),
        "remote",
    );
    // Without the token: refused before anything is attached.
    let wrong = env.dir.path().join("wrong-token");
    std::fs::write(&wrong, "wrong").expect("write");
    let out = env.run(
        "attach",
        &[
            "term",
            "--server",
            &base,
            "--token-file",
            wrong.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bearer token"), "{}", text(&out));
    assert!(env.container("term").is_some_and(|c| c.running()));
    // The window's size reaches the container's terminal.
    let token = up.api_token();
    let r = common::http(
        "POST",
        &format!("{base}/api/v1/servers/term/attach/resize?w=123&h=45"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 204, "{r:?}");
    let id = env.container("term").expect("container").id;
    let size = common::docker(&["exec", &id, "sh", "-c", "stty size < /proc/1/fd/0"]);
    assert_eq!(size.trim(), "45 123");
    // Without the upgrade headers, attach says what it needs.
    let r = common::http(
        "POST",
        &format!("{base}/api/v1/servers/term/attach"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text.contains("Upgrade: tcp"), "{r:?}");
    up.stop();
}
