//! `hubctl fill-history` (hidden from `--help`): fill a database with months of
//! realistic history for the start-up and memory benchmarks (docs/benchmarks.md).
//! Rows go through the same [`Op`]s and [`apply_batch`] the writer uses, and tasks
//! through the real workflow transitions, so every row is in the exact format the
//! server writes. The server must not be running on that database.

use super::CliError;
use crate::config::bootstrap;
use crate::domain::ids::random_hex;
use crate::domain::message::Message;
use crate::domain::task::{HandoffDraft, Plan, PlanItem, ProgressStatus, Verdict};
use crate::domain::time::{iso, Timestamp};
use crate::domain::workflow::{Change, Ctx, Limits, TaskState};
use crate::store::apply::apply_batch;
use crate::store::{migrate, AuditRow, Op};
use chrono::{Duration, Utc};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What to write.
#[derive(Debug, clap::Args)]
pub struct FillArgs {
    /// Database file to fill (created if missing; the hub must not be running on it)
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// Agent messages, spread over the agents of agents.env
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Percent of the messages left unread
    #[arg(long, default_value_t = 10)]
    unread_percent: u64,
    /// Completed tasks (one round of two assignments, handoffs, approvals, audit rows)
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// Open tasks (dispatched, with a claimed assignment on an expired lease)
    #[arg(long, default_value_t = 1_000)]
    open_tasks: u64,
}

/// Ops per transaction.
const BATCH: usize = 20_000;

struct Filler {
    conn: Connection,
    ops: Vec<Op>,
    agents: Vec<String>,
    /// The history's clock: starts months ago, one step per row.
    clock: Timestamp,
}

impl Filler {
    fn tick(&mut self) -> Timestamp {
        self.clock += Duration::milliseconds(7);
        self.clock
    }

