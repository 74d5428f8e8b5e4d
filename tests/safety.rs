//! The safety review's findings (round two), each reproduced as its attacker would: someone who
//! owns the watched manifests directory and nothing else (uid 65534, where a user is the
//! threat), against a root controller and the real engine. Every test fails without its fix.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::postgres::{database, env_with_postgres};
use common::{eventually, text, Env};

const WAIT: Duration = Duration::from_secs(90);

/// The attacker's uid: nobody, who owns the manifests directory and nothing else.
const NOBODY: u32 = 65534;

/// Runs `program args` as nobody (as root, with setpriv; as the caller otherwise).
fn as_nobody(program: &str, args: &[&str]) -> std::process::Output {
    let root = unsafe_is_root();
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            program,
        ]);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().expect("run as nobody")
}

fn unsafe_is_root() -> bool {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() == 0 }
}

/// Gives the manifests directory to nobody, as the threat model has it.
fn hand_to_nobody(dir: &Path) {
    if unsafe_is_root() {
        let out = Command::new("chown")
            .args([
                "-R",
                &format!("{NOBODY}:{NOBODY}"),
                &dir.display().to_string(),
            ])
            .output()
            .expect("chown");
        assert!(out.status.success(), "{}", text(&out));
        // The test's temporary directory above it must be reachable for nobody.
        let mut p = dir.parent();
        while let Some(d) = p {
            if d == Path::new("/") || d == Path::new("/tmp") {
                break;
            }
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d).expect("stat").permissions().mode();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711))
                .expect("chmod");
            p = d.parent();
        }
    }
}

