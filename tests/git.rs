//! The git source against a real repository served by `git daemon` on 127.0.0.1: a pushed
//! commit converges, a broken commit keeps the last good one, a force-push goes back, an
//! unreachable remote keeps what runs, and a file deleted in git prunes its objects.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{docker, eventually, free_port, server, text, Env, Served};

/// `git ARGS` in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@localhost")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@localhost")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `git daemon` serving every repository under `base` on 127.0.0.1:`port`, until dropped.
fn git_daemon(base: &Path, port: u16) -> Served {
    // git-daemon itself (not `git daemon`, which would leave it running when killed).
    let exec_path = git(base, &["--exec-path"]);
    let mut cmd = Command::new(Path::new(&exec_path).join("git-daemon"));
    cmd.arg("--reuseaddr")
        .arg("--export-all")
        .arg(format!("--base-path={}", base.display()))
        .args(["--listen=127.0.0.1", &format!("--port={port}")])
        .arg(base);
    Served::start(cmd, port, "git daemon listening")
}

/// A bare repository `app.git` under `<test dir>/remote` (branch main), and a clone of it to
/// commit in.
fn repository(env: &Env) -> (PathBuf, PathBuf) {
    let remote = env.dir.path().join("remote");
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&remote).expect("mkdir");
    git(
        &remote,
        &[
            "init",
            "--bare",
            "--quiet",
            "--initial-branch=main",
            "app.git",
        ],
    );
    git(
        env.dir.path(),
        &[
            "clone",
            "--quiet",
            remote.join("app.git").to_str().expect("utf-8"),
            "work",
        ],
    );
    git(&work, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    (remote, work)
}

