//! The core of a reconcile against Podman's Docker API: a private `podman system service` on a
//! socket of its own (its own storage and configuration in a temporary directory, so the
//! machine's own engines are untouched), fed the test image, and dockhand pointed at it with
//! `DOCKER_HOST`. Podman is installed by `.ci/run`; without it the test fails in CI and is
//! skipped elsewhere. The servers use `network: none`: Podman's network backend keeps its DNS
//! state machine-wide (`/run/containers/networks`), which a test must not leave behind.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, text, Env, IMAGE};

/// A Podman service that lives as long as the test.
struct Podman {
    dir: tempfile::TempDir,
    service: Child,
}

impl Podman {
    fn start() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "podman is missing in CI");
            eprintln!("skipping: podman is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let root = root.as_path();
        // As measured in a container: no systemd, cgroupfs, a low hard nofile limit, no overlay.
        std::fs::write(
            root.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=4096:4096\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{0}/tmp\"\n[network]\nnetwork_config_dir = \"{0}/networks\"\n",
                root.display()
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                root.display()
            ),
        )
        .expect("storage.conf");
        let socket = root.join("podman.sock");
        let mut cmd = podman_in(root);
        cmd.args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("service.log")).expect("log"));
        let service = cmd.spawn().expect("podman system service");
        let podman = Podman { dir, service };
        eventually(Duration::from_secs(30), "podman's socket", || {
            socket.exists().then_some(())
        });
        // The test image, from the machine's engine.
        let mut saved = Command::new("docker")
            .args(["image", "save", IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker image save");
        let load = podman_in(root)
            .arg("load")
            .stdin(saved.stdout.take().expect("stdout"))
            .output()
            .expect("podman load");
        assert!(saved.wait().expect("docker image save").success());
        assert!(load.status.success(), "{}", text(&load));
        Some(podman)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("podman.sock").display())
    }

    fn podman(&self, args: &[&str]) -> String {
        let out = podman_in(self.dir.path())
            .args(args)
            .output()
            .expect("podman");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn podman_in(root: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", root.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", root.join("storage.conf"));
    cmd
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = podman_in(self.dir.path())
            .args(["rm", "-af", "-t", "0"])
            .output();
        let _ = podman_in(self.dir.path())
            .args(["network", "prune", "-f"])
            .output();
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

fn sync(env: &Env, podman: &Podman, timeout: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = env.command("sync");
    cmd.args(["--timeout", timeout, "--prune-delay", "0s"])
        .args(extra)
        .env("DOCKER_HOST", podman.host());
    cmd.output().expect("dockhand sync")
}

fn id_of(podman: &Podman, name: &str) -> String {
    podman
        .podman(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.ID}}",
        ])
        .trim()
        .to_owned()
}

#[test]
fn the_core_of_a_reconcile_works_on_podmans_docker_api() {
    let Some(env) = Env::new("podman") else {
        return;
    };
    let Some(podman) = Podman::start() else {
        return;
    };
    let web = format!("dh_{}_server_web", env.instance);
    let server = |v: &str, extra: &str| {
        common::server(
            "web",
            &format!("  network: none\n  env: {{V: \"{v}\"}}\n{extra}"),
        )
    };
    // Created, and the dependent after it.
    env.write("web.yaml", &server("1", ""));
    env.write(
        "api.yaml",
        &common::server("api", "  network: none\n  dependsOn: [web]\n"),
    );
    let out = sync(&env, &podman, "30s", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let first = id_of(&podman, &web);
    assert!(!first.is_empty(), "no container on podman");
    // A no-op pass leaves it; a spec change recreates it.
    let out = sync(&env, &podman, "30s", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(id_of(&podman, &web), first, "needless recreate");
    env.write("web.yaml", &server("2", ""));
    let out = sync(&env, &podman, "30s", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let second = id_of(&podman, &web);
    assert_ne!(second, first);
    // Killed: restarted.
    podman.podman(&["kill", &web]);
    let out = sync(&env, &podman, "30s", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let state = podman.podman(&["inspect", "-f", "{{.State.Status}}", &web]);
    assert_eq!(state.trim(), "running");
    // A health check Podman never runs (no systemd) is not taken for health.
    env.write(
        "web.yaml",
        &server("3", "  healthCheck: {exec: [\"true\"], interval: 1s}\n"),
    );
    let out = sync(&env, &podman, "5s", &[]);
    let st = env.status_of("server", "web").expect("status");
    let ran = podman.podman(&["inspect", "-f", "{{.State.Health.Status}}", &web]);
    if ran.trim() == "healthy" {
        assert_eq!(st["phase"], "Ready", "{st}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert_eq!(st["observedGeneration"], 3, "{st}");
        assert_ne!(st["phase"], "Ready", "health taken for granted: {st}");
    }
    // Pruned: nothing of this instance is left on podman.
    env.remove("web.yaml");
    env.remove("api.yaml");
    let out = sync(&env, &podman, "30s", &["--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out));
    let left = podman.podman(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dockhand.instance={}", env.instance),
    ]);
    assert!(left.trim().is_empty(), "left on podman: {left}");
}
