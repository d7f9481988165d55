//! libpq's password file: lines `host:port:database:user:password`, `*` matching
//! anything, `\` escaping the next character, `#` starting a comment; the first
//! matching line wins. Like libpq, a file that others may read is not used (here it
//! is an error rather than silently skipped, so the operator learns why).

use super::PgError;
use std::path::Path;

/// What a line must match.
pub(super) struct Target<'a> {
    pub host: &'a str,
    /// The host is a Unix socket directory, which `localhost` lines match too.
    pub socket: bool,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The file's text, if it is a regular file that only its owner can read.
pub(super) fn read(path: &Path) -> Result<String, PgError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| PgError::Passfile {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(
            "group or others may read it; chmod 600 it (as libpq requires)".into(),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

/// The password of the first line that matches `t`.
pub(super) fn find(text: &str, t: &Target) -> Option<Vec<u8>> {
    let port = t.port.to_string();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| fields(line.trim_end_matches('\r')))
        .find(|f| {
            f.len() >= 5
                && (matches(&f[0], t.host) || (t.socket && matches(&f[0], "localhost")))
                && matches(&f[1], &port)
                && matches(&f[2], t.dbname)
                && matches(&f[3], t.user)
        })
        .map(|mut f| f.swap_remove(4).into_bytes())
}

fn matches(field: &str, value: &str) -> bool {
    field == "*" || field == value
}

/// A line split at unescaped colons, escapes removed (libpq also ends the password
/// at an unescaped colon).
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars.next().unwrap_or('\\');
                if let Some(last) = out.last_mut() {
                    last.push(escaped);
                }
            }
            ':' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Write a password file with mode 0600.
#[cfg(test)]
pub(super) fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(host: &'a str, socket: bool) -> Target<'a> {
        Target {
            host,
            socket,
            port: 5432,
            dbname: "hub",
            user: "agent",
        }
    }

    #[test]
    fn first_matching_line_wins() {
        let text = "# comment\n\
                    other:5432:hub:agent:no\n\
                    db:5432:hub:agent:yes\n\
                    *:*:*:*:fallback\n";
        assert_eq!(find(text, &target("db", false)), Some(b"yes".to_vec()));
        assert_eq!(find(text, &target("x", false)), Some(b"fallback".to_vec()));
        assert_eq!(find("db:5432:hub:agent\n", &target("db", false)), None);
        assert_eq!(find("db:5433:*:*:p\n", &target("db", false)), None);
    }

    #[test]
    fn escapes_and_sockets() {
        let text = "localhost:*:*:*:a\\:b\\\\c:ignored\r\n";
        assert_eq!(
            find(text, &target("/run/pg", true)),
            Some(b"a:b\\c".to_vec())
        );
        assert_eq!(find(text, &target("/run/pg", false)), None);
        assert_eq!(
            find("/tmp/x\\:y:*:*:*:p\n", &target("/tmp/x:y", true)),
            Some(b"p".to_vec())
        );
    }

    #[test]
    fn only_private_files_are_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        write_private(&file, "*:*:*:*:p\n");
        assert_eq!(read(&file).unwrap(), "*:*:*:*:p\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read(&file), Err(PgError::Passfile { .. })));
        assert!(matches!(read(dir.path()), Err(PgError::Passfile { .. })));
    }
}
