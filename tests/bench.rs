//! `hubctl bench`: a throwaway hub by default (nothing real touched, nothing left
//! behind), an existing one only with `--url U --live`, arguments checked first.

mod common;
use common::workflow::{hubctl_err, hubctl_ok};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// `hubctl --config-dir HOME/cfg bench <args>` with HOME and TMPDIR in `home` and no
/// hub running anywhere.
fn bench_alone(home: &Path, args: &[&str]) -> std::process::Output {
    hubctl_cmd(home)
        .env("TMPDIR", home.join("tmp"))
        .arg("--config-dir")
        .arg(home.join("cfg"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run hubctl")
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn the_default_benches_a_throwaway_hub_and_leaves_nothing_behind() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("tmp")).unwrap();
    let args = ["--seconds", "1", "--clients", "4", "--tool", "hub_status"];
    let v = json_of(&bench_alone(
        home.path(),
        &[&args[..], &["--json"]].concat(),
    ));
    assert_eq!(v["hub"], "throwaway");
    assert!(v["calls"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert!(v["server_cpu_us_per_call"].as_f64().is_some(), "{v}");
    assert_eq!(v["quotas_lifted"]["send_rate_per_second"], 1_000_000);
    let pid = v["server_pid"].as_u64().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "hub {pid} still runs"
    );
    let tmp = v["temp_dir"].as_str().unwrap();
    assert!(!Path::new(tmp).exists(), "{tmp} left behind");
    let left: Vec<_> = std::fs::read_dir(home.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(
        !home.path().join("cfg").exists(),
        "the user's config dir is not made"
    );

    // The text output says which quotas were lifted. lock_acquire answers as a stream.
    let args = ["--seconds", "0.3", "--clients", "2", "--tool", "lock_cycle"];
    let out = bench_alone(home.path(), &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("quotas lifted") && text.contains("send_burst="),
        "{text}"
    );
}

#[test]
fn call_errors_fail_the_bench_unless_allowed() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("tmp")).unwrap();
    // --config sets the send quota: it is kept, and sends beyond it fail.
    let cfg = home.path().join("strict.yaml");
    std::fs::write(&cfg, "send_rate_per_second: 1\nsend_burst: 1\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let args = ["--seconds", "5", "--clients", "1", "--tool", "message_send"];
    let started = Instant::now();
    let out = bench_alone(home.path(), &[&args[..], &["--config", cfg]].concat());
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stops at the first error"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed (--max-errors 0)"), "{err}");
    let args = [
        "--seconds",
        "0.3",
        "--clients",
        "1",
        "--tool",
        "message_send",
    ];
    let extra = ["--config", cfg, "--max-errors", "1000000", "--json"];
    let v = json_of(&bench_alone(home.path(), &[&args[..], &extra].concat()));
    assert!(v["errors"].as_u64().unwrap() > 0, "{v}");
    assert!(v["quotas_lifted"].get("send_burst").is_none(), "{v}");
    let left: Vec<_> = std::fs::read_dir(home.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn arguments_are_checked_before_anything_starts() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("tmp")).unwrap();
    let started = Instant::now();
    for (args, want) in [
        (
            &["--tool", "bogus"][..],
            "hub_status, agent_heartbeat, message_send",
        ),
        (&["--clients", "0"], "--clients must be 1-1024"),
        (&["--clients", "5000"], "--clients must be 1-1024"),
        (&["--seconds", "0"], "--seconds"),
        (
            &["--scenario", "bogus"],
            "messaging, locks, locks-free, workflow",
        ),
        (
            &["--scenario", "workflow", "--clients", "3"],
            "at least 7 --clients",
        ),
    ] {
        let out = bench_alone(home.path(), args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    let out = hubctl_cmd(home.path())
        .args(["--url", "http://127.0.0.1:9", "bench"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add --live"), "{err}");
}

#[test]
fn live_loads_the_given_hub_and_closes_its_sessions() {
    let hub = Hub::start(&["alice", "bench-1", "bench-2"], "");
    let _alice = hub.client("alice");
    let sessions = || {
        hub.operator_get("/operator/hub")["sessions"]
            .as_u64()
            .unwrap()
    };
    let before = sessions();
    let pid = hub.pid().to_string();
    let out = hubctl_ok(
        &hub,
        &[
            "bench",
            "--live",
            "--seconds",
            "0.5",
            "--clients",
            "2",
            "--tool",
            "agent_heartbeat",
            "--server-pid",
            &pid,
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hub"], "live");
    assert!(v["calls"].as_u64().unwrap() > 0, "{v}");
    assert!(v["server_cpu_us_per_call"].as_f64().is_some(), "{v}");
    assert_eq!(sessions(), before, "the bench's sessions are closed");
    let err = hubctl_err(&hub, &["bench", "--live", "--tool", "nope"]);
    assert!(err.contains("one of"), "{err}");
}

/// Scenarios: the workflow runs whole task cycles (draft to approving review, the
/// operator's approval over HTTP) and reports each tool; messaging sends, pulls and
/// acks; nothing fails.
#[test]
fn scenarios_run_whole_cycles_and_report_each_tool() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("tmp")).unwrap();
    let v = json_of(&bench_alone(
        home.path(),
        &[
            "--scenario",
            "workflow",
            "--clients",
            "7",
            "--seconds",
            "1",
            "--json",
        ],
    ));
    assert_eq!(v["errors"], 0, "{v}");
    assert!(v["cycles"].as_u64().unwrap() > 0, "{v}");
    for tool in [
        "task_draft_create",
        "round_plan_submit",
        "operator_approve",
        "assignment_claim",
        "assignment_complete",
        "handoff_get",
        "review_submit",
    ] {
        assert!(
            v["per_tool"][tool]["calls"].as_u64().unwrap() > 0,
            "{tool}: {v}"
        );
    }
    let v = json_of(&bench_alone(
        home.path(),
        &[
            "--scenario",
            "messaging",
            "--clients",
            "2",
            "--seconds",
            "1",
            "--json",
        ],
    ));
    assert_eq!(v["errors_by_kind"], serde_json::json!({}), "{v}");
    for tool in ["message_send", "inbox_pull", "message_ack"] {
        assert!(
            v["per_tool"][tool]["calls"].as_u64().unwrap() > 0,
            "{tool}: {v}"
        );
    }
}
