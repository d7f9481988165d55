//! Several nodes serving at once (issue 16, `cluster_placement: spread`;
//! shared/spec/cluster.md §2): three nodes on one PostgreSQL, each serving the
//! shards rendezvous hashing gives it, behind a round-robin TCP proxy. Calls go to
//! the owner of their home shard; messages to agents another node serves go
//! through the outbox and arrive exactly once; the quotas that span tasks hold
//! across nodes; a node joining takes its share and a node stopping hands its
//! shards on, with no answered message lost or doubled.
//! Skips, saying why, where PostgreSQL is not installed.

mod common;
use common::postgres::{start_node, Postgres};
use common::proxy::Proxy;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Rendezvous hashing over n1..n3 (fixed: the hash is frozen) puts disp, alice,
/// carol and erin at n3, bob and dave at n2, tasks T-1 and T-4 at n1 and T-3 at
/// n2: every path across nodes below is taken (messages, notices, claims
/// counted against a quota held elsewhere, round budgets at another node).
const AGENTS: [&str; 6] = ["disp", "alice", "bob", "carol", "dave", "erin"];

/// Every node's config.yaml: spread placement, short leases, one active
/// assignment per agent and two messages per task (to see the quota and the
/// budget count across nodes), no send limit; finished tasks leave memory after
/// a second and history is kept under 2 s (the hourly prune never runs here:
/// `hubctl prune` does).
const CONFIG: &str = "cluster_placement: spread\ncluster_lease_ttl_secs: 3\n\
    max_simultaneous_assignments: 1\nmax_messages_per_task: 2\nshutdown_drain_secs: 1\n\
    send_rate_per_second: 100000\nsend_burst: 100000\nfinished_task_idle_secs: 1\n\
    retention:\n  acked_messages_days: 0.00002\n  terminal_tasks_days: 0.00002\n  audit_days: 0.00002\n";

/// A node's config dir with the same agents, operator token and cluster key as
/// `first`'s.
fn like(first: &Hub) -> tempfile::TempDir {
    common::postgres::config_like(first, &AGENTS, CONFIG)
}

