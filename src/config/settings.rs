//! `config.yaml`: the reference's keys and defaults plus ours. Unknown keys are
//! warnings (typos should not stop a server); bad values are errors that stop start-up.

use super::ConfigError;
use serde_norway::Value;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Answer a write only after its transaction is committed (fsync'd).
    Durable,
    /// Answer at once; the writer commits within `commit_batch_window_ms`.
    Fast,
}

impl Durability {
    /// The config value: `durable` or `fast`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Fast => "fast",
        }
    }
}

/// Cluster mode: how the shards are placed over the live nodes
/// (`cluster_placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Placement {
    /// One node holds every shard and serves; the others stand by and forward.
    #[default]
    Standby,
    /// Each live node holds and serves the shards rendezvous hashing gives it.
    Spread,
}

impl Placement {
    /// As `cluster_placement:` names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Placement::Standby => "standby",
            Placement::Spread => "spread",
        }
    }
}

/// How log lines are written (`log_format`): the access log and the main log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Words after a timestamp, for people.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    // The reference's workflow limits.
    pub max_rounds: u32,
    pub max_assignments_per_round: u32,
    pub max_messages_per_task: u32,
    pub max_simultaneous_assignments: u32,
    pub lease_minutes: f64,
    /// A completed or closed task leaves memory after this long unused.
    pub finished_task_idle_secs: u64,
    /// Tasks one agent may have created that are neither completed nor closed.
    pub max_open_tasks_per_agent: u32,
    // Where to serve.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub db: Option<PathBuf>,
    /// `postgres://USER@HOST:PORT/DB` for cluster mode; `None` (or `sqlite`): the
    /// SQLite file `db`.
    pub store: Option<String>,
    /// This node's name in a cluster (default: the host name).
    pub node_id: Option<String>,
    /// The MCP URL the other cluster nodes forward calls to this one at (default:
    /// `http://HOST:PORT/mcp` of the listener).
    pub advertise_url: Option<String>,
    /// Cluster mode: how long a shard lease lasts without renewal (a `kill -9`
    /// failover takes about this long; a node stalled for two thirds of it stops
    /// serving).
    pub cluster_lease_ttl_secs: u64,
    /// Cluster mode: one serving node and standbys, or the shards spread.
    pub cluster_placement: Placement,
    // Persistence.
    pub durability: Durability,
    pub commit_batch_max_ops: usize,
    pub commit_batch_window_ms: u64,
    // Transport.
    pub max_body_bytes: usize,
    /// An authenticated POST must send its whole body within this many seconds.
    pub body_read_timeout_secs: u64,
    /// Most messages in one JSON-RPC batch (2025-03-26 sessions).
    pub max_batch_items: usize,
    /// Most open connections (actix stops accepting beyond).
    pub max_connections: usize,
    /// Most POST requests running at once, in all and per agent.
    pub max_in_flight: usize,
    pub max_in_flight_per_agent: usize,
    /// Bytes of one agent's answers not yet written (a client that does not read).
    pub max_answer_bytes_in_flight_per_agent: usize,
    /// A connection whose sent data stays unacknowledged this long is closed.
    pub write_timeout_secs: u64,
    /// After a stop signal, keep serving (with `/healthz` answering 503) this long
    /// before closing the port, so that a load balancer stops sending first.
    pub shutdown_drain_secs: u64,
    pub allowed_origins: Option<Vec<String>>,
    pub session_idle_timeout_secs: u64,
    pub max_sessions_per_agent: usize,
    pub sse_keepalive_secs: u64,
    pub presence_window_secs: u64,
    // Messaging.
    pub inbox_wait_max_seconds: u64,
    /// Most bytes of messages one `inbox_pull` (or inbox read) returns.
    pub max_pull_bytes: usize,
    /// Unread messages per agent beyond which agents' sends to it are refused.
    pub max_inbox_messages: usize,
    /// Unread bytes (as `max_pull_bytes` counts them) per agent, likewise.
    pub max_inbox_bytes: usize,
    /// Sends (`message_send`) one agent may make per second, beyond `send_burst`.
    pub send_rate_per_second: u64,
    /// Sends one agent may make at once after a quiet spell.
    pub send_burst: u64,
    // Locks.
    pub lock_ttl_min_seconds: u64,
    pub lock_ttl_max_seconds: u64,
    pub lock_wait_max_seconds: u64,
    /// Locks one agent may hold at once.
    pub max_locks_per_agent: usize,
    /// `lock_acquire` calls of one agent that may wait at once.
    pub max_lock_waits_per_agent: usize,
    // History.
    pub retention: Retention,
    // Operations.
    /// `GET /metrics` without the operator token.
    pub metrics_public: bool,
    /// One stderr line per tool call.
    pub access_log: bool,
    /// Text or JSON lines, for the access log and the main log.
    pub log_format: LogFormat,
    /// Which log lines are written (a `RUST_LOG`-style filter, e.g. `info` or
    /// `agent_hub=debug,info`); `None`: `RUST_LOG`, else `info`.
    pub log_level: Option<String>,
    /// The operator's webhooks (`notify:`).
    pub notify: Vec<super::notify::Target>,
    // Dashboard (`/ui`).
    pub dashboard: Dashboard,
    /// Claude Code channel events (`push:`).
    pub push: crate::domain::channel::Rules,
}

