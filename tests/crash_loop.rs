//! Crash loop: agents write concurrently (messages and acks, a task workflow, a
//! contended lock) while the server is killed with SIGKILL at random moments and
//! restarted on the same database, again and again. After every restart each write
//! that was answered (acknowledged) must be there; writes in flight at the kill were
//! never answered and may or may not be.
//!
//! The normal run makes 20 kills. The long form:
//! `CRASH_LOOP_KILLS=100 cargo test --release --test crash_loop -- --nocapture`;
//! `CRASH_LOOP_SEED=N` replays the same random choices (timing still varies).

mod common;
use common::workflow::s;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MESSENGERS: [&str; 3] = ["m0", "m1", "m2"];
const DISPATCHER: &str = "disp";
const WORKERS: [&str; 2] = ["w0", "w1"];
const LOCKERS: [&str; 2] = ["l0", "l1"];
const FENCE_KEY: &str = "crash-fence";
/// Each abandoned task keeps at most one claim per worker: 1000 (the maximum) is plenty.
/// Leases (90 min) never lapse here.
const CONFIG: &str = "max_rounds: 3\nmax_simultaneous_assignments: 1000\n";

/// splitmix64: enough randomness for delays and choices, no new dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number: {v:?}"))
    })
}

/// One agent's session, called without panicking on transport errors: the server may
/// be killed under any call.
struct Agent {
    c: Client,
    http: ureq::Agent,
}

