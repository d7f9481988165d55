//! Process metrics for `GET /metrics`, in the Prometheus text format.
//!
//! Counted on the hot path with plain atomics in one process-wide table (tool calls,
//! admission refusals, writer batches): `prometheus-client`'s own `Histogram` and
//! `Family` take a mutex or a read lock per observation, so we keep the counts here
//! and use the crate only for what a scrape needs, its text encoder (through a
//! [`Collector`]). Gauges (sessions, actors, inboxes, queue depth) are read at
//! scrape time from where they already live. No label names an agent or a task.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::domain::error::ErrorCode;

/// A histogram of atomics: one counter per bucket and a sum kept in integer units
/// (`1 / scale` of the exported value), so that an observation is a few relaxed adds.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    /// Upper bounds, ascending; the last bucket (`+Inf`) is implied.
    bounds: &'static [f64],
    /// Per-bucket counts, not cumulative; one more than `bounds`.
    counts: Box<[AtomicU64]>,
    /// Sum of observations in integer units.
    sum: AtomicU64,
    /// Integer units per exported unit.
    scale: f64,
}

impl AtomicHistogram {
    /// An empty histogram over `bounds` whose sum counts `1 / scale` units.
    fn new(bounds: &'static [f64], scale: f64) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Record `raw` integer units.
    fn observe(&self, raw: u64) {
        let v = raw as f64 / self.scale;
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(raw, Ordering::Relaxed);
    }

    fn encode(&self, mut m: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(self.counts.len());
        let mut count = 0;
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.scale;
        m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Tool-call latency buckets, seconds (waiting calls last up to a minute).
const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Commit latency buckets, seconds.
const COMMIT_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Ops per writer batch.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How a tool call ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallOutcome {
    /// A success result.
    Ok,
    /// A tool error result with this code.
    Tool(ErrorCode),
    /// A JSON-RPC error (unknown tool, bad params, storage unavailable).
    Protocol,
}

impl CallOutcome {
    /// Column in a tool's counter row: ok, each error code, protocol error.
    fn index(self) -> usize {
        match self {
            CallOutcome::Ok => 0,
            CallOutcome::Tool(c) => 1 + c as usize,
            CallOutcome::Protocol => 1 + ErrorCode::ALL.len(),
        }
    }

    /// The label value (and the access log's outcome).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Tool(c) => c.as_str(),
            CallOutcome::Protocol => "protocol_error",
        }
    }

    fn at(i: usize) -> CallOutcome {
        match i {
            0 => CallOutcome::Ok,
            i if i <= ErrorCode::ALL.len() => CallOutcome::Tool(ErrorCode::ALL[i - 1]),
            _ => CallOutcome::Protocol,
        }
    }
}

/// One tool's counters.
#[derive(Debug)]
struct ToolRow {
    name: &'static str,
    /// Calls by [`CallOutcome::index`].
    outcomes: Box<[AtomicU64]>,
    latency: AtomicHistogram,
}

/// Why admission refused a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    /// 429: the agent's `max_in_flight_per_agent`.
    AgentRequests = 0,
    /// 503: the hub's `max_in_flight`.
    GlobalRequests = 1,
    /// 429: the agent's unread answer bytes.
    AnswerBytes = 2,
}

const REFUSALS: [&str; 3] = ["agent_requests", "global_requests", "answer_bytes"];

/// The process's counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// One row per tool, then one for unknown names.
    tools: Box<[ToolRow]>,
    refused: [AtomicU64; 3],
    /// Bytes of answers counted against agents and not yet written.
    answer_bytes: AtomicU64,
    /// Calls that may wait (`wait_seconds` above 0) now in flight.
    waiting_calls: AtomicU64,
    batch_ops: AtomicHistogram,
    commit_seconds: AtomicHistogram,
    failed_commits: AtomicU64,
    /// Cluster mode: batches in which a shard's epoch had moved on.
    fenced_batches: AtomicU64,
    /// Cluster mode's figures (shown once a node has registered).
    cluster: ClusterMetrics,
}

