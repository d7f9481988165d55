//! Reloading the agent list, the operator token and config.yaml's live keys while
//! serving (`POST /operator/reload`, SIGHUP): all or nothing. The files are read and
//! checked first; an invalid one changes nothing.
//! Then new agents get their actors before their tokens work, the token index is
//! replaced whole, and the sessions (and GET streams) of removed or rotated agents
//! are closed, so an old token is refused from the next request on.
//!
//! Cluster mode keeps the agents in the agents table ([`crate::store::pg::agents`]):
//! a reload applies to it what this node's `agents.env` changed since the node
//! last read it, then every node follows the table ([`Reloader::follow`], polled
//! every second), the serving node's hub included. Sessions ended at any node
//! are followed with it ([`super::revoked`]).

use super::error::ApiError;
use super::state::{Fill, HubSlot};
use crate::actors::Hub;
use crate::auth::{token_hash_column, LiveTokens, TokenIndex};
use crate::config::live::Merged;
use crate::config::{registry, AgentRegistry, AgentsFile, LiveSettings};
use crate::domain::AgentId;
use crate::mcp::session::Sessions;
use crate::store::pg::{agents as table, Pool};
use chrono::Utc;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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
    /// Cluster mode: the agents table is the registry (set once the store is open).
    table: OnceLock<Table>,
    /// Sessions ended by DELETE, at this node or another (cluster mode).
    revoked: super::revoked::Revoked,
    /// One reload at a time: two interleaved ones could leave actors and tokens of
    /// different lists.
    running: tokio::sync::Mutex<()>,
}

/// Cluster mode's registry and what this node knows of it.
struct Table {
    pool: Pool,
    /// `agents.env` as this node last applied it, as `(id, token_hash)` rows: a
    /// reload applies only what changed since, so that a node whose file is stale
    /// never undoes an edit made at another node.
    applied: Mutex<Vec<(String, String)>>,
    /// The registry version this node's tokens were built from (-1: none yet).
    seen: AtomicI64,
    /// When the last follow of the table started, and the last one an unknown
    /// token asked for, in milliseconds since `since` (see
    /// [`Reloader::follow_on_miss`]).
    started: AtomicU64,
    missed: AtomicU64,
    since: std::time::Instant,
}

/// At most this often does an unknown token make a node read the agents table
/// (a flood of bad tokens costs ten small reads a second).
const MISS_FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Table {
    /// Milliseconds since the table was first used (at least 1: 0 means never).
    fn now_ms(&self) -> u64 {
        (self.since.elapsed().as_millis() as u64).max(1)
    }
}

/// What putting a new token index in force changed.
struct Applied {
    added: Vec<String>,
    removed: Vec<String>,
    rotated: Vec<String>,
    sessions_closed: usize,
}

/// The `(id, token_hash)` rows of an agents file, by id.
fn file_rows(agents: &AgentsFile) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = agents
        .agents
        .iter()
        .map(|a| (a.id.clone(), token_hash_column(&a.token)))
        .collect();
    rows.sort();
    rows
}

