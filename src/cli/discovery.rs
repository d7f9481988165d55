//! The discovery file: where a running hub really listens. `serve` writes
//! `hub.addr` into its config directory once the port is bound (the actual port,
//! also with `--port 0`), with its pid and a random instance id, and removes it on a
//! clean exit. Operator commands given only `--config-dir` read it and check the
//! instance id against `/healthz` (a file left by `kill -9`, or a port reused by
//! another server, is ignored), so they reach the hub that uses that directory.
//! Separate from the database's lock file, which only says "this database is in use".

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's name in the config directory.
pub(crate) const FILE: &str = "hub.addr";

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Discovery {
    /// Base URL, without `/mcp`.
    pub url: String,
    pub pid: u32,
    /// Random per start; `/healthz` answers it.
    pub instance: String,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Write the file (a temporary file renamed over it: readers never see half).
pub(crate) fn write(dir: &Path, d: &Discovery) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp-{}", d.pid));
    let text = serde_json::to_string(d).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path(dir))
}

/// Remove the file if it is still ours (a newer server may have replaced it).
pub(crate) fn remove(dir: &Path, instance: &str) {
    if read(dir).is_some_and(|d| d.instance == instance) {
        let _ = std::fs::remove_file(path(dir));
    }
}

fn read(dir: &Path) -> Option<Discovery> {
    serde_json::from_str(&std::fs::read_to_string(path(dir)).ok()?).ok()
}

/// The base URL of the hub serving `dir`, if its discovery file names one that
/// answers `/healthz` with the same instance id.
pub(crate) fn live_url(dir: &Path) -> Option<String> {
    let d = read(dir)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let health: serde_json::Value = agent
        .get(&format!("{}/healthz", d.url))
        .call()
        .ok()?
        .into_json()
        .ok()?;
    (health["instance"] == d.instance.as_str()).then_some(d.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let d = Discovery {
            url: "http://127.0.0.1:1".into(),
            pid: 7,
            instance: "abc".into(),
        };
        write(dir.path(), &d).unwrap();
        assert_eq!(read(dir.path()), Some(d.clone()));
        remove(dir.path(), "other");
        assert!(read(dir.path()).is_some(), "not ours: kept");
        // Nothing answers on port 1: not live.
        assert_eq!(live_url(dir.path()), None);
        remove(dir.path(), "abc");
        assert!(read(dir.path()).is_none());
    }
}