/// The operator dashboard's settings: where browsers reach it and its sessions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dashboard {
    /// The URL browsers use (behind a TLS-terminating proxy: its `https://` URL);
    /// its origin is allowed, and `https` makes the session cookie `Secure`.
    pub public_url: Option<String>,
    /// `Secure` session cookies even without an `https` `public_url`.
    pub cookie_secure: bool,
    /// A session unused this long ends.
    pub session_idle_secs: u64,
    /// A session ends this long after its login, used or not.
    pub session_max_secs: u64,
    /// Sessions at once; a login beyond it ends the least recently used one.
    pub max_sessions: usize,
    /// Failed logins per minute, in all; beyond it logins are refused until the
    /// minute is over.
    pub failed_logins_per_minute: u32,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            public_url: None,
            cookie_secure: false,
            session_idle_secs: 3600,
            session_max_secs: 43_200,
            max_sessions: 16,
            failed_logins_per_minute: 10,
        }
    }
}

impl Dashboard {
    /// Whether the session cookie gets `Secure`.
    pub(crate) fn secure_cookie(&self) -> bool {
        self.cookie_secure
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// The origin (`scheme://host[:port]`) of `public_url`.
    pub(crate) fn public_origin(&self) -> Option<String> {
        let url = self.public_url.as_deref()?;
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split('/').next().unwrap_or(rest);
        Some(format!("{scheme}://{host}"))
    }
}

/// How long history is kept (`retention:` in config.yaml); `None` keeps it forever.
/// Retention is about disk: memory is bounded with or without it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Retention {
    /// Messages every recipient has read, this many days after they were sent.
    pub acked_messages_days: Option<f64>,
    /// Completed and closed tasks, this many days after their last change.
    pub terminal_tasks_days: Option<f64>,
    /// Audit events, this many days after they were written.
    pub audit_days: Option<f64>,
}

impl Retention {
    pub(crate) fn is_set(&self) -> bool {
        self.acked_messages_days.is_some()
            || self.terminal_tasks_days.is_some()
            || self.audit_days.is_some()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_rounds: 3,
            max_assignments_per_round: 6,
            max_messages_per_task: 40,
            max_simultaneous_assignments: 4,
            lease_minutes: 90.0,
            finished_task_idle_secs: 300,
            max_open_tasks_per_agent: 1000,
            host: None,
            port: None,
            db: None,
            store: None,
            node_id: None,
            advertise_url: None,
            cluster_lease_ttl_secs: 10,
            cluster_placement: Placement::Standby,
            durability: Durability::Durable,
            commit_batch_max_ops: 512,
            commit_batch_window_ms: 0,
            max_body_bytes: 1024 * 1024,
            body_read_timeout_secs: 10,
            max_batch_items: 64,
            max_connections: 10_000,
            max_in_flight: 4096,
            max_in_flight_per_agent: 64,
            max_answer_bytes_in_flight_per_agent: 16 << 20,
            write_timeout_secs: 30,
            shutdown_drain_secs: 0,
            allowed_origins: None,
            session_idle_timeout_secs: 1800,
            max_sessions_per_agent: 64,
            sse_keepalive_secs: 15,
            presence_window_secs: 120,
            inbox_wait_max_seconds: 25,
            max_pull_bytes: 1024 * 1024,
            max_inbox_messages: 10_000,
            max_inbox_bytes: 64 << 20,
            send_rate_per_second: 50,
            send_burst: 500,
            lock_ttl_min_seconds: 1,
            lock_ttl_max_seconds: 86_400,
            lock_wait_max_seconds: 25,
            max_locks_per_agent: 256,
            max_lock_waits_per_agent: 64,
            retention: Retention::default(),
            metrics_public: false,
            access_log: false,
            log_format: LogFormat::Text,
            log_level: None,
            notify: Vec::new(),
            dashboard: Dashboard::default(),
            push: crate::domain::channel::Rules::default(),
        }
    }
}

/// Keys the reference reads but never acts on; accepted silently for compatibility.
const REFERENCE_UNUSED: &[&str] = &["auto_approve", "max_hop_count", "auto_create_next_round"];

