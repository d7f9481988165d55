//! `hubctl agent add|remove|rotate`: edit agents.env safely, then have a running hub
//! reload it. The file is rewritten whole (temp file in the same directory, fsync,
//! rename: a crash leaves the old or the new file, never half of one) under an
//! exclusive `flock` on `agents.env.lock`, so two concurrent edits never lose one
//! another's line. No hub running is fine: the file is edited and that is said.

use super::{connect, hub_url, operator, CliError, Target};
use crate::config::paths::AGENTS_FILE;
use crate::config::{agents_env, bootstrap, ConfigError};
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The exclusive lock on `agents.env.lock`, released when dropped (the file closes).
struct EditLock {
    _file: fs::File,
}

fn lock(dir: &Path) -> Result<EditLock, CliError> {
    let path = dir.join(format!("{AGENTS_FILE}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ConfigError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own for the lifetime of `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(CliError::Lock {
            path: path.display().to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(EditLock { _file: file })
}

/// Replace `path` with `text` atomically, mode 0600.
fn write_atomic(path: &Path, text: &str) -> Result<(), ConfigError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| AGENTS_FILE.into(), |n| n.to_string_lossy());
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        fs::File::open(dir)?.sync_all()
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ConfigError::io(path, e)
    })
}

/// An edit of agents.env: the new text from the current one (already checked valid).
type Edit<'a> = dyn FnOnce(&str, &agents_env::AgentsFile) -> Result<String, CliError> + 'a;

/// Lock, read and check the file, apply `edit`, check the result, write it.
fn edit(dir: &Path, edit: Box<Edit<'_>>) -> Result<(), CliError> {
    let _lock = lock(dir)?;
    let path = dir.join(AGENTS_FILE);
    let name = path.display().to_string();
    let text = fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, e))?;
    let current = agents_env::parse(&name, &text)?;
    let next = edit(&text, &current)?;
    // The hub would refuse an invalid file; never write one.
    agents_env::parse(&name, &next)?;
    write_atomic(&path, &next)?;
    Ok(())
}

fn unknown(dir: &Path, id: &str, f: &agents_env::AgentsFile) -> CliError {
    let known: Vec<&str> = f.agents.iter().map(|a| a.id.as_str()).collect();
    CliError::UnknownAgent {
        id: id.to_string(),
        file: dir.join(AGENTS_FILE).display().to_string(),
        known: if known.is_empty() {
            "(none)".into()
        } else {
            known.join(", ")
        },
    }
}

