//! `kind: Secret` on the real engine: values from a file, the controller's environment and age
//! (encrypted by Debian's `age` and by `dockhand secret encrypt`, each opened by the other),
//! given to servers as files under /run/secrets with their owner and mode or as variables; a
//! changed value rolls exactly the servers that use it; the host policy and a missing identity
//! hold what needs them; and no value shows in any output.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{docker, eventually, http, shell, text, Env};

/// Runs `age ARGS` with `input` on stdin; its stdout.
fn age(args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("age")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Debian's age is needed (apt-get install age)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("age");
    assert!(out.status.success(), "age {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn secret(name: &str, spec: &str) -> String {
    format!("apiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

fn encrypted(text: &str) -> String {
    let body: String = text.lines().map(|l| format!("    {l}\n")).collect();
    format!("  encrypted: |\n{body}")
}

/// Server `web` (user 1000, two secret files, two secret variables) and server `other`, which
/// takes the secrets `other_secrets` as files.
fn servers(other_secrets: &str) -> String {
    [
        shell(
            "web",
            "sleep 3600 & wait",
            "  user: '1000'\n  secrets: [token, {name: signing, target: signing.pem, mode: '0440', gid: 2000}]\n  env: {API_KEY: {fromSecret: api-key}, FROM_ENV: {fromSecret: from-env}}\n",
        ),
        shell(
            "other",
            "sleep 3600 & wait",
            &format!("  secrets: [{other_secrets}]\n"),
        ),
    ]
    .join("---\n")
}

fn phase_and_message(env: &Env, kind: &str, name: &str) -> (String, String) {
    let s = env.status_of(kind, name).unwrap_or_default();
    (
        s["phase"].as_str().unwrap_or_default().to_owned(),
        s["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn exec(id: &str, user: &str, script: &str) -> String {
    docker(&["exec", "-u", user, id, "sh", "-c", script])
        .trim()
        .to_owned()
}

#[test]
fn secrets_reach_servers_as_files_and_variables_roll_their_users_on_change_and_never_show() {
    let Some(env) = Env::new("secrets") else {
        return;
    };
    if !common::tool_present("age") {
        return;
    }
    let dir = env.dir.path();
    let key = dir.join("controller.key");
    // The controller's identity, made by dockhand; a value sealed by Debian's age to it, and
    // one sealed by dockhand that age opens again.
    let out = env.run("secret", &["keygen", "-o", &key.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    let recipient = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let by_age = age(&["-a", "-r", &recipient], b"sealed-by-age-7f3a");
    let mut enc = env.command("secret");
    enc.args(["encrypt", "-r", &recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let by_dockhand = {
        use std::io::Write;
        let mut child = enc.spawn().expect("secret encrypt");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"sealed-by-dockhand-91c2")
            .expect("write");
        let out = child.wait_with_output().expect("encrypt");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        age(
            &["-d", "-i", &key.display().to_string()],
            by_dockhand.as_bytes()
        ),
        "sealed-by-dockhand-91c2"
    );
    std::fs::write(env.manifests.join("token.txt"), "file-value-1").expect("write");
    env.write(
        "secrets.yaml",
        &[
            secret("token", "  file: token.txt\n"),
            secret("api-key", &encrypted(&by_age)),
            secret("signing", &encrypted(&by_dockhand)),
            secret("from-env", "  env: DH_TEST_SECRET_VALUE\n"),
        ]
        .join("---\n"),
    );
    env.write("servers.yaml", &servers("api-key"));
    let key_arg = key.display().to_string();
    let controller_env = ("DH_TEST_SECRET_VALUE", "env-value-5d1e");

    // Neither the policy nor an identity: what needs them waits and says why.
    // `sync` with the controller's variable set, and `flags`; whether it succeeded, and what
    // it said.
    let run_sync = |flags: &[&str]| {
        let out = env
            .command("sync")
            .args(flags)
            .env(controller_env.0, controller_env.1)
            .output()
            .expect("sync");
        (out.status.success(), text(&out))
    };
    let (ok, said) = run_sync(&["--timeout", "20s"]);
    assert!(!ok, "{said}");
    let (phase, message) = phase_and_message(&env, "secret", "from-env");
    assert_eq!(phase, "Invalid");
    assert!(
        message.contains("--allow-secret-env DH_TEST_SECRET_VALUE"),
        "{message}"
    );
    let (phase, message) = phase_and_message(&env, "secret", "api-key");
    assert_eq!(phase, "Failed");
    assert!(message.contains("--age-identity"), "{message}");
    let (phase, message) = phase_and_message(&env, "server", "web");
    assert_eq!(phase, "Invalid");
    assert!(message.contains("secret"), "{message}");
    assert!(env.container("web").is_none());

    // With both, everything runs.
    let allowed = [
        "--age-identity",
        key_arg.as_str(),
        "--allow-secret-env",
        "DH_TEST_SECRET_*",
    ];
    let sync = |_: &Env| {
        let (ok, said) = run_sync(&[&["--timeout", "60s"][..], &allowed[..]].concat());
        assert!(ok, "{said}");
        said
    };
    let mut seen = sync(&env);
    let web = env.container("web").expect("web runs");
    let other = env.container("other").expect("other runs");
    assert_eq!(
        exec(&web.id, "1000", "cat /run/secrets/token"),
        "file-value-1"
    );
    assert_eq!(
        exec(&web.id, "1000", "cat /run/secrets/signing.pem"),
        "sealed-by-dockhand-91c2"
    );
    assert_eq!(
        exec(
            &web.id,
            "0",
            "stat -c '%a %u %g' /run/secrets/token /run/secrets/signing.pem"
        ),
        "400 1000 1000\n440 1000 2000"
    );
    assert_eq!(exec(&web.id, "1000", "echo $API_KEY"), "sealed-by-age-7f3a");
    assert_eq!(exec(&web.id, "1000", "echo $FROM_ENV"), "env-value-5d1e");
    assert_eq!(
        exec(
            &other.id,
            "0",
            "stat -c '%a %u' /run/secrets/api-key; cat /run/secrets/api-key"
        ),
        "400 0\nsealed-by-age-7f3a"
    );
    // No host file holds a value: the container has no bind mount for them.
    let mounts = docker(&["inspect", "-f", "{{json .Mounts}}", &web.id]);
    assert!(!mounts.contains("secrets"), "{mounts}");

    // A new value in the file rolls the server that uses it, and only that one.
    std::fs::write(env.manifests.join("token.txt"), "file-value-2").expect("write");
    seen.push_str(&sync(&env));
    let web2 = env.container("web").expect("web runs");
    assert_ne!(web2.id, web.id, "web uses the token: replaced");
    assert_eq!(
        env.container("other").expect("other").id,
        other.id,
        "other does not use it: untouched"
    );
    assert_eq!(
        exec(&web2.id, "1000", "cat /run/secrets/token"),
        "file-value-2"
    );

    // The file gone: the secret fails, the server keeps its container and says why.
    std::fs::remove_file(env.manifests.join("token.txt")).expect("rm");
    let (ok, said) = run_sync(&[&["--timeout", "10s"][..], &allowed[..]].concat());
    assert!(!ok, "{said}");
    seen.push_str(&said);
    assert_eq!(env.container("web").expect("kept").id, web2.id);
    assert_eq!(phase_and_message(&env, "secret", "token").0, "Failed");

    // Under `up`, a Secret sealed later opens with the identity given to `up`.
    std::fs::write(env.manifests.join("token.txt"), "file-value-3").expect("write");
    let late = age(&["-a", "-r", &recipient], b"late-value-0b6d");
    env.write("late.yaml", &secret("late", &encrypted(&late)));
    env.write("servers.yaml", &servers("api-key, late"));
    let mut up = env.up_with_env(
        &[
            "--resync",
            "1h",
            "--age-identity",
            &key_arg,
            "--allow-secret-env",
            "DH_TEST_SECRET_VALUE",
        ],
        &[controller_env],
    );
    let other2 = eventually(
        std::time::Duration::from_secs(60),
        "other with the late secret",
        || {
            let c = env.container("other").filter(|c| c.running())?;
            (exec(&c.id, "0", "cat /run/secrets/late") == "late-value-0b6d").then_some(c)
        },
    );
    assert_ne!(other2.id, other.id);
    for kind in ["secrets", "servers"] {
        let reply = http(
            "GET",
            &format!("{}/api/v1/{kind}", up.api_url()),
            Some(&up.api_token()),
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        seen.push_str(&reply.text);
    }
    up.stop();
    seen.push_str(&up.output());

    for args in [
        vec!["get"],
        vec!["get", "-o", "json"],
        vec!["get", "-o", "yaml"],
        vec!["get", "-o", "wide"],
        vec!["describe", "secret", "api-key"],
        vec!["describe", "secret", "from-env"],
        vec!["describe", "server", "web"],
        vec!["events", "--limit", "1000"],
    ] {
        let (verb, rest) = args.split_first().expect("verb");
        seen.push_str(&text(&env.run(verb, rest)));
    }
    let state = std::fs::read(&env.state).expect("state file");
    for value in [
        "file-value",
        "sealed-by-age-7f3a",
        "sealed-by-dockhand-91c2",
        "env-value-5d1e",
        "late-value-0b6d",
    ] {
        assert!(!seen.contains(value), "{value} leaked:\n{seen}");
        assert!(
            !String::from_utf8_lossy(&state).contains(value),
            "{value} is in the state file"
        );
    }
    assert!(Path::new(&key).exists());
}
