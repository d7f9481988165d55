//! Changing who may connect while the hub runs: `hubctl reload`, SIGHUP, and
//! `hubctl agent add|remove|rotate`. New tokens work without a restart; removed or
//! rotated ones are refused at once; an invalid agents.env changes nothing.

mod common;
use common::workflow::{hubctl_err, hubctl_ok};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// The status of an `initialize` with `token`.
fn init_status(hub: &Hub, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    request("POST", &hub.url, &std_headers(&auth), &init_body(LATEST)).status
}

#[test]
fn reload_adds_an_agent_that_works_at_once_and_can_receive() {
    let hub = Hub::start(&["alice"], "");
    assert_eq!(init_status(&hub, &token("bob")), 401);
    write_agents(&hub.path(), &["alice", "bob"]);
    let out = hubctl_ok(&hub, &["reload"]);
    assert!(out.contains("added: bob"), "{out}");
    let bob = hub.client("bob");
    bob.call("agent_heartbeat", json!({}));
    let alice = hub.client("alice");
    alice.call("message_send", json!({"to_agent": "bob", "body": "hi"}));
    let inbox = bob.call("inbox_pull", json!({}));
    assert!(inbox.to_string().contains("hi"), "{inbox}");
}

#[test]
fn reload_removes_and_rotates_tokens_at_once() {
    let hub = Hub::start(&["alice", "bob"], "");
    let bob = hub.client("bob");
    let stream = bob.open_stream().expect("GET stream");
    // alice keeps her id with a new token; bob is gone.
    write_private(
        &hub.path().join("agents.env"),
        "alice=rotated-token-0123456789\n",
    );
    let v: serde_json::Value =
        serde_json::from_str(&hubctl_ok(&hub, &["--json", "reload"])).unwrap();
    assert_eq!(v["reloaded"]["removed"], json!(["bob"]), "{v}");
    assert_eq!(v["reloaded"]["rotated"], json!(["alice"]), "{v}");
    assert_eq!(init_status(&hub, &token("alice")), 401);
    assert_eq!(init_status(&hub, &token("bob")), 401);
    assert_eq!(init_status(&hub, "rotated-token-0123456789"), 200);
    // bob's open GET stream ends.
    let started = Instant::now();
    while stream.next_line(Duration::from_secs(10)).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stream stays open"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "stream stays open"
    );
    // A POST on bob's old session is refused too.
    assert_eq!(bob.post(&ping_body(9)).status, 401);
}

#[test]
fn sighup_reloads_a_hand_edited_agents_env() {
    let hub = Hub::start(&["alice"], "");
    write_agents(&hub.path(), &["alice", "carol"]);
    hub.signal("HUP");
    let ok = wait_for(Duration::from_secs(10), || {
        (init_status(&hub, &token("carol")) == 200).then_some(())
    });
    assert!(
        ok.is_some(),
        "carol's token never worked; {}",
        hub.out.stderr()
    );
    still_works(&hub, "alice");
}

fn still_works(hub: &Hub, agent: &str) {
    hub.client(agent).call("agent_heartbeat", json!({}));
}

#[test]
fn an_invalid_agents_env_keeps_the_old_state() {
    let hub = Hub::start(&["alice"], "");
    let env = hub.path().join("agents.env");
    write_private(
        &env,
        &format!(
            "alice={}\nbob={}\nnot a pair\n",
            token("alice"),
            token("bob")
        ),
    );
    let e = hubctl_err(&hub, &["reload"]);
    let at = format!("{}:3:", env.display());
    assert!(e.contains(&at), "{e}");
    assert!(!e.contains(&token("alice")), "never print tokens: {e}");
    assert_eq!(init_status(&hub, &token("bob")), 401);
    still_works(&hub, "alice");
    // SIGHUP logs the same reason and changes nothing either.
    hub.signal("HUP");
    hub.out.wait_stderr(&at, Duration::from_secs(10));
    assert_eq!(init_status(&hub, &token("bob")), 401);
    still_works(&hub, "alice");
}

