//! Test harness: a private instance, manifests directory and state file per test, against the
//! real Docker engine, observed independently of dockhand through the `docker` CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "dockhand/busybox:local";

/// A PostgreSQL image with the official image's contract, built from Debian's packages.
pub const POSTGRES_IMAGE: &str = "dockhand/postgres:15";

/// Builds the PostgreSQL image once per test binary (the script skips an existing image).
pub fn postgres_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image("build-postgres-image.sh", POSTGRES_IMAGE);
    });
}

/// A command that stops at once on SIGTERM, so removals in tests are quick.
pub const SLEEPER: &str = r#"["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

/// Runs one of the project's image scripts (each skips an image that exists).
fn build_image(script: &str, image: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new("bash")
        .arg(path)
        .arg(image)
        .output()
        .expect("run an image script");
    assert!(
        out.status.success(),
        "{script} failed to build {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the engine is reachable. With `CI` set, an unreachable engine fails the test.
fn docker_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let ok = Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok && std::env::var_os("CI").is_some() {
            panic!("CI is set but the Docker engine is unreachable: Docker tests must run in CI");
        }
        if ok {
            build_image("build-images.sh", IMAGE);
        }
        ok
    })
}

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

/// A running `dockhand up`; stopped with SIGTERM when dropped.
pub struct Controller {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Controller {
    /// Sends SIGTERM and waits; returns the exit status and how long stopping took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("controller running");
        let started = Instant::now();
        terminate(&child);
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "dockhand up did not stop within 30s of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The base URL of this controller's API, once it logged it (`http://127.0.0.1:PORT`).
    pub fn api_url(&self) -> String {
        eventually(Duration::from_secs(20), "the api to listen", || {
            let out = self.output();
            let at = out.find("api listening on http://")? + "api listening on ".len();
            let url: String = out[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                .collect();
            Some(url)
        })
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("controller running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&c);
            let _ = c.wait();
        }
    }
}

/// Sends SIGTERM, as a service manager or Ctrl-C would.
fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill only sends a signal to our own child process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: String,
    pub labels: String,
}

impl Container {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    pub fn label(&self, key: &str) -> Option<String> {
        self.labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }
}

pub fn containers_with_label(label: &str) -> Vec<Container> {
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Labels}}",
    ]);
    let mut v: Vec<Container> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, '\t');
            Some(Container {
                id: f.next()?.to_owned(),
                name: f.next()?.to_owned(),
                state: f.next()?.to_owned(),
                labels: f.next().unwrap_or_default().to_owned(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Runs the docker CLI and returns stdout (empty on failure).
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A Server manifest running the test image.
pub fn server(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: {SLEEPER}\n{extra}"
    )
}

/// A Server running `script` with `sh -c` (stopping at once on SIGTERM), plus extra spec lines.
pub fn shell(name: &str, script: &str, extra: &str) -> String {
    let script = format!("trap 'exit 0' TERM; {script}");
    format!(
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec:\n  image: {IMAGE}\n  pullPolicy: Never\n  command: [\"sh\", \"-c\", {script:?}]\n{extra}"
    )
}

/// Polls `f` until it returns `Some`, failing the test after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stand-in for the engine's socket that a test can cut and restore, to take the engine away
/// from dockhand without stopping the real one (other tests share it).
pub struct FlakyEngine {
    pub path: PathBuf,
    running: Option<(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl FlakyEngine {
    /// A proxy at `path`, not yet accepting connections.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            running: None,
            conns: Default::default(),
        }
    }

    fn upstream() -> PathBuf {
        match std::env::var("DOCKER_HOST") {
            Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
            _ => PathBuf::from("/var/run/docker.sock"),
        }
    }

    /// Starts forwarding connections to the real engine.
    pub fn restore(&mut self) {
        use std::io::ErrorKind;
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, conns) = (stop.clone(), self.conns.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = UnixStream::connect(Self::upstream()) else {
                            continue;
                        };
                        let mut list = conns.lock().expect("lock");
                        for s in [&client, &server] {
                            if let Ok(c) = s.try_clone() {
                                list.push(c);
                            }
                        }
                        for (mut from, mut to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => break,
                }
            }
        });
        self.running = Some((stop, handle));
    }

    /// Stops accepting and breaks every open connection, as an engine going away does.
    pub fn cut(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = handle.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for FlakyEngine {
    fn drop(&mut self) {
        self.cut();
    }
}

/// A response of the API: status, and the body as JSON (or as a JSON string when it is not).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
}

fn http_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// One HTTP request to the API, over a real connection.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    http_runtime().block_on(async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = client.request(method, url).timeout(Duration::from_secs(20));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        Reply { status, body, text }
    })
}

/// Reads a server-sent event stream until `want` appears in it (or `within` passes); returns
/// what was read.
pub fn read_sse_until(url: &str, within: Duration, start: impl FnOnce(), want: &str) -> String {
    http_runtime().block_on(async {
        let mut resp = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("stream request");
        assert_eq!(resp.status().as_u16(), 200);
        start();
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + within;
        while !seen.contains(want) {
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
        seen
    })
}
