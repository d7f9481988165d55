//! Where the agent list comes from: the seam between "who may connect" and its
//! storage: `agents.env`. Cluster mode keeps the list in the agents table and feeds
//! it with what each node's `agents.env` changed ([`change`]; see `http::reload`).

use super::paths::AGENTS_FILE;
use super::{agents_env, AgentsFile, ConfigError};
use std::path::{Path, PathBuf};

/// Loads the complete agent list, all or nothing.
pub(crate) trait AgentRegistry: Send + Sync {
    /// The list as it is now; an error leaves whatever the caller holds in force.
    fn load(&self) -> Result<AgentsFile, ConfigError>;
}

/// The agents of `agents.env` in a config directory.
#[derive(Debug, Clone)]
pub(crate) struct EnvFileRegistry {
    path: PathBuf,
}

impl EnvFileRegistry {
    /// The registry of the config directory `dir`.
    pub(crate) fn new(dir: &Path) -> Self {
        EnvFileRegistry {
            path: dir.join(AGENTS_FILE),
        }
    }
}

impl AgentRegistry for EnvFileRegistry {
    fn load(&self) -> Result<AgentsFile, ConfigError> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| ConfigError::io(&self.path, e))?;
        agents_env::parse(&self.path.display().to_string(), &text)
    }
}

/// What changed between two agent lists of `(id, token_hash)` rows: cluster mode
/// applies to the shared registry only what this node's `agents.env` changed
/// since it last read it, so that one node's stale file never undoes another
/// node's edit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// Agents new in the list, or listed with another token: `(id, token_hash)`.
    pub upserts: Vec<(String, String)>,
    /// Agents no longer listed.
    pub removals: Vec<String>,
}

impl Change {
    pub(crate) fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

/// The change from `before` to `after`, sorted by id.
pub(crate) fn change(before: &[(String, String)], after: &[(String, String)]) -> Change {
    let old: std::collections::HashMap<&str, &str> = before
        .iter()
        .map(|(id, h)| (id.as_str(), h.as_str()))
        .collect();
    let new: std::collections::HashSet<&str> = after.iter().map(|(id, _)| id.as_str()).collect();
    let mut upserts: Vec<(String, String)> = after
        .iter()
        .filter(|(id, h)| old.get(id.as_str()) != Some(&h.as_str()))
        .cloned()
        .collect();
    let mut removals: Vec<String> = before
        .iter()
        .filter(|(id, _)| !new.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    upserts.sort();
    removals.sort();
    Change { upserts, removals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn change_names_additions_rotations_and_removals_only() {
        let before = rows(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = rows(&[("d", "4"), ("b", "2"), ("a", "9")]);
        assert_eq!(
            change(&before, &after),
            Change {
                upserts: rows(&[("a", "9"), ("d", "4")]),
                removals: vec!["c".to_string()],
            }
        );
        assert!(change(&before, &before).is_empty());
        assert_eq!(change(&[], &before).upserts, before);
        assert_eq!(change(&before, &[]).removals, ["a", "b", "c"]);
    }

    #[test]
    fn loads_and_reports_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let r = EnvFileRegistry::new(tmp.path());
        assert!(r.load().is_err());
        std::fs::write(tmp.path().join(AGENTS_FILE), "a=1\nb=2\n").unwrap();
        assert_eq!(r.load().unwrap().agents.len(), 2);
        std::fs::write(tmp.path().join(AGENTS_FILE), "a=1\noops\n").unwrap();
        let e = r.load().unwrap_err().to_string();
        assert!(e.ends_with("agents.env:2: expected AGENT_ID=TOKEN"), "{e}");
    }
}