/// What a cluster node reports besides the writer's fenced batches.
#[derive(Debug)]
struct ClusterMetrics {
    on: std::sync::atomic::AtomicBool,
    shards_held: AtomicU64,
    active: AtomicU64,
    renew_failures: AtomicU64,
    takeovers: AtomicU64,
    /// The last takeover's load of the live state, in milliseconds.
    takeover_load_ms: AtomicU64,
    /// Calls this node forwarded to the leader, and their time there.
    forwarded: AtomicHistogram,
    /// Tries at the leader that found it unreachable or standing by.
    forward_retries: AtomicU64,
    /// Forwarded calls lost with the leader (answered 502).
    forward_lost: AtomicU64,
    /// Repeated forwarded calls answered from `request_log` (done by a first try).
    replayed: AtomicU64,
    /// Relayed streams a gateway opened or sent again at the next serving node.
    streams_followed: AtomicU64,
    /// Moves of this node's shards to another node (`hubctl cluster move`).
    moves: AtomicU64,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        ClusterMetrics {
            on: Default::default(),
            shards_held: Default::default(),
            active: Default::default(),
            renew_failures: Default::default(),
            takeovers: Default::default(),
            takeover_load_ms: Default::default(),
            forwarded: AtomicHistogram::new(LATENCY_BOUNDS, 1e9),
            forward_retries: Default::default(),
            forward_lost: Default::default(),
            replayed: Default::default(),
            streams_followed: Default::default(),
            moves: Default::default(),
        }
    }
}

/// The process-wide table, built on first use.
pub(crate) fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let row = |name| ToolRow {
            name,
            outcomes: (0..ErrorCode::ALL.len() + 2)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: AtomicHistogram::new(LATENCY_BOUNDS, 1e9),
        };
        Metrics {
            tools: crate::mcp::tools::names()
                .chain(std::iter::once("unknown"))
                .map(row)
                .collect(),
            refused: Default::default(),
            answer_bytes: AtomicU64::new(0),
            waiting_calls: AtomicU64::new(0),
            batch_ops: AtomicHistogram::new(BATCH_BOUNDS, 1.0),
            commit_seconds: AtomicHistogram::new(COMMIT_BOUNDS, 1e9),
            failed_commits: AtomicU64::new(0),
            fenced_batches: AtomicU64::new(0),
            cluster: ClusterMetrics::default(),
        }
    })
}

