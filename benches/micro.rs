//! Criterion micro-benchmarks of the hot pure paths, through `agent_hub::microbench`:
//! JSON-RPC request decoding and response encoding, tool-argument decoding, a task
//! transition, token lookup, and the writer's batch commit. Inputs are those of
//! `hubctl bench` (64 agents, a `message_send` with a 200-byte body, `hub_status`,
//! teams of 7). The writer's commit is timed twice: wall clock (with the disk waits
//! of WAL checkpoints) and the thread's CPU time. Run:
//!
//! ```sh
//! cargo bench --features microbench --bench micro            # full run
//! cargo bench --features microbench --bench micro -- --quick # a short one
//! ```

use agent_hub::microbench::{self as mb, RequestId, Tokens, Workflow, Writer};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Agents, as in the issue's measurements (64 clients, each its own agent).
const AGENTS: usize = 64;

/// Messages per writer batch: one per client at 64 clients.
const MESSAGES: usize = 64;

/// Batches committed before measuring: a commit's cost grows with the database
/// (the WAL pages a commit writes go from about 30 on an empty database to about
/// 200 by 200 batches, as each agent's delivery-index entries spread over pages of
/// their own), and grows slowly after that.
const FILL_BATCHES: usize = 300;

fn body_200() -> String {
    "x".repeat(200)
}

/// `tools/call` request bodies as `hubctl bench` sends them.
fn requests() -> [(&'static str, String); 2] {
    let send = json!({"jsonrpc": "2.0", "id": 17, "method": "tools/call", "params": {
        "name": "message_send",
        "arguments": {"to_agent": "bench-2", "subject": "bench", "body": body_200()}}});
    let status = json!({"jsonrpc": "2.0", "id": 18, "method": "tools/call", "params": {
        "name": "hub_status", "arguments": {}}});
    [
        ("message_send", send.to_string()),
        ("hub_status", status.to_string()),
    ]
}

/// The success objects the two tools return (what their handlers build).
fn results() -> [(&'static str, Map<String, Value>); 2] {
    let object = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let send = json!({"message_id": "0194f3a2c1d07a3b9e01", "recipients": ["bench-2"],
        "broadcast": false, "skipped": []});
    let status = json!({"version": "0.1.0", "transport": "streamable-http",
        "protocol_versions": ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"],
        "uptime_seconds": 12, "agents": AGENTS, "tasks": 0, "sessions": AGENTS,
        "durability": "durable", "agent_id": "bench-1"});
    [
        ("message_send", object(send)),
        ("hub_status", object(status)),
    ]
}

fn jsonrpc(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonrpc");
    for (tool, body) in requests() {
        assert!(mb::decode_request(body.as_bytes()).is_some(), "{tool}");
        g.bench_function(format!("decode/{tool}"), |b| {
            b.iter(|| mb::decode_request(black_box(body.as_bytes())))
        });
    }
    let id = RequestId::parse("17").expect("a valid id");
    for (tool, fields) in results() {
        g.bench_function(format!("encode/{tool}"), |b| {
            b.iter_batched(
                || fields.clone(),
                |f| mb::encode_tool_result(&id, f),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn tool_args(c: &mut Criterion) {
    let mut g = c.benchmark_group("tool_args");
    for (tool, body) in requests() {
        let params = mb::decode_request(body.as_bytes())
            .and_then(mb::Request::into_params)
            .expect("a request with params");
        assert!(mb::decode_tool_call(params.clone()), "{tool}");
        g.bench_function(tool, |b| {
            b.iter_batched(
                || params.clone(),
                mb::decode_tool_call,
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn workflow(c: &mut Criterion) {
    let mut g = c.benchmark_group("workflow");
    let fixture = Workflow::claimed().expect("the workflow fixture");
    let mut w = fixture.clone();
    assert!(w.progress(0) && w.progress(0));
    g.bench_function("progress", |b| b.iter(|| w.progress(black_box(0))));
    assert!(fixture.clone().complete(0));
    g.bench_function("complete", |b| {
        b.iter_batched_ref(
            || fixture.clone(),
            |w| w.complete(black_box(0)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn auth(c: &mut Criterion) {
    let (tokens, headers) = Tokens::new(AGENTS).expect("the token fixture");
    let header = &headers[AGENTS / 2];
    assert!(tokens.authenticate(header));
    c.bench_function(&format!("auth/token_lookup_{AGENTS}_agents"), |b| {
        b.iter(|| tokens.authenticate(black_box(header)))
    });
}

/// Wall-clock time since the first call.
fn wall() -> Duration {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed()
}

/// The calling thread's CPU time: a commit also waits for the disk (checkpoints
/// fsync), and the server's CPU per call is the figure the performance issue tracks.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Commits of the writer's batches, timed with `clock` (a fresh batch per commit,
/// built outside the timing: message ids are unique).
fn commits(w: &mut Writer, iters: u64, clock: fn() -> Duration) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let batch = w.batch(MESSAGES);
        let started = clock();
        w.commit(&batch).expect("a commit");
        spent += clock() - started;
    }
    spent
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut w = Writer::open(&dir.path().join("hub.db"), AGENTS).expect("the writer fixture");
    commits(&mut w, FILL_BATCHES as u64, wall);
    let ops = w.batch(MESSAGES).len();
    let name = format!("commit_{MESSAGES}_messages_{}_task_ops", ops - MESSAGES);
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(ops as u64));
    // Fewer samples: each iteration is a whole commit.
    g.sample_size(20);
    g.bench_function(&name, |b| b.iter_custom(|n| commits(&mut w, n, wall)));
    g.bench_function(format!("{name}/thread_cpu"), |b| {
        b.iter_custom(|n| commits(&mut w, n, thread_cpu))
    });
    g.finish();
}

criterion_group!(benches, jsonrpc, tool_args, workflow, auth, writer);
criterion_main!(benches);
