//! The container options real services use, against the real engine: each one reaches the
//! container, env files are read (and an edit recreates), the host-reaching ones wait for the
//! operator's flag, and images' own health checks count (or are switched off).

mod common;

use common::{docker, eventually, text, Env, IMAGE, SLEEPER};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id]).trim().to_owned()
}

fn exec(id: &str, script: &str) -> String {
    docker(&["exec", id, "sh", "-c", script]).trim().to_owned()
}

#[test]
fn container_options_and_an_env_file_reach_the_container() {
    let Some(env) = Env::new("opts") else {
        return;
    };
    env.write(
        ".env",
        "# the app's settings\nGREETING=\"hello there\"\nMODE=file\nexport LEVEL=3\n",
    );
    let options = "  hostname: web-1\n  extraHosts: {db.local: 10.9.8.7}\n  capDrop: [ALL]\n  capAdd: [NET_BIND_SERVICE, CHOWN]\n  sysctls: {net.core.somaxconn: \"1024\"}\n  shmSize: 32m\n  tmpfs: ['/run:size=8m']\n  ulimits: {nofile: {soft: 1024, hard: 2048}}\n  init: true\n  stopSignal: SIGINT\n  readOnlyRootFilesystem: true\n  securityOpt: [no-new-privileges]\n  tty: true\n  stdin: true\n  envFile: .env\n  env: {MODE: manifest}\n  ports: ['127.0.0.1::80']\n";
    env.write("web.yaml", &common::server("web", options));
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let c = env.container("web").expect("container");
    let id = c.id.as_str();
    assert_eq!(exec(id, "hostname"), "web-1");
    assert!(exec(id, "cat /etc/hosts").contains("10.9.8.7\tdb.local"));
    assert_eq!(exec(id, "cat /proc/sys/net/core/somaxconn"), "1024");
    assert_eq!(
        exec(id, "ulimit -n; ulimit -Hn"),
        "1024\n2048",
        "the container's ulimits: {}; its process: {}",
        inspect(id, "{{json .HostConfig.Ulimits}}"),
        exec(id, "cat /proc/1/limits | grep -i 'open files'; cat /proc/self/limits | grep -i 'open files'")
    );
    assert!(exec(id, "df -k /dev/shm").contains("32768"), "shm size");
    assert!(exec(id, "grep ' /run ' /proc/mounts").contains("tmpfs"));
    assert!(exec(id, "touch /x 2>&1 || echo refused").contains("refused"));
    // The env file under `env`: the manifest's MODE wins.
    let vars = exec(id, "echo \"$GREETING|$MODE|$LEVEL\"");
    assert_eq!(vars, "hello there|manifest|3");
    for (format, want) in [
        ("{{.HostConfig.Init}}", "true"),
        ("{{.Config.StopSignal}}", "SIGINT"),
        ("{{.Config.Tty}} {{.Config.OpenStdin}}", "true true"),
        ("{{.HostConfig.CapDrop}}", "[ALL]"),
        ("{{.HostConfig.CapAdd}}", "[NET_BIND_SERVICE CHOWN]"),
        ("{{.HostConfig.SecurityOpt}}", "[no-new-privileges]"),
        (
            "{{(index .HostConfig.PortBindings \"80/tcp\" 0).HostIp}}",
            "127.0.0.1",
        ),
    ] {
        assert_eq!(inspect(id, format), want, "{format}");
    }
    // An edit of the env file recreates the container; a no-op pass does not.
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        env.container("web").expect("container").id,
        c.id,
        "needless recreate"
    );
    env.write(".env", "GREETING=changed\n");
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    let c2 = env.container("web").expect("container");
    assert_ne!(c2.id, c.id, "the env file's edit did not recreate");
    assert_eq!(
        exec(&c2.id, "echo \"$GREETING|$MODE|$LEVEL\""),
        "changed|manifest|"
    );
    // A broken env file holds the server back with the line at fault; the container stays.
    env.write(".env", "GREETING=ok\nNOT A VARIABLE\n");
    let out = env.run("sync", &["--timeout", "20s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let st = env.status_of("server", "web").expect("status");
    assert_eq!(st["phase"], "Invalid", "{st}");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.envFile[0]") && message.contains("line 2"),
        "{st}"
    );
    assert_eq!(env.container("web").expect("kept").id, c2.id);
}

