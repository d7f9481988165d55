//! The op batches of the replay tests (cluster.md §3): a base history (agents, a
//! worked task, messages, a lock, an audit row) and one batch per op kind that acts
//! on it. Fixed data, built through the real workflow transitions. Used by
//! `replay_tests` on SQLite and, through [`super::pg::conformance`], to compare the
//! PostgreSQL writer with SQLite's.

use super::op::{AuditRow, LockGone, Op, Tally};
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::{HandoffDraft, Plan, PlanItem};
use crate::domain::time::{iso, Timestamp};
use crate::domain::workflow::{Ctx, Limits, TaskState};
use std::sync::Arc;

/// Second `s` after a fixed instant (whole seconds: always representable).
pub(crate) fn at(s: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap_or_default()
}

/// Message `id` from `from` to `to` (each a recipient), sent at second `at`; its
/// dedupe key is `key-{id}`.
pub(crate) fn send(id: &str, from: &str, to: &[&str], at: u32) -> Op {
    Op::MessageInsert {
        message: Arc::new(Message {
            id: id.into(),
            dedupe_key: Some(format!("key-{id}")),
            reply_to: None,
            from_agent: from.into(),
            to_agent: (to.len() == 1).then(|| to[0].to_string()),
            round_id: None,
            msg_type: "info".into(),
            subject: format!("subject {id}"),
            body: "b".into(),
            context_json: "{}".into(),
            hop_count: 0,
            created_at: format!("2026-01-01T00:00:{at:02}.000000+00:00"),
        }),
        recipients: to.iter().map(|s| s.to_string()).collect(),
    }
}

pub(crate) fn ack(agent: &str, id: &str) -> Op {
    Op::MessageAck {
        agent: agent.into(),
        message_ids: vec![id.into()],
        at: "2026-01-02T00:00:00.000000+00:00".into(),
    }
}

/// The kind of an op. A new kind: add its arm, add it to [`KINDS`], and give it a
/// case in [`cases`].
pub(crate) fn kind(op: &Op) -> &'static str {
    match op {
        Op::AgentRegister { .. } => "AgentRegister",
        Op::AgentsSync { .. } => "AgentsSync",
        Op::AgentHeartbeat { .. } => "AgentHeartbeat",
        Op::MessageInsert { .. } => "MessageInsert",
        Op::MessageAck { .. } => "MessageAck",
        Op::MessageElsewhere { .. } => "MessageElsewhere",
        Op::OutboxTaken { .. } => "OutboxTaken",
        Op::QuotaFree { .. } => "QuotaFree",
        Op::DeliveriesPurge { .. } => "DeliveriesPurge",
        Op::TaskUpsert(_) => "TaskUpsert",
        Op::RoundUpsert(_) => "RoundUpsert",
        Op::AssignmentUpsert(_) => "AssignmentUpsert",
        Op::TaskCreated(_) => "TaskCreated",
        Op::TaskMessageCount { .. } => "TaskMessageCount",
        Op::AssignmentDelete { .. } => "AssignmentDelete",
        Op::HandoffInsert(_) => "HandoffInsert",
        Op::Approval { .. } => "Approval",
        Op::LockUpsert { .. } => "LockUpsert",
        Op::LockDelete { .. } => "LockDelete",
        Op::Mark => "Mark",
        Op::Begin(_) => "Begin",
        Op::End { .. } => "End",
        Op::Vacuum { .. } => "Vacuum",
        Op::PruneMessages(_) => "PruneMessages",
        Op::PruneTasks(_) => "PruneTasks",
        Op::PruneAudit(_) => "PruneAudit",
        Op::Audit(_) => "Audit",
    }
}

