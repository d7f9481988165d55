//! One server per database: an exclusive `flock` on `<db>.lock`, held for the life of
//! the process. Two writers on one SQLite file would each keep their own state in
//! memory and overwrite each other's rows; SQLite's own locking only serialises their
//! transactions. A lock file (rather than SQLite's exclusive locking mode) leaves the
//! database itself open to read-only tools such as the `sqlite3` shell.

use super::CliError;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The held lock; dropping it (or the process ending, however it ends) releases it.
#[derive(Debug)]
pub(crate) struct DbLock {
    /// Kept open: the lock belongs to this open file description.
    _file: File,
}

/// `<db path>.lock`, beside the database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = OsString::from(db.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Take the lock of `db` without waiting, and write our pid into the lock file. Fails
/// with [`CliError::DbInUse`], naming the holder's pid, if another process has it.
pub(crate) fn acquire(db: &Path) -> Result<DbLock, CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = lock_path(db);
    let io = |e| CliError::Lock {
        path: path.display().to_string(),
        source: e,
    };
    // The store would create the directory a moment later anyway; same mode as it uses.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
    }
    // Not truncated on open: the file may hold the running server's pid.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a file descriptor we own and keep open; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            return Err(CliError::DbInUse {
                pid: read_pid(&mut file),
                db: db.display().to_string(),
                lock: path.display().to_string(),
            });
        }
        return Err(io(err));
    }
    file.set_len(0).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DbLock { _file: file })
}

/// The pid the holder wrote; None if it has not written it yet (or wrote garbage).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("hub.db");
        let first = acquire(&db).unwrap();
        let text = std::fs::read_to_string(lock_path(&db)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in one process conflicts.
        match acquire(&db) {
            Err(CliError::DbInUse { pid, lock, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert!(lock.ends_with("hub.db.lock"), "{lock}");
            }
            other => panic!("expected DbInUse, got {other:?}"),
        }
        drop(first);
        assert!(acquire(&db).is_ok());
    }
}