/// The shards each live node holds, from `hub`'s `/operator/cluster`.
fn held(hub: &Hub) -> BTreeMap<String, i64> {
    let view = hub.operator_get("/operator/cluster");
    view["cluster"]["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|n| n["live"] == true)
                .map(|n| (s(&n["node_id"]), n["shards"].as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until exactly the nodes `want` (id, port) each hold shards, 1024 in all,
/// and each serves (`/readyz`).
fn spread_over(hub: &Hub, want: &[(&str, u16)]) {
    let ready = |port: u16| {
        request("GET", &format!("http://127.0.0.1:{port}/readyz"), &[], "").status == 200
    };
    let settled = wait_for(Duration::from_secs(40), || {
        let now = held(hub);
        let ok = now.len() == want.len()
            && want
                .iter()
                .all(|(n, _)| now.get(*n).is_some_and(|c| *c > 0))
            && now.values().sum::<i64>() == 1024
            && want.iter().all(|(_, port)| ready(*port));
        ok.then_some(now)
    });
    let Some(settled) = settled else {
        panic!("the shards did not spread over {want:?}: {:?}", held(hub));
    };
    println!("shards held: {settled:?}");
}

/// Every agent sends one message to every other (subjects `tag:from>to`); each
/// inbox then holds exactly those addressed to it, once, and reads them.
fn all_to_all(front: &Hub, tag: &str) {
    send_all(front, tag);
    receive_all(front, tag);
}

/// Every agent sends one message to every other (subjects `tag:from>to`).
fn send_all(front: &Hub, tag: &str) {
    for from in AGENTS {
        let c = front.client(from);
        for to in AGENTS.iter().filter(|t| **t != from) {
            let sent = c.call(
                "message_send",
                json!({"to_agent": to, "subject": format!("{tag}:{from}>{to}"), "body": "b"}),
            );
            assert_eq!(sent["recipients"], json!([to]), "{sent}");
        }
    }
}

/// Each inbox holds exactly the messages [`send_all`] addressed to it, once;
/// they are read.
fn receive_all(front: &Hub, tag: &str) {
    for me in AGENTS {
        let c = &front.client(me);
        let mut want: Vec<String> = AGENTS
            .iter()
            .filter(|f| **f != me)
            .map(|f| format!("{tag}:{f}>{me}"))
            .collect();
        want.sort();
        let got = wait_for(Duration::from_secs(10), || {
            let subjects = subjects_of(c, tag);
            (subjects.len() >= want.len()).then_some(subjects)
        })
        .unwrap_or_else(|| panic!("{me} did not get every message: {:?}", subjects_of(c, tag)));
        assert_eq!(got, want, "{me}: each message once");
        read_all(c);
    }
}

/// The subjects starting with `tag` among `c`'s unread messages, sorted.
fn subjects_of(c: &Client, tag: &str) -> Vec<String> {
    let pulled = c.call("inbox_pull", json!({"limit": 200}));
    let mut subjects: Vec<String> = pulled["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| s(&m["subject"]))
        .filter(|sub| sub.starts_with(&format!("{tag}:")))
        .collect();
    subjects.sort();
    subjects
}

/// Acknowledge every unread message of `c`.
fn read_all(c: &Client) {
    loop {
        let pulled = c.call("inbox_pull", json!({"limit": 200}));
        let ids: Vec<Value> = pulled["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["id"].clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        c.call("message_ack", json!({"message_id": ids}));
    }
}

#[test]
fn several_nodes_serve_their_shards() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    let url = &server.create_databases(&["spread"])[0];
    let n1 = start_node(&server, config_dir(&AGENTS, CONFIG), url, "n1");
    let n2 = start_node(&server, like(&n1), url, "n2");
    let n3 = start_node(&server, like(&n1), url, "n3");
    let (p1, p2, p3) = (n1.port, n2.port, n3.port);
    spread_over(&n1, &[("n1", p1), ("n2", p2), ("n3", p3)]);
    let proxy = Proxy::start(&[p1, p2, p3]);
    // A node started with the other placement is refused, saying why.
    let standby = common::postgres::config_like(&n1, &AGENTS, "");
    let args = common::postgres::node_args(standby.path(), url, "n9");
    match spawn(standby.path(), &args, &[("PGPASSWORD", &server.password)]) {
        Ok(mut r) => {
            let _ = r.child.kill();
            panic!(
                "a standby-placement node started among spread ones: {}",
                r.url
            );
        }
        Err(f) => assert!(
            f.stderr.contains("runs with cluster_placement: spread"),
            "{}",
            f.stderr
        ),
    }
    // Node-to-node calls need the cluster key's proof, relayed or not.
    for base in [format!("http://127.0.0.1:{p1}"), proxy.base.clone()] {
        let body = r#"{"task_id":"T-0","sender":"disp","step":"Undo"}"#;
        let forged = request(
            "POST",
            &format!("{base}/internal/count"),
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(forged.status, 403, "{base}: {}", forged.body);
    }
    let front = n3.routed(&proxy.base);
    // The operator's event stream at one node shows the other nodes' events.
    let watch_url = format!("http://127.0.0.1:{p1}/operator/events");
    let auth = format!("Bearer {}", n1.operator_token());
    let watch = SseStream::open(&watch_url, &[("Authorization", auth.as_str())]).expect("stream");

    // Messages between agents of different nodes, and a broadcast.
    all_to_all(&front, "first");
    let mut from_nodes = std::collections::BTreeSet::new();
    while from_nodes.len() < 2 {
        let line = watch
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("events of nodes {from_nodes:?} only"));
        if let Some(id) = line.strip_prefix("id: ") {
            from_nodes.insert(id.rsplit('-').next().unwrap_or("").to_string());
        }
    }
    // (No agent is served by n1: the messages are the others'.)
    assert_eq!(from_nodes, ["n2", "n3"].map(String::from).into());
    // The dashboard (served by shard 0's node) shows every agent's page,
    // wherever the agent is served.
    let browser = Browser::logged_in(&front);
    for a in AGENTS {
        let page = browser.page(&format!("/ui/agents/{a}"));
        assert!(page.contains(a), "{a}");
    }
    let erin = front.client("erin");
    let b = erin.call("message_send", json!({"subject": "all:erin", "body": "b"}));
    assert_eq!(b["recipients"].as_array().map(Vec::len), Some(5), "{b}");
    for a in AGENTS.iter().filter(|a| **a != "erin") {
        let c = front.client(a);
        let got = wait_for(Duration::from_secs(10), || {
            let subjects = subjects_of(&c, "all");
            (!subjects.is_empty()).then_some(subjects)
        });
        assert_eq!(got, Some(vec!["all:erin".to_string()]), "{a}");
        read_all(&c);
    }

    // Tasks at every node: their notices reach agents wherever they are
    // served, and one active assignment per agent holds across nodes. Their
    // channel events too, the same as where the task is served (T-1 and T-4 are
    // at n1, T-3 at n2, alice and disp at n3; six rounds in one push window
    // come as one event of their kind).
    let (alice_session, disp_session) = (front.client("alice"), front.client("disp"));
    let alice_events = alice_session.open_stream().expect("alice's GET stream");
    let disp_events = disp_session.open_stream().expect("disp's GET stream");
    let rounds: Vec<String> = (0..6)
        .map(|i| dispatched_round(&front, &format!("T-{i}"), CODE_AND_TESTS))
        .collect();
    let alice = front.client("alice");
    let notices = wait_for(Duration::from_secs(10), || {
        let pulled = alice.call("inbox_pull", json!({"limit": 200}));
        let n = pulled["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["from_agent"] == "hub")
            .count();
        (n >= rounds.len()).then_some(n)
    });
    assert!(notices.is_some(), "alice heard of every dispatched round");
    for (stream, who, kind) in [
        (&alice_events, "alice", "assignment"),
        (&disp_events, "disp", "round_approved"),
    ] {
        // Every round's, the three of other nodes' tasks too.
        let mut count = 0;
        let seen = wait_for(Duration::from_secs(10), || {
            let event = stream.next_event(Duration::from_secs(10))?;
            let meta = &event["params"]["meta"];
            if meta["kind"] == kind {
                count += meta["count"].as_str().map_or(1, |n| n.parse().unwrap_or(0));
            }
            (count >= 6).then_some(())
        });
        assert!(seen.is_some(), "{who}'s stream: {count} {kind} events of 6");
    }
    let first = claim_assignment(&alice, &rounds[0]);
    for round in &rounds[1..] {
        let id = assignment(&alice, round);
        assert_eq!(
            claim_refused(&alice, &id),
            "ACTIVE_ASSIGNMENT_LIMIT",
            "{round}"
        );
    }
    complete(&alice, &first, feature_handoff());
    claim_assignment(&alice, &rounds[1]);
    let disp = front.client("disp");
    let handed = wait_for(Duration::from_secs(10), || {
        let pulled = disp.call("inbox_pull", json!({"limit": 200}));
        pulled.to_string().contains(&first).then_some(())
    });
    assert!(handed.is_some(), "the dispatcher heard of the handoff");
    let shown = hubctl_ok(&front, &["show", "T-0"]);
    assert!(shown.contains("completed"), "{shown}");
    // Each task's message budget, counted at its owner whoever sends.
    for round in &rounds[2..] {
        for i in 0..2 {
            disp.call(
                "message_send",
                json!({"to_agent": "bob", "round_id": round, "subject": format!("budget {i}"), "body": "b"}),
            );
        }
        let over = json!({"to_agent": "bob", "round_id": round, "subject": "over", "body": "b"});
        assert_eq!(
            disp.refused("message_send", over),
            "MESSAGE_LIMIT_REACHED",
            "{round}"
        );
    }

    // Locks at their keys' owners.
    let bob = front.client("bob");
    for i in 0..8 {
        let key = format!("branch:{i}");
        alice.call("lock_acquire", json!({"lock_key": key, "ttl_seconds": 60}));
        assert_eq!(
            bob.refused("lock_acquire", json!({"lock_key": key})),
            "LOCK_CONFLICT"
        );
    }

    // `hubctl hub` at any node adds up every node's live numbers: the 8 locks
    // are held at their keys' nodes.
    let state: Value = serde_json::from_str(&hubctl_ok(&front, &["--json", "hub"])).unwrap();
    assert_eq!(state["locks_held"], 8, "{state}");
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(3), "{state}");
    assert_eq!(state["nodes_unreachable"], json!([]), "{state}");
    let per_node: u64 = state["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["locks_held"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_node, 8, "{state}");

    // A prune through any node: each node prunes the tasks it serves, the node
    // serving shard 0 the read messages and audit rows; the answer sums them.
    for i in 0..6 {
        let id = format!("T-{i}");
        let shown = hubctl_ok(&front, &["show", &id]);
        if !shown.contains("status: completed") {
            hubctl_ok(&front, &["close", &id]);
        }
    }
    std::thread::sleep(Duration::from_millis(2500));
    // (Summed over tries: a task still in memory is left for the next.)
    let mut sum = BTreeMap::<&str, u64>::new();
    let pruned = wait_for(Duration::from_secs(10), || {
        let v: Value = serde_json::from_str(&hubctl_ok(&front, &["--json", "prune"])).ok()?;
        assert_eq!(v["ok"], true, "{v}");
        for what in ["tasks", "messages", "audit_events"] {
            *sum.entry(what).or_default() += v["pruned"][what].as_u64().unwrap_or(0);
        }
        (sum["tasks"] >= 6).then_some(())
    });
    assert!(
        pruned.is_some(),
        "the six finished tasks pruned at their nodes: {sum:?}"
    );
    assert_eq!(sum["tasks"], 6, "{sum:?}");
    assert!(sum["messages"] > 0 && sum["audit_events"] > 0, "{sum:?}");
    for i in 0..6 {
        let gone = front.operator_get_raw(&format!("/operator/tasks/T-{i}"));
        assert_eq!(gone.status, 404, "T-{i}: {}", gone.body);
    }
    let left: Value =
        serde_json::from_str(&hubctl_ok(&front, &["--json", "prune", "--dry-run"])).unwrap();
    assert_eq!(left["pruned"]["tasks"], 0, "{left}");

    // A 2025-03-26 batch whose calls belong to several nodes: each is done at
    // its node, answered in order.
    let old = front.client_v("carol", "2025-03-26");
    let items: Vec<Value> = (0..8)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params":
                {"name": "lock_acquire", "arguments": {"lock_key": format!("batch:{i}")}}})
        })
        .collect();
    let answered = old.post(&Value::Array(items).to_string());
    assert_eq!(answered.status, 200, "{}", answered.body);
    let answers = answered.json();
    let answers = answers.as_array().expect("an array");
    assert_eq!(answers.len(), 8, "{answers:?}");
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["id"], i, "{a}");
        assert!(
            a["result"].is_object() && a["result"].get("isError").is_none(),
            "{a}"
        );
    }
    let state: Value = serde_json::from_str(&hubctl_ok(&front, &["--json", "hub"])).unwrap();
    assert_eq!(state["locks_held"], 16, "{state}");
    let holders: Vec<u64> = state["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["locks_held"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        holders.iter().filter(|n| **n > 0).count() >= 2,
        "{holders:?}"
    );

    // The operator moves one shard by hand: pinned to a node, it is served
    // there (from n2 to n3: one shard moves), then given back to rendezvous.
    for to in ["n2", "n3"] {
        let before = held(&n1);
        let moved: Value = serde_json::from_str(&hubctl_ok(
            &front,
            &["--json", "cluster", "move", "--shard", "0", "--to", to],
        ))
        .unwrap();
        assert_eq!(
            (moved["pinned"].clone(), moved["serving"].clone()),
            (json!(true), json!(true)),
            "{moved}"
        );
        if to == "n3" {
            let after = held(&n1);
            assert_eq!(after["n2"], before["n2"] - 1, "{before:?} {after:?}");
            assert_eq!(after["n3"], before["n3"] + 1, "{before:?} {after:?}");
        }
    }
    let shown = hubctl_ok(&front, &["cluster"]);
    assert!(shown.contains("shard    0 -> n3"), "{shown}");
    let e = hubctl_err(&front, &["cluster", "move", "--shard", "0", "--to", "n9"]);
    assert!(e.contains("n9 is not"), "{e}");
    all_to_all(&front, "pinned");
    let unpinned = hubctl_ok(&front, &["cluster", "unpin", "--all"]);
    assert!(unpinned.starts_with("1 shard(s) unpinned"), "{unpinned}");

    // A fourth node joins: it takes its share, and nothing is lost or doubled.
    let n4 = start_node(&server, like(&n1), url, "n4");
    let p4 = n4.port;
    spread_over(&n1, &[("n1", p1), ("n2", p2), ("n3", p3), ("n4", p4)]);
    proxy.set_backends(&[p1, p2, p3, p4]);
    all_to_all(&front, "joined");

    // n2 stops: its shards go on to the others, still nothing lost or doubled.
    n2.signal("TERM");
    spread_over(&n1, &[("n1", p1), ("n3", p3), ("n4", p4)]);
    proxy.set_backends(&[p1, p3, p4]);
    all_to_all(&front, "left");
    for port in [p1, p3, p4] {
        assert!(proxy.served(port) > 0, "the proxy used node :{port}");
    }

    // n3 is killed (kill -9) with messages to and from its agents answered: its
    // leases lapse, each shard goes to its next owner, and every answered
    // message is there once.
    send_all(&front, "crash");
    let mut front = front;
    front.kill9();
    proxy.set_backends(&[p1, p4]);
    spread_over(&n1, &[("n1", p1), ("n4", p4)]);
    receive_all(&front, "crash");
    drop(n4);
}
