//! `hubctl serve --store postgres://…` (issue 16, shared/spec/cluster.md) against a
//! real PostgreSQL 15 from `common::postgres`: one node holding every shard serves
//! the workflow, messaging and locks over MCP as on SQLite; answered writes survive
//! a graceful stop and `kill -9`; a second node with the same id is refused, one
//! with another id stands by and takes over (graceful stop, kill -9); a stale
//! owner (SIGSTOP past its leases) answers and commits nothing. Skips, saying why,
//! where PostgreSQL is not installed.

mod common;
use common::postgres::{node_args, ready, start_node, until_ready, Postgres};
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const AGENTS: [&str; 3] = ["disp", "alice", "bob"];

/// [`start_node`], then wait until it serves (it holds every shard).
fn start_active(server: &Postgres, dir: tempfile::TempDir, url: &str, node: &str) -> Hub {
    let hub = start_node(server, dir, url, node);
    until_ready(&hub, Duration::from_secs(30));
    hub
}

/// The same config dir and database, started again (after a stop or a kill).
fn restart(server: &Postgres, mut hub: Hub, url: &str, node: &str) -> Hub {
    hub.kill9();
    let dir = std::mem::replace(&mut hub.dir, tempfile::tempdir().expect("temp"));
    start_active(server, dir, url, node)
}

fn ids(pulled: &Value) -> Vec<String> {
    pulled["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| s(&m["id"]))
        .collect()
}

#[test]
fn one_node_on_postgres() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    let urls = server.create_databases(&["serve", "pair", "stale"]);
    std::thread::scope(|scope| {
        scope.spawn(|| serves_and_keeps_answered_writes(&server, &urls[0]));
        scope.spawn(|| standby_takes_over(&server, &urls[1]));
        scope.spawn(|| stale_owner_commits_nothing(&server, &urls[2]));
    });
}

/// The tools over MCP, `hubctl`, then a graceful stop and a kill -9 with every
/// answered write still there.
fn serves_and_keeps_answered_writes(server: &Postgres, url: &str) {
    let hub = start_active(server, config_dir(&AGENTS, "max_rounds: 2\n"), url, "n1");
    // The workflow: planned, approved by the operator, claimed, completed, reviewed.
    let round = dispatched_round(&hub, "T-1", CODE_AND_TESTS);
    let (d, a, b) = (hub.client("disp"), hub.client("alice"), hub.client("bob"));
    claim_and_complete(&a, &round);
    claim_and_complete(&b, &round);
    review(&d, &round, "approved");
    assert!(hubctl_ok(&hub, &["list-tasks", "--all"]).contains("T-1"));
    // Messaging: sent, pulled, acked.
    let first = s(&a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "one"}),
    )["message_id"]);
    // Bob's inbox also holds the hub's workflow notices.
    let inbox = ids(&b.call("inbox_pull", json!({})));
    assert!(inbox.contains(&first), "{inbox:?}");
    b.call("message_ack", json!({"message_id": inbox}));
    assert!(ids(&b.call("inbox_pull", json!({}))).is_empty());
    // Locks: granted, refused to another holder, released, granted again with a
    // larger fencing token.
    let key = json!({"lock_key": "branch:main", "ttl_seconds": 60});
    let t1 = a.call("lock_acquire", key.clone())["lock"]["fencing_token"]
        .as_u64()
        .expect("token");
    let (refused, err) = b.call_raw("lock_acquire", key.clone());
    assert!(err, "{refused}");
    assert_eq!(refused["error"], "LOCK_CONFLICT");
    a.call("lock_release", json!({"lock_key": "branch:main"}));
    let t2 = b.call("lock_acquire", key.clone())["lock"]["fencing_token"]
        .as_u64()
        .expect("token");
    assert!(t2 > t1, "tokens grow: {t1} then {t2}");
    assert!(
        t1 >> 32 >= 1 && t2 >> 32 == t1 >> 32,
        "the key's shard epoch in the high bits: {t1:#x}, {t2:#x}"
    );
    // `hubctl hub` names the store and the node.
    let about = hubctl_ok(&hub, &["hub"]);
    assert!(
        about.contains("postgres://") && about.contains("node n1"),
        "{about}"
    );

    // A graceful stop leaves the cluster: the restart takes the shards at once.
    let mut hub = hub;
    hub.signal("TERM");
    let status = hub.wait_exit(Duration::from_secs(20)).expect("stopped");
    assert!(status.success(), "clean exit: {status}");
    let started = std::time::Instant::now();
    let hub = restart(server, hub, url, "n1");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a graceful stop frees the node id and shards at once ({:?})",
        started.elapsed()
    );
    let (a, b) = (hub.client("alice"), hub.client("bob"));
    let shown = hubctl_ok(&hub, &["show", "T-1"]);
    assert!(shown.contains("completed"), "{shown}");
    assert!(
        ids(&b.call("inbox_pull", json!({}))).is_empty(),
        "the ack was kept"
    );
    let (held, err) = a.call_raw("lock_acquire", key.clone());
    assert!(err && held["holder_agent_id"] == "bob", "{held}");

    // kill -9 right after answered writes: all of them are there after the restart.
    let second = s(&a.call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": "two"}),
    )["message_id"]);
    let d = hub.client("disp");
    draft(&d, "T-2");
    let round2 = submit_plan(&d, "T-2", plan(&[("alice", "code")]));
    let hub = restart(server, hub, url, "n1");
    let inbox = ids(&hub.client("bob").call("inbox_pull", json!({})));
    assert!(inbox.contains(&second), "{inbox:?}");
    let awaiting = hubctl_ok(&hub, &["list-rounds"]);
    assert!(awaiting.contains(&round2), "{awaiting}");
    hubctl_ok(&hub, &["approve", &round2]);
    let t3 = hub.client("bob").call("lock_acquire", key.clone())["lock"]["fencing_token"]
        .as_u64()
        .expect("token");
    assert_eq!(t3, t2, "bob's lock survived the kill: renewed, same token");
    // Granted after two changes of owner: the new epoch starts above every older token.
    hub.client("bob")
        .call("lock_release", json!({"lock_key": "branch:main"}));
    let t4 = hub.client("alice").call("lock_acquire", key)["lock"]["fencing_token"]
        .as_u64()
        .expect("token");
    assert!(
        t4 >> 32 > t3 >> 32 && t4 & 0xffff_ffff == 1,
        "a new epoch's first grant: {t3:#x} then {t4:#x}"
    );
}

