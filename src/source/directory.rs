//! A directory of manifests (GitOps checkouts, `kubectl apply`-style file drops), and its watcher.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::Snapshot;
use crate::manifest::{parse_str, ManifestError, ObjectKey};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {message}")]
    Watch { path: PathBuf, message: String },
}

/// Whether a file name is a manifest: `*.yaml`/`*.yml`, not hidden, not an editor's temp file.
pub fn is_manifest_name(name: &str) -> bool {
    let hidden_or_temp = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !hidden_or_temp && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Reads every manifest below `dir`. Never fails: problems become errors in the snapshot.
pub fn load(dir: &Path) -> Snapshot {
    let mut snap = Snapshot {
        complete: true,
        ..Snapshot::default()
    };
    if !dir.exists() {
        snap.missing = true;
        return snap;
    }
    let base = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut files = Vec::new();
    if let Err(e) = collect(&base, &mut files) {
        snap.complete = false;
        snap.errors.push(io_error(dir.display().to_string(), &e));
    }
    files.sort();
    let mut per_file: BTreeMap<String, Vec<crate::manifest::Object>> = BTreeMap::new();
    for path in files {
        let label = path
            .strip_prefix(&base)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                snap.errors.push(io_error(label, &e));
                continue;
            }
        };
        match parse_str(&text, &label, path.parent()) {
            Ok(objs) => {
                let missing = missing_bind_sources(&objs);
                if missing.is_empty() {
                    per_file.insert(label, objs);
                } else {
                    snap.errors.extend(missing);
                }
            }
            Err(errs) => snap.errors.extend(errs),
        }
    }
    // The same object in two files is an error on both: neither copy is applied anew.
    let mut seen: BTreeMap<ObjectKey, (String, u64)> = BTreeMap::new();
    let mut dup_errors = Vec::new();
    for (file, objs) in &per_file {
        for o in objs {
            if let Some((other, other_line)) = seen.get(&o.key()) {
                dup_errors.push(ManifestError {
                    file: file.clone(),
                    line: o.line,
                    column: 0,
                    field: "metadata.name".into(),
                    message: format!("{} is also defined in {other}:{other_line}", o.key()),
                });
                dup_errors.push(ManifestError {
                    file: other.clone(),
                    line: *other_line,
                    column: 0,
                    field: "metadata.name".into(),
                    message: format!("{} is also defined in {file}:{}", o.key(), o.line),
                });
            } else {
                seen.insert(o.key(), (file.clone(), o.line));
            }
        }
    }
    for e in &dup_errors {
        per_file.remove(&e.file);
    }
    snap.errors.extend(dup_errors);
    // Cross-object checks (dependency cycles, Healthy without a health check) invalidate the
    // files involved, like any other error.
    let all: Vec<_> = per_file.values().flatten().cloned().collect();
    let graph_errors = crate::manifest::graph::check(&all);
    for e in &graph_errors {
        per_file.remove(&e.file);
    }
    snap.errors.extend(graph_errors);
    snap.objects = per_file.into_values().flatten().collect();
    snap
}

/// Bind sources that do not exist on this host: the engine would refuse them at create time,
/// without saying which manifest asked for them.
fn missing_bind_sources(objects: &[crate::manifest::Object]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    for o in objects {
        let crate::manifest::Spec::Server(s) = &o.spec else {
            continue;
        };
        for (i, v) in s.volumes.iter().enumerate() {
            if v.kind == crate::manifest::server::VolumeType::Bind && !Path::new(&v.source).exists()
            {
                errors.push(ManifestError {
                    file: o.source.clone(),
                    line: o.line,
                    column: 0,
                    field: format!("spec.volumes[{i}].source"),
                    message: format!("bind source {} does not exist on this host", v.source),
                });
            }
        }
    }
    errors
}

fn io_error(file: String, e: &std::io::Error) -> ManifestError {
    ManifestError {
        file,
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Symlinked directories are not followed (a link to an ancestor would never end);
        // symlinked files are read like files.
        if entry.file_type()?.is_dir() {
            collect(&path, out)?;
        } else if is_manifest_name(&name) && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// A running watch; dropping it stops watching.
pub struct Watch {
    _debouncer: Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>,
}

/// Calls `changed` (debounced) whenever something below `dir` changes.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    changed: impl Fn() + Send + 'static,
) -> Result<Watch, WatchError> {
    let err = |e: notify_debouncer_full::notify::Error| WatchError::Watch {
        path: dir.to_owned(),
        message: e.to_string(),
    };
    let mut debouncer = new_debouncer(debounce, None, move |res: DebounceEventResult| {
        if matches!(&res, Ok(events) if !events.is_empty()) || res.is_err() {
            changed();
        }
    })
    .map_err(err)?;
    debouncer
        .watch(dir, RecursiveMode::Recursive)
        .map_err(err)?;
    Ok(Watch {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str =
        "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec: {image: busybox}\n";

    #[test]
    fn editor_and_hidden_files_are_ignored() {
        assert!(is_manifest_name("web.yaml"));
        assert!(is_manifest_name("web.yml"));
        for n in [
            ".web.yaml",
            "web.yaml~",
            "#web.yaml#",
            ".web.yaml.swp",
            "web.yaml.swp",
            "README.md",
        ] {
            assert!(!is_manifest_name(n), "{n}");
        }
    }

    #[test]
    fn loads_recursively_and_names_files_relative_to_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sub/.git")).expect("mkdir");
        std::fs::write(dir.path().join("sub/web.yaml"), WEB).expect("write");
        std::fs::write(dir.path().join("sub/.git/x.yaml"), "not: [valid").expect("write");
        let snap = load(dir.path());
        assert_eq!(snap.errors, []);
        assert_eq!(snap.objects.len(), 1);
        assert_eq!(snap.objects[0].source, "sub/web.yaml");
    }

    #[test]
    fn symlink_loops_do_not_hang_and_linked_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("real.yml"), WEB).expect("write");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).expect("symlink");
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(other.path().join("api.yaml"), WEB.replace("web", "api")).expect("write");
        std::os::unix::fs::symlink(other.path().join("api.yaml"), dir.path().join("api.yaml"))
            .expect("symlink");
        let snap = load(dir.path());
        assert_eq!(snap.errors, []);
        let names: Vec<_> = snap.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["api", "web"]);
    }

    #[test]
    fn duplicate_objects_are_an_error_on_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        std::fs::write(dir.path().join("b.yaml"), WEB).expect("write");
        let snap = load(dir.path());
        assert!(snap.objects.is_empty());
        let files: Vec<_> = snap.errors.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files, ["b.yaml", "a.yaml"]);
    }

    #[test]
    fn a_missing_bind_source_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let with_bind = WEB.replace(
            "spec: {image: busybox}",
            "spec: {image: busybox, volumes: [{type: bind, source: ./www, target: /www}]}",
        );
        std::fs::write(dir.path().join("a.yaml"), &with_bind).expect("write");
        let snap = load(dir.path());
        assert!(snap.objects.is_empty());
        assert_eq!(snap.errors[0].field, "spec.volumes[0].source");
        assert!(
            snap.errors[0]
                .message
                .ends_with("www does not exist on this host"),
            "{}",
            snap.errors[0]
        );
        std::fs::create_dir(dir.path().join("www")).expect("mkdir");
        assert_eq!(load(dir.path()).objects.len(), 1);
    }

    #[test]
    fn missing_directory_is_reported_not_an_error() {
        let snap = load(Path::new("/nonexistent/dockhand/manifests"));
        assert!(snap.missing && snap.complete && snap.objects.is_empty());
    }
}
