//! Failover under load (shared/spec/cluster.md §4, items 4, 5 and 7), adapted to
//! the active/standby cluster that is built: two nodes on one PostgreSQL database,
//! n1 serving, n2 standing by until n1's shard leases lapse (meanwhile it forwards
//! calls to n1, and answers 503 when n1 cannot be reached).
//!
//! Clients ([`Agent`]) retry a call that was not answered (503, 404 for a session
//! the other node does not know, a transport error) on the other node, with a new
//! session; every answered call is stamped with the node that answered it.
//!
//! 1. **Kill the active under load** ([`kill_the_active_under_load`]): 8 sender
//!    threads send messages to bob, each logical send with a unique body and
//!    `dedupe_key`, retried until answered (a retry of a send that committed but
//!    whose answer was lost gets DUPLICATE_MESSAGE naming the original, which then
//!    counts as acknowledged too). The active node gets `kill -9`, the standby
//!    takes over, the killed node is restarted (same id and config dir) and stands
//!    by; every other round the killed node is restarted at once instead (as a
//!    service manager does), so that both nodes go for the lapsing leases and
//!    either may win; R rounds. Then bob's inbox, pulled and acked until empty on the final
//!    active node, holds every acknowledged message id with its body, and no id or
//!    body twice: 0 lost, 0 duplicated. Prints each round's failover time (kill →
//!    first call answered by the other node) and the counts.
//! 2. **Races during failover** ([`races_during_failover`]): 20 agents race
//!    `lock_acquire` on one key (TTL 1 s, held 20 ms and released, every eighth
//!    grant left to lapse), and the kill falls right after a grant of 12 s is
//!    acknowledged, which the new active node must honour. Meanwhile two sessions
//!    of each agent race `assignment_claim` on its assignments in 8 dispatched
//!    rounds of 20, one assignment every 150 ms, so that claims are made before,
//!    during and after the failover. Pass: fencing tokens strictly increase over
//!    grants in grant-time order, and no grant falls inside another holder's
//!    interval (from its grant, as the server stamped it, to what is certainly
//!    held: the sending of an answered release, else of the first release attempt,
//!    else the lease's expiry); a grant after the race gets a larger token; each
//!    assignment is claimed in the store (task tree) with exactly one
//!    `assignment_claimed` audit event, at most one acknowledged winner, and the
//!    winner's `claimed_at` is the stored one.
//! 3. **PostgreSQL restart under load** ([`database_restart_under_load`]), on a
//!    server of its own so that the other scenarios are not disturbed: 4 senders
//!    write to two nodes while the database gets `pg_ctl restart -m immediate`,
//!    then an outage of 3 s (`pg_ctl stop -m immediate`, start again: writes are
//!    refused and heal), then one of 12 s, longer than the lease (every lease has
//!    lapsed when the database is back, and both nodes go for them). Pass: no hub
//!    process exits, the only failures clients see are 503s and transport errors
//!    (both counted and printed per disruption), a node serves again, and 0
//!    acknowledged writes are lost or duplicated afterwards.
//! 4. **Two nodes started at once** ([`started_at_once`]) on a fresh database,
//!    three times: one of them must serve within 15 s, the other stand by. (Their
//!    acquisitions running side by side split the shards between them; before
//!    `Node::settle_split` both then stood by for good.)
//!
//! Fencing tokens carry the lock key's shard epoch in their high bits
//! (cluster.md §2): a grant after a failover is above every grant of before,
//! even one whose row the new owner never read; scenario 2 checks that they strictly increase.
//!
//! The scenarios run side by side, each on its own database (about 40-55 s in all;
//! `AGENT_HUB_FAILOVER_ONLY=2` runs only scenario 2, and so on). The long form:
//!
//! `AGENT_HUB_FAILOVER_ROUNDS=100 cargo test --test cluster_failover -- --nocapture`
//!
//! (100 kills in scenario 1, about 12 s each; `AGENT_HUB_FAILOVER_LEASE_TTL=3`
//! runs scenario 1 with 3 s leases, `cluster_lease_ttl_secs`). Skips, saying why,
//! where PostgreSQL is not installed.

mod common;
use common::postgres::{ready, start_node, until_ready, Postgres};
use common::workflow::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Kills of scenario 1 by default (`AGENT_HUB_FAILOVER_ROUNDS` for more).
const DEFAULT_ROUNDS: usize = 2;
/// How long after a kill -9 a standby must be serving (lease TTL 10 s + margin).
const TAKEOVER_WITHIN: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------
// Nodes

/// Whether the hub's process is still running.
fn alive(hub: &mut Hub) -> bool {
    hub.wait_exit(Duration::ZERO).is_none()
}

/// The nodes' URLs as the clients see them (a restarted node has a new port),
/// and when each node last answered a call.
struct Urls {
    list: RwLock<Vec<String>>,
    /// Milliseconds since `started` of each node's latest answered call.
    answered: [AtomicU64; 2],
    /// The first call answered after `since` (both in milliseconds since
    /// `started`; 0: none yet), whichever node answered it.
    since: AtomicU64,
    first: AtomicU64,
    started: Instant,
}