/// Writes a manifest as nobody (write then rename, as an editor does).
fn write_as_nobody(env: &Env, file: &str, text_: &str) {
    let tmp = std::env::temp_dir().join(format!("dh-nobody-{}-{file}", env.instance));
    std::fs::write(&tmp, text_).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let dest = env.manifests.join(file);
    let staged = env.manifests.join(format!(".{file}.new"));
    let out = as_nobody(
        "sh",
        &[
            "-c",
            &format!(
                "cat '{}' > '{}' && mv '{}' '{}'",
                tmp.display(),
                staged.display(),
                staged.display(),
                dest.display()
            ),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let _ = std::fs::remove_file(tmp);
}

/// A root-only directory outside the manifests directory, with one root-only file.
fn root_only(env: &Env, file: &str, content: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.dir.path().join("rootonly");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = dir.join(file);
    std::fs::write(&path, content).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[test]
fn a_database_refused_by_the_host_policy_is_never_seeded_from_its_restore_file() {
    let Some(env) = env_with_postgres("safety-seed") else {
        return;
    };
    hand_to_nobody(&env.manifests);
    let victim = root_only(&env, "victim.dump", "VICTIM-ROW-SSN-078-05-1120");
    let db = |restore: &str| {
        database(
            "evil",
            5940,
            &format!(
                "  readyTimeout: 10m\n  backup: {{schedule: '@daily', to: {{volume: evil-bk}}}}\n  restoreFrom: {restore}\n"
            ),
        )
    };
    write_as_nobody(&env, "db.yaml", &db("latest"));
    let mut up = env.up(&["--resync", "1s"]);
    // No backup exists yet: the seeding fails, and the database runs, never initialised.
    eventually(WAIT, "the first seeding to fail", || {
        let events = text(&env.run("events", &[]));
        events.contains("restore-failed").then_some(())
    });
    // The backup volume the failed seeding mounted is this instance's, so later backups may
    // use it (the engine made it unlabelled, and every backup then failed).
    let labels = common::docker(&[
        "volume",
        "inspect",
        "-f",
        "{{json .Labels}}",
        &format!("dh_{}_evil-bk", env.instance),
    ]);
    assert!(labels.contains(&env.instance), "{labels}");
    write_as_nobody(&env, "db.yaml", &db(&victim.display().to_string()));
    eventually(WAIT, "the database refused", || {
        let s = env.status_of("database", "evil")?;
        (s["phase"] == "Invalid"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("refused by the host policy")))
        .then_some(())
    });
    // Passes run every second: several have seen the refused file by now.
    std::thread::sleep(Duration::from_secs(5));
    let events = text(&env.run("events", &[]));
    assert!(
        !events.contains("victim.dump"),
        "a refused restoreFrom was acted on:\n{events}"
    );
    up.stop();
}

#[test]
fn a_backup_to_a_refused_host_path_writes_nothing_there() {
    let Some(env) = env_with_postgres("safety-backup") else {
        return;
    };
    hand_to_nobody(&env.manifests);
    let target = root_only(&env, "canary", "root");
    let target_dir = target.parent().expect("dir").to_path_buf();
    write_as_nobody(
        &env,
        "db.yaml",
        &database(
            "evil",
            5942,
            "  backup: {schedule: '@daily', to: {volume: evil-bk}}\n",
        ),
    );
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "{}", text(&out));
    // Now the backup target is a root-only host directory the policy does not allow.
    write_as_nobody(
        &env,
        "db.yaml",
        &database(
            "evil",
            5942,
            &format!(
                "  backup: {{schedule: '@daily', to: {{path: {}}}}}\n",
                target_dir.display()
            ),
        ),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    assert!(
        text(&out).contains("refused by the host policy"),
        "{}",
        text(&out)
    );
    // The operator's `db backup` uses the manifest's target: refused as the controller refuses it.
    let out = env.run("db", &["backup", "evil"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refused by the host policy"),
        "{}",
        text(&out)
    );
    let files: Vec<_> = std::fs::read_dir(&target_dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        ["canary"],
        "something was written to the refused path"
    );
}

/// `ln -s` as nobody.
fn link_as_nobody(target: &Path, link: &Path) {
    let out = as_nobody(
        "ln",
        &[
            "-s",
            &target.display().to_string(),
            &link.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_link_in_a_build_context_never_carries_a_host_file_into_the_image_or_the_status() {
    let Some(env) = Env::new("safety-build") else {
        return;
    };
    let _builds = common::RemoveBuilds(env.instance.clone());
    let canary = root_only(&env, "canary.txt", "SEC-CANARY-ROOT-ONLY-51f7cd95c0f4");
    env.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {}\nCOPY leak /leak\nCMD [\"sleep\", \"3600\"]\n",
            common::IMAGE
        ),
    );
    hand_to_nobody(&env.manifests);
    link_as_nobody(&canary, &env.manifests.join("ctx/leak"));
    link_as_nobody(&canary, &env.manifests.join("ctx/Dockerfile.link"));
    write_as_nobody(
        &env,
        "leak.yaml",
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: leak}\nspec:\n  build: ./ctx\n---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: first-line}\nspec:\n  build: {context: ./ctx, dockerfile: Dockerfile.link}\n",
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    let shown = format!(
        "{}{}{}",
        text(&out),
        text(&env.run("get", &["-o", "yaml"])),
        text(&env.run("events", &[]))
    );
    assert!(!shown.contains("SEC-CANARY"), "the canary leaked:\n{shown}");
    // The link went into the image as a link (dangling there), never as the host's file.
    if let Some(c) = env.container("leak") {
        let inside = common::docker(&["exec", &c.id, "sh", "-c", "cat /leak 2>&1; true"]);
        assert!(!inside.contains("SEC-CANARY"), "{inside}");
    }
    // A sparse file in a context builds (the engine refused GNU sparse entries).
    env.write(
        "sparse/Dockerfile",
        &format!(
            "FROM {}\nCOPY disk.img /disk.img\nCMD [\"sleep\", \"3600\"]\n",
            common::IMAGE
        ),
    );
    let img = std::fs::File::create(env.manifests.join("sparse/disk.img")).expect("create");
    img.set_len(8 << 20).expect("a hole of 8 MiB");
    std::fs::write(
        env.manifests.join("leak.yaml"),
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: sparse}\nspec:\n  build: ./sparse\n",
    )
    .expect("write");
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_compose_file_reads_neither_the_controllers_variables_nor_files_linked_from_outside() {
    let Some(env) = Env::new("safety-compose") else {
        return;
    };
    let prod = root_only(
        &env,
        "prod.env",
        "PROD_DB_PASSWORD=ROOTONLY-DOTENV-PASSWORD-4410\n",
    );
    hand_to_nobody(&env.manifests);
    let compose = format!(
        "services:\n  app:\n    image: {}\n    pull_policy: never\n    command: [sleep, '3600']\n    environment:\n      LEAKED: \"${{SEC_CONTROLLER_SECRET}}\"\n      ALLOWED: \"${{SEC_ALLOWED_VAR:-unset}}\"\n",
        common::IMAGE
    );
    write_as_nobody(&env, "compose.yaml", &compose);
    let out = env
        .command("sync")
        .args(["--timeout", "60s", "--allow-secret-env", "SEC_ALLOWED_*"])
        .env("SEC_CONTROLLER_SECRET", "CONTROLLER-ENV-SECRET-9921")
        .env("SEC_ALLOWED_VAR", "the-operator-allowed-this")
        .output()
        .expect("sync");
    assert!(out.status.success(), "{}", text(&out));
    let c = env
        .containers()
        .into_iter()
        .find(|c| c.name.ends_with("app"))
        .expect("the app's container");
    let vars = common::docker(&["inspect", "-f", "{{json .Config.Env}}", &c.id]);
    assert!(!vars.contains("CONTROLLER-ENV-SECRET"), "{vars}");
    assert!(vars.contains("ALLOWED=the-operator-allowed-this"), "{vars}");
    // A `.env` linked to a root-only file is refused, and nothing of it is shown.
    link_as_nobody(&prod, &env.manifests.join(".env"));
    write_as_nobody(
        &env,
        "compose.yaml",
        &compose.replace("SEC_CONTROLLER_SECRET", "PROD_DB_PASSWORD"),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains(".env") && shown.contains("outside"),
        "{shown}"
    );
    assert!(!shown.contains("ROOTONLY"), "{shown}");
}

#[test]
fn a_backup_that_outlasts_several_passes_finishes_and_a_killed_ones_partial_is_removed() {
    let Some(env) = env_with_postgres("safety-longjob") else {
        return;
    };
    let _builds = common::RemoveBuilds(env.instance.clone());
    // The database's image is one dockhand built (so it carries the instance's label, and so
    // does every job of it), with a pg_dump that takes a few seconds.
    env.write(
        "pg/Dockerfile",
        &format!(
            "FROM {}\nRUN cd /usr/lib/postgresql/15/bin && mv pg_dump pg_dump.real && printf '#!/bin/sh\\nsleep 5\\nexec /usr/lib/postgresql/15/bin/pg_dump.real \"$@\"\\n' > pg_dump && chmod 755 pg_dump\n",
            common::POSTGRES_IMAGE
        ),
    );
    let image = format!("{}-slowpg:1", env.instance);
    env.write(
        "img.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: pgimg}}\nspec:\n  image: {image}\n  build: ./pg\n  entrypoint: [sleep, '3600']\n"
        ),
    );
    env.sync();
    env.write(
        "db.yaml",
        &format!(
            "apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: slow}}\nspec:\n  image: {image}\n  port: 5944\n  backup: {{schedule: '@daily', to: {{volume: slow-bk}}}}\n"
        ),
    );
    let mut up = env.up(&["--resync", "1s"]);
    eventually(Duration::from_secs(180), "the database Ready", || {
        (env.status_of("database", "slow")?["phase"] == "Ready").then_some(())
    });
    let volume = format!("dh_{}_slow-bk", env.instance);
    // A `.partial` left by a job killed mid-dump, as an earlier controller's would be.
    let out = env.run("db", &["backup", "slow"]);
    assert!(
        out.status.success(),
        "a backup under up failed:\n{}",
        text(&out)
    );
    common::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "touch",
        "-v",
        &format!("{volume}:/b"),
        common::POSTGRES_IMAGE,
        "/b/slow-20200101T000000Z.dump.partial",
    ]);
    let out = env.run("db", &["backup", "slow"]);
    assert!(
        out.status.success(),
        "a backup under up failed:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("verified"), "{}", text(&out));
    let files = common::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "ls",
        "-v",
        &format!("{volume}:/b"),
        common::POSTGRES_IMAGE,
        "-1",
        "/b",
    ]);
    assert!(!files.contains(".partial"), "{files}");
    assert_eq!(
        files.lines().filter(|l| l.ends_with(".dump")).count(),
        2,
        "{files}"
    );
    let log = up.output();
    assert!(!log.contains("job_slow-backup (orphan"), "{log}");
    up.stop();
}

