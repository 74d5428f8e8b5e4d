//! The two locks of a state file: one controller per state file (on the state file itself, held
//! for the controller's life) and one process at a time setting it up (`<state>.setup-lock`).
//! Both are advisory `flock` locks, so a process that dies releases them. The controller lock
//! is on the state file's own inode, so no other path to it (a symlink, `./` against an absolute
//! path) and no deleted lock file lets a second controller in. (SQLite's own locks are `fcntl`
//! locks, which do not interact with `flock`.)

use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another dockhand controller is already running on state file {state} (it holds {lock})"
    )]
    Locked { state: PathBuf, lock: PathBuf },
    #[error("cannot lock state file {lock}: {source}")]
    Lock {
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// Held while a controller owns a state file; released when dropped (or the process dies).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// `<state><suffix>`, opened for locking (created if missing, never truncated).
fn open_beside(state: &Path, suffix: &str) -> (PathBuf, std::io::Result<File>) {
    let mut name = state.as_os_str().to_owned();
    name.push(suffix);
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path);
    (path, file)
}

/// Takes the state file's controller lock (creating the file, private, if it is missing),
/// refusing if another process has it.
pub fn lock_state(state: &Path) -> Result<StateLock, LockError> {
    let lock = state.to_owned();
    let failed = |source| LockError::Lock {
        lock: lock.clone(),
        source,
    };
    super::create_private(state).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .open(state)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Locked {
            state: state.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Lock { lock, source }),
    }
}

/// Blocks until this process alone may set up the state file; released when dropped.
pub(super) fn setup_lock(state: &Path) -> std::io::Result<File> {
    let file = open_beside(state, ".setup-lock").1?;
    file.lock()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_controller_on_the_same_state_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("s.db");
        let held = lock_state(&state).expect("first lock");
        let err = lock_state(&state).expect_err("second lock must fail");
        assert!(err.to_string().contains("already running"), "{err}");
        drop(held);
        lock_state(&state).expect("lock is free again");
    }

    #[test]
    fn a_second_controller_through_another_path_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("s.db");
        let link = dir.path().join("link.db");
        let held = lock_state(&state).expect("first lock");
        std::os::unix::fs::symlink(&state, &link).expect("symlink");
        let via_dots = dir.path().join(".").join("s.db");
        for other in [&link, &via_dots] {
            let err = lock_state(other).expect_err("second lock must fail");
            assert!(err.to_string().contains("already running"), "{err}");
        }
        // No lock file beside it to delete.
        let _ = std::fs::remove_file(dir.path().join("s.db.lock"));
        assert!(lock_state(&state).is_err());
        drop(held);
    }
}
