//! Running the server: one server per database (the lock file), signals, and the
//! readiness probe.

mod common;
use common::workflow::{hubctl_err, hubctl_ok};
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
    let line = "reloaded agents.env";
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

/// The discovery file: a hub on `--port 0` is found by operator commands given only
/// `--config-dir`; the file is removed on a clean stop, and one left by `kill -9`
/// is ignored.
#[test]
fn operator_commands_find_the_hub_through_the_config_dir() {
    // The hub runs on --port 0; the port of config.yaml is where nothing listens.
    let mut hub = Hub::start(&["alice"], "port: 9\n");
    let addr = hub.path().join("hub.addr");
    let found: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&addr).unwrap()).unwrap();
    assert_eq!(found["url"], hub.base.as_str());
    let out = hubctl_cmd(hub.dir.path())
        .arg("--config-dir")
        .arg(hub.path())
        .args(["agents"])
        .env_remove("AGENT_HUB_PORT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    // kill -9 leaves the file; its instance no longer answers, so it is ignored.
    hub.kill9();
    assert!(addr.exists());
    let out = hubctl_cmd(hub.dir.path())
        .arg("--config-dir")
        .arg(hub.path())
        .args(["agents"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hubctl serve"), "{err}");
    // A clean stop removes it.
    let mut hub = hub.restart();
    assert!(addr.exists());
    hub.signal("TERM");
    hub.wait_exit(Duration::from_secs(10));
    assert!(!addr.exists(), "removed on a clean stop");
}

/// Shell completions print without a config directory or a server.
#[test]
fn completions_print_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for (shell, needle) in [
        ("bash", "_hubctl()"),
        ("zsh", "#compdef hubctl"),
        ("fish", "complete -c hubctl"),
    ] {
        let out = hubctl_cmd(home.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(needle) && text.contains("list-tasks"),
            "{shell}: {text}"
        );
    }
    assert!(
        !home.path().join(".config").exists(),
        "nothing was generated"
    );
}

/// `hubctl backup FILE`: a consistent copy while the hub serves; never overwrites.
#[test]
fn backup_copies_the_database_while_serving() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = hub.client("alice");
    for n in 0..5 {
        a.call(
            "message_send",
            json!({"to_agent": "bob", "subject": format!("s{n}"), "body": "b"}),
        );
    }
    let file = hub.path().join("backup.db");
    let out = hubctl_ok(&hub, &["backup", file.to_str().unwrap()]);
    assert!(out.contains("backup written"), "{out}");
    let n: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
    let err = hubctl_err(&hub, &["backup", file.to_str().unwrap()]);
    assert!(err.contains("exists already"), "{err}");
    // The hub goes on serving.
    a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "after", "body": "b"}),
    );
}

/// `hubctl hub`: the server's state, from the hub the config directory names.
#[test]
fn hubctl_hub_prints_the_servers_state() {
    let hub = Hub::start(&["alice"], "");
    hub.client("alice").call("hub_status", json!({}));
    let v: serde_json::Value = serde_json::from_str(&hubctl_ok(&hub, &["--json", "hub"])).unwrap();
    assert_eq!(v["url"], format!("{}/mcp", hub.base), "{v}");
    assert_eq!(v["durability"], "durable");
    assert_eq!(v["sessions"], 1, "{v}");
    assert_eq!(v["writer"]["writes"], "saved", "{v}");
    assert!(v["database"].as_str().unwrap().ends_with("hub.db"), "{v}");
    let text = hubctl_ok(&hub, &["hub"]);
    assert!(
        text.contains("writes saved") && text.contains("address:"),
        "{text}"
    );
}
