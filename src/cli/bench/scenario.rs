//! `hubctl bench --scenario`: what one bench thread does in a loop, timed per tool.
//! A call counts as a success only when HTTP, JSON-RPC and the tool result all say
//! so; every failure is counted by kind (the tool's error code, `http_<status>`,
//! `rpc_<code>` or `transport`).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

/// The scenarios `--scenario` accepts.
pub(crate) const SCENARIOS: [&str; 7] = [
    "status",
    "heartbeat",
    "messaging",
    "locks",
    "locks-free",
    "workflow",
    "mixed",
];

/// Agents per workflow team: a dispatcher and six assignees (`max_assignments_per_round`).
pub(crate) const TEAM: usize = 7;

/// Keys the contended `locks` scenario shares between all clients.
const CONTENDED_KEYS: usize = 4;

/// A failed call: its kind (for the error counts) and a line to show.
#[derive(Debug)]
pub(crate) struct Failure {
    pub kind: String,
    pub text: String,
}

/// One MCP session of the bench.
pub(crate) trait Session {
    /// Call `tool`: its structured result, or why not.
    fn call(&self, id: u64, tool: &str, args: &Value) -> Result<Value, Failure>;

    /// End the session on the hub (none is left open).
    fn end(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A bench thread's sessions: (agent id, session).
pub(crate) type Team = Vec<(String, Box<dyn Session + Send>)>;

/// The operator's approval, for the workflow scenario (`POST
/// /operator/rounds/{id}/approve` with the operator token).
pub(crate) trait Operator {
    fn approve(&self, round_id: &str) -> Result<(), Failure>;
}

/// What one thread measured.
#[derive(Debug, Default)]
pub(crate) struct Rec {
    /// Tool → latencies in microseconds.
    pub lat: HashMap<&'static str, Vec<u64>>,
    /// Kind → failed calls.
    pub errors: HashMap<String, u64>,
    pub first_error: Option<String>,
    /// Complete workflow cycles.
    pub cycles: u64,
    next_id: u64,
}

impl Rec {
    fn timed<T>(
        &mut self,
        tool: &'static str,
        f: impl FnOnce(u64) -> Result<T, Failure>,
    ) -> Option<T> {
        self.next_id += 1;
        let t = Instant::now();
        match f(self.next_id) {
            Ok(v) => {
                self.lat
                    .entry(tool)
                    .or_default()
                    .push(t.elapsed().as_micros() as u64);
                Some(v)
            }
            Err(e) => {
                *self.errors.entry(e.kind).or_default() += 1;
                self.first_error.get_or_insert(e.text);
                None
            }
        }
    }

    /// One timed tool call.
    pub(crate) fn call(
        &mut self,
        s: &dyn Session,
        tool: &'static str,
        args: Value,
    ) -> Option<Value> {
        self.timed(tool, |id| s.call(id, tool, &args))
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One iteration of a per-client scenario for client `c` (agent `me`, whose ring
/// neighbour is `next`); `i` counts iterations.
pub(crate) fn step(
    scenario: &str,
    rec: &mut Rec,
    s: &dyn Session,
    c: usize,
    me: &str,
    next: &str,
    i: u64,
) {
    match scenario {
        "status" => {
            rec.call(s, "hub_status", json!({}));
        }
        "heartbeat" => {
            rec.call(s, "agent_heartbeat", json!({}));
        }
        "messaging" => messaging(rec, s, c, next, i),
        "locks" | "locks-free" => {
            let key = if scenario == "locks" {
                format!("bench-{}", c % CONTENDED_KEYS)
            } else {
                format!("bench-{me}")
            };
            let acquire = json!({"lock_key": key, "ttl_seconds": 30, "wait_seconds": 25});
            if rec.call(s, "lock_acquire", acquire).is_some() {
                rec.call(s, "lock_release", json!({"lock_key": key}));
            }
        }
        "mixed" => match i % 4 {
            0 => {
                rec.call(s, "hub_status", json!({}));
            }
            1 => {
                rec.call(s, "agent_heartbeat", json!({}));
            }
            _ => messaging(rec, s, c, next, i),
        },
        // Legacy `--tool`: one tool in a loop.
        "hub_status" | "agent_heartbeat" => {
            let tool = if scenario == "hub_status" {
                "hub_status"
            } else {
                "agent_heartbeat"
            };
            rec.call(s, tool, json!({}));
        }
        "message_send" => {
            rec.call(
                s,
                "message_send",
                json!({"to_agent": me, "subject": "bench", "body": format!("client {c} call {i}")}),
            );
        }
        "inbox_pull" => {
            rec.call(s, "inbox_pull", json!({"limit": 1}));
        }
        "lock_cycle" => {
            let acquire = json!({"lock_key": "bench", "ttl_seconds": 30, "wait_seconds": 25});
            if rec.call(s, "lock_acquire", acquire).is_some() {
                rec.call(s, "lock_release", json!({"lock_key": "bench"}));
            }
        }
        _ => {}
    }
}

/// Send one message to the ring neighbour, pull one, ack it: one message in and
/// out per turn, with arguments the reference takes too (it acks one id at a time).
fn messaging(rec: &mut Rec, s: &dyn Session, c: usize, next: &str, i: u64) {
    let send =
        json!({"to_agent": next, "subject": "bench", "body": format!("client {c} call {i}")});
    rec.call(s, "message_send", send);
    let Some(pulled) = rec.call(s, "inbox_pull", json!({"limit": 1})) else {
        return;
    };
    if let Some(id) = pulled["messages"][0]["id"].as_str() {
        rec.call(s, "message_ack", json!({"message_id": id}));
    }
}

/// One workflow cycle of a team (`team[0]` dispatches to the six others): draft,
/// plan, operator approval, each assignee lists, claims, reports progress and
/// completes with a handoff, the dispatcher reads every handoff and approves.
pub(crate) fn workflow_cycle(
    rec: &mut Rec,
    team: &Team,
    op: &dyn Operator,
    run: &str,
    team_no: usize,
    n: u64,
) {
    let Some(((disp_id, d), workers)) = team.split_first() else {
        return;
    };
    let _ = disp_id;
    // `run` differs per bench run: a hub benched twice has the first run's tasks.
    let task = format!("bench-{run}-{team_no}-{n}");
    let d = d.as_ref();
    if rec
        .call(
            d,
            "task_draft_create",
            json!({"task_id": task, "title": task}),
        )
        .is_none()
    {
        return;
    }
    let plan: Vec<Value> = workers
        .iter()
        .map(|(a, _)| json!({"agent_id": a, "goal": format!("part of {task}")}))
        .collect();
    let Some(planned) = rec.call(
        d,
        "round_plan_submit",
        // As text: the reference's documented form, which this hub takes too.
        json!({"task_id": task, "plan_json": json!({"assignments": plan}).to_string()}),
    ) else {
        return;
    };
    let round = planned["round_id"].as_str().unwrap_or_default().to_string();
    if rec
        .timed("operator_approve", |_| op.approve(&round))
        .is_none()
    {
        return;
    }
    let mut handoffs = Vec::new();
    for (_, w) in workers {
        let w = w.as_ref();
        let Some(list) = rec.call(w, "assignment_list", json!({"round_id": round})) else {
            return;
        };
        let id = list["assignments"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let steps = [
            ("assignment_claim", json!({"assignment_id": id})),
            (
                "assignment_progress",
                json!({"assignment_id": id, "status": "in_progress", "note": "working"}),
            ),
        ];
        for (tool, args) in steps {
            if rec.call(w, tool, args).is_none() {
                return;
            }
        }
        // List fields as JSON text: the reference's documented form (it cannot store
        // real lists), which this hub reads as lists.
        let handoff = json!({"branch": format!("b-{id}"), "commit_hash": "abc", "changed_files": "[\"src/lib.rs\"]", "tests_run": "[\"cargo test\"]", "notes": "done"});
        let Some(done) = rec.call(
            w,
            "assignment_complete",
            json!({"assignment_id": id, "handoff_json": handoff.to_string()}),
        ) else {
            return;
        };
        // Ours answers `handoff_id`; the reference only the assignment, which names it.
        let handoff = done["handoff_id"]
            .as_str()
            .or_else(|| done["assignment"]["handoff_id"].as_str())
            .unwrap_or_default();
        handoffs.push(handoff.to_string());
    }
    for h in handoffs {
        if rec
            .call(d, "handoff_get", json!({"handoff_id": h}))
            .is_none()
        {
            return;
        }
    }
    let review = json!({"round_id": round, "verdict": "approved", "note": "ok"});
    if rec.call(d, "review_submit", review).is_some() {
        rec.cycles += 1;
    }
}

/// The p-th percentile of sorted microseconds, in milliseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default() as f64 / 1000.0
}

/// Everyone's records merged: per tool sorted latencies, errors by kind, cycles.
pub(crate) fn merge(recs: Vec<Rec>) -> Rec {
    let mut all = Rec::default();
    for r in recs {
        for (tool, mut l) in r.lat {
            all.lat.entry(tool).or_default().append(&mut l);
        }
        for (k, n) in r.errors {
            *all.errors.entry(k).or_default() += n;
        }
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.cycles += r.cycles;
    }
    for l in all.lat.values_mut() {
        l.sort_unstable();
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A session that answers from a script and records the calls.
    struct Fake {
        calls: Arc<Mutex<Vec<String>>>,
        fail: Option<&'static str>,
    }

    impl Session for Fake {
        fn call(&self, _: u64, tool: &str, args: &Value) -> Result<Value, Failure> {
            self.calls.lock().unwrap().push(tool.to_string());
            if self.fail == Some(tool) {
                return Err(Failure {
                    kind: "LOCK_CONFLICT".into(),
                    text: "held".into(),
                });
            }
            Ok(match tool {
                "inbox_pull" => json!({"messages": [{"id": "m1"}]}),
                "round_plan_submit" => json!({"round_id": "R1"}),
                "assignment_list" => {
                    json!({"assignments": [{"id": format!("A-{}", args["round_id"])}]})
                }
                "assignment_complete" => json!({"handoff_id": "H"}),
                _ => json!({}),
            })
        }
    }

    struct Approve;
    impl Operator for Approve {
        fn approve(&self, _: &str) -> Result<(), Failure> {
            Ok(())
        }
    }

    fn fake(fail: Option<&'static str>) -> Fake {
        Fake {
            calls: Arc::new(Mutex::new(Vec::new())),
            fail,
        }
    }

    #[test]
    fn messaging_sends_pulls_and_acks_what_came() {
        let (mut rec, s) = (Rec::default(), fake(None));
        step("messaging", &mut rec, &s, 0, "a", "b", 1);
        assert_eq!(
            *s.calls.lock().unwrap(),
            ["message_send", "inbox_pull", "message_ack"]
        );
        assert_eq!(rec.lat["inbox_pull"].len(), 1);
    }

    #[test]
    fn failures_are_counted_by_kind_and_stop_the_sequence() {
        let (mut rec, s) = (Rec::default(), fake(Some("lock_acquire")));
        step("locks", &mut rec, &s, 3, "a", "b", 1);
        assert_eq!(
            *s.calls.lock().unwrap(),
            ["lock_acquire"],
            "no release without a grant"
        );
        assert_eq!(rec.errors["LOCK_CONFLICT"], 1);
        assert_eq!(rec.failed(), 1);
    }

    #[test]
    fn a_workflow_cycle_runs_every_step_and_counts_once() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let team: Team = (0..TEAM)
            .map(|i| {
                let s = Fake {
                    calls: calls.clone(),
                    fail: None,
                };
                (format!("a{i}"), Box::new(s) as Box<dyn Session + Send>)
            })
            .collect();
        let mut rec = Rec::default();
        workflow_cycle(&mut rec, &team, &Approve, "r", 0, 1);
        assert_eq!(rec.cycles, 1);
        let calls = calls.lock().unwrap();
        // draft, plan; 6 x (list, claim, progress, complete); 6 handoff_get; review.
        assert_eq!(calls.len(), 2 + 6 * 4 + 6 + 1, "{calls:?}");
        assert_eq!(rec.lat["operator_approve"].len(), 1);
        let merged = merge(vec![
            Rec {
                cycles: 2,
                ..Rec::default()
            },
            Rec {
                cycles: 3,
                ..Rec::default()
            },
        ]);
        assert_eq!(merged.cycles, 5);
    }
}