/// `hubctl serve` of node `node` must fail: its stderr.
fn start_error(server: &Postgres, url: &str, node: &str) -> String {
    let dir = config_dir(&AGENTS, "");
    match spawn(
        dir.path(),
        &node_args(dir.path(), url, node),
        &[("PGPASSWORD", &server.password)],
    ) {
        Ok(mut r) => {
            let _ = r.child.kill();
            panic!("node {node} started: {}", r.url);
        }
        Err(f) => {
            assert!(f.status.is_some_and(|s| !s.success()), "{}", f.stderr);
            f.stderr
        }
    }
}

/// The HTTP status of a `hub_status` call by `agent` on a new session (the
/// initialize's, if that is refused already).
fn call_status(hub: &Hub, agent: &str) -> u16 {
    let auth = bearer(agent);
    let headers = std_headers(&auth);
    let init = request("POST", &hub.url, &headers, &init_body(LATEST));
    if init.status != 200 {
        return init.status;
    }
    let sid = init
        .header("mcp-session-id")
        .expect("session id")
        .to_string();
    let mut headers = headers.clone();
    headers.push(("Mcp-Session-Id", &sid));
    headers.push(("MCP-Protocol-Version", LATEST));
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "hub_status", "arguments": {}}});
    request("POST", &hub.url, &headers, &body.to_string()).status
}

/// A message from alice to bob through `hub`: its id.
fn send(hub: &Hub, body: &str) -> String {
    s(&hub.client("alice").call(
        "message_send",
        json!({"to_agent": "bob", "subject": "s", "body": body}),
    )["message_id"])
}