/// Writes (or, without a body, removes) `deploy/<file>` in `work`, commits and force-pushes it
/// to main; returns the commit.
fn commit(work: &Path, file: &str, body: Option<&str>, message: &str) -> String {
    let path = work.join("deploy").join(file);
    match body {
        Some(b) => {
            std::fs::create_dir_all(work.join("deploy")).expect("mkdir");
            std::fs::write(&path, b).expect("write");
            git(work, &["add", "-A"]);
        }
        None => {
            git(work, &["rm", "--quiet", &format!("deploy/{file}")]);
        }
    }
    git(work, &["commit", "--quiet", "-m", message]);
    git(work, &["push", "--quiet", "--force", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}

#[test]
fn pushed_commits_converge_a_broken_one_keeps_the_last_good_and_an_unreachable_remote_keeps_what_runs(
) {
    let Some(env) = Env::new("git-source") else {
        return;
    };
    assert!(
        Command::new("git").arg("--version").output().is_ok(),
        "git is needed"
    );
    let (remote, work) = repository(&env);
    let commit = |file: &str, body: Option<&str>, message: &str| commit(&work, file, body, message);
    let web = |color: &str| server("web", &format!("  env: {{COLOR: {color}}}\n"));
    let blue = commit("web.yaml", Some(&web("blue")), "blue");
    // A file outside the folder is not read.
    std::fs::write(work.join("README.yaml"), "not: a manifest\n").expect("write");
    let green = commit("web.yaml", Some(&web("green")), "green");

    let port = free_port();
    let daemon = git_daemon(&remote, port);
    let url = format!("git://127.0.0.1:{port}/app.git");
    let sync = || {
        env.command("sync")
            .args(["--git", &url, "--git-ref", "main", "--git-path", "deploy"])
            .args(["--timeout", "60s", "--prune-delay", "0s"])
            .output()
            .expect("run sync")
    };
    let color = || {
        let c = env.container("web").expect("web's container");
        docker(&["exec", &c.id, "sh", "-c", "echo $COLOR"])
            .trim()
            .to_owned()
    };

    let out = sync();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "git: git://127.0.0.1:{port}/app.git@main:deploy/ at"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(color(), "green");
    let object = env.object_of("server", "web").expect("web");
    assert_eq!(
        object["source"],
        format!("git:git://127.0.0.1:{port}/app.git@main:deploy/web.yaml"),
        "{object}"
    );

    // A broken commit: the error names the file in git, and the last good spec keeps running.
    let running = env.container("web").expect("web").id;
    commit(
        "web.yaml",
        Some(&web("red").replace("env:", "envv:")),
        "broken",
    );
    let out = sync();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deploy/web.yaml"), "{}", text(&out));
    assert_eq!(env.container("web").expect("web").id, running);
    assert_eq!(color(), "green");

    // A force-push back to the first commit converges back to it.
    git(
        &work,
        &[
            "push",
            "--quiet",
            "--force",
            "origin",
            &format!("{blue}:main"),
        ],
    );
    let out = sync();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(color(), "blue");

    // Every object says the commit it was read at, and each revision the commit it came from.
    assert_eq!(
        env.object_of("server", "web").expect("web")["commit"],
        blue.as_str()
    );
    let described = text(&env.run("describe", &["server", "web"]));
    assert!(
        described.contains(&format!("Commit:       {blue}")),
        "{described}"
    );
    let wide = text(&env.run("get", &["-o", "wide"]));
    assert!(wide.contains(&blue[..12]), "{wide}");
    let history = text(&env.run("rollout", &["history", "web"]));
    let lines: Vec<&str> = history.lines().filter(|l| l.contains("git:")).collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(lines[0].contains(&green[..12]), "{history}");
    assert!(lines[1].contains(&blue[..12]), "{history}");

    // The cache keeps the current commit's tree and the one before it, no more.
    let mut cache = env.state.clone().into_os_string();
    cache.push(".git");
    let sources: Vec<_> = std::fs::read_dir(&cache)
        .expect("the git cache")
        .flatten()
        .collect();
    assert_eq!(sources.len(), 1);
    let trees = std::fs::read_dir(sources[0].path().join("trees"))
        .expect("the trees")
        .count();
    assert_eq!(trees, 2);

    // The remote gone: what runs stays, and sync says which commit it keeps.
    drop(daemon);
    let out = sync();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("keeping commit {}", &blue[..12])),
        "{}",
        text(&out)
    );
    assert_eq!(color(), "blue");

    // Deleting a file in git removes its object; a folder that vanishes from the commit
    // (its last file deleted) prunes nothing, like a vanished directory.
    let daemon = git_daemon(&remote, port);
    git(&work, &["reset", "--quiet", "--hard", &blue]);
    commit("web.yaml", None, "remove web");
    let out = sync();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refused to prune"), "{}", text(&out));
    assert!(env.container("web").is_some());
    commit("api.yaml", Some(&server("api", "")), "add api");
    let out = sync();
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.container("api").is_some_and(|c| c.running()));

    eventually(Duration::from_secs(30), "web pruned", || {
        env.container("web").is_none().then_some(())
    });

    // Under `up`, a push is fetched within --git-interval and converges with no sync.
    let up_with = |extra: &[&str]| {
        let git = [
            "--resync",
            "1h",
            "--git",
            &url,
            "--git-ref",
            "main",
            "--git-path",
            "deploy",
        ];
        env.up(&[&git[..], extra].concat())
    };
    let mut up = up_with(&["--git-interval", "1s"]);
    commit("web.yaml", Some(&web("yellow")), "yellow");
    eventually(Duration::from_secs(30), "the pushed commit running", || {
        env.container("web")
            .filter(|c| c.running())
            .and_then(|_| (color() == "yellow").then_some(()))
    });
    let events = env.run("events", &[]);
    assert!(
        String::from_utf8_lossy(&events.stdout).contains("git-fetched"),
        "{}",
        text(&events)
    );
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());

    // With an hour between fetches, only a verified webhook call brings a push in at once.
    let secret = env.dir.path().join("hook.secret");
    std::fs::write(&secret, "s3cret\n").expect("write the secret");
    let mut up = up_with(&[
        "--git-interval",
        "1h",
        "--git-webhook-secret-file",
        secret.to_str().expect("utf-8"),
    ]);
    let hook = format!("{}/api/v1/hooks/git", up.api_url());
    eventually(Duration::from_secs(30), "up running yellow", || {
        (color() == "yellow").then_some(())
    });
    commit("web.yaml", Some(&web("purple")), "purple");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let post = |signature: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", &format!("X-Hub-Signature-256: {signature}")])
            .args(["--data-binary", body, &hook])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(post("sha256=00"), "401");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(color(), "yellow", "fetched without a verified call");
    let signature = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("a key");
        mac.update(body.as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    };
    assert_eq!(post(&signature), "202");
    // The same signed call again (a replay): answered, and it fetches nothing.
    assert_eq!(post(&signature), "200");
    eventually(Duration::from_secs(30), "the hooked commit running", || {
        env.container("web")
            .filter(|c| c.running())
            .and_then(|_| (color() == "purple").then_some(()))
    });
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
    assert!(!up.output().contains("s3cret"), "{}", up.output());

    // The remote gone under `up`: one notification says so (not one per fetch), and what runs
    // stays.
    drop(daemon);
    let (receiver_port, got) = common::receiver();
    let notify = format!("http://127.0.0.1:{receiver_port}/hook");
    let mut up = up_with(&["--git-interval", "1s", "--notify", &notify]);
    let failure = eventually(
        Duration::from_secs(40),
        "a git-fetch-failed notification",
        || {
            got.lock()
                .expect("the list")
                .iter()
                .find(|n| n["event"] == "git-fetch-failed")
                .cloned()
        },
    );
    assert!(
        failure["object"]
            .as_str()
            .is_some_and(|o| o.contains("main")),
        "{failure}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = up.stop();
    assert!(status.success(), "{}", up.output());
    let count = got
        .lock()
        .expect("the list")
        .iter()
        .filter(|n| n["event"] == "git-fetch-failed")
        .count();
    assert_eq!(count, 1, "one message per distinct failure");
    assert_eq!(color(), "purple", "what runs stays");
}