#[test]
fn host_reaching_options_wait_for_the_operators_flag() {
    let Some(env) = Env::new("opts-host") else {
        return;
    };
    let refused = |args: &[&str], flag: &str| {
        let mut all = vec!["--timeout", "20s"];
        all.extend_from_slice(args);
        let out = env.run("sync", &all);
        assert!(!out.status.success(), "{}", text(&out));
        let st = env.status_of("server", "web").expect("status");
        assert_eq!(st["phase"], "Invalid", "{st}");
        let message = st["message"].as_str().unwrap_or_default();
        assert!(message.contains(flag), "{flag}: {st}");
        assert!(env.container("web").is_none(), "created anyway");
    };
    env.write(
        "web.yaml",
        &common::server("web", "  privileged: true\n  capAdd: [NET_ADMIN]\n"),
    );
    refused(&[], "--allow-privileged");
    refused(&["--allow-privileged"], "--allow-capability NET_ADMIN");
    // An added capability runs once allowed.
    env.write(
        "web.yaml",
        &common::server("web", "  capAdd: [NET_ADMIN]\n"),
    );
    refused(&[], "--allow-capability NET_ADMIN");
    let out = env.run(
        "sync",
        &["--timeout", "60s", "--allow-capability", "NET_ADMIN"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let c = env.container("web").expect("container");
    assert_eq!(inspect(&c.id, "{{.HostConfig.CapAdd}}"), "[NET_ADMIN]");
    // A privileged container is asked for once allowed (whether this engine, itself short of
    // capabilities, can start one is its business: a refusal is reported, never success).
    env.write("web.yaml", &common::server("web", "  privileged: true\n"));
    let out = env.run("sync", &["--timeout", "20s", "--allow-privileged"]);
    let c = env.container("web").expect("container");
    assert_eq!(inspect(&c.id, "{{.HostConfig.Privileged}}"), "true");
    assert_eq!(out.status.success(), c.running(), "{}", text(&out));
}

#[test]
fn an_images_own_health_check_counts_for_healthy_and_disable_switches_it_off() {
    let Some(env) = Env::new("opts-health") else {
        return;
    };
    // An image with a HEALTHCHECK of its own, made from the test image.
    let image = format!("dockhand/healthy:{}", env.instance);
    let base = docker(&["create", IMAGE, "true"]);
    docker(&[
        "commit",
        "--change",
        "HEALTHCHECK --interval=1s --retries=1 CMD true",
        base.trim(),
        &image,
    ]);
    docker(&["rm", base.trim()]);
    let _image = RemoveImage(image.clone(), env.instance.clone());
    let with_image = |name: &str, extra: &str| {
        format!(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n  pullPolicy: Never\n  command: {SLEEPER}\n{extra}"
        )
    };
    env.write("api.yaml", &with_image("api", ""));
    env.write(
        "off.yaml",
        &with_image("off", "  healthCheck: {disable: true}\n"),
    );
    env.write(
        "web.yaml",
        &common::server("web", "  dependsOn: [{name: api, condition: Healthy}]\n"),
    );
    let out = env.run("sync", &["--timeout", "60s"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.container("web").is_some_and(|c| c.running()));
    let api = env.container("api").expect("api");
    assert_eq!(inspect(&api.id, "{{.State.Health.Status}}"), "healthy");
    let off = env.container("off").expect("off");
    assert_eq!(
        inspect(&off.id, "{{json .Config.Healthcheck.Test}}"),
        "[\"NONE\"]"
    );
    // Depending on a server whose check is switched off is a manifest error.
    env.write(
        "web.yaml",
        &common::server("web", "  dependsOn: [{name: off, condition: Healthy}]\n"),
    );
    let out = env.run("sync", &["--timeout", "20s"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("disabled"), "{}", text(&out));
    eventually(WAIT, "web keeps its last good spec", || {
        env.container("web").filter(|c| c.running())
    });
}

/// Removes a test's own image (and first the containers of its instance, which use it) when
/// the test ends, however it ends.
struct RemoveImage(String, String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        common::remove_containers_of(&self.1);
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .output();
    }
}

#[test]
fn editing_a_read_only_config_file_recreates_only_the_servers_that_mount_it() {
    let Some(env) = Env::new("opts-conf") else {
        return;
    };
    env.write("conf/app.conf", "listen 80;\n");
    env.write("conf/extra/more.conf", "gzip on;\n");
    env.write("data/state", "1\n");
    let bind = |source: &str, read_only: bool| {
        format!(
            "  volumes: [{{type: bind, source: {source}, target: /cfg, readOnly: {read_only}}}]\n"
        )
    };
    env.write(
        "file.yaml",
        &common::server("file", &bind("./conf/app.conf", true)),
    );
    env.write(
        "dir.yaml",
        &common::server("dir", &bind("./conf/extra", true)),
    );
    env.write("data.yaml", &common::server("data", &bind("./data", false)));
    env.write("plain.yaml", &common::server("plain", ""));
    let sync = || {
        let out = env.run("sync", &["--timeout", "60s"]);
        assert!(out.status.success(), "{}", text(&out));
        ["file", "dir", "data", "plain"].map(|n| env.container(n).expect("container").id)
    };
    let before = sync();
    assert_eq!(sync(), before, "a no-op pass recreated something");
    // The file one server mounts: that server alone.
    env.write("conf/app.conf", "listen 8080;\n");
    let after = sync();
    assert_ne!(after[0], before[0], "file not recreated");
    assert_eq!(after[1..], before[1..], "others recreated");
    assert_eq!(exec(&after[0], "cat /cfg"), "listen 8080;");
    // A file inside a mounted directory: that server alone.
    env.write("conf/extra/more.conf", "gzip off;\n");
    let again = sync();
    assert_ne!(again[1], after[1], "dir not recreated");
    assert_eq!(
        [again[0].clone(), again[2].clone(), again[3].clone()],
        [after[0].clone(), after[2].clone(), after[3].clone()]
    );
    // Data in a read-write bind is not config.
    env.write("data/state", "2\n");
    assert_eq!(sync(), again, "a read-write bind counted");
}

#[test]
fn an_image_that_cannot_be_pulled_is_reported_as_the_pull_error() {
    let Some(env) = Env::new("opts-pull") else {
        return;
    };
    env.write(
        "web.yaml",
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec:\n  image: dockhand.invalid/no-such-image:1\n",
    );
    let out = env.run("sync", &["--timeout", "30s"]);
    assert!(!out.status.success(), "{}", text(&out));
    let st = env.status_of("server", "web").expect("status");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(message.contains("pulling it failed"), "{st}");
    assert!(!message.contains("cannot reach the docker engine"), "{st}");
}
