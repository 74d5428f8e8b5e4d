//! Host files read on a manifest's behalf: opened once, by descriptor, and read from that
//! descriptor, so what was checked is what is read.
//!
//! Checking a path and then opening it again by name loses a race to whoever swaps a link in
//! between (the host policy's check said "inside the manifests directory", the read followed a
//! link to `/etc/shadow`). Here a confined path is resolved once (`canonicalize`), checked
//! against the allowed roots, and then opened component by component from the root with
//! `O_NOFOLLOW`, so a link swapped in after the check makes the open fail instead of escaping.
//! Every open is non-blocking and only regular files are read, up to a size bound: a FIFO, a
//! device or a socket named as a file is an error, never a read that blocks the pass.

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a host file could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum HostFsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: lies outside the manifests directory and every --allow-host-path prefix")]
    Outside { path: String },
    #[error("{path}: a link in it changed while it was opened; not read")]
    Swapped { path: String },
    #[error("{path}: is a {what}, not a regular file; only regular files are read")]
    NotRegular { path: String, what: &'static str },
    #[error("{path}: larger than {max} bytes; not read")]
    TooLarge { path: String, max: u64 },
}

impl HostFsError {
    /// What went wrong, without the path (for messages that name the file already).
    pub fn why(&self) -> String {
        match self {
            HostFsError::Io { source, .. } => source.to_string(),
            HostFsError::Outside { .. } => {
                "lies outside the manifests directory and every --allow-host-path prefix".into()
            }
            HostFsError::Swapped { .. } => {
                "a link in it changed while it was opened; not read".into()
            }
            HostFsError::NotRegular { what, .. } => {
                format!("is a {what}, not a regular file; only regular files are read")
            }
            HostFsError::TooLarge { max, .. } => format!("larger than {max} bytes; not read"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostFsError + '_ {
    move |source| HostFsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What kind of file `meta` describes, for messages.
fn what(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else if t.is_symlink() {
        "link"
    } else {
        "special file"
    }
}

/// Checks that an opened file is a regular one.
fn regular(file: File, path: &Path) -> Result<(File, Metadata), HostFsError> {
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(HostFsError::NotRegular {
            path: path.display().to_string(),
            what: what(&meta),
        });
    }
    Ok((file, meta))
}

fn openat(dir: Option<&OwnedFd>, name: &std::ffi::OsStr, flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes()).map_err(std::io::Error::other)?;
    let base = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call, and `base` is
    // either AT_FDCWD or a descriptor `dir` keeps open; the result is checked before use.
    let fd = unsafe { libc::openat(base, c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat, is open, and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the regular file at `path`, following links, without blocking (a FIFO is refused,
/// not waited on). For files the operator named (a `--compose` file).
pub fn open_regular(path: &Path) -> Result<(File, Metadata), HostFsError> {
    let fd = openat(
        None,
        path.as_os_str(),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .map_err(io(path))?;
    regular(File::from(fd), path)
}

/// The allowed root that holds `real` (a path with every link resolved), if any.
fn root_of(real: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .filter(|r| real.starts_with(r))
        .max_by_key(|r| r.as_os_str().len())
}

/// Opens the regular file at `path` only if it lies (links resolved) below one of `roots`, and
/// reads through no link that was not there when it was checked.
pub fn open_confined(path: &Path, roots: &[PathBuf]) -> Result<(File, Metadata), HostFsError> {
    let real = std::fs::canonicalize(path).map_err(io(path))?;
    let root = root_of(&real, roots).ok_or_else(|| HostFsError::Outside {
        path: path.display().to_string(),
    })?;
    let rel = real.strip_prefix(&root).unwrap_or(Path::new(""));
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut dir = openat(
        None,
        root.as_os_str(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
    )
    .map_err(io(path))?;
    let Some((last, parents)) = names.split_last() else {
        return regular(File::from(dir), path);
    };
    let swapped = |e: std::io::Error| match e.raw_os_error() {
        // A component that is a link now (it was not when resolved) or no longer a directory.
        Some(libc::ELOOP | libc::ENOTDIR) => HostFsError::Swapped {
            path: path.display().to_string(),
        },
        _ => io(path)(e),
    };
    for name in parents {
        dir = openat(
            Some(&dir),
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        )
        .map_err(swapped)?;
    }
    let fd = openat(
        Some(&dir),
        last,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .map_err(swapped)?;
    regular(File::from(fd), path)
}

/// Reads an opened file whole, refusing one of more than `max` bytes.
pub fn read_all(mut file: &File, path: &Path, max: u64) -> Result<Vec<u8>, HostFsError> {
    let mut bytes = Vec::new();
    (&mut file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > max {
        return Err(HostFsError::TooLarge {
            path: path.display().to_string(),
            max,
        });
    }
    Ok(bytes)
}

/// `open_confined` and `read_all` at once (or `open_regular` when `roots` is `None`).
pub fn read(path: &Path, roots: Option<&[PathBuf]>, max: u64) -> Result<Vec<u8>, HostFsError> {
    let (file, _) = match roots {
        Some(roots) => open_confined(path, roots)?,
        None => open_regular(path)?,
    };
    read_all(&file, path, max)
}

/// Creates `path` as a new private file (mode 0600), never reusing or following what is
/// there: an existing file or a link at `path` is an error (`O_EXCL | O_NOFOLLOW`).
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_inside_a_root_is_read_and_a_link_out_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("sub")).expect("mkdir");
        std::fs::write(root.path().join("sub/a.env"), "A=1\n").expect("write");
        std::fs::write(other.path().join("shadow"), "secret\n").expect("write");
        std::os::unix::fs::symlink(other.path().join("shadow"), root.path().join("leak"))
            .expect("symlink");
        std::os::unix::fs::symlink("sub/a.env", root.path().join("inside")).expect("symlink");
        let roots = [root.path().to_path_buf()];
        let read = |p: &str| read(&root.path().join(p), Some(&roots), 1 << 20);
        assert_eq!(read("sub/a.env").expect("reads"), b"A=1\n");
        assert_eq!(read("inside").expect("a link inside is read"), b"A=1\n");
        let e = read("leak").expect_err("a link out");
        assert!(matches!(e, HostFsError::Outside { .. }), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(matches!(
            read("sub").expect_err("a directory"),
            HostFsError::NotRegular { .. }
        ));
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_blocking() {
        let root = tempfile::tempdir().expect("tempdir");
        let fifo = root.path().join("extends.yaml");
        let c = CString::new(fifo.as_os_str().as_bytes()).expect("cstring");
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let roots = [root.path().to_path_buf()];
        let started = std::time::Instant::now();
        let e = read(&fifo, Some(&roots), 1024).expect_err("a FIFO");
        assert!(
            matches!(e, HostFsError::NotRegular { what: "FIFO", .. }),
            "{e}"
        );
        let e = read(&fifo, None, 1024).expect_err("a FIFO, unconfined");
        assert!(matches!(e, HostFsError::NotRegular { .. }), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_file_over_the_bound_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("big"), vec![b'x'; 2048]).expect("write");
        let roots = [root.path().to_path_buf()];
        let e = read(&root.path().join("big"), Some(&roots), 1024).expect_err("too big");
        assert!(matches!(e, HostFsError::TooLarge { max: 1024, .. }), "{e}");
    }

    #[test]
    fn a_new_private_file_never_reuses_or_follows_what_is_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("write");
        std::os::unix::fs::symlink(&victim, dir.path().join("out.partial")).expect("symlink");
        assert!(create_new_private(&dir.path().join("out.partial")).is_err());
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        std::fs::write(dir.path().join("theirs"), "x").expect("write");
        assert!(create_new_private(&dir.path().join("theirs")).is_err());
        let f = dir.path().join("new");
        drop(create_new_private(&f).expect("creates"));
        let mode = std::fs::metadata(&f).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