impl Agent {
    fn connect(hub: &Hub, id: &str) -> Agent {
        Agent {
            c: hub.client(id),
            http: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// The tool's object, or None when no answer came (the server was killed): the
    /// write is then unacknowledged.
    fn call(&self, tool: &str, args: Value) -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let mut req = self.http.post(&self.c.url);
        for (k, v) in self.c.headers() {
            req = req.set(&k, &v);
        }
        let text = req
            .send_string(&body.to_string())
            .ok()?
            .into_string()
            .ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        serde_json::from_str(v["result"]["content"][0]["text"].as_str()?).ok()
    }

    /// A write that must succeed when answered: Some(object) when acknowledged.
    fn write(&self, tool: &str, args: Value) -> Option<Value> {
        let v = self.call(tool, args.clone())?;
        assert_eq!(v["ok"], true, "{tool}({args}) refused: {v}");
        Some(v)
    }
}

/// An acknowledged `message_send`.
struct Sent {
    from: &'static str,
    to: &'static str,
    id: String,
    key: String,
}

/// What one messenger saw acknowledged in one life of the server.
#[derive(Default)]
struct MsgLog {
    sent: Vec<Sent>,
    /// Ids in a `message_ack` whose answer came.
    acked: HashSet<String>,
    /// Ids in any `message_ack` sent, answered or not.
    tried: HashSet<String>,
}

/// An acknowledged workflow transition.
#[derive(Debug)]
enum Step {
    Drafted,
    Planned {
        round: String,
        number: u64,
    },
    Approved {
        round: String,
    },
    Claimed {
        aid: String,
    },
    Progressed {
        aid: String,
    },
    Completed {
        aid: String,
        handoff: String,
    },
    ChangesRequested {
        round: String,
        next: String,
        number: u64,
    },
    Accepted {
        round: String,
    },
}

struct TaskLog {
    id: String,
    steps: Vec<Step>,
}

/// Acknowledged grants of [`FENCE_KEY`] by one agent, in order: (token, renewed).
type Grants = Vec<(u64, bool)>;

/// Everything acknowledged so far, over all lives of the server.
#[derive(Default)]
struct Ledger {
    sent: Vec<Sent>,
    /// Per recipient.
    acked: HashMap<&'static str, HashSet<String>>,
    tried: HashMap<&'static str, HashSet<String>>,
    tasks: Vec<TaskLog>,
    /// The highest fencing token acknowledged so far.
    max_token: u64,
    grants: usize,
}

fn messenger(a: Agent, i: usize, life: usize, seed: u64) -> MsgLog {
    let (me, to) = (MESSENGERS[i], MESSENGERS[(i + 1) % MESSENGERS.len()]);
    let mut rng = Rng(seed);
    let mut log = MsgLog::default();
    for n in 0.. {
        let key = format!("{me}-{life}-{n}");
        let args = json!({"to_agent": to, "subject": key, "body": "x", "dedupe_key": key});
        let Some(v) = a.write("message_send", args) else {
            break;
        };
        log.sent.push(Sent {
            from: me,
            to,
            id: s(&v["message_id"]),
            key,
        });
        if n % 3 != 2 {
            continue;
        }
        let Some(p) = a.call("inbox_pull", json!({"limit": 20})) else {
            break;
        };
        let ids: Vec<String> = p["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("inbox_pull: {p}"))
            .iter()
            .filter(|_| rng.below(2) == 0)
            .map(|m| s(&m["id"]))
            .collect();
        if ids.is_empty() {
            continue;
        }
        log.tried.extend(ids.iter().cloned());
        if a.write("message_ack", json!({"message_id": ids})).is_none() {
            break;
        }
        log.acked.extend(ids);
    }
    log
}

/// `hubctl approve ROUND`; None when it failed (the server was killed).
fn approve(dir: &Path, base: &str, round: &str) -> Option<()> {
    let out = hubctl_cmd(dir)
        .arg("--config-dir")
        .arg(dir)
        .args(["--url", base, "approve", round])
        .output()
        .expect("run hubctl");
    out.status.success().then_some(())
}

/// Tasks one after another, each: plan, approve, claim, progress, complete (both
/// workers), changes requested, approve round 2, the same again, accepted. Stops at the
/// first unanswered call; that task is abandoned as it is.
fn workflow(d: Agent, w: Vec<Agent>, dir: PathBuf, base: String, life: usize) -> Vec<TaskLog> {
    let mut tasks = Vec::new();
    for k in 0.. {
        tasks.push(TaskLog {
            id: format!("T-{life}-{k}"),
            steps: Vec::new(),
        });
        let log = tasks.last_mut().expect("just pushed");
        if run_task(&d, &w, &dir, &base, log).is_none() {
            break;
        }
    }
    tasks
}

fn run_task(d: &Agent, w: &[Agent], dir: &Path, base: &str, log: &mut TaskLog) -> Option<()> {
    let id = log.id.clone();
    d.write("task_draft_create", json!({"task_id": id, "title": id}))?;
    log.steps.push(Step::Drafted);
    let plan = json!({"assignments": WORKERS.iter().map(|a| json!({"agent_id": a, "goal": "g"})).collect::<Vec<_>>()});
    let v = d.write(
        "round_plan_submit",
        json!({"task_id": id, "plan_json": plan}),
    )?;
    let mut round = s(&v["round_id"]);
    log.steps.push(Step::Planned {
        round: round.clone(),
        number: v["round_number"].as_u64().expect("round_number"),
    });
    for verdict in ["changes_requested", "approved"] {
        approve(dir, base, &round)?;
        log.steps.push(Step::Approved {
            round: round.clone(),
        });
        for a in w {
            let list = a.call("assignment_list", json!({"round_id": round}))?;
            let aid = s(&list["assignments"][0]["id"]);
            a.write("assignment_claim", json!({"assignment_id": aid}))?;
            log.steps.push(Step::Claimed { aid: aid.clone() });
            let p = json!({"assignment_id": aid, "status": "in_progress", "note": "n"});
            a.write("assignment_progress", p)?;
            log.steps.push(Step::Progressed { aid: aid.clone() });
            let h = json!({"assignment_id": aid, "handoff_json": {"branch": format!("b-{aid}")}});
            let v = a.write("assignment_complete", h)?;
            log.steps.push(Step::Completed {
                aid,
                handoff: s(&v["handoff_id"]),
            });
        }
        let v = d.write(
            "review_submit",
            json!({"round_id": round, "verdict": verdict, "note": "r"}),
        )?;
        if verdict == "approved" {
            log.steps.push(Step::Accepted { round });
            break;
        }
        let next = s(&v["round_id"]);
        log.steps.push(Step::ChangesRequested {
            round: round.clone(),
            next: next.clone(),
            number: v["round_number"].as_u64().expect("round_number"),
        });
        round = next;
    }
    Some(())
}

/// Acquire and release the fence key until the server dies.
fn locker(a: Agent, me: &str) -> Grants {
    let mut grants = Vec::new();
    while let Some(v) = a.call(
        "lock_acquire",
        json!({"lock_key": FENCE_KEY, "ttl_seconds": 3}),
    ) {
        if v["ok"] != true {
            assert_eq!(v["error"], "LOCK_CONFLICT", "{me}: {v}");
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let token = v["lock"]["fencing_token"].as_u64().expect("fencing_token");
        grants.push((token, v["renewed"] == true));
        let Some(r) = a.call("lock_release", json!({"lock_key": FENCE_KEY})) else {
            break;
        };
        // Only a lapsed lease (a slow machine) may make the release fail.
        assert!(
            r["ok"] == true || r["error"] == "LOCK_NOT_HELD",
            "{me}: {r}"
        );
    }
    grants
}

/// Fencing tokens of one life: a fresh grant gets a token above every token
/// acknowledged before (earlier lives included); a renewal keeps the holder's token,
/// the latest granted. Returns the new maximum.
fn check_grants(all: &[(&str, Grants)], max_before: u64) -> u64 {
    let mut fresh = HashSet::new();
    let mut max = max_before;
    for (who, grants) in all {
        let mut last = max_before;
        for &(token, renewed) in grants {
            if renewed {
                assert!(
                    token >= last,
                    "{who}: renewal with token {token} after {last}: {grants:?}"
                );
            } else {
                assert!(
                    token > last,
                    "{who}: token {token} not above {last}: {grants:?}"
                );
                assert!(fresh.insert(token), "token {token} granted twice: {all:?}");
            }
            last = token;
            max = max.max(token);
        }
    }
    max
}

/// One life of the server: load from every agent until a random moment, then kill -9.
fn one_life(hub: &mut Hub, life: usize, rng: &mut Rng, ledger: &mut Ledger) {
    let mut msgs: Vec<JoinHandle<MsgLog>> = Vec::new();
    for (i, id) in MESSENGERS.iter().enumerate() {
        let a = Agent::connect(hub, id);
        let seed = rng.next();
        msgs.push(std::thread::spawn(move || messenger(a, i, life, seed)));
    }
    let (d, w) = (
        Agent::connect(hub, DISPATCHER),
        WORKERS.iter().map(|id| Agent::connect(hub, id)).collect(),
    );
    let (dir, base) = (hub.path(), hub.base.clone());
    let flow = std::thread::spawn(move || workflow(d, w, dir, base, life));
    let locks: Vec<JoinHandle<(&str, Grants)>> = LOCKERS
        .iter()
        .map(|&id| {
            let a = Agent::connect(hub, id);
            std::thread::spawn(move || (id, locker(a, id)))
        })
        .collect();

    // Mostly in full flow, sometimes right after start-up.
    let delay = if rng.below(5) == 0 {
        rng.below(100)
    } else {
        200 + rng.below(600)
    };
    std::thread::sleep(Duration::from_millis(delay));
    hub.kill9();

    for (i, h) in msgs.into_iter().enumerate() {
        let log = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        ledger.sent.extend(log.sent);
        // Each messenger acks its own inbox.
        let me = MESSENGERS[i];
        ledger.acked.entry(me).or_default().extend(log.acked);
        ledger.tried.entry(me).or_default().extend(log.tried);
    }
    let tasks = flow.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    ledger.tasks.extend(tasks);
    let grants: Vec<(&str, Grants)> = locks
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect();
    ledger.grants += grants.iter().map(|(_, g)| g.len()).sum::<usize>();
    ledger.max_token = check_grants(&grants, ledger.max_token);
}

fn db(hub: &Hub) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        hub.path().join("hub.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database read-only")
}

/// Every acknowledged message is stored and delivered; it is read if an acknowledged
/// ack named it, unread if no ack ever named it; pulls never show an acknowledged ack's
/// message again; a dedupe key still finds its message.
fn verify_messages(hub: &Hub, ledger: &Ledger) {
    let conn = db(hub);
    let mut st = conn
        .prepare("SELECT message_id, agent_id, read_at IS NOT NULL FROM message_recipients")
        .unwrap();
    let stored: HashMap<(String, String), bool> = st
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let none = HashSet::new();
    for m in &ledger.sent {
        let read = stored
            .get(&(m.id.clone(), m.to.to_string()))
            .unwrap_or_else(|| panic!("acknowledged message {} ({}) lost", m.id, m.key));
        let acked = ledger.acked.get(m.to).unwrap_or(&none).contains(&m.id);
        let tried = ledger.tried.get(m.to).unwrap_or(&none).contains(&m.id);
        if acked {
            assert!(read, "{}: acknowledged ack of {} lost", m.to, m.id);
        } else if !tried {
            assert!(!read, "{}: {} read though never acked", m.to, m.id);
        }
    }
    for me in MESSENGERS {
        let c = hub.client(me);
        let acked = ledger.acked.get(me).unwrap_or(&none);
        let pulled = c.call("inbox_pull", json!({"limit": 200}));
        for m in pulled["messages"].as_array().expect("messages") {
            assert!(
                !acked.contains(&s(&m["id"])),
                "{me}: acked message again: {m}"
            );
        }
        if let Some(last) = ledger.sent.iter().rev().find(|m| m.from == me) {
            let (dup, _) = c.call_raw(
                "message_send",
                json!({"to_agent": last.to, "subject": "again", "body": "x", "dedupe_key": last.key}),
            );
            assert_eq!(
                (&dup["error"], &dup["message_id"]),
                (&json!("DUPLICATE_MESSAGE"), &json!(last.id)),
                "{me}: dedupe key {} after restart",
                last.key
            );
        }
    }
}

/// Round numbers of every task in the database are 1, 2, ... n: none counted twice,
/// none skipped.
fn verify_round_numbers(hub: &Hub) {
    let conn = db(hub);
    let mut st = conn
        .prepare(
            "SELECT root_task_id, round_number FROM rounds ORDER BY root_task_id, round_number",
        )
        .unwrap();
    let mut per_task: HashMap<String, Vec<u64>> = HashMap::new();
    for row in st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
        .unwrap()
    {
        let (task, n) = row.unwrap();
        per_task.entry(task).or_default().push(n);
    }
    for (task, numbers) in per_task {
        let want: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, want, "round numbers of {task}");
    }
}

/// Each acknowledged transition of `tasks` is visible through the hub (the operator's
/// view of the task, `handoff_get`).
fn verify_tasks(hub: &Hub, tasks: &[TaskLog]) {
    let d = hub.client(DISPATCHER);
    for t in tasks.iter().filter(|t| !t.steps.is_empty()) {
        let v = hub.operator_get(&format!("/operator/tasks/{}", t.id));
        let rounds = v["rounds"].as_array().expect("rounds");
        let numbers: Vec<u64> = rounds
            .iter()
            .map(|r| r["round"]["round_number"].as_u64().unwrap())
            .collect();
        assert_eq!(
            numbers,
            (1..=rounds.len() as u64).collect::<Vec<_>>(),
            "{}: {v}",
            t.id
        );
        let round = |id: &str| {
            rounds
                .iter()
                .find(|r| r["round"]["id"] == id)
                .unwrap_or_else(|| panic!("{}: acknowledged round {id} lost: {v}", t.id))
        };
        let assignment = |id: &str| {
            rounds
                .iter()
                .flat_map(|r| r["assignments"].as_array().expect("assignments"))
                .find(|a| a["id"] == id)
                .unwrap_or_else(|| panic!("{}: acknowledged assignment {id} lost: {v}", t.id))
        };
        let is = |x: &Value, allowed: &[&str], step: &Step| {
            assert!(
                allowed.iter().any(|s| x["status"] == *s),
                "{}: after acknowledged {step:?}: {x}",
                t.id
            );
        };
        for step in &t.steps {
            match step {
                Step::Drafted => {}
                Step::Planned { round: r, number } => {
                    assert_eq!(round(r)["round"]["round_number"], *number, "{}", t.id);
                }
                Step::Approved { round: r } => is(
                    &round(r)["round"],
                    &[
                        "dispatched",
                        "in_progress",
                        "awaiting_review",
                        "completed",
                        "changes_requested",
                    ],
                    step,
                ),
                Step::Claimed { aid } => is(
                    assignment(aid),
                    &["claimed", "in_progress", "completed"],
                    step,
                ),
                Step::Progressed { aid } => {
                    is(assignment(aid), &["in_progress", "completed"], step)
                }
                Step::Completed { aid, handoff } => {
                    let a = assignment(aid);
                    is(a, &["completed"], step);
                    assert_eq!(a["handoff_id"], json!(handoff), "{}: {a}", t.id);
                    let h = d.call("handoff_get", json!({"handoff_id": handoff}));
                    assert_eq!(h["handoff"]["assignment_id"], json!(aid), "{h}");
                    assert_eq!(h["handoff"]["branch"], json!(format!("b-{aid}")), "{h}");
                }
                Step::ChangesRequested {
                    round: r,
                    next,
                    number,
                } => {
                    is(&round(r)["round"], &["changes_requested"], step);
                    assert_eq!(round(next)["round"]["round_number"], *number, "{}", t.id);
                }
                Step::Accepted { round: r } => {
                    is(&round(r)["round"], &["completed"], step);
                    is(&v["task"], &["completed"], step);
                }
            }
        }
    }
}

/// The database's counter of the fence key covers every acknowledged token.
fn verify_fencing(hub: &Hub, max_token: u64) {
    let last: Option<u64> = db(hub)
        .query_row(
            "SELECT last_token FROM lock_fencing WHERE lock_key = ?1",
            [FENCE_KEY],
            |r| r.get(0),
        )
        .ok();
    assert!(
        last.unwrap_or(0) >= max_token,
        "fencing counter {last:?} below acknowledged token {max_token}"
    );
}

#[test]
fn acknowledged_writes_survive_a_kill_loop() {
    let kills = env_u64("CRASH_LOOP_KILLS").unwrap_or(20) as usize;
    let seed = env_u64("CRASH_LOOP_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("crash loop: {kills} kills, CRASH_LOOP_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let agents: Vec<&str> = MESSENGERS
        .iter()
        .chain([DISPATCHER].iter())
        .chain(&WORKERS)
        .chain(&LOCKERS)
        .copied()
        .collect();
    let mut hub = Hub::start(&agents, CONFIG);
    let mut ledger = Ledger::default();
    let mut checked = 0;
    for life in 0..kills {
        one_life(&mut hub, life, &mut rng, &mut ledger);
        hub = hub.restart();
        verify_messages(&hub, &ledger);
        verify_round_numbers(&hub);
        verify_tasks(&hub, &ledger.tasks[checked..]);
        checked = ledger.tasks.len();
        verify_fencing(&hub, ledger.max_token);
    }
    // Everything again after the last restart: early writes survived every later kill.
    verify_tasks(&hub, &ledger.tasks);

    let steps: usize = ledger.tasks.iter().map(|t| t.steps.len()).sum();
    let accepted = ledger
        .tasks
        .iter()
        .filter(|t| matches!(t.steps.last(), Some(Step::Accepted { .. })))
        .count();
    let acks: usize = ledger.acked.values().map(HashSet::len).sum();
    eprintln!(
        "crash loop: {kills} kills in {:.1?}: {} messages, {acks} acks, {} tasks ({accepted} accepted, {steps} transitions), {} lock grants (last token {})",
        started.elapsed(),
        ledger.sent.len(),
        ledger.tasks.len(),
        ledger.grants,
        ledger.max_token
    );
    // The load really ran: kills did not all land before the first writes.
    assert!(
        !ledger.sent.is_empty() && acks > 0,
        "no messages acknowledged"
    );
    assert!(
        accepted > 0 && ledger.grants > 0,
        "no workflow or lock progress"
    );
}
