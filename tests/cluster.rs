//! `hubctl serve --store postgres://…` (issue 16, shared/spec/cluster.md) against a
//! real PostgreSQL 15 from `common::postgres`: one node holding every shard serves
//! the workflow, messaging and locks over MCP as on SQLite; answered writes survive
//! a graceful stop and `kill -9`; a second node with the same id, or any second
//! node while forwarding is not built, is refused. Skips, saying why, where
//! PostgreSQL is not installed.

mod common;
use common::postgres::Postgres;
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::time::Duration;

const AGENTS: [&str; 3] = ["disp", "alice", "bob"];

/// `serve` of `dir` on the database `url`, as node `node`.
fn node_args(dir: &std::path::Path, url: &str, node: &str) -> Vec<OsString> {
    let mut args = serve_args(dir);
    args.extend(["--store", url, "--node-id", node].map(OsString::from));
    args
}

/// A node on `url` in `dir` (its config and tokens); panics if it does not start.
fn start_node(server: &Postgres, dir: tempfile::TempDir, url: &str, node: &str) -> Hub {
    let r = spawn(
        dir.path(),
        &node_args(dir.path(), url, node),
        &[("PGPASSWORD", &server.password)],
    )
    .unwrap_or_else(|e| panic!("node {node} did not start: {e:?}\n{}", server.log()));
    Hub::from_running(dir, r)
}

/// The same config dir and database, started again (after a stop or a kill).
fn restart(server: &Postgres, mut hub: Hub, url: &str, node: &str) -> Hub {
    hub.kill9();
    let dir = std::mem::replace(&mut hub.dir, tempfile::tempdir().expect("temp"));
    start_node(server, dir, url, node)
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
    let server = match Postgres::start() {
        Ok(s) => s,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let urls = server.create_databases(&["serve", "pair"]);
    std::thread::scope(|scope| {
        scope.spawn(|| serves_and_keeps_answered_writes(&server, &urls[0]));
        scope.spawn(|| a_second_node_is_refused(&server, &urls[1]));
    });
}

/// The tools over MCP, `hubctl`, then a graceful stop and a kill -9 with every
/// answered write still there.
fn serves_and_keeps_answered_writes(server: &Postgres, url: &str) {
    let hub = start_node(server, config_dir(&AGENTS, "max_rounds: 2\n"), url, "n1");
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
    let t3 = hub.client("bob").call("lock_acquire", key)["lock"]["fencing_token"]
        .as_u64()
        .expect("token");
    assert_eq!(t3, t2, "bob's lock survived the kill: renewed, same token");
}

/// While a node serves, another with the same id is refused (the registration
/// is live), and one with another id is too (every shard is held).
fn a_second_node_is_refused(server: &Postgres, url: &str) {
    let hub = start_node(server, config_dir(&AGENTS, ""), url, "n1");
    let try_start = |node: &str| {
        let dir = config_dir(&AGENTS, "");
        match spawn(
            dir.path(),
            &node_args(dir.path(), url, node),
            &[("PGPASSWORD", &server.password)],
        ) {
            Ok(mut r) => {
                let _ = r.child.kill();
                panic!("node {node} started beside n1: {}", r.url);
            }
            Err(f) => {
                assert!(f.status.is_some_and(|s| !s.success()), "{}", f.stderr);
                f.stderr
            }
        }
    };
    let (same, other) = std::thread::scope(|scope| {
        let same = scope.spawn(|| try_start("n1"));
        let other = scope.spawn(|| try_start("n2"));
        (same.join().expect("n1"), other.join().expect("n2"))
    });
    assert!(same.contains("node id n1 is in use"), "{same}");
    assert!(other.contains("other live nodes hold"), "{other}");
    // The first node still serves.
    hub.client("alice").call("agent_heartbeat", json!({}));
}