impl Urls {
    fn new(list: Vec<String>) -> Arc<Urls> {
        Arc::new(Urls {
            list: RwLock::new(list),
            answered: [AtomicU64::new(0), AtomicU64::new(0)],
            since: AtomicU64::new(u64::MAX),
            first: AtomicU64::new(0),
            started: Instant::now(),
        })
    }
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }
    fn len(&self) -> usize {
        self.list.read().unwrap().len()
    }
    /// A call answered by node `at`.
    fn answer(&self, at: usize) {
        let now = self.now_ms();
        self.answered[at].store(now, Ordering::Release);
        if now > self.since.load(Ordering::Acquire) {
            let _ = self
                .first
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }
    /// Watch for the first call answered from now on.
    fn watch(&self) -> u64 {
        let now = self.now_ms();
        self.first.store(0, Ordering::Release);
        self.since.store(now, Ordering::Release);
        now
    }
}

/// Two nodes of one database: `hubs[i]` runs as node `n{i+1}`; `active` serves.
struct Pair<'a> {
    server: &'a Postgres,
    db: String,
    hubs: Vec<Hub>,
    active: usize,
    urls: Arc<Urls>,
}

impl<'a> Pair<'a> {
    /// n1 active, then n2 standing by.
    fn start(server: &'a Postgres, db: &str, agents: &[&str], config: &str) -> Pair<'a> {
        let n1 = start_node(server, config_dir(agents, config), db, "n1");
        until_ready(&n1, Duration::from_secs(30));
        let n2 = start_node(server, config_dir(agents, config), db, "n2");
        assert_eq!(ready(&n2), 503, "n2 stands by");
        let urls = Urls::new(vec![n1.url.clone(), n2.url.clone()]);
        Pair {
            server,
            db: db.to_string(),
            hubs: vec![n1, n2],
            active: 0,
            urls,
        }
    }

    fn active(&self) -> &Hub {
        &self.hubs[self.active]
    }

    /// kill -9 of the active node and restart it (same id, same config dir):
    /// after the other node answers a call (clients must be calling), when it
    /// must stand by; or `at_once` (as a service manager would), when both go
    /// for the lapsing leases and either may win. Returns kill → first answered
    /// call.
    fn failover(&mut self, at_once: bool) -> Duration {
        let killed = self.active;
        let other = 1 - killed;
        self.hubs[killed].kill9();
        let kill_ms = self.urls.watch();
        if at_once {
            self.restart(killed);
        }
        let first = wait_for(TAKEOVER_WITHIN, || {
            Some(self.urls.first.load(Ordering::Acquire)).filter(|f| *f != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "no call answered within {TAKEOVER_WITHIN:?} of the kill of n{}: {}",
                killed + 1,
                self.hubs[other].out.stderr()
            )
        });
        let took = Duration::from_millis(first - kill_ms);
        if !at_once {
            self.restart(killed);
            assert_eq!(
                ready(&self.hubs[killed]),
                503,
                "the restarted node stands by"
            );
        }
        let states = wait_for(Duration::from_secs(10), || {
            let s = [ready(&self.hubs[0]), ready(&self.hubs[1])];
            s.contains(&200).then_some(s)
        })
        .expect("a node serves");
        assert!(states.contains(&503), "the other stands by: {states:?}");
        self.active = if states[0] == 200 { 0 } else { 1 };
        took
    }

    /// Start node `i` again on its config dir, as `n{i+1}`.
    fn restart(&mut self, i: usize) {
        let dir = std::mem::replace(&mut self.hubs[i].dir, tempfile::tempdir().expect("temp"));
        let restarted = start_node(self.server, dir, &self.db, &format!("n{}", i + 1));
        self.urls.list.write().unwrap()[i] = restarted.url.clone();
        self.hubs[i] = restarted;
    }
}

// ---------------------------------------------------------------------------
// A client that survives failovers

/// Failures clients saw (retried), by kind.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, kind: &str) {
        *self.0.lock().unwrap().entry(kind.to_string()).or_default() += 1;
    }
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

/// One attempt's outcome.
enum Outcome {
    /// The tool answered: its object and isError.
    Answered(Value, bool),
    /// Not answered (503, 404, a transport error…): what happened; retry.
    Retry(String),
}

/// An agent's MCP session on one of the nodes; on a failure it drops the session
/// and (unless the session was only unknown) moves to the other node.
struct Agent {
    token: String,
    urls: Arc<Urls>,
    at: usize,
    session: Option<String>,
    http: ureq::Agent,
    next_id: i64,
}