impl Metrics {
    /// One tool call: `tool` is its index in the tool table (None: unknown name).
    pub(crate) fn tool_call(&self, tool: Option<usize>, outcome: CallOutcome, took: Duration) {
        let row = tool.and_then(|i| self.tools.get(i)).or(self.tools.last());
        if let Some(row) = row {
            if let Some(c) = row.outcomes.get(outcome.index()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            row.latency.observe(took.as_nanos() as u64);
        }
    }

    /// A request refused by admission.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Answer bytes counted (`add`) or given back.
    pub(crate) fn answer_bytes(&self, n: usize, add: bool) {
        if add {
            self.answer_bytes.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            self.answer_bytes.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// A waiting call started; the guard counts it until dropped.
    pub(crate) fn waiting(&'static self) -> WaitingGuard {
        self.waiting_calls.fetch_add(1, Ordering::Relaxed);
        WaitingGuard(self)
    }

    /// One writer batch of `ops` committed in `took`.
    pub(crate) fn commit(&self, ops: usize, took: Duration) {
        self.batch_ops.observe(ops as u64);
        self.commit_seconds.observe(took.as_nanos() as u64);
    }

    /// A commit that failed (each attempt).
    pub(crate) fn commit_failed(&self) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch (cluster mode) that found some of its shards owned by a newer epoch.
    pub(crate) fn fenced_batch(&self) {
        self.fenced_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: the shards this node holds now, and whether that is all.
    pub(crate) fn cluster_shards(&self, held: usize, active: bool) {
        let c = &self.cluster;
        c.on.store(true, Ordering::Relaxed);
        c.shards_held.store(held as u64, Ordering::Relaxed);
        c.active.store(u64::from(active), Ordering::Relaxed);
    }

    /// Cluster mode: a call forwarded to the leader and answered by it in `took`.
    pub(crate) fn forwarded(&self, took: Duration) {
        self.cluster.forwarded.observe(took.as_nanos() as u64);
    }

    /// Cluster mode: a try at the leader that found it unreachable or standing by.
    pub(crate) fn forward_retried(&self) {
        self.cluster.forward_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: a forwarded call lost with the leader.
    pub(crate) fn forward_lost(&self) {
        self.cluster.forward_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: a repeated forwarded call answered from `request_log`.
    pub(crate) fn replayed(&self) {
        self.cluster.replayed.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: a relayed stream opened or sent again at the next serving node.
    pub(crate) fn stream_followed(&self) {
        self.cluster
            .streams_followed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: this node moved its shards to another (`hubctl cluster move`).
    pub(crate) fn cluster_moved(&self) {
        self.cluster.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: a renewal round that failed.
    pub(crate) fn cluster_renew_failed(&self) {
        self.cluster.renew_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Cluster mode: this node started serving, its live state loaded in `load`.
    pub(crate) fn cluster_takeover(&self, load: Duration) {
        let c = &self.cluster;
        c.takeovers.fetch_add(1, Ordering::Relaxed);
        c.takeover_load_ms
            .store(load.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Counts one waiting call while alive.
pub(crate) struct WaitingGuard(&'static Metrics);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.waiting_calls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gauges read at scrape time; `None` where the hub is not loaded yet.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub sessions: u64,
    pub get_streams: u64,
    pub listen_streams: u64,
    pub requests_in_flight: u64,
    pub hub: Option<HubGauges>,
}

/// What the hub knows at scrape time.
#[derive(Debug, Default)]
pub(crate) struct HubGauges {
    pub agent_actors: u64,
    pub task_actors: u64,
    pub inbox_unread_sum: u64,
    pub inbox_unread_max: u64,
    /// Locks held and `lock_acquire` calls waiting; None when the lock manager did
    /// not answer in time.
    pub locks: Option<(u64, u64)>,
    pub writer_queue: u64,
    pub store_faults: u64,
}

/// One scrape: the counters and the gauges.
#[derive(Debug)]
struct Scrape {
    m: &'static Metrics,
    g: Gauges,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(v as i64);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = self.m;
        {
            let mut fam = e.encode_descriptor(
                "agent_hub_tool_calls",
                "Tool calls by tool and outcome (ok, a tool error code, or protocol_error).",
                None,
                MetricType::Counter,
            )?;
            for row in m.tools.iter() {
                for (i, c) in row.outcomes.iter().enumerate() {
                    let n = c.load(Ordering::Relaxed);
                    // Only outcomes seen: 40 codes × 25 tools of zeros help no one.
                    if n == 0 && i != 0 {
                        continue;
                    }
                    let labels = [("tool", row.name), ("outcome", CallOutcome::at(i).as_str())];
                    ConstCounter::new(n).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "agent_hub_tool_call_duration_seconds",
                "Tool call latency by tool, from dispatch to result (waiting calls included).",
                None,
                MetricType::Histogram,
            )?;
            for row in m.tools.iter() {
                row.latency
                    .encode(fam.encode_family(&[("tool", row.name)])?)?;
            }
        }
        {
            let mut fam = e.encode_descriptor(
                "agent_hub_admission_refused",
                "POST /mcp requests refused by admission, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (i, name) in REFUSALS.iter().enumerate() {
                let n = m.refused[i].load(Ordering::Relaxed);
                ConstCounter::new(n).encode(fam.encode_family(&[("reason", *name)])?)?;
            }
        }
        m.batch_ops.encode(e.encode_descriptor(
            "agent_hub_writer_batch_ops",
            "Ops per committed writer batch (group commit).",
            None,
            MetricType::Histogram,
        )?)?;
        m.commit_seconds.encode(e.encode_descriptor(
            "agent_hub_writer_commit_duration_seconds",
            "Time to apply and commit one writer batch.",
            None,
            MetricType::Histogram,
        )?)?;
        counter(
            &mut e,
            "agent_hub_writer_failed_commits",
            "Commit attempts that failed (retried ones included).",
            m.failed_commits.load(Ordering::Relaxed),
        )?;
        let c = &m.cluster;
        if c.on.load(Ordering::Relaxed) {
            counter(
                &mut e,
                "agent_hub_cluster_fenced_batches",
                "Writer batches that found shards taken over by another node (nothing of them written).",
                m.fenced_batches.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut e,
                "agent_hub_cluster_shards_held",
                "Shards whose lease this node holds (of 1024).",
                c.shards_held.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut e,
                "agent_hub_cluster_active",
                "1 while this node holds every shard and serves; 0 while it stands by.",
                c.active.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_lease_renew_failures",
                "Lease renewal rounds that failed (a node fences itself after two thirds of a lease of them).",
                c.renew_failures.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_takeovers",
                "Times this node started serving (its first start included).",
                c.takeovers.load(Ordering::Relaxed),
            )?;
            gauge(
                &mut e,
                "agent_hub_cluster_takeover_load_milliseconds",
                "How long the last takeover took to load the live state.",
                c.takeover_load_ms.load(Ordering::Relaxed),
            )?;
            c.forwarded.encode(e.encode_descriptor(
                "agent_hub_cluster_forwarded_duration_seconds",
                "Calls this node forwarded to the node that serves (it stands by), by time to the answer's start.",
                None,
                MetricType::Histogram,
            )?)?;
            counter(
                &mut e,
                "agent_hub_cluster_forward_retries",
                "Tries at the serving node that found it unreachable or standing by (then tried again).",
                c.forward_retries.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_forwards_lost",
                "Forwarded calls whose connection to the serving node broke after sending (answered 502: outcome unknown).",
                c.forward_lost.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_replayed",
                "Forwarded calls sent again by a gateway and answered with the answer stored when a first try did them.",
                c.replayed.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_streams_followed",
                "Streams this node relays (GET streams, waiting calls answered as streams) that it opened or sent again at the next serving node (the one it relayed them from stopped or was lost).",
                c.streams_followed.load(Ordering::Relaxed),
            )?;
            counter(
                &mut e,
                "agent_hub_cluster_moves",
                "Times this node handed its shards to another node on the operator's word (hubctl cluster move).",
                c.moves.load(Ordering::Relaxed),
            )?;
        }
        counter(
            &mut e,
            "agent_hub_access_log_dropped",
            "Access log lines dropped because the writer could not keep up.",
            crate::access_log::dropped(),
        )?;
        let g = &self.g;
        gauge(
            &mut e,
            "agent_hub_sessions",
            "Open MCP sessions.",
            g.sessions,
        )?;
        gauge(
            &mut e,
            "agent_hub_get_streams",
            "Open GET (SSE) streams.",
            g.get_streams,
        )?;
        gauge(
            &mut e,
            "agent_hub_listen_streams",
            "Open 2026-07-28 subscriptions/listen streams.",
            g.listen_streams,
        )?;
        gauge(
            &mut e,
            "agent_hub_requests_in_flight",
            "POST /mcp requests admitted and not yet answered.",
            g.requests_in_flight,
        )?;
        gauge(
            &mut e,
            "agent_hub_waiting_calls",
            "Calls with wait_seconds above 0 (inbox_pull, lock_acquire) in flight.",
            m.waiting_calls.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            "agent_hub_answer_bytes_in_flight",
            "Bytes of answers counted against agents and not yet written.",
            m.answer_bytes.load(Ordering::Relaxed),
        )?;
        let Some(h) = &g.hub else {
            return Ok(());
        };
        {
            let mut fam = e.encode_descriptor(
                "agent_hub_actors",
                "Live actors by kind.",
                None,
                MetricType::Gauge,
            )?;
            for (kind, n) in [("agent", h.agent_actors), ("task", h.task_actors)] {
                ConstGauge::new(n as i64).encode(fam.encode_family(&[("kind", kind)])?)?;
            }
        }
        gauge(
            &mut e,
            "agent_hub_inbox_unread",
            "Unread (and promised) messages over all inboxes.",
            h.inbox_unread_sum,
        )?;
        gauge(
            &mut e,
            "agent_hub_inbox_unread_max",
            "Unread (and promised) messages of the fullest inbox.",
            h.inbox_unread_max,
        )?;
        if let Some((held, waiting)) = h.locks {
            gauge(&mut e, "agent_hub_locks_held", "Locks held.", held)?;
            gauge(
                &mut e,
                "agent_hub_lock_waiters",
                "lock_acquire calls parked waiting for a lock.",
                waiting,
            )?;
        }
        gauge(
            &mut e,
            "agent_hub_writer_queue_ops",
            "Ops queued for the writer and not done yet.",
            h.writer_queue,
        )?;
        counter(
            &mut e,
            "agent_hub_store_faults",
            "Storage faults (each one a rebuild of the live state from disk).",
            h.store_faults,
        )
    }
}

/// The Prometheus text of the counters and `gauges`.
pub(crate) fn render(gauges: Gauges) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        m: get(),
        g: gauges,
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The `Content-Type` of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sum() {
        let h = AtomicHistogram::new(&[1.0, 2.0], 1.0);
        h.observe(1);
        h.observe(2);
        h.observe(5);
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![1, 1, 1]);
        assert_eq!(h.sum.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn outcome_indexes_round_trip() {
        for o in [CallOutcome::Ok, CallOutcome::Protocol]
            .into_iter()
            .chain(ErrorCode::ALL.iter().map(|c| CallOutcome::Tool(*c)))
        {
            assert_eq!(CallOutcome::at(o.index()).as_str(), o.as_str());
        }
    }

    #[test]
    fn renders_text_with_counts() {
        get().tool_call(Some(0), CallOutcome::Ok, Duration::from_millis(3));
        let text = render(Gauges::default()).unwrap();
        assert!(
            text.contains("# TYPE agent_hub_tool_calls_total counter"),
            "{text}"
        );
        assert!(
            text.contains("agent_hub_tool_call_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("agent_hub_sessions 0"), "{text}");
    }
}
