//! The host policy: what a manifest may take from the host the engine runs on.
//!
//! The engine socket is root, so whoever may write a manifest (a file, a table row, an API call)
//! would otherwise be root on the host through a bind mount of `/` or of the socket, or through
//! the host's network stack. By default a manifest gets none of that: bind sources must lie
//! (and env files, build contexts) inside the manifests directory (after symlinks are resolved, so a relative
//! path or a link cannot escape it), and everything else (privileged, devices, added
//! capabilities, unconfined security options, the host's network) needs the operator's
//! explicit opt-in, one flag per power. A refused object is `Invalid` with a message naming the flag; nothing of it is
//! created, and containers it already has are left alone.

use std::path::{Path, PathBuf};

use crate::manifest::options::Capability;
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
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HostPolicy {
    /// Bind sources and env files under these paths are allowed (`--allow-host-path`).
    pub host_paths: Vec<PathBuf>,
    /// A bind source may expose the engine's socket (`--allow-engine-socket`).
    pub engine_socket: bool,
    /// A server may use the host's network stack, `network: host` (`--allow-host-network`).
    pub host_network: bool,
    /// `privileged: true`: every capability and device (`--allow-privileged`).
    pub privileged: bool,
    /// Host devices under these paths may be given (`--allow-device`).
    pub devices: Vec<PathBuf>,
    /// Capabilities beyond the engine's defaults that `capAdd` may name (`--allow-capability`;
    /// `ALL` allows any).
    pub capabilities: Vec<String>,
    /// `securityOpt` entries that lift seccomp, AppArmor, SELinux or masked paths
    /// (`--allow-unconfined`).
    pub unconfined: bool,
    /// The controller's variables a Secret may read: names, or prefixes ending in `*`
    /// (`--allow-secret-env`).
    pub secret_env: Vec<String>,
}

/// A policy as a controller recorded it in the state file, with the manifests directory it
/// was applied to: what `db backup` and `db restore` check a manifest's paths against.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedPolicy {
    pub policy: HostPolicy,
    pub manifests: Option<PathBuf>,
}

impl RecordedPolicy {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The recorded policy, or the default one (which allows nothing) when none was recorded
    /// or it cannot be read.
    pub fn from_json(json: Option<&str>) -> RecordedPolicy {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }
}

impl HostPolicy {
    /// The directories host files may be read from: the manifests directory and every
    /// allowed prefix. What the policy admitted is read below one of them, by descriptor
    /// (`hostfs`), so a link swapped in after the check is never followed out.
    pub fn roots(&self, manifests: Option<&Path>) -> Vec<PathBuf> {
        manifests
            .map(Path::to_path_buf)
            .into_iter()
            .chain(self.host_paths.iter().cloned())
            .collect()
    }

