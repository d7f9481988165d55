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