    fn push(&mut self, op: Op) -> Result<(), CliError> {
        self.ops.push(op);
        if self.ops.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CliError> {
        let tx = self.conn.transaction().map_err(store_err)?;
        apply_batch(&tx, self.ops.iter()).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        self.ops.clear();
        Ok(())
    }

    /// `n` messages between agents: ~200-byte bodies, some with dedupe keys and
    /// replies, `unread_percent` of them left unread.
    fn messages(&mut self, n: u64, unread_percent: u64) -> Result<(), CliError> {
        let body = "x".repeat(200);
        let mut last: Option<String> = None;
        for i in 0..n {
            let a = self.agents.len() as u64;
            let from = self.agents[(i % a) as usize].clone();
            let to = self.agents[((i / a + 1 + i) % a) as usize].clone();
            let at = iso(self.tick());
            let message = Arc::new(Message {
                id: random_hex(8),
                dedupe_key: (i % 10 == 0).then(|| format!("fill-{i}")),
                reply_to: last.take().filter(|_| i % 20 == 1),
                from_agent: from,
                to_agent: Some(to.clone()),
                round_id: None,
                msg_type: "info".into(),
                subject: format!("history message {i}"),
                body: body.clone(),
                context_json: "{}".into(),
                hop_count: 0,
                created_at: at.clone(),
            });
            last = Some(message.id.clone());
            let id = message.id.clone();
            self.push(Op::MessageInsert {
                message,
                recipients: vec![to.clone()],
            })?;
            if i % 100 >= unread_percent {
                self.push(Op::MessageAck {
                    agent: to,
                    message_ids: vec![id],
                    at,
                })?;
            }
        }
        Ok(())
    }

    /// One task driven through the real transitions: to completion, or (`open`) to
    /// a dispatched round with a claimed assignment.
    fn task(&mut self, n: u64, open: bool) -> Result<(), CliError> {
        let limits = Limits {
            max_rounds: 3,
            max_assignments_per_round: 5,
            max_messages_per_task: 1000,
            lease: Duration::minutes(30),
        };
        let a = self.agents.len();
        let dispatcher = self.agents[n as usize % a].clone();
        let workers = [
            self.agents[(n as usize + 1) % a].clone(),
            self.agents[(n as usize + 2) % a].clone(),
        ];
        let id = format!("{}-{n}", if open { "open" } else { "done" });
        let mut s = TaskState::new(
            &id,
            &format!("task {n}"),
            "history",
            &dispatcher,
            self.tick(),
        );
        self.push(Op::TaskCreated(s.task.clone()))?;
        let items: Vec<PlanItem> = workers
            .iter()
            .map(|w| PlanItem {
                agent_id: w.clone(),
                goal: format!("part of {id} for {w}"),
            })
            .collect();
        let json = serde_json::json!({"assignments": items}).to_string();
        let plan = Plan { items, json };
        let mut ids = || random_hex(6);
        let mut cx = Ctx {
            now: self.tick(),
            limits: &limits,
            ids: &mut ids,
        };
        let (round, ch) = s.submit_plan(&mut cx, &dispatcher, &plan, &|_| true)?;
        self.changes(&s, ch, "round_plan_submitted", &dispatcher)?;
        let ch = s.approve(&round, "ok", self.tick())?;
        self.changes(&s, ch, "round_approved", "operator")?;
        let assignments: Vec<(String, String)> = s
            .round_assignments(&round)
            .map(|x| (x.id.clone(), x.agent_id.clone()))
            .collect();
        for (aid, agent) in &assignments {
            let ch = s.claim(agent, aid, self.tick(), &limits)?;
            self.changes(&s, ch, "assignment_claimed", agent)?;
            if open {
                return Ok(());
            }
            let status = ProgressStatus::InProgress;
            let ch = s.progress(agent, aid, status, "working", self.tick(), &limits)?;
            self.changes(&s, ch, "assignment_progress", agent)?;
            let draft = HandoffDraft {
                branch: format!("feat/{aid}"),
                commit_hash: random_hex(20),
                changed_files: vec!["src/lib.rs".into(), "tests/it.rs".into()],
                tests_run: vec!["cargo test".into()],
                risks: vec![],
                next_steps: vec!["review".into()],
                notes: "done".into(),
            };
            cx.now = self.tick();
            let (_, ch) = s.complete(&mut cx, agent, aid, draft)?;
            self.changes(&s, ch, "assignment_completed", agent)?;
        }
        cx.now = self.tick();
        let (_, ch) = s.review(&mut cx, &dispatcher, &round, Verdict::Approved, "good")?;
        self.changes(&s, ch, "review_submitted", &dispatcher)
    }

    /// The rows a transition changed, as the TaskActor writes them (notices and
    /// timers are left out: history has none pending).
    fn changes(
        &mut self,
        s: &TaskState,
        changes: Vec<Change>,
        event: &str,
        actor: &str,
    ) -> Result<(), CliError> {
        let now = self.tick();
        let at = iso(now);
        for c in changes {
            let op = match c {
                Change::Task => Op::TaskUpsert(s.task.clone()),
                Change::Round(id) => Op::RoundUpsert(s.round(&id).cloned().ok_or_else(gone)?),
                Change::Assignment(id) => {
                    Op::AssignmentUpsert(s.assignment(&id).cloned().ok_or_else(gone)?)
                }
                Change::Handoff(id) => Op::HandoffInsert(s.handoff(&id).cloned().ok_or_else(gone)?),
                Change::AssignmentDeleted(id) => Op::AssignmentDelete {
                    id,
                    task_id: s.task.id.clone(),
                },
                Change::Approval {
                    round_id,
                    action,
                    note,
                } => Op::Approval {
                    id: random_hex(6),
                    task_id: s.task.id.clone(),
                    round_id,
                    action: action.to_string(),
                    note,
                    at: at.clone(),
                },
                Change::Released { .. }
                | Change::Lease { .. }
                | Change::Notice(_)
                | Change::Push { .. } => continue,
            };
            self.push(op)?;
        }
        self.push(Op::Audit(AuditRow::new(
            event,
            ("task", &s.task.id),
            actor,
            serde_json::json!({"task_status": s.task.status.as_str()}).to_string(),
            now,
        )))
    }
}

fn store_err(e: rusqlite::Error) -> CliError {
    CliError::Store(e.into())
}

fn gone() -> CliError {
    CliError::Api("fill-history: a row vanished during a transition".into())
}

impl From<crate::domain::DomainError> for CliError {
    fn from(e: crate::domain::DomainError) -> Self {
        CliError::Api(format!("fill-history: {e}"))
    }
}

pub(crate) fn run(dir: &Path, args: FillArgs) -> Result<(), CliError> {
    let loaded = bootstrap::prepare(dir, true)?;
    let agents: Vec<String> = loaded.agents.agents.iter().map(|a| a.id.clone()).collect();
    if agents.len() < 3 {
        return Err(CliError::Api(format!(
            "fill-history needs at least 3 agents in {}",
            dir.join(crate::config::paths::AGENTS_FILE).display()
        )));
    }
    // It writes behind the hub's back: never while a server serves this database.
    let _lock = super::db_lock::acquire(&args.db)?;
    let mut conn = Connection::open(&args.db).map_err(store_err)?;
    // Speed over safety: this is a scratch database for benchmarks.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(store_err)?;
    conn.pragma_update(None, "synchronous", "OFF")
        .map_err(store_err)?;
    let now = iso(Utc::now());
    migrate::run(&mut conn, &now)?;
    let rows: Vec<(String, String)> = agents.iter().map(|a| (a.clone(), String::new())).collect();
    crate::store::load::sync_agents(&mut conn, &rows, &now)?;
    // History is dated months back: its audit ids go on after what is stored.
    crate::domain::audit_id::audit_ids_after(crate::store::load::last_audit_id(&conn)?);
    let mut f = Filler {
        conn,
        ops: Vec::with_capacity(BATCH),
        agents,
        clock: Utc::now() - Duration::days(180),
    };
    let started = std::time::Instant::now();
    f.messages(args.messages, args.unread_percent)?;
    for n in 0..args.tasks {
        f.task(n, false)?;
    }
    // Open work is recent: its leases are still running when the hub starts.
    f.clock = Utc::now() - Duration::minutes(5);
    for n in 0..args.open_tasks {
        f.task(n, true)?;
    }
    f.flush()?;
    println!(
        "filled {}: {} messages ({}% unread), {} completed and {} open tasks in {:.1} s",
        args.db.display(),
        args.messages,
        args.unread_percent,
        args.tasks,
        args.open_tasks,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
