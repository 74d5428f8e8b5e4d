//! `Env`: one test's private instance, manifests directory and state file, cleaned up on drop.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::*;

/// One test's world. Dropping it removes every container and volume of its instance.
pub struct Env {
    pub instance: String,
    pub dir: tempfile::TempDir,
    pub manifests: PathBuf,
    pub state: PathBuf,
}

impl Env {
    /// `None` when Docker is unavailable outside CI (the test then returns early, saying so).
    pub fn new(name: &str) -> Option<Env> {
        if !docker_ready() {
            eprintln!("skipping {name}: no Docker engine (set CI=1 to make this a failure)");
            return None;
        }
        let instance = format!("t{}-{name}", std::process::id());
        assert!(instance.len() <= 63, "instance name too long: {instance}");
        let dir = tempfile::tempdir().expect("tempdir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("mkdir manifests");
        let state = dir.path().join("state.db");
        let env = Env {
            instance,
            dir,
            manifests,
            state,
        };
        env.cleanup();
        Some(env)
    }

    pub fn write(&self, file: &str, text: &str) {
        let path = self.manifests.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        // Write then rename, as editors and git do, so a watcher never sees half a file.
        let tmp = self
            .manifests
            .join(format!(".{}.tmp", file.replace('/', "_")));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, &path).expect("rename manifest");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    /// Runs `dockhand VERB --manifests … --state … --instance … ARGS`.
    pub fn run(&self, verb: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(verb);
        cmd.args(args);
        cmd.output().expect("run dockhand")
    }

    /// `dockhand VERB` with the flags that verb takes: manifests, state file and instance for
    /// the verbs that reconcile, state file and instance for those that read it, and the
    /// instance alone for those that only talk to the engine.
    pub fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        cmd.arg(verb);
        if matches!(verb, "up" | "sync" | "diff") {
            cmd.arg("--manifests").arg(&self.manifests);
        }
        if matches!(verb, "completion" | "schema") {
            return cmd;
        }
        if !matches!(verb, "logs" | "exec") {
            cmd.arg("--state").arg(&self.state);
        }
        cmd.arg("--instance").arg(&self.instance);
        cmd.env("DOCKHAND_LOG", "info");
        cmd
    }

    /// `dockhand sync`, which must succeed.
    pub fn sync(&self) -> Output {
        let out = self.run("sync", &["--timeout", "60s"]);
        assert!(out.status.success(), "sync failed:\n{}", text(&out));
        out
    }

    /// A server as `get -o json` shows it, or `None` while no pass has stored it.
    pub fn object(&self, name: &str) -> Option<serde_json::Value> {
        self.object_of("server", name)
    }

    /// An object of `kind` as `get -o json` shows it, or `None` while no pass has stored it.
    pub fn object_of(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        let out = self.run("get", &[kind, name, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v[0].clone())
    }

    /// The `status` of an object, as `get -o json` shows it.
    pub fn status_of(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        self.object_of(kind, name).map(|o| o["status"].clone())
    }

    /// This instance's containers, by name.
    pub fn containers(&self) -> Vec<Container> {
        containers_with_label(&format!("dockhand.instance={}", self.instance))
    }

    pub fn container(&self, name: &str) -> Option<Container> {
        self.container_of("server", name)
    }

    pub fn container_of(&self, kind: &str, name: &str) -> Option<Container> {
        let full = format!("dh_{}_{kind}_{name}", self.instance);
        self.containers().into_iter().find(|c| c.name == full)
    }

    /// Spawns `dockhand up` with its output in the test's directory.
    pub fn up(&self, args: &[&str]) -> Controller {
        self.up_with_env(args, &[])
    }

    /// Like `up`, with extra environment variables (e.g. another `DOCKER_HOST`).
    pub fn up_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Controller {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.path().join(format!("up-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = self.command("up");
        // Tests run side by side: each controller serves its API on a port of its own.
        if !args.contains(&"--api") {
            cmd.args(["--api", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file);
        Controller {
            child: Some(cmd.spawn().expect("spawn dockhand up")),
            log,
        }
    }

    fn cleanup(&self) {
        let label = format!("label=dockhand.instance={}", self.instance);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            docker(&args);
        }
        let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
        for v in vols.split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
        let nets = docker(&["network", "ls", "-q", "--filter", &label]);
        for n in nets.split_whitespace() {
            docker(&["network", "rm", n]);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.cleanup();
    }
}
