//! A Docker engine of the test's own, for tests that must restart an engine: a `dockerd` with
//! its own data root and socket, in a network namespace and a mount namespace of its own (the
//! machine's engine is never restarted). Needs root; removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct PrivateEngine {
    dir: PathBuf,
    netns: String,
    pub socket: PathBuf,
    /// The `dockerd` process (nsenter, unshare and sh exec into it), to reap when it exits.
    child: std::sync::Mutex<Option<std::process::Child>>,
}

impl PrivateEngine {
    /// Starts one under `dir` (short enough for a socket path) and loads `image` into it from
    /// the machine's engine. Panics if it cannot start.
    pub fn start(dir: &Path, image: &str) -> PrivateEngine {
        assert!(
            nix_is_root(),
            "a private engine needs root (unshare, nsenter, network namespaces)"
        );
        let netns = format!("dh{}", std::process::id());
        let engine = PrivateEngine {
            dir: dir.to_owned(),
            socket: dir.join("docker.sock"),
            netns,
            child: std::sync::Mutex::new(None),
        };
        std::fs::write(dir.join("daemon.json"), "{}").expect("config");
        let script = format!(
            "#!/bin/sh\n\
             mount --make-rslave /\n\
             mkdir -p {d}/cg\n\
             mount --rbind /sys/fs/cgroup {d}/cg\n\
             mount -t sysfs sysfs /sys\n\
             mount --rbind {d}/cg /sys/fs/cgroup\n\
             exec dockerd --data-root {d}/data --exec-root {d}/exec --host unix://{d}/docker.sock \
             --pidfile {d}/dockerd.pid --config-file {d}/daemon.json --iptables=false \
             --ip6tables=false --bridge=none --containerd-namespace {n} \
             --containerd-plugins-namespace {n}-plugins\n",
            d = dir.display(),
            n = engine.netns
        );
        std::fs::write(dir.join("run.sh"), script).expect("script");
        let _ = Command::new("ip")
            .args(["netns", "delete", &engine.netns])
            .output();
        let ok = Command::new("ip")
            .args(["netns", "add", &engine.netns])
            .status()
            .expect("ip netns add");
        assert!(ok.success(), "cannot create a network namespace");
        engine.launch();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | docker -H unix://{} load",
                engine.socket.display()
            ))
            .output()
            .expect("load image");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        engine
    }

    fn launch(&self) {
        let log = std::fs::File::create(self.dir.join("dockerd.log")).expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .args(["unshare", "--mount", "--propagation", "slave", "sh"])
            .arg(self.dir.join("run.sh"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        *self.child.lock().expect("lock") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "the private engine did not start: {}",
                std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker -H <this engine> ARGS`, its stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .expect("docker");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Stops the engine (its containers stop with it) and waits until it is gone.
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().expect("lock").take() else {
            return;
        };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the engine and starts it again on the same data.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.answers() {
            let ids = self.docker(&["ps", "-aq"]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                self.docker(&[&["rm", "-f"][..], &ids].concat());
            }
        }
        self.stop();
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .output();
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