pub(crate) const KINDS: &[&str] = &[
    "AgentRegister",
    "AgentsSync",
    "AgentHeartbeat",
    "MessageInsert",
    "MessageAck",
    "MessageElsewhere",
    "OutboxTaken",
    "QuotaFree",
    "DeliveriesPurge",
    "TaskUpsert",
    "RoundUpsert",
    "AssignmentUpsert",
    "TaskCreated",
    "TaskMessageCount",
    "AssignmentDelete",
    "HandoffInsert",
    "Approval",
    "LockUpsert",
    "LockDelete",
    "Mark",
    "Begin",
    "End",
    "Vacuum",
    "PruneMessages",
    "PruneTasks",
    "PruneAudit",
    "Audit",
];

/// Task `id` of dispatcher `disp` driven through the real transitions: a plan of
/// two assignments (alice, bob), approved, alice's claimed and completed with a
/// handoff. Returns the task and its round's id.
pub(crate) fn worked_task(id: &str) -> (TaskState, String) {
    let limits = Limits {
        max_rounds: 3,
        max_assignments_per_round: 5,
        max_messages_per_task: 100,
        lease: chrono::Duration::minutes(30),
    };
    let mut n = 0;
    let mut ids = || {
        n += 1;
        format!("{id}-{n}")
    };
    let mut s = TaskState::new(id, "title", "d", "disp", at(0));
    let items: Vec<PlanItem> = ["alice", "bob"]
        .iter()
        .map(|a| PlanItem {
            agent_id: a.to_string(),
            goal: format!("goal of {a}"),
        })
        .collect();
    let json = serde_json::json!({ "assignments": items }).to_string();
    let plan = Plan { items, json };
    let mut cx = Ctx {
        now: at(1),
        limits: &limits,
        ids: &mut ids,
    };
    let (round, _) = s
        .submit_plan(&mut cx, "disp", &plan, &|_| true)
        .expect("the fixture's plan is valid");
    s.approve(&round, "ok", at(2))
        .expect("the fixture's round awaits approval");
    let alice = s.assignments[0].id.clone();
    s.claim("alice", &alice, at(3), &limits)
        .expect("the fixture's assignment is open");
    let draft = HandoffDraft {
        branch: "feat".into(),
        commit_hash: "abc".into(),
        changed_files: vec!["a.rs".into()],
        tests_run: vec!["cargo test".into()],
        risks: vec![],
        next_steps: vec![],
        notes: "done".into(),
    };
    cx.now = at(4);
    s.complete(&mut cx, "alice", &alice, draft)
        .expect("the fixture's assignment is claimed");
    (s, round)
}

/// Every row of `s`, as the task actor writes them.
pub(crate) fn rows_of(s: &TaskState, round: &str) -> Vec<Op> {
    let mut ops = vec![
        Op::TaskCreated(s.task.clone()),
        Op::TaskUpsert(s.task.clone()),
    ];
    ops.extend(s.rounds.iter().cloned().map(Op::RoundUpsert));
    ops.extend(s.assignments.iter().cloned().map(Op::AssignmentUpsert));
    ops.extend(s.handoffs.iter().cloned().map(Op::HandoffInsert));
    ops.push(approval(&s.task.id, round));
    ops
}

pub(crate) fn approval(task: &str, round: &str) -> Op {
    Op::Approval {
        id: format!("{round}-approval"),
        task_id: task.into(),
        round_id: round.into(),
        action: "approve".into(),
        note: "ok".into(),
        at: iso(at(2)),
    }
}

pub(crate) fn audit(entity: &str, s: i64) -> AuditRow {
    AuditRow::new(
        "round_approved",
        ("task", entity),
        "operator",
        "{}".into(),
        at(s),
    )
}

pub(crate) fn lock(id: &str, holder: &str, token: u64, expires: i64) -> Lock {
    Lock {
        id: id.into(),
        lock_key: "branch:main".into(),
        holder_agent_id: holder.into(),
        resource_type: "branch".into(),
        resource_id: "main".into(),
        fencing_token: token,
        expires_at: at(expires),
        created_at: at(0),
    }
}