/// The token in printed client snippets (`export AGENT_HUB_TOKEN=...`).
fn printed_token(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("and start Codex with: export AGENT_HUB_TOKEN=")
        })
        .unwrap_or_else(|| panic!("no token in: {out}"))
        .to_string()
}

#[test]
fn agent_add_rotate_remove_take_effect_without_restart() {
    let hub = Hub::start(&["alice"], "");
    let out = hubctl_ok(
        &hub,
        &["agent", "add", "dave", "--capabilities", "rust,review"],
    );
    assert!(out.contains("added: dave"), "{out}");
    let tok = printed_token(&out);
    assert!(tok.starts_with("ahub_"), "{tok}");
    assert_eq!(mode(&hub.path().join("agents.env")), 0o600);
    let dave = Client::connect(&hub.url, &tok, LATEST);
    let v = dave.call("agent_heartbeat", json!({}));
    assert!(v.is_object());
    let agents = hubctl_ok(&hub, &["agents"]);
    assert!(agents.contains("rust, review"), "{agents}");
    // Adding it twice is refused; the file is unchanged.
    let e = hubctl_err(&hub, &["agent", "add", "dave"]);
    assert!(e.contains("already"), "{e}");
    assert!(!e.contains(&tok), "{e}");

    let stream = dave.open_stream().expect("GET stream");
    let out = hubctl_ok(&hub, &["agent", "rotate", "dave"]);
    assert!(out.contains("rotated: dave"), "{out}");
    let new = printed_token(&out);
    assert_ne!(new, tok);
    assert_eq!(init_status(&hub, &tok), 401);
    assert_eq!(init_status(&hub, &new), 200);
    let started = Instant::now();
    while stream.next_line(Duration::from_secs(10)).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stream stays open"
        );
    }

    let out = hubctl_ok(&hub, &["agent", "remove", "dave"]);
    assert!(out.contains("removed: dave"), "{out}");
    assert_eq!(init_status(&hub, &new), 401);
    let e = hubctl_err(&hub, &["agent", "remove", "dave"]);
    assert!(e.contains("dave is not in"), "{e}");
    // An id the hub would refuse is never written.
    let before = std::fs::read_to_string(hub.path().join("agents.env")).unwrap();
    let e = hubctl_err(&hub, &["agent", "add", "bad id"]);
    assert!(e.contains("invalid agent id"), "{e}");
    let after = std::fs::read_to_string(hub.path().join("agents.env")).unwrap();
    assert_eq!(before, after);
    still_works(&hub, "alice");
}

#[test]
fn agent_commands_edit_the_file_when_no_hub_runs() {
    let mut hub = Hub::start(&["alice"], "");
    hub.kill9();
    let out = hubctl_ok(&hub, &["agent", "add", "erin"]);
    assert!(out.contains("no hub answers"), "{out}");
    let tok = printed_token(&out);
    let hub = hub.restart();
    assert_eq!(init_status(&hub, &tok), 200);
}

#[test]
fn every_unknown_token_gets_the_same_401_naming_hubctl_reload() {
    let hub = Hub::start(&["alice", "bob"], "");
    write_agents(&hub.path(), &["alice"]);
    hubctl_ok(&hub, &["reload"]);
    let post = |token: &str| {
        let auth = format!("Bearer {token}");
        request("POST", &hub.url, &std_headers(&auth), &init_body(LATEST))
    };
    let removed = post(&token("bob"));
    let never = post("never-issued-token-0123456789");
    assert_eq!(removed.status, 401);
    assert_eq!(never.status, 401);
    assert_eq!(removed.body, never.body, "a 401 must not tell tokens apart");
    assert_eq!(
        removed.header("www-authenticate"),
        never.header("www-authenticate")
    );
    assert!(removed.body.contains("hubctl reload"), "{}", removed.body);
    assert!(!removed.body.contains("bob"), "{}", removed.body);
}