/// `text` with line `line` (1-based) replaced by `with` (`None`: removed).
fn replace_line(text: &str, line: usize, with: Option<&str>) -> String {
    let mut out = String::new();
    for (i, l) in text.lines().enumerate() {
        if i + 1 == line {
            if let Some(w) = with {
                out.push_str(w);
                out.push('\n');
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Ask a running hub to reload; `Ok(false)` if none answers.
fn reload(dir: &Path, target: &Target) -> Result<bool, CliError> {
    let client = operator::OperatorClient::new(dir, target)?;
    match client.post("/operator/reload", &serde_json::Value::Null) {
        Ok(v) => {
            operator::print_reloaded(&v);
            Ok(true)
        }
        Err(CliError::Unreachable { url, .. }) => {
            println!(
                "no hub answers at {url}: agents.env is updated and takes effect when the hub \
                 starts (or run `hubctl reload` once it runs)"
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `hubctl agent add NAME [--capabilities a,b]`.
pub(crate) fn add(
    dir: &Path,
    target: &Target,
    id: &str,
    capabilities: &[String],
) -> Result<(), CliError> {
    let token = bootstrap::new_token();
    edit(
        dir,
        Box::new(|text, current| {
            if current.get(id).is_some() {
                return Err(CliError::Api(format!(
                    "agent {id} is already in {}; use `hubctl agent rotate {id}` for a new token",
                    dir.join(AGENTS_FILE).display()
                )));
            }
            let mut next = text.to_string();
            if !next.is_empty() && !next.ends_with('\n') {
                next.push('\n');
            }
            next.push_str(&format!("{id}={token}\n"));
            Ok(next)
        }),
    )?;
    println!("added agent `{id}` to {}", dir.join(AGENTS_FILE).display());
    let running = reload(dir, target)?;
    if !capabilities.is_empty() {
        if running {
            let client = operator::OperatorClient::new(dir, target)?;
            client.post(
                &format!("/operator/agents/{id}/capabilities"),
                &serde_json::json!({ "capabilities": capabilities }),
            )?;
            println!("capabilities of `{id}`: {}", capabilities.join(", "));
        } else {
            println!(
                "capabilities not set (no hub running): the agent sets them with agent_register"
            );
        }
    }
    print_snippets(dir, target, id, &token)
}

/// The client configuration for agent `id` with `token`, at the hub's URL.
fn print_snippets(dir: &Path, target: &Target, id: &str, token: &str) -> Result<(), CliError> {
    let settings = bootstrap::prepare(dir, false)?.settings;
    let url = format!("{}/mcp", hub_url(dir, target, &settings));
    print!("\n{}", connect::snippets(&url, id, token));
    Ok(())
}

/// Replace agent `id`'s line of agents.env by `with` (`None`: remove it).
fn edit_agent_line(dir: &Path, id: &str, with: Option<&str>) -> Result<(), CliError> {
    edit(
        dir,
        Box::new(|text, current| {
            let line = current
                .get(id)
                .ok_or_else(|| unknown(dir, id, current))?
                .line;
            Ok(replace_line(text, line, with))
        }),
    )
}

/// Cluster mode: ask the hub to change agent `id`, which the local agents.env does
/// not list, in the agents table (`token_hash`: a new token; none: remove it). The
/// file's own error (`unlisted`) when the hub does not know it either, is not in
/// cluster mode, or does not run.
fn change_in_cluster(
    dir: &Path,
    target: &Target,
    id: &str,
    token_hash: Option<&str>,
    unlisted: CliError,
) -> Result<(), CliError> {
    let client = operator::OperatorClient::new(dir, target)?;
    let r = match token_hash {
        Some(h) => client.post(
            &format!("/operator/agents/{id}/token"),
            &serde_json::json!({ "token_hash": h }),
        ),
        None => client.delete(&format!("/operator/agents/{id}")),
    };
    match r {
        Ok(_) => Ok(()),
        Err(CliError::Unreachable { .. }) => Err(unlisted),
        Err(CliError::Api(e)) if e.starts_with("UNKNOWN_AGENT") => Err(unlisted),
        Err(e) => Err(e),
    }
}

/// `hubctl agent remove NAME`. In cluster mode, an agent that another node's
/// agents.env brought is removed from the agents table.
pub(crate) fn remove(dir: &Path, target: &Target, id: &str) -> Result<(), CliError> {
    match edit_agent_line(dir, id, None) {
        Ok(()) => {}
        Err(unlisted @ CliError::UnknownAgent { .. }) => {
            change_in_cluster(dir, target, id, None, unlisted)?;
            println!("removed agent `{id}` from the cluster's agents table (this node's agents.env does not list it)");
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    println!(
        "removed agent `{id}` from {}",
        dir.join(AGENTS_FILE).display()
    );
    reload(dir, target)?;
    Ok(())
}

/// `hubctl agent rotate NAME`. In cluster mode, an agent that another node's
/// agents.env brought gets its new token in the agents table.
pub(crate) fn rotate(dir: &Path, target: &Target, id: &str) -> Result<(), CliError> {
    let token = bootstrap::new_token();
    match edit_agent_line(dir, id, Some(&format!("{id}={token}"))) {
        Ok(()) => {}
        Err(unlisted @ CliError::UnknownAgent { .. }) => {
            let hash = crate::auth::token_hash_column(&token);
            change_in_cluster(dir, target, id, Some(&hash), unlisted)?;
            println!("new token for agent `{id}` in the cluster's agents table (this node's agents.env does not list it)");
            return print_snippets(dir, target, id, &token);
        }
        Err(e) => return Err(e),
    }
    println!(
        "new token for agent `{id}` in {}",
        dir.join(AGENTS_FILE).display()
    );
    reload(dir, target)?;
    print_snippets(dir, target, id, &token)
}

/// `hubctl operator-token rotate`: a new operator token in operator.token (written
/// atomically, 0600), put in force by a reload made with the old one; the old token
/// is refused from then on. With no hub running, only the file changes.
pub(crate) fn rotate_operator_token(dir: &Path, target: &Target) -> Result<(), CliError> {
    use crate::config::paths::OPERATOR_TOKEN_FILE;
    let _lock = lock(dir)?;
    // The client reads the old token now; the reload it sends is authorised by it.
    let client = operator::OperatorClient::new(dir, target)?;
    let path = dir.join(OPERATOR_TOKEN_FILE);
    write_atomic(&path, &format!("{}\n", bootstrap::new_token()))?;
    match client.post("/operator/reload", &serde_json::Value::Null) {
        Ok(v) if v["reloaded"]["operator_token_rotated"] == true => {
            println!(
                "new operator token written to {}; the running hub refuses the old one",
                path.display()
            );
            Ok(())
        }
        Ok(_) => Err(CliError::Api(
            "the hub reloaded but still uses the old operator token".into(),
        )),
        Err(CliError::Unreachable { url, .. }) => {
            println!(
                "new operator token written to {}; no hub answers at {url}: it takes effect \
                 when the hub starts",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_line_keeps_the_rest() {
        let t = "# c\na=1\nb=2\n";
        assert_eq!(replace_line(t, 2, None), "# c\nb=2\n");
        assert_eq!(replace_line(t, 3, Some("b=3")), "# c\na=1\nb=3\n");
    }

    #[test]
    fn concurrent_adds_keep_every_line() {
        let tmp = tempfile::tempdir().unwrap();
        bootstrap::prepare(tmp.path(), true).unwrap();
        let dir = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    edit(
                        &dir,
                        Box::new(move |text, _| Ok(format!("{text}a{i}=token-{i}\n"))),
                    )
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(dir.join(AGENTS_FILE)).unwrap();
        let f = agents_env::parse("f", &text).unwrap();
        assert_eq!(f.agents.len(), 9, "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(AGENTS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