/// A smart-HTTP git server on 127.0.0.1 (`git http-backend` behind a check of the request's
/// `Authorization`), serving the repositories under `root`, until the test ends.
fn serve_http_git(root: &Path, expected: String) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).unwrap_or(0) == 0 {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let mut body = vec![0; header("content-length").parse().unwrap_or(0)];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            if header("authorization") != expected {
                let _ = write!(conn, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let mut words = request.split_whitespace();
            let method = words.next().unwrap_or_default().to_owned();
            let target = words.next().unwrap_or_default().to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let mut cgi = Command::new("git")
                .arg("http-backend")
                .env("GIT_PROJECT_ROOT", &root)
                .env("GIT_HTTP_EXPORT_ALL", "1")
                .env("REQUEST_METHOD", &method)
                .env("PATH_INFO", path)
                .env("QUERY_STRING", query)
                .env("CONTENT_TYPE", header("content-type"))
                .env("CONTENT_LENGTH", body.len().to_string())
                .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
                .env("GIT_PROTOCOL", header("git-protocol"))
                .env("REMOTE_ADDR", "127.0.0.1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("git http-backend");
            let _ = cgi.stdin.take().expect("stdin").write_all(&body);
            let out = cgi.wait_with_output().expect("http-backend output");
            let split = out
                .stdout
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| (i, 4))
                .or_else(|| {
                    out.stdout
                        .windows(2)
                        .position(|w| w == b"\n\n")
                        .map(|i| (i, 2))
                });
            let Some((end, gap)) = split else { continue };
            let head = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
            let mut status = "200 OK".to_owned();
            let mut response = String::new();
            for line in head.lines() {
                match line.strip_prefix("Status:") {
                    Some(s) => status = s.trim().to_owned(),
                    None => response.push_str(&format!("{line}\r\n")),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\n{response}Connection: close\r\n\r\n"
            );
            let _ = conn.write_all(&out.stdout[end + gap..]);
        }
    });
    port
}

#[test]
fn a_private_repository_is_fetched_with_a_token_file_that_is_never_shown() {
    let Some(env) = Env::new("git-token") else {
        return;
    };
    let (remote, work) = repository(&env);
    commit(&work, "web.yaml", Some(&server("web", "")), "web");
    let token = "s3cr3t-tok-93af";
    let expected = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{token}"))
        )
    };
    let port = serve_http_git(&remote, expected);
    let url = format!("http://127.0.0.1:{port}/app.git");
    let token_file = env.dir.path().join("token");
    std::fs::write(&token_file, format!("alice:{token}\n")).expect("write the token");
    let sync = |extra: &[&str]| {
        env.command("sync")
            .args(["--git", &url, "--git-ref", "main", "--git-path", "deploy"])
            .args(["--timeout", "60s"])
            .args(extra)
            .output()
            .expect("run sync")
    };

    // Without the token the remote refuses, at once (no prompt), and nothing runs.
    let out = sync(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("git fetch of"), "{}", text(&out));
    assert!(env.container("web").is_none());

    let out = sync(&["--git-token-file", token_file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.container("web").is_some_and(|c| c.running()));
    let mut seen = text(&out);
    for args in [
        vec!["get", "-o", "json"],
        vec!["describe", "server", "web"],
        vec!["events", "--limit", "100"],
    ] {
        let (verb, rest) = args.split_first().expect("verb");
        seen.push_str(&text(&env.run(verb, rest)));
    }
    assert!(!seen.contains(token), "the token leaked:\n{seen}");
}
