//! Where files live, following the XDG base directories.

use super::ConfigError;
use std::path::PathBuf;

pub(crate) const AGENTS_FILE: &str = "agents.env";
pub(crate) const SETTINGS_FILE: &str = "config.yaml";
pub(crate) const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// `$HOME` (set and not empty).
pub(crate) fn home_dir() -> Result<PathBuf, ConfigError> {
    home()
}

fn home() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome)
}

fn xdg(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        // The XDG spec says relative values are invalid and must be ignored.
        .filter(|p| p.is_absolute())
}

/// `$XDG_CONFIG_HOME/agent-hub`, else `~/.config/agent-hub`.
/// (`--config-dir` / `AGENT_HUB_CONFIG_DIR` are applied by the caller first.)
pub(crate) fn default_config_dir() -> Result<PathBuf, ConfigError> {
    Ok(match xdg("XDG_CONFIG_HOME") {
        Some(p) => p.join("agent-hub"),
        None => home()?.join(".config").join("agent-hub"),
    })
}

/// `$XDG_DATA_HOME/agent-hub/hub.db`, else `~/.local/share/agent-hub/hub.db`.
pub(crate) fn default_db() -> Result<PathBuf, ConfigError> {
    let base = match xdg("XDG_DATA_HOME") {
        Some(p) => p,
        None => home()?.join(".local").join("share"),
    };
    Ok(base.join("agent-hub").join("hub.db"))
}
