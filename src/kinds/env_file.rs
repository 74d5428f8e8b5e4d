//! `envFile`: environment variables kept in files next to the manifest (`.env`), read at each
//! pass so an edit reaches the container. A file is re-read only when its size or modification
//! time changed, so a no-op pass costs one `stat` per file. Its content counts in the spec
//! hash (an edit recreates the container); an unreadable or malformed file holds the object
//! back with the line at fault, leaving its running container alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config_files::StampCache;
pub use crate::manifest::env_text::parse;
use crate::manifest::short_hash;

/// The largest env file read (a file of variables, not a data set).
pub const MAX_BYTES: u64 = 1 << 20;

/// One file's variables, in file order, and the hash of its bytes.
#[derive(Debug, PartialEq)]
pub struct Loaded {
    pub vars: Vec<(String, String)>,
    pub digest: String,
}

/// Files read before, by path, with the stamp they had.
#[derive(Default)]
pub struct EnvFiles {
    seen: StampCache<Arc<Loaded>>,
}

impl EnvFiles {
    /// The file's variables, read again only if it changed. The file must lie below one of
    /// `roots` (the host policy's); it is opened once and what is read is what was checked.
    pub fn load(&self, path: &Path, roots: &[PathBuf]) -> Result<Arc<Loaded>, String> {
        let (file, meta) = crate::hostfs::open_confined(path, roots).map_err(|e| e.to_string())?;
        self.seen.get(path, &meta, || {
            let bytes =
                crate::hostfs::read_all(&file, path, MAX_BYTES).map_err(|e| e.to_string())?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
            let vars = parse(&text)
                .map_err(|(line, why)| format!("{} line {line}: {why}", path.display()))?;
            Ok(Arc::new(Loaded {
                vars,
                digest: short_hash(text.as_bytes()),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_again_only_when_it_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\n").expect("write");
        let files = EnvFiles::default();
        let roots = [dir.path().to_path_buf()];
        let first = files.load(&path, &roots).expect("loads");
        assert!(Arc::ptr_eq(
            &first,
            &files.load(&path, &roots).expect("loads")
        ));
        std::fs::write(&path, "A=22\n").expect("write");
        let second = files.load(&path, &roots).expect("loads");
        assert_eq!(second.vars, [("A".to_owned(), "22".to_owned())]);
        assert_ne!(first.digest, second.digest);
        assert!(files.load(&dir.path().join("missing"), &roots).is_err());
    }

    #[test]
    fn a_link_swapped_in_after_the_check_is_never_read() {
        // The race of the safety review: the path is checked, then a link to a root-only file
        // is renamed over it. Opening once by descriptor leaves no window: each load reads
        // the regular file or refuses the link, never the file it points to.
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(other.path().join("prod.env"), "LEAK=root-only\n").expect("write");
        let path = dir.path().join(".env");
        let roots = [dir.path().to_path_buf()];
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let (dir, target, stop) = (
                dir.path().to_path_buf(),
                other.path().join("prod.env"),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let tmp = dir.join(format!(".tmp{}", i % 2));
                    let _ = std::fs::remove_file(&tmp);
                    if i.is_multiple_of(2) {
                        std::fs::write(&tmp, format!("A={i}\n")).expect("write");
                    } else {
                        std::os::unix::fs::symlink(&target, &tmp).expect("symlink");
                    }
                    std::fs::rename(&tmp, dir.join(".env")).expect("rename");
                    i += 1;
                }
            })
        };
        let mut read = 0;
        for _ in 0..20_000 {
            let files = EnvFiles::default();
            if let Ok(loaded) = files.load(&path, &roots) {
                read += 1;
                assert!(
                    loaded.vars.iter().all(|(k, _)| k == "A"),
                    "read through a swapped link: {:?}",
                    loaded.vars
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flipper.join().expect("flipper");
        assert!(read > 0, "some loads found the regular file");
    }
}