fn registry_unavailable(e: crate::store::pg::PgError) -> ApiError {
    tracing::error!(error = %e, "the agents table could not be read or written");
    ApiError::unavailable(format!(
        "the agent registry (the agents table) is unavailable: {e}"
    ))
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
            revoked: super::revoked::Revoked::new(sessions.clone()),
            sessions,
            hub,
            table: OnceLock::new(),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Cluster mode, once the store is open: the agents of this node's
    /// `agents.env` that the cluster has never had join the table, and the node
    /// accepts the table's agents from now on. Returns the ids it added.
    pub(crate) async fn use_table(&self, pool: Pool) -> Result<Vec<String>, ApiError> {
        let _one = self.running.lock().await;
        let file = self.registry.load().map_err(|e| {
            tracing::error!("agents.env unreadable: {e}");
            ApiError::invalid_argument(e.to_string())
        })?;
        let rows = file_rows(&file);
        self.revoked.use_table(pool.clone());
        let added = table::seed(&pool, &rows)
            .await
            .map_err(registry_unavailable)?;
        let t = Table {
            pool,
            applied: Mutex::new(rows),
            seen: AtomicI64::new(-1),
            started: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            since: std::time::Instant::now(),
        };
        if self.table.set(t).is_err() {
            return Err(ApiError::internal(
                "the agent registry was set twice".into(),
            ));
        }
        self.follow_locked(false, None).await?;
        Ok(added)
    }

    /// Sessions ended at any node (cluster mode; see [`super::revoked`]).
    pub(crate) fn revoked(&self) -> &super::revoked::Revoked {
        &self.revoked
    }

    /// Cluster mode: follow the agents table if it changed since this node last
    /// read it (or, with `hub_too`, also bring the hub in the slot in line with
    /// it, as after a rebuild). A no-op outside cluster mode.
    pub(crate) async fn follow(&self, hub_too: bool) -> Result<(), ApiError> {
        let _one = self.running.lock().await;
        self.follow_locked(hub_too, None).await
    }

    /// Cluster mode: bring `hub`, about to be put in the slot, in line with the
    /// agents table, and hold reloads until the caller has put it there (drop the
    /// guard then): a reload made while the node stood by reached only its
    /// tokens, and no call may find the hub without an agent its token names.
    pub(crate) async fn ready_to_fill(&self, hub: &Hub) -> tokio::sync::MutexGuard<'_, ()> {
        let one = self.running.lock().await;
        if let Err(e) = self.follow_locked(true, Some(hub.clone())).await {
            tracing::error!(error = %e, "could not bring the hub in line with the agents table; the next poll retries");
            // Whatever the table's version, the next poll syncs the hub.
            if let Some(t) = self.table.get() {
                t.seen.store(-1, Ordering::Release);
            }
        }
        one
    }

    /// Cluster mode: a token this node does not know may be one just added or
    /// rotated at another node, which this one follows only every second: read
    /// the table now (or wait for a read under way), so that the caller checks
    /// the token again against what the table holds, instead of answering 401
    /// to an agent the operator just added (clients do not retry a 401).
    pub(crate) async fn follow_on_miss(&self) {
        let Some(t) = self.table.get() else {
            return;
        };
        let asked = t.now_ms();
        let _one = self.running.lock().await;
        // A read that began after the refusal saw the change, if there was one.
        if t.started.load(Ordering::Acquire) >= asked {
            return;
        }
        // At most every MISS_FOLLOW_EVERY: a later read, not none (one that began
        // before the change would not have seen it).
        let last = t.missed.load(Ordering::Acquire);
        let next = last + MISS_FOLLOW_EVERY.as_millis() as u64;
        let now = t.now_ms();
        if last != 0 && now < next {
            tokio::time::sleep(std::time::Duration::from_millis(next - now)).await;
            if t.started.load(Ordering::Acquire) >= asked {
                return;
            }
        }
        t.missed.store(t.now_ms(), Ordering::Release);
        if let Err(e) = self.follow_locked(false, None).await {
            tracing::debug!(error = %e, "could not read the agents table for an unknown token");
        }
    }

    async fn follow_locked(&self, force: bool, hub: Option<Hub>) -> Result<(), ApiError> {
        let Some(t) = self.table.get() else {
            return Ok(());
        };
        t.started.store(t.now_ms(), Ordering::Release);
        // Apart from the registry: one failing must not hold the other back (its
        // error is logged there; the next poll tries again).
        if let Ok(n @ 1..) = self.revoked.follow().await {
            tracing::debug!(sessions = n, "followed revoked_sessions");
        }
        self.follow_registry(t, force, hub).await
    }

    async fn follow_registry(
        &self,
        t: &Table,
        force: bool,
        hub: Option<Hub>,
    ) -> Result<(), ApiError> {
        let version = table::version(&t.pool)
            .await
            .map_err(registry_unavailable)?;
        if version == t.seen.load(Ordering::Acquire) && !force {
            return Ok(());
        }
        let old = self.tokens.current();
        let new = self.read_table(t, old.operator_digest()).await?;
        let hub = match hub {
            Some(h) => Some(h),
            None => self.serving_hub().await?,
        };
        let a = self.put_in_force(&old, new, hub.as_ref()).await?;
        if !(a.added.is_empty() && a.removed.is_empty() && a.rotated.is_empty()) {
            tracing::info!(
                added = ?a.added,
                removed = ?a.removed,
                rotated = ?a.rotated,
                sessions_closed = a.sessions_closed,
                "followed the agents table"
            );
        }
        if let Some(hub) = &hub {
            self.audit(hub, &a, false).await;
        }
        Ok(())
    }

    /// Cluster mode, for `hubctl agent rotate/remove` of an agent this node's
    /// `agents.env` does not list: give agent `id` the token whose hash is
    /// `token_hash` (`Some`), or remove it (`None`), in the agents table; every
    /// node follows. 404 `UNKNOWN_AGENT` for an agent the table does not hold
    /// active, and outside cluster mode (there `agents.env` is the list).
    pub(crate) async fn change_agent(
        &self,
        id: &str,
        token_hash: Option<String>,
    ) -> Result<(), ApiError> {
        let _one = self.running.lock().await;
        let unknown = |where_: &str| ApiError::Operator {
            status: actix_web::http::StatusCode::NOT_FOUND,
            code: crate::domain::ErrorCode::UnknownAgent,
            message: format!("agent {id} is not in {where_}"),
        };
        let Some(t) = self.table.get() else {
            return Err(unknown("agents.env"));
        };
        let listed = table::load(&t.pool).await.map_err(registry_unavailable)?;
        if !listed.rows.iter().any(|(a, _)| a == id) {
            return Err(unknown("the cluster's agents table"));
        }
        let change = match token_hash {
            Some(h) if crate::auth::is_token_hash(&h) => registry::Change {
                upserts: vec![(id.to_string(), h)],
                removals: Vec::new(),
            },
            Some(_) => {
                return Err(ApiError::invalid_argument(
                    "token_hash: must be 32 lowercase hex digits (the first 16 bytes of the token's SHA-256)".into(),
                ))
            }
            None => registry::Change {
                upserts: Vec::new(),
                removals: vec![id.to_string()],
            },
        };
        table::apply(&t.pool, &change)
            .await
            .map_err(registry_unavailable)?;
        self.follow_locked(false, None).await
    }

    /// The table's agents as a token index with `operator`, and the registry
    /// version it was read at (recorded once the index is in force).
    async fn read_table(
        &self,
        t: &Table,
        operator: crate::auth::Digest,
    ) -> Result<(TokenIndex, Option<i64>), ApiError> {
        let listed = table::load(&t.pool).await.map_err(registry_unavailable)?;
        let (index, unusable) = TokenIndex::from_rows(&listed.rows, operator);
        if !unusable.is_empty() {
            tracing::warn!(agents = ?unusable, "agents in the table without a usable token_hash (32 hex digits) cannot connect");
        }
        Ok((index, Some(listed.version)))
    }

    /// The hub to bring in line with the agents: the one in the slot, unless this
    /// is a cluster node standing by or still loading (it has none; it only checks
    /// tokens before forwarding, and follows the table once its hub is in the
    /// slot). (A hub in the slot that only may not answer now, its leases being
    /// checked, is still the one to sync: this waits for it or fails. So does a
    /// reload while SQLite loads: the hub is built from the list of the start.)
    async fn serving_hub(&self) -> Result<Option<Hub>, ApiError> {
        Ok(match self.hub.peek() {
            Fill::Ready(hub) => Some(hub),
            Fill::Standby(_) if !self.hub.is_filled() => None,
            Fill::Loading if self.table.get().is_some() => None,
            _ => Some(self.hub.get().await?),
        })
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
        // Cluster mode: first what other nodes changed since the last poll, so
        // that what this reload changes is told against the table as it is (an
        // agent added at another node a moment ago and rotated here is rotated).
        if self.table.get().is_some() {
            self.follow_locked(false, None).await?;
        }
        let old = self.tokens.current();
        let operator_token_rotated = !old.is_operator_token(&operator_token);
        let new = match self.table.get() {
            None => (TokenIndex::new(&agents, &operator_token), None),
            Some(t) => {
                // What this node's file changed since it last read it goes to the
                // table; then the node takes the table's agents (everyone's edits).
                let rows = file_rows(&agents);
                let change = {
                    let applied = t.applied.lock().unwrap_or_else(|p| p.into_inner());
                    registry::change(&applied, &rows)
                };
                table::apply(&t.pool, &change)
                    .await
                    .map_err(registry_unavailable)?;
                *t.applied.lock().unwrap_or_else(|p| p.into_inner()) = rows;
                self.read_table(t, crate::auth::digest(&operator_token))
                    .await?
            }
        };
        let listed = new.0.agent_keys().len();
        let hub = self.serving_hub().await?;
        let a = self.put_in_force(&old, new, hub.as_ref()).await?;
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
        if let Some(hub) = &hub {
            self.audit(hub, &a, operator_token_rotated).await;
        }
        let Applied {
            added,
            removed,
            rotated,
            sessions_closed,
        } = a;
        let r = Reloaded {
            agents: listed,
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

impl Reloader {
    /// Put `new` in force: a serving hub first gets the actors of new agents (and
    /// drops those of removed ones), then the token index is replaced whole and
    /// the sessions of removed and rotated agents are closed.
    async fn put_in_force(
        &self,
        old: &TokenIndex,
        (new, version): (TokenIndex, Option<i64>),
        hub: Option<&Hub>,
    ) -> Result<Applied, ApiError> {
        let (added, removed) = match hub {
            Some(hub) => {
                // In cluster mode the table already holds the list: the hub only
                // follows it; otherwise the hub writes the file's list to it.
                let write = self.table.get().is_none();
                match hub.sync_agents(new.agent_rows(), Utc::now(), write).await {
                    Ok(r) => r,
                    Err(e) => return Err(ApiError::from_hub(hub, e).await),
                }
            }
            None => listed_changes(old, &new),
        };
        let rotated: Vec<String> = {
            let (before, after) = (old.agent_keys(), new.agent_keys());
            let mut r: Vec<String> = after
                .iter()
                .filter(|(id, k)| before.get(*id).is_some_and(|b| b != *k))
                .map(|(id, _)| id.to_string())
                .collect();
            r.sort();
            r
        };
        self.tokens.replace(new);
        if let (Some(t), Some(v)) = (self.table.get(), version) {
            t.seen.store(v, Ordering::Release);
        }
        let mut sessions_closed = 0;
        for id in removed.iter().chain(&rotated) {
            sessions_closed += self.sessions.close_agent(&AgentId::new(id));
        }
        Ok(Applied {
            added,
            removed,
            rotated,
            sessions_closed,
        })
    }

    /// Record what changed in the audit log (by the serving node only: it owns
    /// the rows' shards). A failure is logged: the change is in force already.
    async fn audit(&self, hub: &Hub, a: &Applied, operator_token_rotated: bool) {
        let changes: Vec<(&str, &str)> = a
            .added
            .iter()
            .map(|id| ("agent_added", id.as_str()))
            .chain(a.removed.iter().map(|id| ("agent_removed", id.as_str())))
            .chain(
                a.rotated
                    .iter()
                    .map(|id| ("agent_token_rotated", id.as_str())),
            )
            .chain(operator_token_rotated.then_some(("operator_token_rotated", "")))
            .collect();
        if changes.is_empty() {
            return;
        }
        if let Err(e) = hub.audit_token_changes(&changes, Utc::now()).await {
            tracing::error!(error = %e, "agents changed but the audit records could not be stored");
        }
    }
}

/// Agents added and removed between two token indexes, by id, sorted.
fn listed_changes(
    old: &crate::auth::TokenIndex,
    new: &crate::auth::TokenIndex,
) -> (Vec<String>, Vec<String>) {
    let (before, after) = (old.agent_keys(), new.agent_keys());
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
