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
