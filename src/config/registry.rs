//! Where the agent list comes from: the seam between "who may connect" and its
//! storage. Today that is `agents.env`; cluster mode will hold agents in a table and
//! plug in another [`AgentRegistry`].

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

#[cfg(test)]
mod tests {
    use super::*;

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
