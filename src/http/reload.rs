//! Reloading the agent list, the operator token and config.yaml's live keys while
//! serving (`POST /operator/reload`, SIGHUP): all or nothing. The files are read and
//! checked first; an invalid one changes nothing.
//! Then new agents get their actors before their tokens work, the token index is
//! replaced whole, and the sessions (and GET streams) of removed or rotated agents
//! are closed, so an old token is refused from the next request on.

use super::error::ApiError;
use super::state::{Fill, HubSlot};
use crate::auth::{token_hash_column, LiveTokens};
use crate::config::live::Merged;
use crate::config::{AgentRegistry, LiveSettings};
use crate::domain::AgentId;
use crate::mcp::session::Sessions;
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;

/// What a reload changed (ids only, never tokens).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reloaded {
    /// Agents listed now.
    pub agents: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Agents whose token changed.
    pub rotated: Vec<String>,
    /// Sessions closed (removed and rotated agents').
    pub sessions_closed: usize,
    /// operator.token changed: the old operator token is refused from now on.
    pub operator_token_rotated: bool,
    /// config.yaml keys now in force with a new value.
    pub settings_changed: Vec<&'static str>,
    /// config.yaml keys changed in the file that take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Everything a reload touches; shared by the operator route and the SIGHUP handler.
pub(crate) struct Reloader {
    registry: Box<dyn AgentRegistry>,
    /// operator.token, re-read too (`hubctl operator-token rotate`).
    operator_token_file: std::path::PathBuf,
    /// config.yaml: its live keys are put in force (see `config::live`).
    settings_file: std::path::PathBuf,
    settings: Arc<LiveSettings>,
    tokens: Arc<LiveTokens>,
    sessions: Arc<Sessions>,
    hub: HubSlot,
    /// One reload at a time: two interleaved ones could leave actors and tokens of
    /// different lists.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(
        registry: Box<dyn AgentRegistry>,
        operator_token_file: std::path::PathBuf,
        settings_file: std::path::PathBuf,
        settings: Arc<LiveSettings>,
        tokens: Arc<LiveTokens>,
        sessions: Arc<Sessions>,
        hub: HubSlot,
    ) -> Self {
        Reloader {
            registry,
            operator_token_file,
            settings_file,
            settings,
            tokens,
            sessions,
            hub,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-read the agent list, the operator token and config.yaml, and put them in
    /// force. An invalid file answers 400 with its `file:line: reason` (or
    /// `file: key: reason`) and leaves everything as it was.
    pub(crate) async fn reload(&self) -> Result<Reloaded, ApiError> {
        let _one = self.running.lock().await;
        // Read and checked before anything changes: all or nothing.
        let (new_settings, warnings) = crate::config::bootstrap::read_settings(&self.settings_file)
            .map_err(|e| {
                tracing::error!("reload refused, nothing changed: {e}");
                ApiError::invalid_argument(e.to_string())
            })?;
        let merged = crate::config::live::merge(&self.settings.load(), &new_settings);
        let agents = self.registry.load().map_err(|e| {
            tracing::error!("reload refused, agents unchanged: {e}");
            ApiError::invalid_argument(e.to_string())
        })?;
        // The operator token too, checked before anything changes.
        let file = self.operator_token_file.display().to_string();
        let operator_token = std::fs::read_to_string(&self.operator_token_file)
            .map_err(|e| ApiError::invalid_argument(format!("{file}: {e}")))?
            .trim()
            .to_string();
        if operator_token.is_empty() {
            return Err(ApiError::invalid_argument(format!(
                "{file}: empty; it must hold the operator token"
            )));
        }
        // A cluster node standing by has no hub: it reloads its own tokens (it
        // checks callers before forwarding) and settings; the node that serves
        // records agent changes in the agents table and the audit log when it
        // reloads.
        // (A hub in the slot that only may not answer now, its leases being
        // checked, is still the one to sync: the reload waits for it or fails.)
        let hub = match self.hub.peek() {
            Fill::Standby(_) if !self.hub.is_filled() => None,
            _ => Some(self.hub.get().await?),
        };
        let old = self.tokens.current();
        let operator_token_rotated = !old.is_operator_token(&operator_token);
        let new = crate::auth::TokenIndex::new(&agents, &operator_token);
        let (added, removed) = match &hub {
            Some(hub) => {
                let rows = agents
                    .agents
                    .iter()
                    .map(|a| (a.id.clone(), token_hash_column(&a.token)))
                    .collect();
                match hub.sync_agents(rows, Utc::now()).await {
                    Ok(r) => r,
                    Err(e) => return Err(ApiError::from_hub(hub, e).await),
                }
            }
            None => listed_changes(&old, &new),
        };
        let rotated: Vec<String> = {
            let (before, after) = (old.agent_digests(), new.agent_digests());
            let mut r: Vec<String> = after
                .iter()
                .filter(|(id, d)| before.get(*id).is_some_and(|b| b != *d))
                .map(|(id, _)| id.to_string())
                .collect();
            r.sort();
            r
        };
        self.tokens.replace(new);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let Merged {
            settings,
            changed: settings_changed,
            restart_needed,
        } = merged;
        if settings_changed.contains(&"log_level") {
            // Checked when the file was parsed; this can fail only if logging
            // was never set up (then there is nothing to change).
            if let Err(e) = crate::log_filter::set(settings.log_level.as_deref()) {
                tracing::warn!("log_level not changed: {e}");
            }
        }
        if !settings_changed.is_empty() {
            match &hub {
                Some(hub) => hub.put_settings(settings),
                None => self.settings.store(Arc::new(settings)),
            }
        }
        let changes: Vec<(&str, &str)> = added
            .iter()
            .map(|a| ("agent_added", a.as_str()))
            .chain(removed.iter().map(|a| ("agent_removed", a.as_str())))
            .chain(rotated.iter().map(|a| ("agent_token_rotated", a.as_str())))
            .chain(operator_token_rotated.then_some(("operator_token_rotated", "")))
            .collect();
        if let Some(hub) = &hub {
            if let Err(e) = hub.audit_token_changes(&changes, Utc::now()).await {
                // The change is in force already; only its record is missing.
                tracing::error!(error = %e, "reload applied but its audit records could not be stored");
            }
        }
        let mut sessions_closed = 0;
        for id in removed.iter().chain(&rotated) {
            sessions_closed += self.sessions.close_agent(&AgentId::new(id));
        }
        let r = Reloaded {
            agents: agents.agents.len(),
            added,
            removed,
            rotated,
            sessions_closed,
            operator_token_rotated,
            settings_changed,
            restart_needed,
        };
        tracing::info!(
            agents = r.agents,
            added = ?r.added,
            removed = ?r.removed,
            rotated = ?r.rotated,
            sessions_closed = r.sessions_closed,
            operator_token_rotated = r.operator_token_rotated,
            settings_changed = ?r.settings_changed,
            restart_needed = ?r.restart_needed,
            "reloaded agents.env, operator.token and config.yaml"
        );
        Ok(r)
    }
}

/// Agents added and removed between two token indexes, by id, sorted.
fn listed_changes(
    old: &crate::auth::TokenIndex,
    new: &crate::auth::TokenIndex,
) -> (Vec<String>, Vec<String>) {
    let (before, after) = (old.agent_digests(), new.agent_digests());
    let mut added: Vec<String> = after
        .keys()
        .filter(|id| !before.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    let mut removed: Vec<String> = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    added.sort();
    removed.sort();
    (added, removed)
}
