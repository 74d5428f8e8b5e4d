//! A directory of manifests (GitOps checkouts, `kubectl apply`-style file drops), and its watcher.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::{Part, Snapshot};
use crate::manifest::{parse_str, ManifestError};

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

/// Reads every manifest below `dir` and runs the checks that span files.
pub fn load(dir: &Path) -> Snapshot {
    super::assemble(vec![(super::Origin::Directory, read(dir))])
}

/// Compose files beyond the directory's own, and what they are read with.
#[derive(Clone, Debug, Default)]
pub struct ComposeFiles {
    /// `--compose FILE`: read wherever they are, labelled by their path as given.
    pub files: Vec<PathBuf>,
    pub options: crate::compose::Options,
}

/// Reads every manifest below `dir`. Never fails: problems become errors in the part.
pub fn read(dir: &Path) -> Part {
    read_with(dir, &ComposeFiles::default())
}

/// Reads one compose file into the part, as one file of objects.
fn add_compose(part: &mut Part, path: &Path, label: String, options: &crate::compose::Options) {
    match crate::compose::load(path, &label, options) {
        Ok(project) => {
            if project.objects.is_empty() {
                part.emptied.insert(label.clone());
            }
            part.warnings.extend(project.warnings);
            part.add(label, Ok(project.objects));
        }
        Err(errors) => part.add(label, Err(errors)),
    }
}

/// Like `read`, with compose files named on the command line and compose options.
pub fn read_with(dir: &Path, compose: &ComposeFiles) -> Part {
    read_labeled(dir, compose, "")
}

/// Like `read_with`, each file's label being `prefix` and its path in `dir` (a git source's
/// files are told apart from the directory's this way).
pub fn read_labeled(dir: &Path, compose: &ComposeFiles, prefix: &str) -> Part {
    // The files a compose file names may lie in this source's own directory too (a git
    // source's checkout).
    let mut with_dir;
    let compose = if compose.options.confine.is_some() {
        with_dir = compose.clone();
        if let Some(roots) = &mut with_dir.options.confine {
            roots.push(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()));
        }
        &with_dir
    } else {
        compose
    };
    let mut part = Part {
        complete: true,
        ..Part::default()
    };
    for file in &compose.files {
        let label = file.to_string_lossy().into_owned();
        add_compose(&mut part, file, label, &compose.options);
    }
    if !dir.exists() {
        part.missing = true;
        return part;
    }
    let base = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut files = Vec::new();
    if let Err(e) = collect(&base, &mut files) {
        part.complete = false;
        part.errors.push(io_error(dir.display().to_string(), &e));
    }
    files.sort();
    for path in files {
        let label = format!(
            "{prefix}{}",
            path.strip_prefix(&base).unwrap_or(&path).to_string_lossy()
        );
        // A link may point anywhere; only files inside the directory are read, so a manifest
        // linked to /etc/shadow cannot have its content quoted back in an error.
        let inside = std::fs::canonicalize(&path).map_or(true, |real| real.starts_with(&base));
        if !inside {
            part.errors.push(ManifestError {
                file: label,
                line: 0,
                column: 0,
                field: String::new(),
                message: "links to a file outside the manifests directory; not read".into(),
            });
            continue;
        }
        if !path.is_file() {
            // A FIFO, a directory or a dangling or looping link under a manifest's name defines
            // nothing, and what it defined before is held (see `emptied_errors`).
            part.emptied.insert(label);
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if crate::compose::is_compose_name(name) {
            add_compose(&mut part, &path, label, &compose.options);
            continue;
        }
        // Read below the directory by descriptor: a link renamed in after the check above
        // is refused, not followed.
        match crate::manifest::parse::read_confined(&path, std::slice::from_ref(&base)) {
            Ok(text) => {
                let parsed = parse_str(&text, &label, path.parent());
                if parsed.as_ref().is_ok_and(Vec::is_empty) {
                    part.emptied.insert(label.clone());
                }
                part.add(label, parsed);
            }
            Err(e) => part.errors.push(io_error(label, &e)),
        }
    }
    part
}

fn io_error(file: String, e: &dyn std::fmt::Display) -> ManifestError {
    ManifestError {
        file,
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

pub fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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
        }
        // Whatever has a manifest's name is listed, files or not, so that one that cannot be
        // read as a file is not taken as gone.
        if is_manifest_name(&name) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether an event may change what the directory defines. Reading the files (which every
/// load does) raises access events; counting those would make each load trigger the next.
fn is_change(e: &notify_debouncer_full::DebouncedEvent) -> bool {
    use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
    match e.event.kind {
        // A file closed after writing is a change; opening or reading one is not.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
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
        if res
            .as_ref()
            .map_or(true, |events| events.iter().any(is_change))
        {
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
    fn symlink_loops_do_not_hang_and_links_inside_the_directory_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("real.yml"), WEB).expect("write");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).expect("symlink");
        std::fs::create_dir(dir.path().join("shared")).expect("mkdir");
        std::fs::write(
            dir.path().join("shared").join("api.txt"),
            WEB.replace("web", "api"),
        )
        .expect("write");
        std::os::unix::fs::symlink(
            dir.path().join("shared").join("api.txt"),
            dir.path().join("api.yaml"),
        )
        .expect("symlink");
        let snap = load(dir.path());
        assert_eq!(snap.errors, []);
        let names: Vec<_> = snap.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["api", "web"]);
    }

    #[test]
    fn a_link_out_of_the_directory_is_not_read_and_nothing_of_it_is_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let secret = other.path().join("shadow");
        std::fs::write(&secret, "root:$6$verysecrethash:19000:0:99999:7:::\n").expect("write");
        std::os::unix::fs::symlink(&secret, dir.path().join("evil.yaml")).expect("symlink");
        let snap = load(dir.path());
        assert_eq!(snap.objects, []);
        assert_eq!(snap.errors.len(), 1, "{:?}", snap.errors);
        let e = snap.errors[0].to_string();
        assert!(e.contains("outside the manifests directory"), "{e}");
        assert!(!e.contains("secrethash"), "{e}");
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
                .contains("www does not exist on this host: create it first (mkdir -p "),
            "{}",
            snap.errors[0]
        );
        std::fs::create_dir(dir.path().join("www")).expect("mkdir");
        assert_eq!(load(dir.path()).objects.len(), 1);
    }

    #[test]
    fn missing_directory_is_reported_not_an_error() {
        let snap = load(Path::new("/nonexistent/dockhand/manifests"));
        assert!(snap.missing && snap.held.is_empty() && snap.objects.is_empty());
    }
}
