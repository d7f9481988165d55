//! The integration suite on PostgreSQL (shared/spec/cluster.md §4: "the integration
//! suite against one node, same results as single-node SQLite"). A long form, off
//! by default: with `AGENT_HUB_PG_SUITE=1` it starts a throwaway PostgreSQL and runs
//! the already built test binaries of [`SUITE`] with `AGENT_HUB_TEST_PG` pointing
//! at it, so that every hub they start serves from a database of its own there
//! (`common::process::serve_args`). The binaries that open the SQLite file
//! themselves (durability, storage faults, the reference's database, first run,
//! crash loop, install, bench) are not in the list, nor the tests of
//! [`SQLITE_ONLY`].
//!
//! ```text
//! cargo test --no-run && AGENT_HUB_PG_SUITE=1 cargo test --test cluster_suite -- --nocapture
//! ```
//!
//! With `AGENT_HUB_PG_SUITE=gateway`, every hub is two nodes and the tests call
//! the one that does not serve, which forwards every call (§4 item 3, "against
//! node 1 alone, most calls forwarded"); with `AGENT_HUB_PG_SUITE=proxy`, the
//! tests call a round-robin TCP proxy in front of both, each connection on the
//! next node (§4 item 3, "and against the proxy";
//! `common::process::SUITE_GATEWAY`); with `AGENT_HUB_PG_SUITE=spread`, the two
//! nodes behind the proxy serve at once, each its share of the shards
//! (`cluster_placement: spread`).

mod common;
use common::postgres::Postgres;
use std::path::PathBuf;
use std::process::Command;

/// Test binaries that talk to hubs only over HTTP, `hubctl` and MCP SDKs.
const SUITE: &[&str] = &[
    "abuse",
    "agents_reload",
    "auth",
    "batches",
    "body_read",
    "channels",
    "dashboard_agent",
    "dashboard_live",
    "dashboard_pages",
    "deliveries",
    "events",
    "framing",
    "history",
    // The official MCP Python SDK (1.x and 2.x), against the cluster too.
    "interop",
    "locks",
    "messaging",
    "metrics",
    "modern",
    "operator",
    "quotas",
    "robustness",
    "schemas",
    "sessions",
    "tools",
    "transport",
    "webhooks",
    "workflow",
    "workflow_assignments",
    "workflow_review",
];

/// Tests of those binaries that look into the SQLite file themselves, run
/// `hubctl vacuum` (which applies to the SQLite file only), or check what cluster
/// mode changes on purpose: (binary, test).
const SQLITE_ONLY: &[(&str, &str)] = &[
    ("history", "prune_removes_only_what_the_policy_names"),
    ("locks", "expired_lock_is_free_without_anyone_asking"),
    ("locks", "leases_and_fencing_counters_survive_restarts"),
    ("locks", "operator_lists_and_force_releases_with_audit"),
    (
        "workflow_review",
        "operator_views_and_audit_cover_every_round",
    ),
    // Cluster mode signs session ids: an idle session leaves memory but its id is
    // taken back when used (README, "Sessions in cluster mode").
    (
        "sessions",
        "l28_idle_session_expires_then_a_fresh_initialize_works",
    ),
];

/// With `AGENT_HUB_PG_SUITE=gateway` (or `proxy`), tests that look at what a node
/// answers about itself, which the node they call (not the one serving) answers
/// differently on purpose: (binary, test).
const GATEWAY_CHANGES: &[(&str, &str)] = &[
    // `/metrics` is the called node's own (it has no hub, so no tool counters or
    // hub gauges); these read them.
    ("metrics", "counters_follow_tool_calls"),
    ("channels", "each_kind_once_on_the_get_stream"),
    // A client that stops reading, or hangs up on a parked wait, is noticed by
    // the serving node only once the buffers of two hops are full, or after two
    // keep-alive comments per hop (about 4 s instead of 2).
    (
        "abuse",
        "notices_dropped_for_unread_streams_log_one_line_per_interval",
    ),
    ("modern", "closing_a_waiting_stream_withdraws_the_wait"),
];

/// With `AGENT_HUB_PG_SUITE=proxy`, tests that assume the port they call is the
/// node's own: through a balancer the public origin is the balancer's, which a
/// deployment lists in `allowed_origins` (README, "Running three nodes behind a
/// load balancer"): (binary, test).
const PROXY_CHANGES: &[(&str, &str)] = &[("auth", "l39_own_origins_and_no_origin_pass")];

/// The newest built binary of test target `name`, beside this one.
fn test_binary(name: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    let prefix = format!("{name}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let file = e.file_name().to_string_lossy().to_string();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

#[test]
fn integration_suite_on_postgres() {
    if std::env::var_os("AGENT_HUB_PG_SUITE").is_none() {
        println!("skipped: set AGENT_HUB_PG_SUITE=1 (after `cargo test --no-run`) to run the suite on PostgreSQL");
        return;
    }
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    let base = server.url("");
    let base = base.trim_end_matches('/');
    let mut failed = Vec::new();
    for name in SUITE {
        let Some(bin) = test_binary(name) else {
            failed.push(format!(
                "{name}: not built (run `cargo test --no-run` first)"
            ));
            continue;
        };
        let started = std::time::Instant::now();
        let mode = std::env::var("AGENT_HUB_PG_SUITE").unwrap_or_default();
        let gateway = mode == "gateway" || mode == "proxy" || mode == "spread";
        let proxied = mode == "proxy" || mode == "spread";
        let skipped: Vec<&str> = SQLITE_ONLY
            .iter()
            .chain(GATEWAY_CHANGES.iter().filter(|_| gateway))
            .chain(PROXY_CHANGES.iter().filter(|_| proxied))
            .filter(|(b, _)| b == name)
            .map(|(_, t)| *t)
            .collect();
        // `--exact` once (libtest refuses it twice), then each name to skip.
        let mut args: Vec<&str> = Vec::new();
        if !skipped.is_empty() {
            args.push("--exact");
        }
        for t in &skipped {
            args.extend(["--skip", t]);
        }
        let out = Command::new(&bin)
            .args(&args)
            .env(common::SUITE_PG, base)
            .env(
                common::SUITE_GATEWAY,
                match mode.as_str() {
                    "gateway" => "1",
                    "proxy" => "proxy",
                    "spread" => "spread",
                    _ => "",
                },
            )
            .env("PGPASSWORD", &server.password)
            .output()
            .expect("run a test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .lines()
            .filter(|l| l.starts_with("test result:"))
            .collect::<Vec<_>>()
            .join("; ");
        println!("{name} ({:.0?}): {summary}", started.elapsed());
        if !out.status.success() {
            let tail: Vec<&str> = stdout.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            failed.push(format!("{name}:\n{}", tail.join("\n")));
        }
    }
    assert!(failed.is_empty(), "on PostgreSQL:\n{}", failed.join("\n\n"));
}