/// While a node serves, another with the same id is refused (its registration is
/// live) and one with another id stands by (503, not ready). A graceful stop hands
/// the shards over at once; a kill -9 once the leases lapse. Nothing answered is
/// lost either way.
fn standby_takes_over(server: &Postgres, url: &str) {
    let mut n1 = start_active(server, config_dir(&AGENTS, ""), url, "n1");
    let same = start_error(server, url, "n1");
    assert!(same.contains("node id n1 is in use"), "{same}");
    let mut n2 = start_node(server, config_dir(&AGENTS, ""), url, "n2");
    assert_eq!(ready(&n2), 503);
    // A standby does not serve from its memory (/readyz 503) but forwards calls
    // to the node that does (tests/cluster_gateway.rs).
    assert_eq!(call_status(&n2, "alice"), 200, "a standby forwards");
    assert_eq!(call_status(&n1, "alice"), 200);
    // `hubctl cluster` on either node: roles, members, the shard map.
    let on_n1 = hubctl_ok(&n1, &["cluster"]);
    assert!(
        on_n1.starts_with("node n1 (active, 1024 shards held)"),
        "{on_n1}"
    );
    let on_n2 = hubctl_ok(&n2, &["--json", "cluster"]);
    let view: Value = serde_json::from_str(&on_n2).expect("json");
    let c = &view["cluster"];
    assert_eq!(
        (c["node_id"].as_str(), c["role"].as_str()),
        (Some("n2"), Some("standby"))
    );
    // Standing by, it forwards to n1 (once its lease loop has found it).
    let forwards = wait_for(Duration::from_secs(10), || {
        let text = hubctl_ok(&n2, &["cluster"]);
        text.contains("forwards calls to: n1 at http://")
            .then_some(text)
    });
    assert!(forwards.is_some(), "{}", hubctl_ok(&n2, &["cluster"]));
    let members: Vec<(String, i64)> = c["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (s(&m["node_id"]), m["shards"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(
        members,
        vec![("n1".to_string(), 1024), ("n2".to_string(), 0)]
    );
    assert_eq!(c["shards"][0]["owner"], "n1");
    assert_eq!(c["shards"][0]["state"], "held");
    let metrics = n1.operator_get_raw("/metrics").body;
    assert!(metrics.contains("agent_hub_cluster_active 1"), "{metrics}");
    assert!(
        metrics.contains("agent_hub_cluster_shards_held 1024"),
        "{metrics}"
    );
    let m1 = send(&n1, "one");

    n1.signal("TERM");
    assert!(n1
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    let took = until_ready(&n2, Duration::from_secs(15));
    println!("graceful hand-over: {took:?}");
    assert!(
        took < Duration::from_secs(8),
        "after a graceful stop: {took:?}"
    );
    let inbox = ids(&n2.client("bob").call("inbox_pull", json!({})));
    assert!(inbox.contains(&m1), "{inbox:?}");

    // n1 again, now the standby, with one agent more in its agents.env: it adds
    // her to the agents table as it starts, and n2, serving, follows the table.
    // Then kill -9 of n2 hands over once its leases lapse.
    let n1 = start_node(
        server,
        config_dir(&["disp", "alice", "bob", "carol"], ""),
        url,
        "n1",
    );
    assert_eq!(ready(&n1), 503);
    let served = wait_for(Duration::from_secs(5), || {
        let r = n2.modern("carol").send(
            "tools/call",
            json!({"name": "agent_heartbeat", "arguments": {}}),
        );
        (r.status == 200).then_some(())
    });
    assert!(served.is_some(), "carol, new in n1's agents.env, at n2");
    let m2 = send(&n2, "two");
    n2.kill9();
    let took = until_ready(&n1, Duration::from_secs(30));
    println!("failover after kill -9: {took:?}");
    let inbox = ids(&n1.client("bob").call("inbox_pull", json!({})));
    assert!(inbox.contains(&m1) && inbox.contains(&m2), "{inbox:?}");
    n1.client("carol").call("agent_heartbeat", json!({}));
}

/// A stale owner: n1 is stopped (SIGSTOP) for two lease times, n2 takes over and
/// serves; when n1 resumes, it answers nothing from memory and commits nothing.
fn stale_owner_commits_nothing(server: &Postgres, url: &str) {
    let n1 = start_active(server, config_dir(&AGENTS, ""), url, "n1");
    let n2 = start_node(server, config_dir(&AGENTS, ""), url, "n2");
    let old = n1.client("alice");
    let m1 = send(&n1, "before");
    n1.signal("STOP");
    let stopped = std::time::Instant::now();
    until_ready(&n2, Duration::from_secs(30));
    let m2 = send(&n2, "after");
    std::thread::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed()));
    n1.signal("CONT");
    // Through a session opened before the stop: not answered from memory. n1
    // knows it no longer serves, so it forwards the call to n2, which takes the
    // session back (the nodes share the cluster key) and serves the call from its
    // own state: the message is stored, by n2. (On a new connection: the old
    // client's pooled one was closed meanwhile.)
    let auth = bearer("alice");
    let mut headers = std_headers(&auth);
    headers.push(("Mcp-Session-Id", &old.session));
    headers.push(("MCP-Protocol-Version", LATEST));
    let body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
        "params": {"name": "message_send",
                   "arguments": {"to_agent": "bob", "subject": "s", "body": "stale"}}});
    let stale = request("POST", &n1.url, &headers, &body.to_string());
    assert_eq!(stale.status, 200, "{}", stale.body);
    let forwarded = stale.json()["result"]["structuredContent"]["message_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stale.body));
    let inbox = n2.client("bob").call("inbox_pull", json!({}));
    let got = ids(&inbox);
    assert!(got.contains(&m1) && got.contains(&m2), "{got:?}");
    assert!(got.contains(&forwarded), "served by n2, stored: {got:?}");
    // n1 knows it lost the shards: it stands by.
    wait_for(Duration::from_secs(10), || {
        (ready(&n1) == 503).then_some(())
    })
    .expect("n1 stands by");
}
