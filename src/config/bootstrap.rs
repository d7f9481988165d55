//! First start: create what is missing in the config directory (never overwrite),
//! then load everything `serve` and the operator commands need.

use super::paths::{AGENTS_FILE, OPERATOR_TOKEN_FILE, SETTINGS_FILE};
use super::{settings, AgentRegistry, AgentsFile, ConfigError, EnvFileRegistry, Settings};
use crate::domain::ids::random_hex;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Cluster mode's shared secret (signs session ids), in the config directory.
pub(crate) const CLUSTER_KEY_FILE: &str = "cluster.key";

/// The cluster key of `dir`: generated (64 hex digits, mode 0600) when missing.
/// Every node of a cluster needs the same one: copy the file. A file readable by
/// group or others, or not 64 hex digits, is refused.
pub(crate) fn cluster_key(dir: &Path) -> Result<[u8; 32], ConfigError> {
    let path = dir.join(CLUSTER_KEY_FILE);
    if write_new(&path, 0o600, &format!("{}\n", random_hex(32)))? {
        tracing::warn!(file = %path.display(), "generated a cluster key: copy this file to every node of the cluster (mode 0600)");
    }
    let meta = fs::metadata(&path).map_err(|e| ConfigError::io(&path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ConfigError::BadFile {
            file: path.display().to_string(),
            reason: format!(
                "is readable by group or others; run: chmod 600 {}",
                path.display()
            ),
        });
    }
    crate::mcp::session_id::parse_key(&read(&path)?).ok_or_else(|| ConfigError::BadFile {
        file: path.display().to_string(),
        reason: "must hold 64 hex digits (delete it to generate a new key, on every node)".into(),
    })
}

/// The agent written into a freshly generated `agents.env`.
pub(crate) const FIRST_AGENT_ID: &str = "agent-1";

/// What the config directory holds after [`prepare`].
#[derive(Debug)]
pub(crate) struct Loaded {
    pub dir: PathBuf,
    pub agents: AgentsFile,
    pub settings: Settings,
    pub operator_token: String,
    /// Set when this start generated `agents.env`: the new agent's id.
    pub generated_agent: Option<String>,
    /// Things to log as warnings (unknown keys, loose permissions).
    pub warnings: Vec<String>,
}

/// A new bearer token: 32 random bytes, hex, with a recognisable prefix so that
/// secret scanners can spot a leaked one.
pub(crate) fn new_token() -> String {
    format!("ahub_{}", random_hex(32))
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<bool, ConfigError> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| ConfigError::io(path, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(ConfigError::io(path, e)),
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))
}

/// `config.yaml` parsed (the defaults if there is none), with its warnings.
pub(crate) fn read_settings(path: &Path) -> Result<(Settings, Vec<String>), ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => settings::parse(&path.display().to_string(), &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Settings::default(), Vec::new())),
        Err(e) => Err(ConfigError::io(path, e)),
    }
}

/// Create missing files (when `create` is set), then parse them.
pub(crate) fn prepare(dir: &Path, create: bool) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut generated_agent = None;
    let agents_path = dir.join(AGENTS_FILE);
    let token_path = dir.join(OPERATOR_TOKEN_FILE);
    if create {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ConfigError::io(dir, e))?;
        let text = format!(
            "# agent-hub agents: one AGENT_ID=TOKEN per line. Keep this file private (0600).\n\
             # Add an agent with a line like: codex=<a long random token>\n\
             {FIRST_AGENT_ID}={}\n",
            new_token()
        );
        if write_new(&agents_path, 0o600, &text)? {
            generated_agent = Some(FIRST_AGENT_ID.to_string());
        }
        write_new(&token_path, 0o600, &format!("{}\n", new_token()))?;
        write_new(&dir.join(SETTINGS_FILE), 0o644, settings::TEMPLATE)?;
    }
    let agents_display = agents_path.display().to_string();
    let agents = EnvFileRegistry::new(dir).load()?;
    if agents.agents.is_empty() {
        warnings.push(format!(
            "{agents_display}: no agents listed; no agent can connect"
        ));
    }
    for p in [&agents_path, &token_path] {
        if let Ok(meta) = fs::metadata(p) {
            if meta.permissions().mode() & 0o077 != 0 {
                warnings.push(format!(
                    "{} is readable by group or others; run: chmod 600 {}",
                    p.display(),
                    p.display()
                ));
            }
        }
    }
    let (settings, w) = read_settings(&dir.join(SETTINGS_FILE))?;
    warnings.extend(w);
    let operator_token = read(&token_path)?.trim().to_string();
    if operator_token.is_empty() {
        return Err(ConfigError::BadFile {
            file: token_path.display().to_string(),
            reason: "is empty; delete it and restart to generate a new operator token".into(),
        });
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        agents,
        settings,
        operator_token,
        generated_agent,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_generates_then_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        let first = prepare(&dir, true).unwrap();
        assert_eq!(first.generated_agent.as_deref(), Some(FIRST_AGENT_ID));
        assert_eq!(first.agents.agents.len(), 1);
        assert!(first.warnings.is_empty(), "{:?}", first.warnings);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(AGENTS_FILE)), 0o600);
        assert_eq!(mode(&dir.join(OPERATOR_TOKEN_FILE)), 0o600);
        let second = prepare(&dir, true).unwrap();
        assert!(second.generated_agent.is_none());
        assert_eq!(second.agents.agents, first.agents.agents);
        assert_eq!(second.operator_token, first.operator_token);
    }

    #[test]
    fn warns_on_loose_permissions() {
        let tmp = tempfile::tempdir().unwrap();
        prepare(tmp.path(), true).unwrap();
        let p = tmp.path().join(AGENTS_FILE);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let l = prepare(tmp.path(), true).unwrap();
        assert!(l.warnings.iter().any(|w| w.contains("chmod 600")));
    }

    #[test]
    fn cluster_key_is_generated_private_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let key = cluster_key(tmp.path()).unwrap();
        let p = tmp.path().join(CLUSTER_KEY_FILE);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(cluster_key(tmp.path()).unwrap(), key, "kept");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let e = cluster_key(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        fs::write(&p, "not hex\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let e = cluster_key(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn missing_files_without_create_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(prepare(&tmp.path().join("none"), false).is_err());
    }
}