    /// Why `object` may not run under this policy, or `None` when it may. `manifests` is the
    /// watched directory, inside which the directory source's bind sources and env files are
    /// always allowed.
    pub fn refusal(&self, object: &Object, manifests: Option<&Path>) -> Option<String> {
        let spec = match &object.spec {
            Spec::Server(spec) => spec,
            Spec::Secret(s) => return self.secret_refusal(object, s, manifests),
            Spec::Database(d) => {
                // A backup directory is bound into the backup's container; a restore file read.
                let to = d
                    .backup
                    .as_ref()
                    .and_then(|b| b.to.path.as_deref())
                    .map(|p| ("spec.backup.to.path".to_owned(), p, true));
                let from = d
                    .restore_from
                    .as_ref()
                    .filter(|r| !r.is_latest())
                    .map(|r| ("spec.restoreFrom".to_owned(), r.0.as_str(), false));
                return self.paths_refusal(object, to.into_iter().chain(from).collect(), manifests);
            }
            _ => return None,
        };
        if spec.network.as_ref().is_some_and(|n| n.0 == "host") && !self.host_network {
            return Some(
                "spec.network: host shares the host's network stack; refused by the host policy (allowed only with --allow-host-network)".into(),
            );
        }
        if spec.privileged && !self.privileged {
            return Some(
                "spec.privileged: a privileged container is root on the host; refused by the host policy (allowed only with --allow-privileged)".into(),
            );
        }
        for (i, d) in spec.devices.iter().enumerate() {
            let host = resolve(Path::new(&d.host));
            if !self.devices.iter().any(|p| host.starts_with(resolve(p))) {
                return Some(format!(
                    "spec.devices[{i}]: {} is a host device; refused by the host policy (allowed only under --allow-device PREFIX)",
                    d.host
                ));
            }
        }
        let any_cap = self
            .capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case("ALL"));
        for (i, c) in spec.cap_add.iter().enumerate() {
            let allowed = c.is_default()
                || any_cap
                || self
                    .capabilities
                    .iter()
                    .any(|a| Capability(a.clone()).canonical() == c.canonical());
            if !allowed {
                return Some(format!(
                    "spec.capAdd[{i}]: {} is beyond a default container's capabilities; refused by the host policy (allowed only with --allow-capability {})",
                    c.0,
                    c.canonical()
                ));
            }
        }
        if let Some((i, o)) = spec
            .security_opt
            .iter()
            .enumerate()
            .find(|(_, o)| o.unconfines())
        {
            if !self.unconfined {
                return Some(format!(
                    "spec.securityOpt[{i}]: {} lifts the container's confinement; refused by the host policy (allowed only with --allow-unconfined)",
                    o.0
                ));
            }
        }
        let binds = spec
            .volumes
            .iter()
            .enumerate()
            .filter(|(_, v)| v.kind == VolumeType::Bind)
            .map(|(i, v)| (format!("spec.volumes[{i}].source"), v.source.as_str(), true));
        let env_files = spec
            .env_file
            .0
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("spec.envFile[{i}]"), f.0.as_str(), false));
        // A build context is read by dockhand and sent to the engine whole.
        let context = spec
            .build
            .iter()
            .map(|b| ("spec.build.context".to_owned(), b.context.as_str(), false));
        let paths: Vec<(String, &str, bool)> = binds.chain(env_files).chain(context).collect();
        self.paths_refusal(object, paths, manifests)
    }

    /// Whether a manifest may read the controller's variable `var` (a Secret's `env`, a
    /// compose file's `${VAR}`): only those the operator named (`--allow-secret-env`).
    pub fn allows_env(&self, var: &str) -> bool {
        crate::manifest::secret::env_allowed(&self.secret_env, var)
    }

    /// Why a Secret's source is refused: a file outside the manifests directory and the allowed
    /// host paths, or a variable of the controller's that the operator did not name.
    fn secret_refusal(
        &self,
        object: &Object,
        spec: &crate::manifest::secret::SecretSpec,
        manifests: Option<&Path>,
    ) -> Option<String> {
        use crate::manifest::secret::SecretSource;
        match spec.source() {
            SecretSource::File(path) => {
                self.paths_refusal(object, vec![("spec.file".into(), path, false)], manifests)
            }
            SecretSource::Env(var) => {
                (!self.allows_env(var)).then(|| format!(
                    "spec.env: {var} is a variable of the controller's own environment; refused by the host policy (allowed only with --allow-secret-env {var})"
                ))
            }
            SecretSource::Encrypted(_) => None,
        }
    }

    /// Why one of `paths` (field, path, whether it is bound into a container) may not be
    /// read: outside the manifests directory (for the directory source's objects) and every
    /// allowed host path, or exposing the engine's socket.
    fn paths_refusal(
        &self,
        object: &Object,
        paths: Vec<(String, &str, bool)>,
        manifests: Option<&Path>,
    ) -> Option<String> {
        if paths.is_empty() {
            return None;
        }
        let inside = match (Origin::of(&object.source), manifests) {
            (Origin::Directory, Some(dir)) => Some(resolve(dir)),
            _ => None,
        };
        for (field, path, is_bind) in paths {
            let source = resolve(Path::new(path));
            let in_manifests = inside.as_ref().is_some_and(|d| source.starts_with(d));
            let allowed = self
                .host_paths
                .iter()
                .any(|p| source.starts_with(resolve(p)));
            if !in_manifests && !allowed {
                return Some(format!(
                    "{field}: {path} is a host path outside the manifests directory; refused by the host policy (allowed only under --allow-host-path PREFIX)"
                ));
            }
            if is_bind && !self.engine_socket && exposes_engine_socket(&source) {
                return Some(format!(
                    "{field}: {path} exposes the engine socket; refused by the host policy (allowed only with --allow-engine-socket)"
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
        let from_env = crate::engine::docker::docker_host_socket().flatten();
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

    #[test]
    fn privileged_devices_capabilities_and_unconfined_need_their_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("  privileged: true\n", "--allow-privileged"),
            ("  devices: [/dev/fuse]\n", "--allow-device"),
            ("  capAdd: [SYS_ADMIN]\n", "--allow-capability SYS_ADMIN"),
            (
                "  capAdd: [cap_net_admin]\n",
                "--allow-capability NET_ADMIN",
            ),
            (
                "  securityOpt: [seccomp=unconfined]\n",
                "--allow-unconfined",
            ),
            (
                "  securityOpt: ['apparmor:unconfined']\n",
                "--allow-unconfined",
            ),
            ("  envFile: /etc/shadow\n", "--allow-host-path"),
            ("  build: /etc\n", "--allow-host-path"),
        ];
        for (extra, flag) in cases {
            let o = server(dir.path(), "    []\n", extra);
            let why = HostPolicy::default().refusal(&o, Some(dir.path()));
            assert!(
                why.as_deref().is_some_and(|w| w.contains(flag)),
                "{extra}: {why:?}"
            );
        }
        let open = HostPolicy {
            privileged: true,
            devices: vec!["/dev/fuse".into()],
            capabilities: vec!["sys_admin".into(), "CAP_NET_ADMIN".into()],
            unconfined: true,
            host_paths: vec!["/etc".into()],
            ..HostPolicy::default()
        };
        for (extra, _) in cases {
            let o = server(dir.path(), "    []\n", extra);
            assert_eq!(open.refusal(&o, Some(dir.path())), None, "{extra}");
        }
    }

    #[test]
    fn what_a_default_container_has_needs_no_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = "  capDrop: [ALL]\n  capAdd: [NET_BIND_SERVICE, CAP_CHOWN]\n  securityOpt: [no-new-privileges]\n  envFile: .env\n  readOnlyRootFilesystem: true\n";
        let o = server(dir.path(), "    []\n", extra);
        assert_eq!(HostPolicy::default().refusal(&o, Some(dir.path())), None);
    }
}
