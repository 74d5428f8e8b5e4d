//! Config files are part of the spec: what a server bind-mounts read-only (`nginx.conf`, a
//! directory of Grafana provisioning) is hashed into its spec hash, so an edit in the manifests
//! repository recreates that server, and only that one, with no manifest change (a read-write
//! bind is data, and never counts).
//!
//! A file's digest is cached by its size and modification time, so a no-op pass costs one
//! `stat` per file; a file over `MAX_BYTES` counts by size and time only, a socket or device is
//! never read, and a link inside a directory counts by its target text, never followed. A
//! directory is hashed by its files' paths and contents, in name order, up to `MAX_FILES` files
//! and `MAX_BYTES` of content; past either cap the rest count by path, size and modification
//! time only (so a big directory still changes its digest when a file does, but without being
//! read whole at every change). Files are read below the host policy's roots, by descriptor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::manifest::short_hash;

/// The most files of one directory whose content is hashed.
pub const MAX_FILES: usize = 1000;
/// The most bytes of one directory's files whose content is hashed.
pub const MAX_BYTES: u64 = 16 << 20;

/// A file's size and modification time when it was read.
type Stamp = (u64, Option<SystemTime>);

/// What was made of files read before, by path, kept while a file's size and modification time
/// stay the same.
pub struct StampCache<T> {
    seen: Mutex<HashMap<PathBuf, (Stamp, T)>>,
}

impl<T> Default for StampCache<T> {
    fn default() -> Self {
        StampCache {
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> StampCache<T> {
    /// The value made of the file at `path` (whose metadata is `meta`), made again by `make`
    /// only when the file changed.
    pub fn get(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        make: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let stamp = stamp(meta);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, value)) = seen.get(path) {
            if *s == stamp {
                return Ok(value.clone());
            }
        }
        let value = make()?;
        seen.insert(path.to_path_buf(), (stamp, value.clone()));
        Ok(value)
    }
}

/// Digests of files read before, by path.
#[derive(Default)]
pub struct ConfigFiles {
    seen: StampCache<String>,
}

impl ConfigFiles {
    /// The digest of a file, or of a directory's files, at `path`, which lies below one of
    /// `roots` (the host policy's). Links inside a directory are hashed as links (their target
    /// text), never followed: in the container they resolve in its own filesystem, and
    /// following one here (to `/proc/kmsg`, say) could read what the host policy never let in
    /// or block the pass.
    pub fn digest(&self, path: &Path, roots: &[PathBuf]) -> Result<String, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_file() {
            return self.file(path, &meta, roots);
        }
        if !meta.is_dir() {
            // A socket or a device (the engine's socket, read-only, say) has no content to
            // hash, and reading one would block or fail.
            return Ok("special".into());
        }
        let mut files = Vec::new();
        walk(path, &mut files).map_err(|e| format!("{}: {e}", path.display()))?;
        files.sort();
        let mut acc = String::new();
        let mut budget = MAX_BYTES;
        for (n, (file, link)) in files.iter().enumerate() {
            let rel = file
                .strip_prefix(path)
                .unwrap_or(file)
                .display()
                .to_string();
            let part = match link {
                Some(target) => link_digest(target),
                None => {
                    let meta = std::fs::symlink_metadata(file)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    if n < MAX_FILES && meta.len() <= budget {
                        budget -= meta.len();
                        self.file(file, &meta, roots)?
                    } else {
                        by_stamp(stamp(&meta))
                    }
                }
            };
            acc.push_str(&rel);
            acc.push('\0');
            acc.push_str(&part);
            acc.push('\n');
        }
        Ok(short_hash(acc.as_bytes()))
    }

    /// The digest of the regular file at `path`, whose metadata the caller has already read;
    /// read again (below `roots`, by descriptor, without blocking) only when it changed.
    pub fn file(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        roots: &[PathBuf],
    ) -> Result<String, String> {
        if meta.len() > MAX_BYTES {
            // A big file (a model, a database dump mounted read-only) is not read at every
            // change: its size and time stand for it.
            return Ok(by_stamp(stamp(meta)));
        }
        self.seen.get(path, meta, || {
            let (file, _) = crate::hostfs::open_confined(path, roots).map_err(|e| e.to_string())?;
            crate::hostfs::read_all(&file, path, MAX_BYTES)
                .map(|bytes| short_hash(&bytes))
                .map_err(|e| e.to_string())
        })
    }
}

/// What a link counts as in a digest: its target's text (it is never followed).
pub fn link_digest(target: &Path) -> String {
    format!("link:{}", target.display())
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (meta.len(), meta.modified().ok())
}

/// A digest from a file's size and modification time alone.
fn by_stamp((len, time): Stamp) -> String {
    let nanos = time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{len}@{nanos}")
}

/// Every regular file and link below `dir`, links with their target (never followed, so a link
/// to an ancestor cannot loop and a link to a host file is not read). FIFOs, sockets and
/// devices are left out: they have no content to hash.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, Option<PathBuf>)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path)?;
            out.push((path, Some(target)));
        } else if kind.is_file() {
            out.push((path, None));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_digest_follows_its_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("nginx.conf");
        std::fs::write(&f, "a").expect("write");
        let files = ConfigFiles::default();
        let roots = [dir.path().to_path_buf()];
        let one = files.digest(&f, &roots).expect("digest");
        assert_eq!(files.digest(&f, &roots).expect("digest"), one);
        std::fs::write(&f, "b").expect("write");
        assert_ne!(files.digest(&f, &roots).expect("digest"), one);
        std::fs::write(&f, "a").expect("write");
        assert_eq!(
            files.digest(&f, &roots).expect("digest"),
            one,
            "same content, same digest"
        );
    }

    #[test]
    fn a_socket_has_a_digest_without_being_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("engine.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let files = ConfigFiles::default();
        let roots = [dir.path().to_path_buf()];
        assert_eq!(files.digest(&path, &roots).expect("digest"), "special");
        assert!(files.digest(Path::new("/dev/null"), &roots).is_ok());
    }

    #[test]
    fn a_directorys_digest_follows_its_files_names_and_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("a.yaml"), "1").expect("write");
        std::fs::write(dir.path().join("sub/b.yaml"), "2").expect("write");
        let files = ConfigFiles::default();
        let roots = [dir.path().to_path_buf()];
        let one = files.digest(dir.path(), &roots).expect("digest");
        std::fs::write(dir.path().join("sub/b.yaml"), "3").expect("write");
        let two = files.digest(dir.path(), &roots).expect("digest");
        assert_ne!(one, two);
        std::fs::rename(dir.path().join("a.yaml"), dir.path().join("c.yaml")).expect("mv");
        assert_ne!(
            files.digest(dir.path(), &roots).expect("digest"),
            two,
            "a rename counts"
        );
        assert!(files.digest(&dir.path().join("gone"), &roots).is_err());
    }

    #[test]
    fn a_link_in_a_directory_counts_by_its_target_and_is_never_read() {
        // A link to /proc/kmsg in a bound config directory blocked the first pass for good
        // (and consumed the kernel log); a link to a root-only file would be read as root.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.conf"), "1").expect("write");
        std::os::unix::fs::symlink("/proc/kmsg", dir.path().join("k")).expect("symlink");
        let files = ConfigFiles::default();
        let roots = [dir.path().to_path_buf()];
        let started = std::time::Instant::now();
        let one = files.digest(dir.path(), &roots).expect("digest");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        std::fs::remove_file(dir.path().join("k")).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("k")).expect("symlink");
        assert_ne!(
            files.digest(dir.path(), &roots).expect("digest"),
            one,
            "a new target counts"
        );
    }
}