/// The commented template written on first start.
pub(crate) const TEMPLATE: &str = "\
# agent-hub settings. Every key is optional; the values shown are the defaults.
# `hubctl reload` (or SIGHUP) applies the limits, quotas, waits, presence, lock TTL
# bounds, retention, log_level and push at once; the other keys at the next start.
# Workflow limits (same keys as agent-hub-mcp):
# max_rounds: 3
# max_assignments_per_round: 6
# max_messages_per_task: 40
# max_simultaneous_assignments: 4
# lease_minutes: 90            # fractions allowed, e.g. 0.5
# finished_task_idle_secs: 300 # a completed or closed task leaves memory after this long unused
# max_open_tasks_per_agent: 1000 # tasks one agent created that are not completed or closed
# Where to serve (flags and AGENT_HUB_HOST / AGENT_HUB_PORT / AGENT_HUB_DB win over these):
# host: 127.0.0.1
# port: 8765
# db: ~/.local/share/agent-hub/hub.db
# store: sqlite                # or postgres://USER@HOST:PORT/DB (cluster mode; docs/cluster.md)
# node_id: host-a              # cluster mode: this node's name (default: the host name)
# advertise_url: http://10.0.0.5:8765/mcp  # cluster mode: where other nodes forward calls to this one
# cluster_lease_ttl_secs: 10   # cluster mode: a shard lease without renewal lasts this long (3-15; failover time)
# cluster_placement: standby   # cluster mode: standby (one node serves) or spread (each node serves its shards; docs/cluster.md)
# Persistence:
# durability: durable          # durable: answer writes once on disk; fast: answer at once
# commit_batch_max_ops: 512    # most writes in one transaction
# commit_batch_window_ms: 0    # extra time the writer waits to fill a transaction
# Transport:
# max_body_bytes: 1048576
# body_read_timeout_secs: 10   # an authenticated POST sends its whole body within this (else 408)
# max_batch_items: 64          # most messages in one JSON-RPC batch (2025-03-26 sessions)
# max_connections: 10000       # open connections at most (the server stops accepting beyond)
# max_in_flight: 4096          # POST requests running at once (503 + Retry-After beyond)
# max_in_flight_per_agent: 64  # POST requests of one agent running at once (429 + Retry-After beyond)
# max_answer_bytes_in_flight_per_agent: 16777216  # unread answer bytes of one agent (429 beyond; one always goes)
# write_timeout_secs: 30       # a client that reads nothing of its answers this long is disconnected
# shutdown_drain_secs: 0       # on a stop signal, serve on this long (/healthz 503) before closing the port
# allowed_origins: [http://localhost:8765, http://127.0.0.1:8765]
# session_idle_timeout_secs: 1800
# max_sessions_per_agent: 64
# sse_keepalive_secs: 15
# presence_window_secs: 120
# Messaging:
# inbox_wait_max_seconds: 25   # longest inbox_pull wait_seconds (clients cut calls off near 30 s)
# max_pull_bytes: 1048576      # most bytes of messages one inbox_pull returns (always at least one)
# max_inbox_messages: 10000    # unread messages per agent; agents' sends beyond it are refused
# max_inbox_bytes: 67108864    # unread bytes per agent (counted as for max_pull_bytes), likewise
# send_rate_per_second: 50     # message_send calls per agent per second, beyond the burst
# send_burst: 500              # message_send calls an agent may make at once
# Locks:
# lock_ttl_min_seconds: 1
# lock_ttl_max_seconds: 86400
# lock_wait_max_seconds: 25    # longest lock_acquire wait_seconds
# max_locks_per_agent: 256     # locks one agent holds at once
# max_lock_waits_per_agent: 64 # lock_acquire calls of one agent waiting at once
# History (default: keep everything; applied hourly and by `hubctl prune`):
# retention:
#   acked_messages_days: 90     # messages every recipient has read
#   terminal_tasks_days: 180    # completed and closed tasks, after their last change
#   audit_days: 365
# Operations:
# metrics_public: false        # true: GET /metrics needs no operator token (keep the port private)
# access_log: false            # true: one stderr line per tool call (agent, tool, outcome, ms)
# log_format: text             # json: one JSON object per line (access log and main log)
# log_level: info              # a RUST_LOG-style filter, e.g. agent_hub=debug,info (RUST_LOG wins at start)
# Dashboard (/ui):
# public_url: https://hub.example.org  # the URL browsers use (behind a TLS proxy: https)
# cookie_secure: false         # true: Secure session cookies (implied by an https public_url)
# dashboard_session_idle_secs: 3600     # a dashboard session unused this long ends
# dashboard_session_max_secs: 43200     # and any session this long after its login
# dashboard_max_sessions: 16            # a login beyond it ends the least recently used session
# dashboard_failed_logins_per_minute: 10  # beyond it logins are refused for the rest of the minute
# Webhooks for the operator (JSON with a Slack-compatible `text`; see the README):
# notify:
#   - url: https://hooks.slack.com/services/T000/B000/XXXX
#     events: [round_awaiting_approval, task_completed, lease_lapsed, store_fault, agent_offline]
#     secret_file: webhook.secret  # signs each body (X-Agent-Hub-Signature-256); or secret: ...
# Claude Code channel events (notifications/claude/channel; see the README):
# push:
#   enabled: true
#   window_ms: 2000             # events for one agent within this are sent as one per kind
#   max_per_minute: 6           # events per agent in any minute at most; the rest wait, coalesced
#   kinds: {lease_expiring: true, lock_granted: true}  # turn single kinds off with false
";

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::BadValue {
            file: self.file.to_string(),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn int(&self, key: &str, v: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad(
                key,
                format!("must be an integer from {min} to {max}, got {}", show(v)),
            )),
        }
    }

    fn boolean(&self, key: &str, v: &Value) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.bad(key, format!("must be true or false, got {}", show(v))))
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(self.bad(key, format!("must be a non-empty string, got {}", show(v)))),
        }
    }
}

