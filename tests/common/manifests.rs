//! Manifest builders and waiting for a condition.

use std::process::Output;
use std::time::{Duration, Instant};

use super::*;

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

/// A port no one listens on now, for a test's own server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A test's own server program (a git daemon, a registry), answering on 127.0.0.1:`port`,
/// killed when dropped.
pub struct Served(std::process::Child);

impl Served {
    pub fn start(mut cmd: std::process::Command, port: u16, what: &str) -> Served {
        use std::process::Stdio;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let served = Served(child);
        eventually(Duration::from_secs(20), what, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