impl Agent {
    fn new(agent: &str, urls: &Arc<Urls>, at: usize) -> Agent {
        Agent {
            token: token(agent),
            urls: urls.clone(),
            at,
            session: None,
            http: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(20))
                .build(),
            next_id: 1,
        }
    }

    fn post(&self, url: &str, body: &str) -> Result<Resp, String> {
        let mut req = self
            .http
            .post(url)
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Accept", ACCEPT)
            .set("Content-Type", "application/json");
        if let Some(sid) = &self.session {
            req = req
                .set("Mcp-Session-Id", sid)
                .set("MCP-Protocol-Version", LATEST);
        }
        match req.send_string(body) {
            Ok(r) => Ok(to_resp(Ok(r))),
            Err(e @ ureq::Error::Status(..)) => Ok(to_resp(Err(e))),
            Err(ureq::Error::Transport(t)) => Err(format!("transport ({:?})", t.kind())),
        }
    }

    /// Give up this node: a new session on the other one next time.
    fn move_on(&mut self) {
        self.session = None;
        self.at = (self.at + 1) % self.urls.len();
    }

    fn fail(&mut self, what: &str, r: &Resp) -> Outcome {
        let kind = format!("{what} http {}", r.status);
        if r.status == 404 {
            // Unknown session (the node restarted or is another one): same node.
            self.session = None;
        } else {
            self.move_on();
        }
        if r.status != 503 && r.status != 404 {
            return Outcome::Retry(format!("{kind}: {}", r.body));
        }
        Outcome::Retry(kind)
    }

    /// One `tools/call` attempt, initializing a session first if needed.
    fn attempt(&mut self, tool: &str, args: &Value) -> Outcome {
        let url = self.urls.list.read().unwrap()[self.at].clone();
        if self.session.is_none() {
            let r = match self.post(&url, &init_body(LATEST)) {
                Ok(r) => r,
                Err(e) => {
                    self.move_on();
                    return Outcome::Retry(format!("initialize {e}"));
                }
            };
            if r.status != 200 {
                return self.fail("initialize", &r);
            }
            self.session = r.header("mcp-session-id").map(str::to_string);
            let n = self.post(
                &url,
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            );
            match n {
                Ok(n) if n.status == 202 => {}
                Ok(n) => return self.fail("initialized", &n),
                Err(e) => {
                    self.move_on();
                    return Outcome::Retry(format!("initialized {e}"));
                }
            }
        }
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}});
        let r = match self.post(&url, &body.to_string()) {
            Ok(r) => r,
            Err(e) => {
                self.move_on();
                return Outcome::Retry(e);
            }
        };
        if r.status != 200 {
            return self.fail("call", &r);
        }
        let v = if r.content_type().starts_with("text/event-stream") {
            sse_data(&r.body).pop().unwrap_or(Value::Null)
        } else {
            r.json()
        };
        if let Some(e) = v.get("error") {
            self.move_on();
            return Outcome::Retry(format!("call rpc {}", e["code"]));
        }
        let result = &v["result"];
        let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{tool}: not a tool result ({e}): {v}"));
        self.urls.answer(self.at);
        Outcome::Answered(text, result["isError"] == true)
    }

    /// Attempts until answered (failures counted in `tally`, 50 ms apart), or
    /// `None` once `give_up` says so.
    fn call(
        &mut self,
        tool: &str,
        args: &Value,
        tally: &Tally,
        give_up: &dyn Fn() -> bool,
    ) -> Option<(Value, bool)> {
        loop {
            match self.attempt(tool, args) {
                Outcome::Answered(v, e) => return Some((v, e)),
                Outcome::Retry(kind) => {
                    tally.add(&kind);
                    if give_up() {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Message load and its check

/// An acknowledged send: a 200 with ok=true, or DUPLICATE_MESSAGE naming the
/// original (the retry of a send whose answer was lost, but which committed).
#[derive(Clone, Debug)]
struct Acked {
    body: String,
    id: String,
    by_duplicate: bool,
}

/// Sends from `sender` to `to` until `stop`, each logical send with a unique body
/// and dedupe_key, retried until answered; 5 ms apart.
fn send_load(
    urls: &Arc<Urls>,
    sender: &str,
    to: &str,
    stop: &AtomicBool,
    acked: &Mutex<Vec<Acked>>,
    tally: &Tally,
    start_at: usize,
) {
    let mut a = Agent::new(sender, urls, start_at);
    let give_up = || stop.load(Ordering::Acquire);
    for n in 0.. {
        if give_up() {
            return;
        }
        let body = format!("{sender} #{n}");
        let args = json!({"to_agent": to, "subject": "load", "body": body,
                          "dedupe_key": format!("{sender}-{n}")});
        let Some((v, err)) = a.call("message_send", &args, tally, &give_up) else {
            return;
        };
        let by_duplicate = err && v["error"] == "DUPLICATE_MESSAGE";
        if err && !by_duplicate {
            tally.add(&format!("refused {}", v["error"]));
            continue;
        }
        acked.lock().unwrap().push(Acked {
            body,
            id: s(&v["message_id"]),
            by_duplicate,
        });
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the recipient's inbox held (pulled and acked until empty).
struct Delivery {
    acked: usize,
    recovered_by_duplicate: usize,
    delivered: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
    unacknowledged_but_stored: usize,
}

/// Pull and ack `recipient`'s inbox on `hub` until empty; compare with `acked`.
fn delivery(hub: &Hub, recipient: &str, acked: &[Acked]) -> Delivery {
    let c = hub.client(recipient);
    let mut seen: Vec<(String, String)> = Vec::new();
    loop {
        let v = c.call("inbox_pull", json!({"limit": 200}));
        let msgs = v["messages"].as_array().expect("messages").clone();
        if msgs.is_empty() {
            break;
        }
        let ids: Vec<String> = msgs.iter().map(|m| s(&m["id"])).collect();
        seen.extend(msgs.iter().map(|m| (s(&m["id"]), s(&m["body"]))));
        c.call("message_ack", json!({"message_id": ids}));
    }
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut by_body: HashMap<&str, usize> = HashMap::new();
    for (id, body) in &seen {
        *by_id.entry(id).or_default() += 1;
        *by_body.entry(body).or_default() += 1;
    }
    let mut duplicated: Vec<String> = by_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("id {id} ×{n}"))
        .collect();
    duplicated.extend(
        by_body
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(b, n)| format!("body {b:?} ×{n}")),
    );
    let stored: HashMap<&str, &str> = seen.iter().map(|(i, b)| (i.as_str(), b.as_str())).collect();
    let lost: Vec<String> = acked
        .iter()
        .filter(|a| stored.get(a.id.as_str()) != Some(&a.body.as_str()))
        .map(|a| format!("{} ({:?})", a.id, a.body))
        .collect();
    let acked_ids: HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    Delivery {
        acked: acked.len(),
        recovered_by_duplicate: acked.iter().filter(|a| a.by_duplicate).count(),
        delivered: seen.len(),
        unacknowledged_but_stored: stored.keys().filter(|i| !acked_ids.contains(*i)).count(),
        lost,
        duplicated,
    }
}

impl Delivery {
    fn summary(&self) -> String {
        format!(
            "acknowledged {} (of which {} by DUPLICATE_MESSAGE on a retry), delivered {}, \
             stored without an acknowledgement {}, lost {}, duplicated {}",
            self.acked,
            self.recovered_by_duplicate,
            self.delivered,
            self.unacknowledged_but_stored,
            self.lost.len(),
            self.duplicated.len()
        )
    }
    fn assert_exactly_once(&self, scenario: &str) {
        assert!(
            self.lost.is_empty() && self.duplicated.is_empty(),
            "{scenario}: {}\nlost: {:?}\nduplicated: {:?}",
            self.summary(),
            self.lost,
            self.duplicated
        );
        assert!(self.acked > 0, "{scenario}: no send was acknowledged");
    }
}

// ---------------------------------------------------------------------------

#[test]
fn failover() {
    let Some(server) = Postgres::or_skip() else {
        return;
    };
    let urls = server.create_databases(&["killed", "races", "at_once_1", "at_once_2", "at_once_3"]);
    // `AGENT_HUB_FAILOVER_ONLY=13`: only scenarios 1 and 3, say.
    let only = std::env::var("AGENT_HUB_FAILOVER_ONLY").unwrap_or_default();
    let run = |n: char| only.is_empty() || only.contains(n);
    std::thread::scope(|scope| {
        let mut running = Vec::new();
        if run('1') {
            running.push(scope.spawn(|| kill_the_active_under_load(&server, &urls[0])));
        }
        if run('2') {
            running.push(scope.spawn(|| races_during_failover(&server, &urls[1])));
        }
        if run('3') {
            running.push(scope.spawn(database_restart_under_load));
        }
        if run('4') {
            running.push(scope.spawn(|| started_at_once(&server, &urls[2..])));
        }
        // Every scenario runs to its end; then the first failure is reported.
        let results: Vec<_> = running.into_iter().map(|t| t.join()).collect();
        for r in results {
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
    });
}

/// The lifted quotas of the load scenarios (a sender sends faster than the
/// default 50/s).
const LOAD_CONFIG: &str = "send_rate_per_second: 1000000\nsend_burst: 1000000\n\
     max_inbox_messages: 1000000\nmax_inbox_bytes: 1073741824\n";

/// Scenario 1: kill -9 of the active node under load, R rounds.
fn kill_the_active_under_load(server: &Postgres, db: &str) {
    let rounds: usize = std::env::var("AGENT_HUB_FAILOVER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let senders: Vec<String> = (1..=8).map(|i| format!("s{i}")).collect();
    let mut agents: Vec<&str> = senders.iter().map(String::as_str).collect();
    agents.push("bob");
    let ttl = std::env::var("AGENT_HUB_FAILOVER_LEASE_TTL")
        .map(|t| format!("cluster_lease_ttl_secs: {t}\n"))
        .unwrap_or_default();
    let mut pair = Pair::start(server, db, &agents, &format!("{LOAD_CONFIG}{ttl}"));
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let tally = Tally::default();
    let mut times = Vec::new();
    let urls = pair.urls.clone();
    std::thread::scope(|scope| {
        for (i, sender) in senders.iter().enumerate() {
            let (urls, stop, acked, tally) = (&urls, &stop, &acked, &tally);
            // Half of the clients try the standby first.
            scope.spawn(move || send_load(urls, sender, "bob", stop, acked, tally, i % 2));
        }
        for round in 1..=rounds {
            std::thread::sleep(Duration::from_millis(1500));
            let before = acked.lock().unwrap().len();
            let killed = pair.active + 1;
            // Every other round, the killed node is restarted at once.
            let at_once = round % 2 == 0;
            let took = pair.failover(at_once);
            println!(
                "scenario 1, round {round}: kill -9 of n{killed} after {before} acknowledged sends{}; \
                 first call answered {took:?} later; n{} serves",
                if at_once { ", restarted at once" } else { "" },
                pair.active + 1
            );
            times.push(took);
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Release);
    });
    let acked = acked.into_inner().unwrap();
    let d = delivery(pair.active(), "bob", &acked);
    times.sort();
    let pct = |p: usize| times[((times.len() * p).div_ceil(100)).clamp(1, times.len()) - 1];
    println!(
        "scenario 1 summary: {rounds} kills; failover time min {:?}, p50 {:?}, p99 {:?}, max {:?}; \
         {}; retried failures seen by clients: {:?}",
        times[0],
        pct(50),
        pct(99),
        times[times.len() - 1],
        d.summary(),
        tally.snapshot()
    );
    d.assert_exactly_once("scenario 1 (kill the active under load)");
}

// ---------------------------------------------------------------------------
// Scenario 2

/// A grant of the raced lock, as its holder saw it.
#[derive(Clone, Debug)]
struct Grant {
    holder: String,
    token: u64,
    /// The server's grant time.
    granted: chrono::DateTime<chrono::Utc>,
    expires: chrono::DateTime<chrono::Utc>,
    /// When the holder sent the release that was answered ok=true.
    released_ok: Option<chrono::DateTime<chrono::Utc>>,
    /// When the holder first sent a release (answered or not).
    release_sent: Option<chrono::DateTime<chrono::Utc>>,
}

impl Grant {
    /// Until when the holder certainly held the lock: up to the sending of a
    /// release that was answered (it ran after that), else up to the first
    /// release attempt (one whose answer was lost may have run at once), else
    /// until the lease's expiry.
    fn held_until(&self) -> chrono::DateTime<chrono::Utc> {
        let end = self
            .released_ok
            .or(self.release_sent)
            .unwrap_or(self.expires);
        end.min(self.expires)
    }
}

fn ts(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .with_timezone(&chrono::Utc)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
}

const LOCK_KEY: &str = "race";

/// `agent` races for the lock until `stop`: acquire (TTL 1 s), held 20 ms,
/// then released, except every eighth grant, left to lapse; and when the
/// controller asks (`long.wanted`), one grant of [`LONG_TTL`] left to lapse, which
/// the node killed next granted and the new one must honour.
fn lock_racer(
    urls: &Arc<Urls>,
    agent: &str,
    stop: &AtomicBool,
    grants: &Mutex<Vec<Grant>>,
    tally: &Tally,
    seed: u64,
    long: &LongHold,
) {
    let mut a = Agent::new(agent, urls, 0);
    let give_up = || stop.load(Ordering::Acquire);
    let mut held = 0u64;
    let mut rng = seed;
    let mut jitter = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(5 + (rng >> 33) % 25)
    };
    while !give_up() {
        let is_long = long.wanted.swap(false, Ordering::AcqRel);
        let ttl = if is_long { LONG_TTL } else { 1 };
        let acquire = json!({"lock_key": LOCK_KEY, "ttl_seconds": ttl});
        let Some((v, err)) = a.call("lock_acquire", &acquire, tally, &give_up) else {
            return;
        };
        if err {
            assert_eq!(v["error"], "LOCK_CONFLICT", "{agent}: {v}");
            if is_long {
                long.wanted.store(true, Ordering::Release);
            }
            std::thread::sleep(jitter());
            continue;
        }
        let lock = &v["lock"];
        assert_eq!(lock["holder_agent_id"], agent, "{v}");
        let token = lock["fencing_token"].as_u64().expect("token");
        let mut grant = Grant {
            holder: agent.to_string(),
            token,
            granted: ts(&lock["created_at"]),
            expires: ts(&lock["expires_at"]),
            released_ok: None,
            release_sent: None,
        };
        if v["renewed"] == true {
            // The answer of a grant was lost, and this renewed it: same token.
            let mut all = grants.lock().unwrap();
            if let Some(g) = all.iter_mut().find(|g| g.token == token) {
                assert_eq!(g.holder, agent, "{v}");
                g.expires = g.expires.max(grant.expires);
                drop(all);
            } else {
                all.push(grant.clone());
                drop(all);
            }
        } else {
            grants.lock().unwrap().push(grant.clone());
        }
        held += 1;
        if is_long {
            long.granted.store(true, Ordering::Release);
        }
        std::thread::sleep(Duration::from_millis(20));
        if is_long || held.is_multiple_of(8) {
            // Left to lapse: wait it out (or the end) before trying again.
            while !give_up() && now() < grant.expires {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        let release = json!({"lock_key": LOCK_KEY});
        loop {
            let sent = now();
            grant.release_sent.get_or_insert(sent);
            let Some((v, err)) = a.call("lock_release", &release, tally, &|| true) else {
                // Not answered: tried again (the first attempt's time is kept).
                if give_up() && now() > grant.expires {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            if !err {
                assert_eq!(v["fencing_token"].as_u64(), Some(token), "{v}");
                grant.released_ok = Some(sent);
            } else {
                // A release that ran but whose answer was lost, or the lease lapsed.
                assert_eq!(v["error"], "LOCK_NOT_HELD", "{agent}: {v}");
            }
            break;
        }
        let mut all = grants.lock().unwrap();
        if let Some(g) = all.iter_mut().find(|g| g.token == token) {
            g.released_ok = grant.released_ok;
            g.release_sent = grant.release_sent;
        }
        drop(all);
        std::thread::sleep(jitter());
    }
}

/// The TTL of the grant that spans the kill.
const LONG_TTL: u64 = 12;

/// The controller's request for a grant of [`LONG_TTL`] right before the kill.
#[derive(Default)]
struct LongHold {
    wanted: AtomicBool,
    granted: AtomicBool,
}

/// A claim attempt's end: who won or lost which assignment.
#[derive(Debug)]
struct ClaimResult {
    assignment: String,
    /// The claim's time, as the winner was answered.
    won: Option<String>,
}

/// Scenario 2: lock and claim races across a kill -9 of the active node.
fn races_during_failover(server: &Postgres, db: &str) {
    const ROUNDS: usize = 8;
    let racers: Vec<String> = (1..=20).map(|i| format!("a{i:02}")).collect();
    let mut agents: Vec<&str> = racers.iter().map(String::as_str).collect();
    agents.push("disp");
    let config = "max_assignments_per_round: 20\nmax_simultaneous_assignments: 20\n";
    let mut pair = Pair::start(server, db, &agents, config);
    // ROUNDS tasks, each with a dispatched round of one assignment per racer.
    let items: Vec<(&str, &str)> = racers.iter().map(|a| (a.as_str(), "work")).collect();
    let rounds: Vec<String> = (1..=ROUNDS)
        .map(|t| dispatched_round(pair.active(), &format!("T-{t}"), &items))
        .collect();
    let mut mine: HashMap<String, Vec<String>> = HashMap::new();
    for a in &racers {
        let c = pair.active().client(a);
        mine.insert(
            a.clone(),
            rounds.iter().map(|r| assignment(&c, r)).collect(),
        );
    }
    let stop = AtomicBool::new(false);
    let grants = Mutex::new(Vec::new());
    let claims = Mutex::new(Vec::new());
    let tally = Tally::default();
    let started = Instant::now();
    let urls = pair.urls.clone();
    let long = LongHold::default();
    let (took, killed_at) = std::thread::scope(|scope| {
        let (urls, stop, grants, claims, tally) = (&urls, &stop, &grants, &claims, &tally);
        let mut claimers = Vec::new();
        for (i, agent) in racers.iter().enumerate() {
            let long = &long;
            scope.spawn(move || lock_racer(urls, agent, stop, grants, tally, i as u64 + 1, long));
            // Two sessions of the agent race for each of its assignments, one
            // assignment every 150 ms: the kill falls in the middle.
            for session in 0..2 {
                let ids = &mine[agent];
                claimers.push(scope.spawn(move || {
                    let mut a = Agent::new(agent, urls, session);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    for (j, id) in ids.iter().enumerate() {
                        let at = started + Duration::from_millis(150 * j as u64);
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        let args = json!({"assignment_id": id});
                        let (v, err) = a
                            .call("assignment_claim", &args, tally, &|| {
                                Instant::now() > deadline
                            })
                            .unwrap_or_else(|| panic!("{agent}: claim of {id} never answered"));
                        if err {
                            assert_eq!(v["error"], "ASSIGNMENT_NOT_PENDING", "{agent}: {v}");
                        }
                        claims.lock().unwrap().push(ClaimResult {
                            assignment: id.clone(),
                            won: (!err).then(|| s(&v["assignment"]["claimed_at"])),
                        });
                    }
                }));
            }
        }
        std::thread::sleep(Duration::from_millis(600));
        // The kill right after a long grant is acknowledged.
        long.wanted.store(true, Ordering::Release);
        wait_for(Duration::from_secs(10), || {
            long.granted.load(Ordering::Acquire).then_some(())
        })
        .expect("a long grant before the kill");
        let killed_at = now();
        let kill = Instant::now();
        let took = pair.failover(false);
        for c in claimers {
            c.join().expect("claimer");
        }
        // The lock race goes on on the new active node, past the long grant.
        let until = kill + Duration::from_secs(LONG_TTL + 3);
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(3)),
        );
        stop.store(true, Ordering::Release);
        (took, killed_at)
    });
    let hub = pair.active();

    // Locks: tokens grow with grant time; no holder's interval overlaps another's.
    let mut grants = grants.into_inner().unwrap();
    grants.sort_by_key(|g| g.granted);
    let mut violations = Vec::new();
    for (i, b) in grants.iter().enumerate() {
        for a in &grants[..i] {
            if b.token <= a.token {
                violations.push(format!(
                    "token {} (granted {} to {}) after token {} (granted {} to {})",
                    b.token, b.granted, b.holder, a.token, a.granted, a.holder
                ));
            }
            if b.granted < a.held_until() {
                violations.push(format!(
                    "{} granted token {} at {} while {} held token {} until at least {}",
                    b.holder,
                    b.token,
                    b.granted,
                    a.holder,
                    a.token,
                    a.held_until()
                ));
            }
        }
    }
    // After the race, a new grant still gets a larger token than every one
    // acknowledged (the counter was stored with each grant).
    let max_token = grants.iter().map(|g| g.token).max().unwrap_or(0);
    let last = {
        // Not a racer: one of them may still hold it (a renewal keeps its token).
        let c = hub.client("disp");
        let args = json!({"lock_key": LOCK_KEY, "ttl_seconds": 1});
        wait_for(Duration::from_secs(15), || {
            let (v, err) = c.call_raw("lock_acquire", args.clone());
            (!err).then(|| v["lock"]["fencing_token"].as_u64().expect("token"))
        })
        .expect("the lock is free again")
    };
    if last <= max_token {
        violations.push(format!(
            "a grant after the race got token {last}, not above {max_token}"
        ));
    }
    let after_kill = grants.iter().filter(|g| g.granted > killed_at).count();
    let epochs: std::collections::BTreeSet<u64> = grants.iter().map(|g| g.token >> 32).collect();
    println!(
        "scenario 2, locks: {} grants acknowledged ({} after the kill; {} released, {} left to lapse \
         or their release unanswered), tokens {:#x}..{:#x}, then {last:#x}; epochs in the tokens' \
         high bits: {epochs:?}; {} violation(s)",
        grants.len(),
        after_kill,
        grants.iter().filter(|g| g.released_ok.is_some()).count(),
        grants.iter().filter(|g| g.released_ok.is_none()).count(),
        grants.first().map_or(0, |g| g.token),
        grants.last().map_or(0, |g| g.token),
        violations.len()
    );

    // Claims: one claim per assignment in the store; at most one acknowledged winner.
    let claims = claims.into_inner().unwrap();
    let mut winners: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &claims {
        let w = winners.entry(c.assignment.as_str()).or_default();
        if let Some(at) = &c.won {
            w.push(at.as_str());
        }
    }
    let mut problems = Vec::new();
    let mut no_acknowledged_winner = 0;
    let mut claimed_total = 0;
    for (t, round) in rounds.iter().enumerate() {
        let task = format!("T-{}", t + 1);
        let tree = hub.operator_get(&format!("/operator/tasks/{task}"));
        let events = hub.operator_get(&format!(
            "/operator/audit?task_id={task}&event_type=assignment_claimed&limit=1000"
        ));
        // Claims are audited on the task, by the claiming agent: each racer has
        // one assignment in the task.
        let mut claimed_events: HashMap<String, usize> = HashMap::new();
        for e in events["items"].as_array().expect("items") {
            assert_eq!(e["entity_id"], task.as_str(), "{e}");
            *claimed_events.entry(s(&e["actor"])).or_default() += 1;
        }
        let assignments: Vec<&Value> = tree["rounds"]
            .as_array()
            .expect("rounds")
            .iter()
            .filter(|r| r["round"]["id"] == round.as_str())
            .flat_map(|r| r["assignments"].as_array().expect("assignments"))
            .collect();
        assert_eq!(assignments.len(), racers.len(), "{tree}");
        for a in assignments {
            let id = s(&a["id"]);
            claimed_total += 1;
            if a["status"] != "claimed" {
                problems.push(format!("{id}: status {} ({a})", a["status"]));
            }
            let n = claimed_events.get(&s(&a["agent_id"])).copied().unwrap_or(0);
            if n != 1 {
                problems.push(format!("{id}: {n} assignment_claimed events"));
            }
            let won = winners.get(id.as_str()).cloned().unwrap_or_default();
            let w = won.len();
            if w > 1 {
                problems.push(format!("{id}: {w} acknowledged winners"));
            }
            if w == 1 && a["claimed_at"] != won[0] {
                problems.push(format!(
                    "{id}: answered claimed at {}, stored {}",
                    won[0], a["claimed_at"]
                ));
            }
            if w == 0 {
                no_acknowledged_winner += 1;
            }
        }
    }
    println!(
        "scenario 2, claims: {claimed_total} assignments raced by 2 sessions each across a kill -9 \
         (failover {took:?}); {} claim answers; {no_acknowledged_winner} claimed with no \
         acknowledged winner (the winning answer was lost at the kill with a call made at \
         the killed node itself: the client's retry is a new call, answered \
         ASSIGNMENT_NOT_PENDING; a gateway's retry would get the logged answer); {} problem(s); \
         retried failures: {:?}",
        claims.len(),
        problems.len(),
        tally.snapshot()
    );
    assert!(
        violations.is_empty(),
        "lock violations:\n{}",
        violations.join("\n")
    );
    assert!(
        grants.len() > 10 && after_kill > 0,
        "too few grants to say anything: {} ({after_kill} after the kill)",
        grants.len()
    );
    assert!(problems.is_empty(), "claims:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Scenario 3

/// Scenario 3: `pg_ctl restart -m immediate` under load, on a server of its own.
fn database_restart_under_load() {
    let server = Postgres::start().expect("a second PostgreSQL server");
    let db = &server.create_databases(&["restart"])[0];
    let senders: Vec<String> = (1..=4).map(|i| format!("w{i}")).collect();
    let mut agents: Vec<&str> = senders.iter().map(String::as_str).collect();
    agents.push("bob");
    let mut pair = Pair::start(&server, db, &agents, LOAD_CONFIG);
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let tally = Tally::default();
    let urls = pair.urls.clone();
    type Disruption<'s> = (&'static str, Box<dyn Fn() + Sync + 's>);
    let disruptions: [Disruption; 3] = [
        (
            "pg_ctl restart -m immediate",
            Box::new(|| server.restart_immediate()),
        ),
        (
            "pg_ctl stop -m immediate, 3 s down, pg_ctl start",
            Box::new(|| server.outage(Duration::from_secs(3))),
        ),
        // Longer than the lease: every lease has lapsed when the database is
        // back, and both nodes (the active one and the standby) go for them.
        (
            "pg_ctl stop -m immediate, 12 s down, pg_ctl start",
            Box::new(|| server.outage(Duration::from_secs(12))),
        ),
    ];

    std::thread::scope(|scope| {
        for sender in &senders {
            let (urls, stop, acked, tally) = (&urls, &stop, &acked, &tally);
            scope.spawn(move || send_load(urls, sender, "bob", stop, acked, tally, 0));
        }
        for (what, disrupt) in &disruptions {
            std::thread::sleep(Duration::from_millis(1500));
            let before = acked.lock().unwrap().len();
            let seen_before = tally.snapshot();
            let at = Instant::now();
            disrupt();
            let down_for = at.elapsed();
            // Wait for an answer after the database is back, then keep on a while.
            let back_ms = urls.now_ms();
            wait_for(TAKEOVER_WITHIN, || {
                urls.answered
                    .iter()
                    .any(|a| a.load(Ordering::Acquire) > back_ms)
                    .then_some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "no call answered within {TAKEOVER_WITHIN:?} of {what}: {}",
                    pair.hubs[0].out.stderr()
                )
            });
            let back_after = at.elapsed();
            std::thread::sleep(Duration::from_millis(2000));
            let mut seen = tally.snapshot();
            for (k, n) in seen_before {
                *seen.get_mut(&k).expect("counts grow") -= n;
            }
            seen.retain(|_, n| *n > 0);
            let line = format!(
                "{what} after {before} acknowledged sends: took {down_for:?}; first call answered \
                 after the database was back {back_after:?} after it began; failures clients saw \
                 (retried): {seen:?}"
            );
            println!("scenario 3: {line}");
        }
        stop.store(true, Ordering::Release);
    });
    for (i, hub) in pair.hubs.iter_mut().enumerate() {
        assert!(alive(hub), "n{} exited: {}", i + 1, hub.out.stderr());
    }
    let active = pair
        .hubs
        .iter()
        .position(|h| ready(h) == 200)
        .expect("a node serves after the restart");
    let acked = acked.into_inner().unwrap();
    let d = delivery(&pair.hubs[active], "bob", &acked);
    let failures = tally.snapshot();
    println!(
        "scenario 3 summary: n{} serves; {}; failures seen by clients (retried): {failures:?}",
        active + 1,
        d.summary()
    );
    // 404: a session opened at the node that served before the outage, used once
    // the other node took over (sessions live on the node that serves).
    let other: Vec<&String> = failures
        .keys()
        .filter(|k| {
            !k.ends_with("http 503") && !k.ends_with("http 404") && !k.contains("transport")
        })
        .collect();
    assert!(
        other.is_empty(),
        "failures other than 503, 404 and transport errors: {failures:?}"
    );
    d.assert_exactly_once("scenario 3 (database restart under load)");
}

// ---------------------------------------------------------------------------
// Scenario 4

/// Scenario 4: two nodes started at the same moment on a fresh database (as a
/// service manager starts them), three times: their first acquisitions of the
/// free shards run side by side and may split the shards between them (each
/// takes what the other has not locked yet). Pass: one of them serves within
/// 15 s and the other stands by.
fn started_at_once(server: &Postgres, dbs: &[String]) {
    for (attempt, db) in dbs.iter().enumerate() {
        let (n1, n2) = std::thread::scope(|scope| {
            let one = scope.spawn(|| start_node(server, config_dir(&["alice"], ""), db, "n1"));
            let two = scope.spawn(|| start_node(server, config_dir(&["alice"], ""), db, "n2"));
            (one.join().expect("n1"), two.join().expect("n2"))
        });
        let started = Instant::now();
        let serving = wait_for(Duration::from_secs(15), || {
            let states = [ready(&n1), ready(&n2)];
            states.contains(&200).then_some(states)
        });
        let Some(states) = serving else {
            panic!(
                "attempt {}: neither node serves 15 s after both started at once \
                 (split shards?)\nn1: {}\nn2: {}",
                attempt + 1,
                n1.out.stderr(),
                n2.out.stderr()
            );
        };
        println!(
            "scenario 4, attempt {}: n{} serves {:?} after both started at once",
            attempt + 1,
            if states[0] == 200 { 1 } else { 2 },
            started.elapsed()
        );
        assert!(states.contains(&503), "one of them stands by: {states:?}");
    }
}