/// `hubctl operator-token rotate`: the new token works at once, the old one is
/// refused, and hubctl (which reads the file) keeps working.
#[test]
fn the_operator_token_rotates_without_a_restart() {
    let hub = Hub::start(&["alice"], "");
    let old = hub.operator_token();
    let agents = format!("{}/operator/agents", hub.base);
    let with = |t: &str| {
        request(
            "GET",
            &agents,
            &[("Authorization", &format!("Bearer {t}"))],
            "",
        )
    };
    assert_eq!(with(&old).status, 200);
    let out = hubctl_ok(&hub, &["operator-token", "rotate"]);
    assert!(out.contains("refuses the old one"), "{out}");
    let new = hub.operator_token();
    assert_ne!(new, old);
    assert_eq!(with(&old).status, 401, "the old token is refused");
    assert_eq!(with(&new).status, 200);
    assert!(hubctl_ok(&hub, &["agents"]).contains("alice"));
    // The file stays private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(hub.path().join("operator.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A removed agent's locks are released at once (audited) and pass to a waiter.
#[test]
fn removing_an_agent_releases_its_locks() {
    let hub = Hub::start(&["alice", "bob"], "");
    let a = hub.client("alice");
    a.call("lock_acquire", json!({"lock_key": "k", "ttl_seconds": 600}));
    let b = hub.client("bob");
    let waiting = std::thread::spawn(move || {
        b.call(
            "lock_acquire",
            json!({"lock_key": "k", "ttl_seconds": 60, "wait_seconds": 10}),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    hubctl_ok(&hub, &["agent", "remove", "alice"]);
    let got = waiting.join().unwrap();
    assert_eq!(got["lock"]["holder_agent_id"], "bob", "{got}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let audit = hub.operator_get("/operator/audit?entity_type=lock&entity_id=k");
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "lock_released_agent_removed"),
        "{audit}"
    );
}

/// config.yaml's live keys change on a reload (a quota, a lock bound, the log
/// level); keys that need a restart are named and keep their value; an invalid file
/// changes nothing, agents included.
#[test]
fn reload_puts_live_config_keys_in_force() {
    let hub = Hub::start(&["alice", "bob"], "max_inbox_messages: 100\n");
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    let msg = json!({"to_agent": "bob", "body": "x"});
    a.call("message_send", msg.clone());
    a.call("message_send", msg.clone());
    let lock = |ttl: u64| json!({"lock_key": "k", "ttl_seconds": ttl});
    a.call("lock_acquire", lock(600));
    a.call("lock_release", json!({"lock_key": "k"}));
    let config = hub.path().join("config.yaml");
    std::fs::write(
        &config,
        "max_inbox_messages: 2\nlock_ttl_max_seconds: 60\nport: 1\nlog_level: debug\n",
    )
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&hubctl_ok(&hub, &["--json", "reload"])).unwrap();
    assert_eq!(
        v["reloaded"]["settings_changed"],
        json!(["max_inbox_messages", "lock_ttl_max_seconds", "log_level"]),
        "{v}"
    );
    assert_eq!(v["reloaded"]["restart_needed"], json!(["port"]), "{v}");
    assert_eq!(a.refused("message_send", msg.clone()), "INBOX_FULL");
    assert_eq!(a.refused("lock_acquire", lock(600)), "INVALID_ARGUMENT");
    // Still served on its port; debug lines are now written.
    b.call("agent_heartbeat", json!({}));
    let log = hub.out.wait_stderr("DEBUG", Duration::from_secs(10));
    assert!(log.contains("DEBUG"), "log level unchanged: {log}");
    // An invalid value: nothing changes, not even the agents listed meanwhile.
    std::fs::write(&config, "max_inbox_messages: lots\n").unwrap();
    write_agents(&hub.path(), &["alice", "bob", "carol"]);
    let err = hubctl_err(&hub, &["reload"]);
    assert!(err.contains("config.yaml: max_inbox_messages"), "{err}");
    assert_eq!(init_status(&hub, &token("carol")), 401);
    assert_eq!(a.refused("message_send", msg), "INBOX_FULL");
}
