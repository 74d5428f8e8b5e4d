//! The real engine as the tests see it: the locally built images, and the `docker` CLI for
//! observing containers independently of dockhand.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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
pub fn build_image(script: &str, image: &str) {
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
pub fn docker_ready() -> bool {
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

/// Removes every container of a test's instance (and their anonymous volumes).
///
/// A controller stopped mid-pass can leave a create request the engine finishes after the
/// first listing (seen as a `Created` container after a CI run): the instance is listed again
/// shortly after, until it is empty (three rounds at most).
pub fn remove_containers_of(instance: &str) {
    let label = format!("label=dockhand.instance={instance}");
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() && round > 0 {
            return;
        }
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            docker(&args);
        }
    }
}

/// Removes, when dropped, the images a test's builds made (they carry its instance's label).
pub struct RemoveBuilds(pub String);

impl Drop for RemoveBuilds {
    fn drop(&mut self) {
        // The containers first: an image a container uses cannot be removed.
        remove_containers_of(&self.0);
        let label = format!("label=dockhand.instance={}", self.0);
        let ids = docker(&["images", "-q", "--filter", &label]);
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rmi", "-f", id]).output();
        }
    }
}

/// Whether the program `name` (a test's real peer, installed by `.ci/run`) is here: in CI its
/// absence fails the test, elsewhere the test is skipped with a message.
pub fn tool_present(name: &str) -> bool {
    if Command::new(name).arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{name} is missing in CI");
    eprintln!("skipping: {name} is not installed (apt-get install {name})");
    false
}