#[test]
fn networks_take_their_subnets_from_the_operators_pool() {
    let Some(env) = Env::new("safety-pool") else {
        return;
    };
    env.write("a.yaml", &common::server("a", ""));
    let out = env.run(
        "sync",
        &["--timeout", "60s", "--subnet-pool", "10.213.0.0/16"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let net = format!("dh_{}_default", env.instance);
    let subnet = common::docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &net,
    ]);
    let subnet = subnet.trim();
    assert!(
        subnet.starts_with("10.213.") && subnet.ends_with("/24"),
        "{subnet}"
    );
    // A bad pool is a clear error at start, not a failed network later.
    let out = env.run("sync", &["--subnet-pool", "10.213.1.0/16"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not where a /16 starts"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_password_file_ending_in_a_newline_logs_in_and_editing_the_backup_recreates_nothing() {
    let Some(env) = env_with_postgres("safety-pwline") else {
        return;
    };
    env.write("pw.txt", "attacker-known-pw-1\n");
    let secret =
        "apiVersion: dockhand/v1\nkind: Secret\nmetadata: {name: pw}\nspec: {file: pw.txt}\n---\n";
    let db = |extra: &str| {
        format!(
            "{secret}{}",
            database(
                "lines",
                5946,
                &format!("  password: {{fromSecret: pw}}\n{extra}")
            )
        )
    };
    env.write("db.yaml", &db(""));
    let out = env.run("sync", &["--timeout", "90s"]);
    assert!(out.status.success(), "never logged in:\n{}", text(&out));
    let url = common::postgres::url(&env, "lines");
    assert!(url.contains("attacker-known-pw-1@"), "{url}");
    let before = env.container_of("database", "lines").expect("container").id;
    env.write(
        "db.yaml",
        &db("  backup: {schedule: '@daily', to: {volume: lines-bk}}\n"),
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = env.container_of("database", "lines").expect("container").id;
    assert_eq!(before, after, "editing only backup: recreated the database");
}

#[test]
fn a_notify_url_with_a_token_can_stay_out_of_the_command_line() {
    let Some(env) = Env::new("safety-notify") else {
        return;
    };
    let (port, got) = common::receiver();
    let file = env.dir.path().join("notify.urls");
    std::fs::write(
        &file,
        format!("# the team's hook\nhttp://127.0.0.1:{port}/hook?token=NOTIFY-TOKEN-5521\n"),
    )
    .expect("write");
    env.write(
        "bad.yaml",
        &common::shell("bad", "exit 3", "  restartPolicy: Never\n"),
    );
    let mut up = env.up(&["--notify-file", &file.display().to_string()]);
    eventually(WAIT, "the failure notified", || {
        let got = got.lock().expect("lock");
        got.iter()
            .any(|n| n["object"] == "server/bad")
            .then_some(())
    });
    let output = up.output();
    assert!(!output.contains("NOTIFY-TOKEN"), "{output}");
    up.stop();
    // On the command line it works too, with a warning that says where else to put it.
    let out = env
        .command("sync")
        .args([
            "--timeout",
            "5s",
            "--git",
            "https://u:GIT-PASS-77@127.0.0.1:9/x.git",
        ])
        .output()
        .expect("sync");
    let shown = text(&out);
    assert!(shown.contains("--git-token-file"), "{shown}");
    assert!(!shown.contains("GIT-PASS-77"), "{shown}");
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstring");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn a_fifo_or_a_link_to_proc_kmsg_never_stalls_drift_repair_or_shutdown() {
    let Some(env) = Env::new("safety-stall") else {
        return;
    };
    // A compose file that extends a FIFO, and a read-only config directory holding a link to
    // /proc/kmsg: the first stopped drift repair (and SIGTERM) until a writer came, the second
    // blocked the first pass for good.
    env.write(
        "app/compose.yaml",
        "services:\n  a:\n    extends: {file: base.yaml, service: b}\n",
    );
    mkfifo(&env.manifests.join("app/base.yaml"));
    env.write("conf/a.conf", "x\n");
    std::os::unix::fs::symlink("/proc/kmsg", env.manifests.join("conf/k")).expect("symlink");
    env.write(
        "web.yaml",
        &common::server(
            "web",
            "  volumes: [{type: bind, source: ./conf, target: /conf, readOnly: true}]\n",
        ),
    );
    hand_to_nobody(&env.manifests);
    let mut up = env.up(&["--resync", "2s"]);
    let first = eventually(Duration::from_secs(30), "web running", || {
        env.container("web").filter(common::Container::running)
    });
    let started = |id: &str| common::docker(&["inspect", "-f", "{{.State.StartedAt}}", id]);
    let before = started(&first.id);
    common::docker(&["kill", &first.id]);
    eventually(Duration::from_secs(30), "web repaired", || {
        let c = env.container("web").filter(common::Container::running)?;
        (c.id != first.id || started(&c.id) != before).then_some(())
    });
    let status = env.status_of("server", "web").expect("status");
    assert_ne!(status["phase"], "Invalid", "{status}");
    let events = text(&env.run("events", &[]));
    assert!(
        events.contains("FIFO"),
        "the FIFO is an error at once:\n{events}"
    );
    let (_, took) = up.stop();
    assert!(took < Duration::from_secs(15), "SIGTERM took {took:?}");
}
