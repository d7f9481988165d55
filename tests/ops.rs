//! Running the server: one server per database (the lock file), signals, and the
//! readiness probe.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// `/healthz` answers 200 and a tool call works: the hub is serving.
fn still_serves(hub: &Hub) {
    let r = request("GET", &format!("{}/healthz", hub.base), &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    hub.client("alice").call("agent_heartbeat", json!({}));
}

// ---- One server per database -----------------------------------------------------

#[test]
fn a_second_server_on_the_same_database_exits_at_once() {
    let hub = Hub::start(&["alice"], "");
    let lock = hub.path().join("hub.db.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        hub.pid().to_string(),
        "the lock file holds the server's pid"
    );
    // Same config dir and --db, another (free) port.
    let started = Instant::now();
    let e = start_error(&hub.path());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let expected = format!(
        "another agent-hub server (pid {}) is serving {} (lock file {})",
        hub.pid(),
        hub.path().join("hub.db").display(),
        lock.display()
    );
    assert!(e.contains(&expected), "{e}");
    assert!(e.contains("stop it first or use another --db"), "{e}");
    still_serves(&hub);
    // The refused server neither took the lock nor rewrote the pid.
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        hub.pid().to_string()
    );
}

// ---- Signals ---------------------------------------------------------------------

#[test]
fn sighup_reloads_and_keeps_serving() {
    let hub = Hub::start_env(&["alice"], "", &[("RUST_LOG", "info")]);
    hub.signal("HUP");
    let line = "agents reloaded";
    let log = hub.out.wait_stderr(line, Duration::from_secs(10));
    assert!(log.contains(line), "{log}");
    still_serves(&hub);
}

#[test]
fn a_second_stop_signal_exits_at_once() {
    let mut hub = Hub::start(&["alice"], "");
    // An open GET stream keeps a graceful stop waiting for its timeout (2 s).
    let _stream = hub.client("alice").open_stream().expect("GET stream");
    hub.signal("TERM");
    assert!(
        hub.wait_exit(Duration::from_millis(300)).is_none(),
        "the first signal waits for the open stream"
    );
    hub.signal("TERM");
    let status = hub
        .wait_exit(Duration::from_secs(1))
        .expect("exits at the second signal, before the graceful timeout");
    assert_eq!(status.code(), Some(128 + 15), "{status}");
    let log = hub
        .out
        .wait_stderr("may not be flushed", Duration::from_secs(5));
    assert!(log.contains("second stop signal"), "{log}");
}

#[test]
fn a_database_that_cannot_be_opened_stops_start_up() {
    let dir = config_dir(&["alice"], "");
    std::fs::create_dir(dir.path().join("hub.db")).unwrap();
    let started = Instant::now();
    let e = start_error(dir.path());
    assert!(e.contains("hubctl: "), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

// ---- Readiness -------------------------------------------------------------------

fn readyz(hub: &Hub) -> Resp {
    request("GET", &format!("{}/readyz", hub.base), &[], "")
}

#[test]
fn readyz_is_200_once_started_without_a_token() {
    let hub = Hub::start(&["alice"], "");
    let r = readyz(&hub);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"ready": true}));
    // /healthz keeps its answer.
    let h = request("GET", &format!("{}/healthz", hub.base), &[], "").json();
    assert_eq!(
        (h["ok"].clone(), h["ready"].clone()),
        (json!(true), json!(true))
    );
}
