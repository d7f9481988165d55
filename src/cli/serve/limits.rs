//! The open-file limit. Every connection, open GET stream and SQLite connection is
//! a file descriptor, and the usual soft limit (1024) is far below what the hub
//! serves otherwise; raising the soft limit up to the hard one needs no privilege.

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. Returns the soft limit now in
/// force.
pub(crate) fn raise_open_files() -> std::io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// [`raise_open_files`], logged: a failure is a warning, never fatal.
pub(crate) fn raise_open_files_logged() {
    match raise_open_files() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit (RLIMIT_NOFILE soft)"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit; keeping it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_becomes_the_hard_one() {
        let soft = raise_open_files().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((soft, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
        // Already raised: a second call changes nothing and still succeeds.
        assert_eq!(raise_open_files().unwrap(), soft);
    }
}
