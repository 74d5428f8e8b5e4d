//! The host policy: what a manifest may take from the host the engine runs on.
//!
//! The engine socket is root, so whoever may write a manifest (a file, a table row, an API call)
//! would otherwise be root on the host through a bind mount of `/` or of the socket, or through
//! the host's network stack. By default a manifest gets none of that: bind sources must lie
//! inside the manifests directory (after symlinks are resolved, so a relative path or a link
//! cannot escape it), and everything else needs the operator's explicit opt-in, one flag per
//! capability. A refused object is `Invalid` with a message naming the flag; nothing of it is
//! created, and containers it already has are left alone.

use std::path::{Path, PathBuf};

use crate::manifest::server::VolumeType;
use crate::manifest::{Object, Spec};
use crate::source::Origin;

/// The engine sockets dockhand knows of; binding one of them (or a directory holding one)
/// hands the container the engine.
const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
];

/// What an operator allows manifests to take from the host. The default allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// Bind sources under these paths are allowed (`--allow-host-path`).
    pub host_paths: Vec<PathBuf>,
    /// A bind source may expose the engine's socket (`--allow-engine-socket`).
    pub engine_socket: bool,
    /// A server may use the host's network stack, `network: host` (`--allow-host-network`).
    pub host_network: bool,
}

impl HostPolicy {
    /// Why `object` may not run under this policy, or `None` when it may. `manifests` is the
    /// watched directory, inside which the directory source's bind sources are always allowed.
    pub fn refusal(&self, object: &Object, manifests: Option<&Path>) -> Option<String> {
        let Spec::Server(spec) = &object.spec else {
            return None;
        };
        if spec.network.as_ref().is_some_and(|n| n.0 == "host") && !self.host_network {
            return Some(
                "spec.network: host shares the host's network stack; refused by the host policy (allowed only with --allow-host-network)".into(),
            );
        }
        if !spec.volumes.iter().any(|v| v.kind == VolumeType::Bind) {
            return None;
        }
        let inside = match (Origin::of(&object.source), manifests) {
            (Origin::Directory, Some(dir)) => Some(resolve(dir)),
            _ => None,
        };
        for (i, v) in spec.volumes.iter().enumerate() {
            if v.kind != VolumeType::Bind {
                continue;
            }
            let source = resolve(Path::new(&v.source));
            let in_manifests = inside.as_ref().is_some_and(|d| source.starts_with(d));
            let allowed = self
                .host_paths
                .iter()
                .any(|p| source.starts_with(resolve(p)));
            if !in_manifests && !allowed {
                return Some(format!(
                    "spec.volumes[{i}].source: {} is a host path outside the manifests directory; refused by the host policy (allowed only under --allow-host-path PREFIX)",
                    v.source
                ));
            }
            if !self.engine_socket && exposes_engine_socket(&source) {
                return Some(format!(
                    "spec.volumes[{i}].source: {} exposes the engine socket; refused by the host policy (allowed only with --allow-engine-socket)",
                    v.source
                ));
            }
        }
        None
    }
}

/// Whether binding `source` would put an engine socket inside the container: it is a socket
/// or a directory above one.
fn exposes_engine_socket(source: &Path) -> bool {
    engine_sockets()
        .iter()
        .any(|socket| socket.starts_with(source))
}

/// The engine sockets, as written and with links resolved; looked up once per process.
fn engine_sockets() -> &'static [PathBuf] {
    static SOCKETS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    SOCKETS.get_or_init(|| {
        let from_env = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from));
        ENGINE_SOCKETS
            .iter()
            .map(PathBuf::from)
            .chain(from_env)
            .flat_map(|socket| [resolve(&socket), socket])
            .collect()
    })
}

/// The path with every symlink resolved, as far as it exists; the rest is joined lexically
/// (with `..` applied), so a path that does not exist yet cannot escape either.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            break real;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => break existing,
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        out.push(part);
    }
    crate::manifest::parse::lexical(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn server(dir: &Path, volumes: &str, extra: &str) -> Object {
        let text = format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: web}}\nspec:\n  image: busybox\n  volumes:\n{volumes}{extra}");
        parse_str(&text, "web.yaml", Some(dir))
            .expect("parses")
            .remove(0)
    }

    fn bind(source: &str) -> String {
        format!("    - {{type: bind, source: '{source}', target: /x}}\n")
    }

    #[test]
    fn binds_inside_the_manifests_directory_are_allowed_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("www")).expect("mkdir");
        let o = server(dir.path(), &bind("./www"), "");
        assert_eq!(HostPolicy::default().refusal(&o, Some(dir.path())), None);
    }

    #[test]
    fn host_paths_escapes_and_symlinks_out_are_refused_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).expect("symlink");
        let policy = HostPolicy::default();
        for source in ["/", "/etc", "../../etc", "./etc", "./etc/../../tmp"] {
            let o = server(dir.path(), &bind(source), "");
            let why = policy.refusal(&o, Some(dir.path()));
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("--allow-host-path")),
                "{source}: {why:?}"
            );
        }
        // Not from the directory: no manifests directory to be inside of.
        let mut o = server(dir.path(), &bind("/srv"), "");
        o.source = "api:server/web".into();
        assert!(policy.refusal(&o, Some(dir.path())).is_some());
    }

    #[test]
    fn an_allowed_prefix_admits_paths_below_it_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        let policy = HostPolicy {
            host_paths: vec![data.path().to_owned()],
            ..HostPolicy::default()
        };
        let below = format!("{}/app", data.path().display());
        let o = server(dir.path(), &bind(&below), "");
        assert_eq!(policy.refusal(&o, Some(dir.path())), None);
        let o = server(dir.path(), &bind(&format!("{below}/../../..")), "");
        assert!(policy.refusal(&o, Some(dir.path())).is_some());
    }

    #[test]
    fn the_engine_socket_needs_its_own_flag_even_under_an_allowed_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut policy = HostPolicy {
            host_paths: vec!["/".into()],
            ..HostPolicy::default()
        };
        for source in ["/var/run/docker.sock", "/run", "/"] {
            let o = server(dir.path(), &bind(source), "");
            let why = policy.refusal(&o, Some(dir.path()));
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("--allow-engine-socket")),
                "{source}: {why:?}"
            );
        }
        policy.engine_socket = true;
        let o = server(dir.path(), &bind("/var/run/docker.sock"), "");
        assert_eq!(policy.refusal(&o, Some(dir.path())), None);
    }

    #[test]
    fn host_networking_needs_its_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = server(dir.path(), "    []\n", "  network: host\n");
        let why = HostPolicy::default().refusal(&o, Some(dir.path()));
        assert!(why.is_some_and(|w| w.contains("--allow-host-network")));
        let policy = HostPolicy {
            host_network: true,
            ..HostPolicy::default()
        };
        assert_eq!(policy.refusal(&o, Some(dir.path())), None);
    }
}
