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

mod common;
use common::postgres::Postgres;
use std::path::PathBuf;
use std::process::Command;

/// Test binaries that talk to hubs only over HTTP and `hubctl`.
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

/// Tests of those binaries that look into the SQLite file themselves, or run
/// `hubctl vacuum` (which applies to the SQLite file only): (binary, test).
const SQLITE_ONLY: &[(&str, &str)] = &[
    ("history", "prune_removes_only_what_the_policy_names"),
    ("locks", "expired_lock_is_free_without_anyone_asking"),
    ("locks", "leases_and_fencing_counters_survive_restarts"),
    ("locks", "operator_lists_and_force_releases_with_audit"),
    (
        "workflow_review",
        "operator_views_and_audit_cover_every_round",
    ),
];

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
    let server = match Postgres::start() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
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
        let skips = SQLITE_ONLY
            .iter()
            .filter(|(b, _)| b == name)
            .flat_map(|(_, t)| ["--skip", t, "--exact"]);
        let out = Command::new(&bin)
            .args(skips)
            .env(common::SUITE_PG, base)
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