pub(crate) fn grant(l: Lock) -> Op {
    Op::LockUpsert {
        lock: l,
        renewed: false,
    }
}

/// The agents, a worked task, messages and a lock: what the batches act on.
pub(crate) fn base() -> Vec<Op> {
    let agents = ["alice", "bob", "disp"]
        .iter()
        .map(|a| (a.to_string(), format!("hash-{a}")))
        .collect();
    let (t1, r1) = worked_task("T1");
    let mut ops = vec![Op::AgentsSync {
        agents,
        at: iso(at(0)),
    }];
    ops.extend(rows_of(&t1, &r1));
    ops.push(send("m1", "alice", &["bob"], 1));
    ops.push(send("m2", "disp", &["alice", "bob"], 2));
    ops.push(grant(lock("L1", "alice", 1, 60)));
    ops.push(Op::Audit(audit("T1", 2)));
    ops
}

/// (what a case is about, the batch applied twice) on `base` (made by [`base`]).
pub(crate) fn cases(base: &[Op]) -> Vec<(&'static str, Vec<Op>)> {
    let (t1, r1) = worked_task("T1");
    let mut t1_later = t1.task.clone();
    t1_later.title = "renamed".into();
    t1_later.updated_at = at(9);
    let mut round_later = t1.rounds[0].clone();
    round_later.operator_note = Some("again".into());
    let mut bob_noted = t1.assignments[1].clone();
    bob_noted.progress_note = Some("on it".into());
    let mut revised = t1.assignments[1].clone();
    revised.id = "T1-revised".into();
    revised.goal = "another goal".into();
    revised.seq = 3;
    let (t2, r2) = worked_task("T2");
    let (t3, r3) = worked_task("T3");
    let mut chained = vec![
        Op::AgentsSync {
            agents: ["alice", "bob", "disp", "carol"]
                .iter()
                .map(|a| (a.to_string(), format!("hash-{a}")))
                .collect(),
            at: iso(at(5)),
        },
        Op::AgentRegister {
            id: "carol".into(),
            name: "Carol".into(),
            capabilities_json: "[]".into(),
            at: iso(at(5)),
        },
        Op::AgentHeartbeat {
            id: "carol".into(),
            at: iso(at(6)),
        },
        send("m5", "carol", &["alice", "bob"], 6),
        ack("alice", "m5"),
        Op::DeliveriesPurge {
            agent: "bob".into(),
            from: Some("carol".into()),
            deleted: Tally::default(),
        },
    ];
    // A message to alice here and to bob at another node (spread placement): the
    // message with its outbox row, then bob's node taking it.
    if let Op::MessageInsert { message, .. } = send("m6", "carol", &["alice"], 7) {
        chained.push(Op::MessageElsewhere {
            message: message.clone(),
            recipients: vec!["alice".into()],
            elsewhere: vec!["bob".into()],
            fence: "carol".into(),
            event: None,
        });
        chained.push(Op::OutboxTaken {
            message,
            agent: "bob".into(),
        });
    }
    chained.push(Op::QuotaFree {
        kind: "active",
        item_id: "T1-2".into(),
        task_id: "T1".into(),
    });
    chained.extend(rows_of(&t3, &r3));
    chained.push(Op::PruneTasks(vec!["T3".into()]));
    chained.push(Op::PruneMessages(vec!["m5".into()]));
    let base_audit: Vec<i64> = base
        .iter()
        .filter_map(|op| match op {
            Op::Audit(row) => Some(row.id),
            _ => None,
        })
        .collect();
    vec![
        (
            "agents",
            vec![
                Op::AgentRegister {
                    id: "alice".into(),
                    name: "Alice".into(),
                    capabilities_json: "[\"rust\"]".into(),
                    at: iso(at(5)),
                },
                Op::AgentHeartbeat {
                    id: "bob".into(),
                    at: iso(at(5)),
                },
                Op::AgentHeartbeat {
                    id: "bob".into(),
                    at: iso(at(6)),
                },
                Op::AgentsSync {
                    agents: vec![("alice".into(), "new".into()), ("carol".into(), "c".into())],
                    at: iso(at(6)),
                },
            ],
        ),
        (
            "messages: a send, a broadcast, acks",
            vec![
                send("m3", "bob", &["alice"], 5),
                send("m4", "alice", &["bob", "disp"], 6),
                ack("bob", "m1"),
                ack("bob", "m4"),
            ],
        ),
        (
            "a purge between sends",
            vec![
                send("m3", "alice", &["bob"], 5),
                Op::DeliveriesPurge {
                    agent: "bob".into(),
                    from: Some("alice".into()),
                    deleted: Tally::default(),
                },
                send("m4", "alice", &["bob"], 6),
            ],
        ),
        (
            "the workflow of a task",
            vec![
                Op::TaskUpsert(t1_later),
                Op::RoundUpsert(round_later),
                Op::AssignmentUpsert(bob_noted),
                Op::TaskMessageCount {
                    task_id: "T1".into(),
                    count: 3,
                },
                Op::Audit(audit("T1", 7)),
            ],
        ),
        ("a new task, counted once", rows_of(&t2, &r2)),
        // Each op acts on rows an op before it in the same batch wrote: a new
        // agent registered and mailed, a message acked and purged then pruned, a
        // task stored, counted, then pruned and uncounted.
        ("one batch, each op on the rows of the ones before", chained),
        (
            "a revised plan",
            vec![
                Op::AssignmentDelete {
                    id: t1.assignments[1].id.clone(),
                    task_id: t1.task.id.clone(),
                },
                Op::AssignmentUpsert(revised),
                approval("T1", &r1),
                Op::HandoffInsert(t1.handoffs[0].clone()),
            ],
        ),
        (
            "locks: release, grants, renewal, expiry",
            vec![
                Op::LockDelete {
                    key: "branch:main".into(),
                    id: "L1".into(),
                    holder: "alice".into(),
                    why: LockGone::Released,
                },
                grant(lock("L2", "bob", 2, 60)),
                Op::LockUpsert {
                    lock: lock("L2", "bob", 2, 90),
                    renewed: true,
                },
                Op::LockDelete {
                    key: "branch:main".into(),
                    id: "L2".into(),
                    holder: "bob".into(),
                    why: LockGone::Expired,
                },
                grant(lock("L3", "disp", 3, 60)),
            ],
        ),
        (
            "retention",
            vec![
                ack("bob", "m1"),
                Op::PruneMessages(vec!["m1".into()]),
                Op::PruneTasks(vec!["T1".into()]),
                Op::PruneAudit(base_audit),
                Op::Mark,
                Op::Vacuum { full: false },
            ],
        ),
        (
            "a forwarded call's group",
            vec![
                Op::Begin(7),
                ack("bob", "m1"),
                Op::End {
                    group: 7,
                    logged: Some(super::op::LoggedReply {
                        key: "bob/0123/1".into(),
                        agent: "bob".into(),
                        owner: "bob".into(),
                        reply: "{\"ok\":true}".into(),
                        at: "2026-01-01T00:00:09Z".into(),
                    }),
                },
            ],
        ),
    ]
}

/// On [`base`]: a grant (L1 expired, L2 to bob), a newer grant (L3 to disp), then
/// the older grant of L2 again, as a batch applied late. The last must change
/// nothing: no lock or fencing counter goes back.
pub(crate) fn late_grant() -> [Vec<Op>; 3] {
    let older = grant(lock("L2", "bob", 2, 60));
    [
        vec![
            Op::LockDelete {
                key: "branch:main".into(),
                id: "L1".into(),
                holder: "alice".into(),
                why: LockGone::Expired,
            },
            older.clone(),
        ],
        vec![grant(lock("L3", "disp", 3, 120))],
        vec![older],
    ]
}
