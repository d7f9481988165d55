//! Configuration: `agents.env` (who may connect), `config.yaml` (limits and server
//! settings), where those files live, and what a first start generates.
//! Precedence for host/port/db: flag > environment variable > config.yaml > default
//! (flags and environment are merged by clap before they reach [`resolve`]).

pub(crate) mod agents_env;
pub(crate) mod bootstrap;
pub(crate) mod live;
pub(crate) mod notify;
pub(crate) mod paths;
pub(crate) mod registry;
pub(crate) mod settings;
mod suggest;

pub(crate) use agents_env::AgentsFile;
pub(crate) use live::LiveSettings;
pub(crate) use registry::{AgentRegistry, EnvFileRegistry};
pub(crate) use settings::{Durability, LogFormat, Placement, Settings};

use std::path::PathBuf;
use thiserror::Error;

pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";
pub(crate) const DEFAULT_PORT: u16 = 8765;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {reason}")]
    AgentsLine {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: {key}: {reason}")]
    BadValue {
        file: String,
        key: String,
        reason: String,
    },
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a home directory: set HOME, XDG_CONFIG_HOME or AGENT_HUB_CONFIG_DIR")]
    NoHome,
}

impl ConfigError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Host, port and database path after applying precedence.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
    pub db: PathBuf,
    /// The PostgreSQL URL in cluster mode; `None`: SQLite at `db`.
    pub store: Option<String>,
    /// This node's name (cluster mode).
    pub node_id: String,
    /// How the shards are placed (cluster mode): `--cluster-placement`, else the
    /// file's `cluster_placement`.
    pub placement: Placement,
}

/// clap's parser of `--node-id`.
pub(crate) fn parse_node_id_arg(s: &str) -> Result<String, String> {
    settings::parse_node_id(s)
}

/// The host name, as a node id (`node` if it has none usable).
fn default_node_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    settings::parse_node_id(name.trim()).unwrap_or_else(|_| "node".into())
}

/// Merge flag/env values (already merged by clap) with the file and the defaults.
pub(crate) fn resolve(
    host: Option<String>,
    port: Option<u16>,
    db: Option<PathBuf>,
    cluster: (Option<String>, Option<String>, Option<Placement>),
    settings: &Settings,
) -> Result<Endpoint, ConfigError> {
    let (store, node_id, placement) = cluster;
    let placement = placement.unwrap_or(settings.cluster_placement);
    let host = host
        .or_else(|| settings.host.clone())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = port.or(settings.port).unwrap_or(DEFAULT_PORT);
    let db = match db.or_else(|| settings.db.clone()) {
        Some(p) => p,
        None => paths::default_db()?,
    };
    let store = match store {
        // `--store sqlite` wins over a URL in the file.
        Some(s) => settings::parse_store(&s).map_err(|why| ConfigError::BadFile {
            file: "--store".into(),
            reason: why,
        })?,
        None => settings.store.clone(),
    };
    let node_id = node_id
        .or_else(|| settings.node_id.clone())
        .unwrap_or_else(default_node_id);
    Ok(Endpoint {
        placement,
        host,
        port,
        db,
        store,
        node_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_over_file_over_default() {
        let mut s = Settings::default();
        let e = resolve(None, None, Some("/x.db".into()), (None, None, None), &s).unwrap();
        assert_eq!((e.host.as_str(), e.port), (DEFAULT_HOST, DEFAULT_PORT));
        s.host = Some("0.0.0.0".into());
        s.port = Some(9000);
        let e = resolve(None, None, Some("/x.db".into()), (None, None, None), &s).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("0.0.0.0", 9000));
        let e = resolve(
            Some("::1".into()),
            Some(1),
            Some("/x.db".into()),
            (None, None, None),
            &s,
        )
        .unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 1));
    }
}
