//! `envFile`: environment variables kept in files next to the manifest (`.env`), read at each
//! pass so an edit reaches the container. A file is re-read only when its size or modification
//! time changed, so a no-op pass costs one `stat` per file. Its content counts in the spec
//! hash (an edit recreates the container); an unreadable or malformed file holds the object
//! back with the line at fault, leaving its running container alone.

use std::path::Path;
use std::sync::Arc;

use super::config_files::StampCache;
pub use crate::manifest::env_text::parse;
use crate::manifest::short_hash;

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
    /// The file's variables, read again only if it changed.
    pub fn load(&self, path: &Path) -> Result<Arc<Loaded>, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a file", path.display()));
        }
        self.seen.get(path, &meta, || {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
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
        let first = files.load(&path).expect("loads");
        assert!(Arc::ptr_eq(&first, &files.load(&path).expect("loads")));
        std::fs::write(&path, "A=22\n").expect("write");
        let second = files.load(&path).expect("loads");
        assert_eq!(second.vars, [("A".to_owned(), "22".to_owned())]);
        assert_ne!(first.digest, second.digest);
        assert!(files.load(&dir.path().join("missing")).is_err());
    }
}