fn show(v: &Value) -> String {
    serde_norway::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Parse `config.yaml` text. Returns the settings and the warnings to log.
pub(crate) fn parse(file: &str, text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
    let ctx = Ctx { file };
    let mut s = Settings::default();
    let mut warnings = Vec::new();
    let doc: Value = serde_norway::from_str(text).map_err(|e| ConfigError::BadFile {
        file: file.to_string(),
        reason: format!("not valid YAML: {e}"),
    })?;
    let map = match doc {
        Value::Null => return Ok((s, warnings)),
        Value::Mapping(m) => m,
        _ => {
            return Err(ConfigError::BadFile {
                file: file.to_string(),
                reason: "must be a mapping of `key: value` lines".into(),
            })
        }
    };
    for (k, v) in &map {
        let Some(key) = k.as_str() else {
            return Err(ConfigError::BadFile {
                file: file.to_string(),
                reason: format!("key {} is not a string", show(k)),
            });
        };
        // `key:` with nothing after it means "use the default".
        if v.is_null() {
            continue;
        }
        if !set(&ctx, &mut s, key, v)? && !REFERENCE_UNUSED.contains(&key) {
            let hint = super::suggest::nearest(key)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            warnings.push(format!("{file}: unknown key `{key}` ignored{hint}"));
        }
    }
    if s.lock_ttl_min_seconds > s.lock_ttl_max_seconds {
        return Err(ctx.bad(
            "lock_ttl_min_seconds",
            format!(
                "{} is above lock_ttl_max_seconds ({})",
                s.lock_ttl_min_seconds, s.lock_ttl_max_seconds
            ),
        ));
    }
    Ok((s, warnings))
}

/// Set `key` from `v`; `false` when the key is not one of ours.
fn set(ctx: &Ctx, s: &mut Settings, key: &str, v: &Value) -> Result<bool, ConfigError> {
    const BIG: u64 = 1_000_000_000;
    match key {
        "max_rounds" => s.max_rounds = ctx.int(key, v, 1, 1000)? as u32,
        "max_assignments_per_round" => {
            s.max_assignments_per_round = ctx.int(key, v, 1, 1000)? as u32
        }
        "max_messages_per_task" => s.max_messages_per_task = ctx.int(key, v, 1, BIG)? as u32,
        "max_simultaneous_assignments" => {
            s.max_simultaneous_assignments = ctx.int(key, v, 1, 1000)? as u32
        }
        "lease_minutes" => s.lease_minutes = lease_minutes(ctx, key, v)?,
        "max_open_tasks_per_agent" => {
            s.max_open_tasks_per_agent = ctx.int(key, v, 1, 1_000_000)? as u32
        }
        "finished_task_idle_secs" => s.finished_task_idle_secs = ctx.int(key, v, 1, BIG)?,
        "host" => s.host = Some(ctx.string(key, v)?),
        "port" => s.port = Some(ctx.int(key, v, 0, 65535)? as u16),
        "db" => s.db = Some(expand_home(&ctx.string(key, v)?)),
        "store" => s.store = store(ctx, key, v)?,
        "node_id" => s.node_id = Some(node_id(ctx, key, v)?),
        "advertise_url" => {
            let url = public_url(ctx, key, v)?;
            // Nodes forward over plain HTTP (no TLS client is built in).
            if !url.starts_with("http://") {
                return Err(ctx.bad(key, format!("{url:?} must be an http:// URL (nodes forward to each other over plain HTTP, on a private network)")));
            }
            s.advertise_url = Some(url);
        }
        // At most 15: a gateway waits up to 20 s for the next serving node.
        "cluster_lease_ttl_secs" => s.cluster_lease_ttl_secs = ctx.int(key, v, 3, 15)?,
        "cluster_placement" => {
            s.cluster_placement = match v.as_str() {
                Some("standby") => Placement::Standby,
                Some("spread") => Placement::Spread,
                _ => {
                    let why = format!("must be `standby` or `spread`, got {}", show(v));
                    return Err(ctx.bad(key, why));
                }
            }
        }
        "durability" => s.durability = durability(ctx, key, v)?,
        "commit_batch_max_ops" => s.commit_batch_max_ops = ctx.int(key, v, 1, 100_000)? as usize,
        "commit_batch_window_ms" => s.commit_batch_window_ms = ctx.int(key, v, 0, 10_000)?,
        "max_body_bytes" => s.max_body_bytes = ctx.int(key, v, 1024, 64 << 20)? as usize,
        "body_read_timeout_secs" => s.body_read_timeout_secs = ctx.int(key, v, 1, 3600)?,
        "max_batch_items" => s.max_batch_items = ctx.int(key, v, 1, 1000)? as usize,
        "max_connections" => s.max_connections = ctx.int(key, v, 16, 1_000_000)? as usize,
        "max_in_flight" => s.max_in_flight = ctx.int(key, v, 1, 1_000_000)? as usize,
        "max_in_flight_per_agent" => {
            s.max_in_flight_per_agent = ctx.int(key, v, 1, 1_000_000)? as usize
        }
        "write_timeout_secs" => s.write_timeout_secs = ctx.int(key, v, 1, 3600)?,
        "max_answer_bytes_in_flight_per_agent" => {
            s.max_answer_bytes_in_flight_per_agent = ctx.int(key, v, 65_536, 1 << 34)? as usize
        }
        "allowed_origins" => s.allowed_origins = Some(origins(ctx, key, v)?),
        "session_idle_timeout_secs" => s.session_idle_timeout_secs = ctx.int(key, v, 1, BIG)?,
        "max_sessions_per_agent" => {
            s.max_sessions_per_agent = ctx.int(key, v, 1, 100_000)? as usize
        }
        "sse_keepalive_secs" => s.sse_keepalive_secs = ctx.int(key, v, 1, 3600)?,
        "shutdown_drain_secs" => s.shutdown_drain_secs = ctx.int(key, v, 0, 300)?,
        "presence_window_secs" => s.presence_window_secs = ctx.int(key, v, 1, BIG)?,
        "inbox_wait_max_seconds" => s.inbox_wait_max_seconds = ctx.int(key, v, 0, 3600)?,
        "max_pull_bytes" => s.max_pull_bytes = ctx.int(key, v, 4096, 64 << 20)? as usize,
        "max_inbox_messages" => s.max_inbox_messages = ctx.int(key, v, 1, BIG)? as usize,
        "max_inbox_bytes" => s.max_inbox_bytes = ctx.int(key, v, 4096, 1 << 40)? as usize,
        "send_rate_per_second" => s.send_rate_per_second = ctx.int(key, v, 1, 1_000_000)?,
        "send_burst" => s.send_burst = ctx.int(key, v, 1, 1_000_000)?,
        "lock_ttl_min_seconds" => s.lock_ttl_min_seconds = ctx.int(key, v, 1, BIG)?,
        "lock_ttl_max_seconds" => s.lock_ttl_max_seconds = ctx.int(key, v, 1, BIG)?,
        "lock_wait_max_seconds" => s.lock_wait_max_seconds = ctx.int(key, v, 0, 3600)?,
        "max_locks_per_agent" => s.max_locks_per_agent = ctx.int(key, v, 1, 1_000_000)? as usize,
        "max_lock_waits_per_agent" => {
            s.max_lock_waits_per_agent = ctx.int(key, v, 1, 1_000_000)? as usize
        }
        "retention" => s.retention = retention(ctx, key, v)?,
        "notify" => s.notify = super::notify::parse(ctx.file, v)?,
        "push" => s.push = push(ctx, key, v)?,
        "metrics_public" => s.metrics_public = ctx.boolean(key, v)?,
        "access_log" => s.access_log = ctx.boolean(key, v)?,
        "log_format" => s.log_format = log_format(ctx, key, v)?,
        "log_level" => {
            let filter = ctx.string(key, v)?;
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter) {
                return Err(ctx.bad(
                    key,
                    format!("is not a log filter ({e}), e.g. info or agent_hub=debug,info"),
                ));
            }
            s.log_level = Some(filter);
        }
        "public_url" => s.dashboard.public_url = Some(public_url(ctx, key, v)?),
        "cookie_secure" => s.dashboard.cookie_secure = ctx.boolean(key, v)?,
        "dashboard_session_idle_secs" => {
            s.dashboard.session_idle_secs = ctx.int(key, v, 60, 30 * 86_400)?
        }
        "dashboard_session_max_secs" => {
            s.dashboard.session_max_secs = ctx.int(key, v, 60, 30 * 86_400)?
        }
        "dashboard_max_sessions" => s.dashboard.max_sessions = ctx.int(key, v, 1, 1000)? as usize,
        "dashboard_failed_logins_per_minute" => {
            s.dashboard.failed_logins_per_minute = ctx.int(key, v, 1, 10_000)? as u32
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `retention:` with `acked_messages_days`, `terminal_tasks_days`, `audit_days`,
/// each a number of days above 0 (fractions allowed).
fn retention(ctx: &Ctx, key: &str, v: &Value) -> Result<Retention, ConfigError> {
    let map = v.as_mapping().ok_or_else(|| {
        ctx.bad(
            key,
            format!("must be a mapping of `*_days: N` lines, got {}", show(v)),
        )
    })?;
    let mut r = Retention::default();
    for (k, v) in map {
        let name = k.as_str().unwrap_or_default();
        let days = match v.as_f64() {
            Some(d) if d > 0.0 && d <= 36_500.0 => d,
            _ => {
                return Err(ctx.bad(
                    &format!("retention.{name}"),
                    format!(
                        "must be a number of days above 0 and at most 36500, got {}",
                        show(v)
                    ),
                ))
            }
        };
        match name {
            "acked_messages_days" => r.acked_messages_days = Some(days),
            "terminal_tasks_days" => r.terminal_tasks_days = Some(days),
            "audit_days" => r.audit_days = Some(days),
            other => {
                return Err(ctx.bad(
                    &format!("retention.{other}"),
                    "unknown; use acked_messages_days, terminal_tasks_days or audit_days",
                ))
            }
        }
    }
    Ok(r)
}

/// `push:` with `enabled`, `window_ms`, `max_per_minute` and `kinds` (a mapping of
/// event kind to true or false).
fn push(ctx: &Ctx, key: &str, v: &Value) -> Result<crate::domain::channel::Rules, ConfigError> {
    use crate::domain::channel::{Kind, Rules};
    let map = v.as_mapping().ok_or_else(|| {
        ctx.bad(
            key,
            format!(
                "must be a mapping of enabled, window_ms, max_per_minute, kinds; got {}",
                show(v)
            ),
        )
    })?;
    let mut r = Rules::default();
    for (k, v) in map {
        let name = k.as_str().unwrap_or_default();
        let full = format!("push.{name}");
        match name {
            "enabled" => r.enabled = ctx.boolean(&full, v)?,
            "window_ms" => {
                r.window = std::time::Duration::from_millis(ctx.int(&full, v, 0, 600_000)?)
            }
            "max_per_minute" => r.max_per_minute = ctx.int(&full, v, 1, 600)? as u32,
            "kinds" => {
                let kinds = v.as_mapping().ok_or_else(|| {
                    ctx.bad(
                        &full,
                        format!("must be a mapping of kind: true|false, got {}", show(v)),
                    )
                })?;
                for (k, on) in kinds {
                    let kname = k.as_str().unwrap_or_default();
                    let Some(kind) = Kind::parse(kname) else {
                        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                        return Err(ctx.bad(
                            &format!("push.kinds.{kname}"),
                            format!("unknown kind; use {}", all.join(", ")),
                        ));
                    };
                    let on = ctx.boolean(&format!("push.kinds.{kname}"), on)?;
                    r.off.retain(|k| *k != kind);
                    if !on {
                        r.off.push(kind);
                    }
                }
            }
            other => {
                return Err(ctx.bad(
                    &format!("push.{other}"),
                    "unknown; use enabled, window_ms, max_per_minute or kinds",
                ))
            }
        }
    }
    Ok(r)
}

fn lease_minutes(ctx: &Ctx, key: &str, v: &Value) -> Result<f64, ConfigError> {
    match v.as_f64() {
        Some(m) if m > 0.0 && m <= 7.0 * 24.0 * 60.0 => Ok(m),
        _ => Err(ctx.bad(
            key,
            format!(
                "must be a number of minutes above 0 and at most 10080, got {}",
                show(v)
            ),
        )),
    }
}

fn durability(ctx: &Ctx, key: &str, v: &Value) -> Result<Durability, ConfigError> {
    match v.as_str() {
        Some("durable") => Ok(Durability::Durable),
        Some("fast") => Ok(Durability::Fast),
        _ => Err(ctx.bad(key, format!("must be `durable` or `fast`, got {}", show(v)))),
    }
}

fn store(ctx: &Ctx, key: &str, v: &Value) -> Result<Option<String>, ConfigError> {
    let text = ctx.string(key, v)?;
    parse_store(&text).map_err(|why| ctx.bad(key, why))
}

/// `store:` / `--store` / `AGENT_HUB_STORE`: `sqlite` (the default: the `db` file)
/// or a `postgres://` URL, which must not hold a password (it would show in `ps`,
/// shell history and logs: PGPASSWORD or a PGPASSFILE give it).
pub(crate) fn parse_store(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() || text == "sqlite" {
        return Ok(None);
    }
    let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
    else {
        return Err(format!(
            "must be `sqlite` or postgres://USER@HOST:PORT/DATABASE, got `{}`",
            text.split("://").next().unwrap_or(text)
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            return Err(
                "the URL contains a password: set PGPASSWORD or use a PGPASSFILE instead".into(),
            );
        }
    }
    Ok(Some(text.to_string()))
}

fn node_id(ctx: &Ctx, key: &str, v: &Value) -> Result<String, ConfigError> {
    let text = ctx.string(key, v)?;
    parse_node_id(&text).map_err(|why| ctx.bad(key, why))
}

/// A node id: 1 to 64 of `A-Z a-z 0-9 . _ -` (it names the node in logs, metrics
/// and `hubctl cluster`).
pub(crate) fn parse_node_id(text: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "must be 1 to 64 letters, digits, `.`, `_` or `-`, got `{}`",
            text.chars().take(80).collect::<String>()
        ))
    }
}

fn log_format(ctx: &Ctx, key: &str, v: &Value) -> Result<LogFormat, ConfigError> {
    match v.as_str() {
        Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        _ => Err(ctx.bad(key, format!("must be `text` or `json`, got {}", show(v)))),
    }
}

/// `http(s)://host[:port][/path]`, without a query or fragment (a trailing `/` is
/// dropped).
fn public_url(ctx: &Ctx, key: &str, v: &Value) -> Result<String, ConfigError> {
    let u = ctx.string(key, v)?;
    let host = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .map(|rest| rest.split('/').next().unwrap_or(""));
    let ok = host
        .is_some_and(|h| !h.is_empty() && !h.contains('@') && !h.contains(char::is_whitespace))
        && !u.contains(['?', '#']);
    if !ok {
        return Err(ctx.bad(
            key,
            format!("{u:?} is not a URL like https://hub.example.org or http://127.0.0.1:8765"),
        ));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// A list of `http(s)://host[:port]` origins, or `"*"`.
fn origins(ctx: &Ctx, key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
    let list = v
        .as_sequence()
        .ok_or_else(|| ctx.bad(key, format!("must be a list of origins, got {}", show(v))))?;
    let mut out = Vec::new();
    for item in list {
        let o = ctx.string(key, item)?;
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(ctx.bad(
                key,
                format!("{o:?} is not an origin like http://localhost:8765 (or \"*\")"),
            ));
        }
        out.push(o.trim_end_matches('/').to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_template_give_defaults() {
        let (s, w) = parse("c", "").unwrap();
        assert_eq!(s.max_rounds, 3);
        assert!(w.is_empty());
        let (s, w) = parse("c", TEMPLATE).unwrap();
        assert_eq!(s.lease_minutes, 90.0);
        assert_eq!(s.durability, Durability::Durable);
        assert!(w.is_empty());
    }

    #[test]
    fn store_and_node_id() {
        let (s, _) = parse(
            "c",
            "store: postgres://hub@db:5432/hub\nnode_id: host-a.1\n",
        )
        .unwrap();
        assert_eq!(s.store.as_deref(), Some("postgres://hub@db:5432/hub"));
        assert_eq!(s.node_id.as_deref(), Some("host-a.1"));
        let (s, _) = parse("c", "store: sqlite\n").unwrap();
        assert_eq!(s.store, None);
        assert_eq!(s.cluster_lease_ttl_secs, 10);
        let (s, _) = parse("c", "cluster_lease_ttl_secs: 3\n").unwrap();
        assert_eq!(s.cluster_lease_ttl_secs, 3);
        for bad in [
            "store: mysql://x/y",
            "store: postgres://hub:secret@db/hub",
            "node_id: \"a b\"",
            "node_id: \"\"",
            "advertise_url: https://10.0.0.5:8765/mcp",
            "advertise_url: 10.0.0.5:8765",
            "cluster_lease_ttl_secs: 2",
            "cluster_lease_ttl_secs: 16",
        ] {
            let e = parse("c", bad).unwrap_err().to_string();
            assert!(
                e.contains("store")
                    || e.contains("node_id")
                    || e.contains("advertise_url")
                    || e.contains("cluster_lease_ttl_secs"),
                "{bad}: {e}"
            );
        }
        let (s, _) = parse("c", "advertise_url: http://10.0.0.5:8765/mcp\n").unwrap();
        assert_eq!(s.advertise_url.as_deref(), Some("http://10.0.0.5:8765/mcp"));
        assert!(parse_store("postgresql://u@h/d?host=/run/pg").is_ok());
        // An `@` in the path or query is not a password separator.
        assert!(parse_store("postgres://u@h/d?options=a:b@c").is_ok());
        assert!(parse_store("postgres://u:pw@h/d")
            .unwrap_err()
            .contains("PGPASSWORD"));
        assert!(parse_node_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn reads_every_kind_of_value() {
        let text = "max_rounds: 5\nlease_minutes: 0.05\ndurability: fast\nport: 0\n\
                    allowed_origins: [\"http://a:1/\", \"*\"]\nauto_approve: true\nmax_body_bytes:\n";
        let (s, w) = parse("c", text).unwrap();
        assert_eq!(s.max_rounds, 5);
        assert_eq!(s.lease_minutes, 0.05);
        assert_eq!(s.durability, Durability::Fast);
        assert_eq!(s.port, Some(0));
        assert_eq!(s.allowed_origins.unwrap(), vec!["http://a:1", "*"]);
        assert_eq!(s.max_body_bytes, 1024 * 1024);
        assert!(w.is_empty());
    }

    #[test]
    fn shipped_example_matches_the_template() {
        let example = include_str!("../../config/config.example.yaml");
        assert_eq!(
            example, TEMPLATE,
            "config/config.example.yaml is the generated template"
        );
    }

    #[test]
    fn unknown_key_is_a_warning() {
        let (_, w) = parse("/c.yaml", "max_roundz: 4\n").unwrap();
        assert_eq!(
            w,
            vec!["/c.yaml: unknown key `max_roundz` ignored (did you mean `max_rounds`?)"]
        );
    }

    #[test]
    fn dashboard_keys_are_read() {
        let (s, w) = parse(
            "c",
            "public_url: https://hub.example.org:8443/\ndashboard_max_sessions: 3\n",
        )
        .unwrap();
        assert!(w.is_empty());
        let d = &s.dashboard;
        assert_eq!(
            d.public_url.as_deref(),
            Some("https://hub.example.org:8443")
        );
        assert_eq!(
            d.public_origin().as_deref(),
            Some("https://hub.example.org:8443")
        );
        assert!(d.secure_cookie(), "https public_url means Secure cookies");
        assert_eq!(d.max_sessions, 3);
        let (s, _) = parse("c", "public_url: http://10.0.0.2:8765/hub\n").unwrap();
        assert!(!s.dashboard.secure_cookie());
        assert_eq!(
            s.dashboard.public_origin().as_deref(),
            Some("http://10.0.0.2:8765")
        );
        let (s, _) = parse("c", "cookie_secure: true\n").unwrap();
        assert!(s.dashboard.secure_cookie());
        assert!(!Settings::default().dashboard.secure_cookie());
    }

    #[test]
    fn retention_is_read() {
        let (s, w) = parse(
            "c",
            "retention:\n  acked_messages_days: 90\n  audit_days: 0.5\n",
        )
        .unwrap();
        assert!(w.is_empty());
        assert_eq!(s.retention.acked_messages_days, Some(90.0));
        assert_eq!(s.retention.terminal_tasks_days, None);
        assert_eq!(s.retention.audit_days, Some(0.5));
        assert!(s.retention.is_set() && !Settings::default().retention.is_set());
    }

    #[test]
    fn push_is_read() {
        use crate::domain::channel::Kind;
        let (s, w) = parse(
            "c",
            "push:\n  window_ms: 500\n  max_per_minute: 3\n  kinds: {lock_granted: false, message: true}\n",
        )
        .unwrap();
        assert!(w.is_empty());
        assert!(s.push.enabled);
        assert_eq!(s.push.window, std::time::Duration::from_millis(500));
        assert_eq!(s.push.max_per_minute, 3);
        assert_eq!(s.push.off, vec![Kind::LockGranted]);
        let (s, _) = parse("c", "push:\n  enabled: false\n").unwrap();
        assert!(!s.push.enabled);
        for (text, key) in [
            ("push: yes", "push"),
            ("push:\n  window_ms: -1", "push.window_ms"),
            ("push:\n  max_per_minute: 0", "push.max_per_minute"),
            ("push:\n  max_per_minute: 601", "push.max_per_minute"),
            ("push:\n  enabled: maybe", "push.enabled"),
            ("push:\n  kinds: [message]", "push.kinds"),
            ("push:\n  kinds: {mesage: false}", "push.kinds.mesage"),
            ("push:\n  kinds: {message: 0}", "push.kinds.message"),
            ("push:\n  rate: 1", "push.rate"),
        ] {
            match parse("c", text) {
                Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("max_rounds: -1", "max_rounds"),
            ("max_rounds: many", "max_rounds"),
            ("durability: maybe", "durability"),
            ("cluster_placement: sideways", "cluster_placement"),
            ("lease_minutes: 0", "lease_minutes"),
            ("port: 70000", "port"),
            ("body_read_timeout_secs: 0", "body_read_timeout_secs"),
            ("max_batch_items: 0", "max_batch_items"),
            ("max_batch_items: 1001", "max_batch_items"),
            ("max_in_flight: 0", "max_in_flight"),
            ("max_in_flight_per_agent: 0", "max_in_flight_per_agent"),
            ("max_connections: 1", "max_connections"),
            ("write_timeout_secs: 0", "write_timeout_secs"),
            ("max_pull_bytes: 10", "max_pull_bytes"),
            ("send_rate_per_second: 0", "send_rate_per_second"),
            ("send_burst: 0", "send_burst"),
            ("max_inbox_messages: 0", "max_inbox_messages"),
            ("max_inbox_bytes: 100", "max_inbox_bytes"),
            ("max_open_tasks_per_agent: 0", "max_open_tasks_per_agent"),
            ("max_locks_per_agent: 0", "max_locks_per_agent"),
            ("max_lock_waits_per_agent: 0", "max_lock_waits_per_agent"),
            ("allowed_origins: evil", "allowed_origins"),
            ("retention: 5", "retention"),
            ("retention:\n  audit_days: 0", "retention.audit_days"),
            ("retention:\n  audit_days: .inf", "retention.audit_days"),
            ("retention:\n  forever: 1", "retention.forever"),
            ("allowed_origins: [\"ftp://x\"]", "allowed_origins"),
            ("metrics_public: yes please", "metrics_public"),
            ("access_log: 1", "access_log"),
            ("log_format: xml", "log_format"),
            ("public_url: hub.example.org", "public_url"),
            ("public_url: \"https://\"", "public_url"),
            ("public_url: https://a/?x=1", "public_url"),
            ("cookie_secure: maybe", "cookie_secure"),
            (
                "dashboard_session_idle_secs: 1",
                "dashboard_session_idle_secs",
            ),
            (
                "dashboard_session_max_secs: 0",
                "dashboard_session_max_secs",
            ),
            ("dashboard_max_sessions: 0", "dashboard_max_sessions"),
            (
                "dashboard_failed_logins_per_minute: 0",
                "dashboard_failed_logins_per_minute",
            ),
        ] {
            let e = parse("c.yaml", text).unwrap_err().to_string();
            assert!(e.contains(key) && e.starts_with("c.yaml"), "{text}: {e}");
        }
        assert!(parse("c", "- a list").is_err());
        assert!(parse("c", "a: [").is_err());
    }
}
