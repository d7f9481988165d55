//! Reloading the agent list while serving (`POST /operator/reload`, SIGHUP): all or
//! nothing. The new list is read and checked first; an invalid one changes nothing.
//! Then new agents get their actors before their tokens work, the token index is
//! replaced whole, and the sessions (and GET streams) of removed or rotated agents
//! are closed, so an old token is refused from the next request on.

use super::error::ApiError;
use super::state::HubSlot;
use crate::auth::{token_hash_column, LiveTokens};
use crate::config::AgentRegistry;
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
}

/// Everything a reload touches; shared by the operator route and the SIGHUP handler.
pub(crate) struct Reloader {
    registry: Box<dyn AgentRegistry>,
    /// operator.token, re-read too (`hubctl operator-token rotate`).
    operator_token_file: std::path::PathBuf,
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
        tokens: Arc<LiveTokens>,
        sessions: Arc<Sessions>,
        hub: HubSlot,
    ) -> Self {
        Reloader {
            registry,
            operator_token_file,
            tokens,
            sessions,
            hub,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-read the agent list and put it in force. An invalid list answers 400 with
    /// its `file:line: reason` and leaves everything as it was.
    pub(crate) async fn reload(&self) -> Result<Reloaded, ApiError> {
        let _one = self.running.lock().await;
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
        let hub = self.hub.get().await?;
        let rows = agents
            .agents
            .iter()
            .map(|a| (a.id.clone(), token_hash_column(&a.token)))
            .collect();
        let (added, removed) = match hub.sync_agents(rows, Utc::now()).await {
            Ok(r) => r,
            Err(e) => return Err(ApiError::from_hub(&hub, e).await),
        };
        let old = self.tokens.current();
        let operator_token_rotated = !old.is_operator_token(&operator_token);
        let new = crate::auth::TokenIndex::new(&agents, &operator_token);
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
        let changes: Vec<(&str, &str)> = added
            .iter()
            .map(|a| ("agent_added", a.as_str()))
            .chain(removed.iter().map(|a| ("agent_removed", a.as_str())))
            .chain(rotated.iter().map(|a| ("agent_token_rotated", a.as_str())))
            .chain(operator_token_rotated.then_some(("operator_token_rotated", "")))
            .collect();
        if let Err(e) = hub.audit_token_changes(&changes, Utc::now()).await {
            // The change is in force already; only its record is missing.
            tracing::error!(error = %e, "reload applied but its audit records could not be stored");
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
        };
        tracing::info!(
            agents = r.agents,
            added = ?r.added,
            removed = ?r.removed,
            rotated = ?r.rotated,
            sessions_closed = r.sessions_closed,
            operator_token_rotated = r.operator_token_rotated,
            "agents reloaded"
        );
        Ok(r)
    }
}
