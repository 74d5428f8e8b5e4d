//! The kubectl-style verbs on the local state file: apply, delete, get with selectors and
//! wide output, completion and schema. Real engine, real state file.

mod common;

use common::{server, text, Env};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn labelled(name: &str, labels: &str) -> String {
    let text = server(name, "");
    let named = format!("metadata:\n  name: {name}\n");
    text.replacen(&named, &format!("{named}  labels: {{{labels}}}\n"), 1)
}

#[test]
fn applied_objects_converge_and_get_selects_and_widens_them() {
    let Some(env) = Env::new("cli-apply") else {
        return;
    };
    env.write("filed.yaml", &server("filed", ""));
    let dir = env.dir.path().join("apply");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("a.yaml"),
        labelled("alpha", "mode: skywars, tier: prod"),
    )
    .expect("write");
    std::fs::write(dir.join("b.yaml"), labelled("beta", "mode: lobby")).expect("write");
    let d = dir.to_str().expect("utf-8");

    let out = env.run("apply", &["-f", d]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "server/alpha created\nserver/beta created\n");
    let out = env.run("apply", &["-f", d]);
    assert_eq!(
        stdout(&out),
        "server/alpha unchanged\nserver/beta unchanged\n",
        "{}",
        text(&out)
    );
    env.sync();

    let out = env.run("get", &["servers"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PHASE") && lines[0].contains("SOURCE"),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("server/alpha")
            && l.contains("Ready")
            && l.contains("api:server/alpha")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("server/filed") && l.contains("filed.yaml")),
        "{table}"
    );

    let out = env.run("get", &["servers", "-l", "mode=skywars", "-o", "wide"]);
    let wide = stdout(&out);
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.contains("LABELS") && h.contains("HEALTH")),
        "{wide}"
    );
    assert_eq!(wide.lines().count(), 2, "{wide}");
    assert!(wide.contains("mode=skywars,tier=prod"), "{wide}");

    let out = env.run("get", &["-l", "mode!=skywars,mode", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["beta"]);
    let out = env.run("get", &["servers", "--phase", "Ready", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(3));
    let out = env.run("get", &["-l", "a b"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid selector"),
        "{}",
        text(&out)
    );

    // Objects of files belong to their files.
    let clash = env.dir.path().join("clash.yaml");
    std::fs::write(&clash, server("filed", "")).expect("write");
    let out = env.run("apply", &["-f", clash.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file filed.yaml"),
        "{}",
        text(&out)
    );
    let out = env.run("delete", &["server", "filed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Invalid input applies nothing and names the file, line and field.
    std::fs::write(
        dir.join("c.yaml"),
        server("gamma", "  ports: [{hots: 1}]\n"),
    )
    .expect("write");
    let out = env.run("apply", &["-f", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.yaml:9:") && err.contains("spec.ports[0].hots"),
        "{err}"
    );

    let out = env.run("delete", &["server", "beta"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "server/beta deleted\n");
    env.sync();
    assert!(env.container("beta").is_none());
    assert!(env.container("alpha").is_some_and(|c| c.running()));
    let out = env.run("delete", &["server", "beta"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn completion_scripts_and_the_schema_are_printed() {
    let Some(env) = Env::new("cli-misc") else {
        return;
    };
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run("completion", &[shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = stdout(&out);
        assert!(
            script.contains("dockhand") && script.contains("apply"),
            "{shell}"
        );
    }
    let out = env.run("schema", &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert_eq!(v["properties"]["apiVersion"]["const"], "dockhand/v1");
}

#[test]
fn reading_verbs_never_create_a_state_file_they_say_it_does_not_exist() {
    let Some(env) = Env::new("cli-nostate") else {
        return;
    };
    let missing = env.dir.path().join("mistyped.db");
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let state = missing.to_str().expect("utf-8");
    for args in [
        &["get", "--state", state][..],
        &["describe", "server", "web", "--state", state],
        &["events", "--state", state],
        &["db", "url", "orders", "--state", state],
    ] {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("does not exist"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!missing.exists(), "{args:?} created the state file");
    }
    // diff plans against nothing, and creates nothing either.
    env.write("a.yaml", &server("web", ""));
    let out = std::process::Command::new(bin)
        .args([
            "diff",
            "--instance",
            &env.instance,
            "--state",
            state,
            "--manifests",
        ])
        .arg(&env.manifests)
        .output()
        .expect("run diff");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("create server/web"), "{}", text(&out));
    assert!(!missing.exists(), "diff created the state file");
}

#[test]
fn global_flags_may_come_before_or_after_any_verb() {
    let Some(env) = Env::new("cli-global") else {
        return;
    };
    let missing = env.dir.path().join("elsewhere.db");
    let state = missing.to_str().expect("utf-8");
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run")
    };
    for args in [
        &["--state", state, "--instance", &env.instance, "get"][..],
        &["--state", state, "events"],
        &[
            "--instance",
            &env.instance,
            "--state",
            state,
            "describe",
            "server/web",
        ],
        &[
            "--log-format",
            "json",
            "--state",
            state,
            "get",
            "server/web",
        ],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(state), "{args:?}: {}", text(&out));
    }
    // Verbs that take no state file accept the flags all the same.
    env.write("a.yaml", &server("web", ""));
    let file = env.manifests.join("a.yaml");
    let file = file.to_str().expect("utf-8");
    for args in [
        &["--state", state, "validate", "-f", file][..],
        &["validate", "--instance", &env.instance, "-f", file],
        &["--state", state, "schema"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    // logs and exec take them too: the answer is about the object, not the flags.
    for args in [
        &["logs", "--state", state, "--instance", &env.instance, "web"][..],
        &["--state", state, "exec", "web", "--", "true"],
    ] {
        let out = run(args);
        assert!(
            !text(&out).contains("unexpected argument"),
            "{args:?}: {}",
            text(&out)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    assert!(!missing.exists(), "a reading verb created the state file");
}

#[test]
fn diff_on_an_invalid_manifest_lists_the_error_and_fails() {
    let Some(env) = Env::new("cli-diff-invalid") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    env.write("a.yaml", &server("web", "  bogus: 1\n"));
    let out = env.run("diff", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("a.yaml") && text(&out).contains("bogus"),
        "{}",
        text(&out)
    );
    assert!(!stdout(&out).contains("no changes"), "{}", text(&out));
}

#[test]
fn printing_verbs_end_quietly_when_their_reader_goes_away() {
    let Some(env) = Env::new("cli-pipe") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    for args in [
        &["schema"][..],
        &["completion", "bash"],
        &["events"],
        &["get"],
    ] {
        let mut cmd = env.command(args[0]);
        if args[0] != "events" && args[0] != "get" {
            cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"));
            cmd.arg(args[0]);
        }
        cmd.args(&args[1..])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        // The reader is gone before the first write.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn objects_are_named_kind_slash_name_everywhere_and_unknown_ones_are_not_found() {
    let Some(env) = Env::new("cli-names") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let out = env.run("get", &["server/web", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["name"], "web");
    let out = env.run("describe", &["server/web"]);
    assert!(
        out.status.success() && stdout(&out).contains("web"),
        "{}",
        text(&out)
    );
    for verb in ["exec", "logs"] {
        let mut args = vec!["nosuch"];
        if verb == "exec" {
            args.extend(["--", "true"]);
        }
        let out = env.run(verb, &args);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out));
        assert!(
            text(&out).contains("server/nosuch not found"),
            "{verb}: {}",
            text(&out)
        );
    }
}

#[test]
fn logs_off_a_terminal_are_plain_text_and_json_on_request() {
    let Some(env) = Env::new("cli-logfmt") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    let out = env
        .command("sync")
        .env("DOCKHAND_LOG", "debug")
        .output()
        .expect("sync");
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG"), "no log lines to check:\n{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe:\n{err}");
    let out = env
        .command("sync")
        .args(["--log-format", "json"])
        .env("DOCKHAND_LOG", "debug")
        .output()
        .expect("sync");
    assert!(out.status.success(), "{}", text(&out));
    let logs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(!logs.is_empty() && logs.iter().all(|l| l["level"].is_string()));
}

#[test]
fn validate_checks_files_offline_and_fails_on_errors() {
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .output()
            .expect("run validate")
    };
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = run(&["validate", "-f", examples]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).starts_with("valid: "), "{}", text(&out));

    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let a = write("a.yaml", &server("web", ""));
    let b = write("b.yaml", &server("web", ""));
    let out = run(&["validate", "-f", &a, "-f", &b]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("b.yaml") && text(&out).contains("web"),
        "{}",
        text(&out)
    );
    let compose = write(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    runtime: runc\n",
    );
    let out = run(&["validate", "-f", &compose]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("compose.yaml:4:5: services.web.runtime"),
        "{}",
        text(&out)
    );
}

#[test]
fn explain_documents_every_field_from_the_schema() {
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let run = |path: &str| {
        std::process::Command::new(bin)
            .args(["explain", path])
            .output()
            .expect("run explain")
    };
    let out = run("server.spec.healthCheck");
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    for part in [
        "TYPE:     HealthCheck",
        "DESCRIPTION:",
        "onUnhealthy",
        "interval",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    // Every field of every kind's spec is explained.
    let schema: serde_json::Value =
        serde_json::from_str(&dockhand::manifest::schema::json_schema()).expect("schema");
    for kind in ["Server", "Database", "Network", "Route"] {
        let props = schema["$defs"][format!("{kind}Spec")]["properties"]
            .as_object()
            .expect("properties")
            .clone();
        for field in props.keys() {
            let path = format!("{}.spec.{field}", kind.to_lowercase());
            let out = run(&path);
            assert!(out.status.success(), "{path}: {}", text(&out));
        }
    }
    assert_eq!(run("server.spec.nope").status.code(), Some(1));
    assert_eq!(run("pod.spec").status.code(), Some(2));
}

#[test]
fn apply_dry_run_prints_the_plan_and_stores_nothing() {
    let Some(env) = Env::new("cli-dry-run") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let input = env.dir.path().join("extra.yaml");
    std::fs::write(&input, server("extra", "")).expect("write");
    let input = input.to_str().expect("utf-8");
    let out = env.run("apply", &["-f", input, "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("create server/extra"),
        "{}",
        text(&out)
    );
    assert!(!stdout(&out).contains("server/web"), "{}", text(&out));
    assert_eq!(env.run("get", &["server", "extra"]).status.code(), Some(1));
    assert!(env.container("extra").is_none());
    // The same object as a file's: the conflict is shown, nothing stored.
    let clash = env.dir.path().join("clash.yaml");
    std::fs::write(&clash, server("web", "  env: {A: '1'}\n")).expect("write");
    let out = env.run(
        "apply",
        &["-f", clash.to_str().expect("utf-8"), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("a.yaml"), "{}", text(&out));
}

#[test]
fn get_watch_prints_a_row_again_when_it_changes() {
    let Some(env) = Env::new("cli-watch") else {
        return;
    };
    env.write("a.yaml", &server("web", ""));
    env.sync();
    let mut child = env
        .command("get")
        .arg("-w")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn get -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let next = |lines: &mut Vec<String>| {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no more output; so far: {lines:?}"));
        lines.push(line.clone());
        line
    };
    assert!(next(&mut lines).starts_with("NAME"));
    assert!(next(&mut lines).contains("Ready"));
    let out = env.run("stop", &["web"]);
    assert!(out.status.success(), "{}", text(&out));
    loop {
        let line = next(&mut lines);
        if line.starts_with("server/web") && line.contains("Stopped") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn apply_prune_deletes_the_selected_applied_objects_the_input_no_longer_has() {
    let Some(env) = Env::new("cli-prune") else {
        return;
    };
    env.write("file.yaml", &labelled("infile", "app: shop"));
    let write = |name: &str, text: &str| {
        let p = env.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let all = write(
        "all.yaml",
        &format!(
            "{}---\n{}---\n{}",
            labelled("web", "app: shop"),
            labelled("api", "app: shop"),
            labelled("other", "app: blog")
        ),
    );
    assert!(env.run("apply", &["-f", &all]).status.success());
    env.sync();
    let only_web = write("web.yaml", &labelled("web", "app: shop"));
    let out = env.run("apply", &["-f", &only_web, "--prune"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--prune needs -l: {}",
        text(&out)
    );
    let out = env.run("apply", &["-f", &only_web, "--prune", "-l", "app=shop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("server/web unchanged"),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("server/api pruned"), "{}", text(&out));
    assert!(!stdout(&out).contains("other"), "{}", text(&out));
    assert!(
        !stdout(&out).contains("infile"),
        "a file's object is never pruned"
    );
    env.sync();
    assert!(env.container("api").is_none());
    for name in ["web", "other", "infile"] {
        assert!(env.container(name).is_some(), "{name} kept");
    }
}

#[test]
fn bash_completion_offers_the_state_files_object_names() {
    let Some(env) = Env::new("cli-names") else {
        return;
    };
    env.write(
        "a.yaml",
        &format!("{}---\n{}", server("web", ""), server("worker", "")),
    );
    env.sync();
    let out = env.run("__names", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let names = stdout(&out);
    for n in ["web", "server/web", "worker", "server/worker"] {
        assert!(names.lines().any(|l| l == n), "{n} in {names}");
    }
    let script = env.dir.path().join("completion.bash");
    let out = env.run("completion", &["bash"]);
    std::fs::write(&script, &out.stdout).expect("write");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_dockhand"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let complete = |words: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _dockhand_with_names dockhand \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("DOCKHAND_STATE", &env.state)
            .env("DOCKHAND_INSTANCE", &env.instance)
            .output()
            .expect("run bash");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("dockhand logs w"), "web worker");
    assert_eq!(complete("dockhand stop server/wo"), "server/worker");
    // Elsewhere clap's own completion answers: verbs after `dockhand`.
    assert!(complete("dockhand res").split(' ').any(|w| w == "restart"));
}

#[test]
fn convert_and_validate_take_a_relative_file_as_their_working_directorys_project() {
    // The README's own `dockhand convert -f compose.yaml` failed on every real project without
    // `name:` ("the project needs a name"), and `-f ./compose.yaml` resolved `../x` as `x`.
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("My_Shop");
    std::fs::create_dir_all(project.join("data")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("shared")).expect("mkdir");
    std::fs::write(
        project.join("compose.yaml"),
        "services:\n  a:\n    image: busybox\n    volumes: ['../shared:/shared', './data:/data']\n",
    )
    .expect("write");
    for file in ["compose.yaml", "./compose.yaml"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(["convert", "-f", file])
            .current_dir(&project)
            .output()
            .expect("convert");
        let shown = stdout(&out);
        assert!(out.status.success(), "{file}: {}", common::text(&out));
        assert!(shown.contains("compose.project: my_shop"), "{shown}");
        let shared = dir.path().join("shared").display().to_string();
        assert!(
            shown.contains("../shared") || shown.contains(&shared),
            "{file}: ../shared is outside the project:\n{shown}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["validate", "-f", "compose.yaml"])
        .current_dir(&project)
        .output()
        .expect("validate");
    assert!(out.status.success(), "{}", common::text(&out));
}

#[test]
fn no_verb_panics_on_a_closed_stdout_or_stderr() {
    // `dockhand validate -f DIR 2>&1 | true` exited 101: "failed printing to stderr".
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..50 {
        std::fs::write(dir.path().join(format!("bad{i}.yaml")), "kind: Nope\n").expect("write");
    }
    let d = dir.path().display().to_string();
    let runs: [&[&str]; 4] = [
        &["validate", "-f", &d],
        &["convert", "-f", &d],
        &["explain", "server"],
        &["schema"],
    ];
    for args in runs {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just made by pipe and are owned here alone.
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        drop(read);
        let err = write.try_clone().expect("dup");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::from(err))
            .status()
            .expect("run");
        assert_ne!(status.code(), Some(101), "{args:?} panicked");
    }
}
