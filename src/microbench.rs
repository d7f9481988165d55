//! Entry points for the criterion micro-benchmarks in `benches/micro.rs` (feature
//! `microbench`, off by default): thin wrappers that call the server's own hot paths
//! (request decoding, tool-argument decoding, result encoding, a workflow transition,
//! token lookup, the writer's batch commit) on fixtures built by the same code the
//! server uses. Nothing here is on a serving path.

use crate::actors::task::{limits_of, TaskActor};
use crate::auth::{self, LiveTokens, Principal, TokenIndex};
use crate::config::{agents_env, bootstrap, Durability, Settings};
use crate::domain::ids::message_id;
use crate::domain::message::validate_draft;
use crate::domain::task::{parse_handoff, HandoffDraft, Plan, ProgressStatus};
use crate::domain::time::iso;
use crate::domain::workflow::{Ctx, Limits, TaskState};
use crate::mcp::jsonrpc::{self, Body, Id, Incoming};
use crate::mcp::protocol::Version;
use crate::mcp::{dispatch, tools};
use crate::store::{load, migrate, writer, AuditRow, Op};
use chrono::Utc;
use rusqlite::Connection;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// A POST body decoded as `/mcp` decodes a single message: split, then classified
/// (a request's params become a `Value`).
pub struct Request(Incoming);

/// Decode `body` as `handle_post` does; `None` unless it is one valid message.
pub fn decode_request(body: &[u8]) -> Option<Request> {
    match jsonrpc::parse_body(body).ok()? {
        Body::One(raw) => jsonrpc::classify(raw).ok().map(Request),
        Body::Batch(_) => None,
    }
}

impl Request {
    /// The params of a request (of `tools/call`: the tool's name and arguments).
    pub fn into_params(self) -> Option<Value> {
        match self.0 {
            Incoming::Request { params, .. } => params,
            _ => None,
        }
    }
}

/// Decode `tools/call` params as `call_tool` does: name and arguments, then the
/// tool's typed argument struct. Whether the tool accepted them.
pub fn decode_tool_call(params: Value) -> bool {
    let Ok((name, args)) = dispatch::call_parts(Some(params), |_| {}) else {
        return false;
    };
    matches!(tools::decode_args(&name, args), Some(Ok(())))
}

/// A request id exactly as a client wrote it.
pub struct RequestId(Id);

impl RequestId {
    /// The id written as `text` (an integer or a JSON string); `None` if invalid.
    pub fn parse(text: &str) -> Option<RequestId> {
        let raw = RawValue::from_string(text.to_string()).ok()?;
        Id::parse(raw).map(RequestId)
    }
}

/// The text `/mcp` answers a successful tool call with at the revision `hubctl
/// bench` speaks (2025-11-25, the latest handshake revision): the `CallToolResult`
/// (the object as text and as `structuredContent`) in a JSON-RPC response.
pub fn encode_tool_result(id: &RequestId, fields: Map<String, Value>) -> String {
    let result = tools::render(Ok(fields), Version::LATEST);
    jsonrpc::to_json(&jsonrpc::answer(&id.0, jsonrpc::Answer::Raw(result)))
}

/// The agents a fixture knows: `bench-1` .. `bench-N`, as `hubctl bench` names them.
fn agent_name(i: usize) -> String {
    format!("bench-{}", i + 1)
}

/// One task of a `hubctl bench` workflow team (a dispatcher and six assignees, the
/// default `max_assignments_per_round`): a round approved by the operator and each
/// assignment claimed, brought there by the real transitions with default limits.
#[derive(Clone)]
pub struct Workflow {
    state: TaskState,
    limits: Limits,
    /// (agent, assignment id) of each assignment.
    assigned: Vec<(String, String)>,
    /// The handoff [`Workflow::complete`] hands over (taken by the first call).
    handoff: Option<HandoffDraft>,
}

impl Workflow {
    /// The task `bench-task`, dispatched by `bench-1` to `bench-2` .. `bench-7`.
    pub fn claimed() -> Result<Workflow, String> {
        let limits = limits_of(&Settings::default());
        let now = Utc::now();
        let team = limits.max_assignments_per_round as usize;
        let dispatcher = agent_name(0);
        let mut state = TaskState::new("bench-task", "bench-task", "", &dispatcher, now);
        let items: Vec<Value> = (1..=team)
            .map(|i| json!({"agent_id": agent_name(i), "goal": "part of bench-task"}))
            .collect();
        // As text, the form `hubctl bench` sends.
        let plan = json!({"assignments": items}).to_string();
        let plan = Plan::parse(Some(&Value::String(plan))).map_err(|e| e.to_string())?;
        let mut ids = TaskActor::ids();
        let mut cx = Ctx {
            now,
            limits: &limits,
            ids: &mut ids,
        };
        let (round, _) = state
            .submit_plan(&mut cx, &dispatcher, &plan, &|_| true)
            .map_err(|e| e.to_string())?;
        state.approve(&round, "", now).map_err(|e| e.to_string())?;
        let assigned: Vec<(String, String)> = state
            .assignments
            .iter()
            .map(|a| (a.agent_id.clone(), a.id.clone()))
            .collect();
        for (agent, id) in &assigned {
            state
                .claim(agent, id, now, &limits)
                .map_err(|e| e.to_string())?;
        }
        let handoff = json!({"branch": "b-1", "commit_hash": "abc", "changed_files": "[\"src/lib.rs\"]", "tests_run": "[\"cargo test\"]", "notes": "done"});
        let handoff = parse_handoff(Some(&handoff)).map_err(|e| e.to_string())?;
        Ok(Workflow {
            state,
            limits,
            assigned,
            handoff: Some(handoff),
        })
    }

    /// `assignment_progress` of assignment `i` (`in_progress`, note "working"), as
    /// TaskActor's handler calls it. Repeatable: in_progress stays in_progress.
    /// Whether it was allowed.
    pub fn progress(&mut self, i: usize) -> bool {
        let Some((agent, id)) = self.assigned.get(i) else {
            return false;
        };
        self.state
            .progress(
                agent,
                id,
                ProgressStatus::InProgress,
                "working",
                Utc::now(),
                &self.limits,
            )
            .is_ok()
    }

    /// `assignment_complete` of assignment `i` with a handoff, as TaskActor's
    /// handler calls it (fresh ids from the OS, as there). Once per fixture: call it
    /// on a clone. Whether it was allowed.
    pub fn complete(&mut self, i: usize) -> bool {
        let (Some((agent, id)), Some(draft)) = (self.assigned.get(i), self.handoff.take()) else {
            return false;
        };
        let mut ids = TaskActor::ids();
        let mut cx = Ctx {
            now: Utc::now(),
            limits: &self.limits,
            ids: &mut ids,
        };
        self.state.complete(&mut cx, agent, id, draft).is_ok()
    }
}

/// The live token index of `agents` agents with generated tokens (as `hubctl init`
/// makes them) and an operator.
pub struct Tokens(LiveTokens);

impl Tokens {
    /// The index, and each agent's `Authorization` header value.
    pub fn new(agents: usize) -> Result<(Tokens, Vec<String>), String> {
        let tokens: Vec<String> = (0..agents).map(|_| bootstrap::new_token()).collect();
        let text: String = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}={t}\n", agent_name(i)))
            .collect();
        let file = agents_env::parse("agents.env", &text).map_err(|e| e.to_string())?;
        let index = TokenIndex::new(&file, &bootstrap::new_token());
        let headers = tokens.iter().map(|t| format!("Bearer {t}")).collect();
        Ok((Tokens(LiveTokens::new(index)), headers))
    }

    /// Resolve `header` as every request does: the index in force, then the token's
    /// digest looked up. Whether it names an agent.
    pub fn authenticate(&self, header: &str) -> bool {
        matches!(
            self.0.current().authenticate(Some(header)),
            Ok(Principal::Agent(_))
        )
    }
}

/// A database as `hubctl serve` opens it, for the writer's batch commit.
pub struct Writer {
    conn: Connection,
    agents: usize,
    /// The rows a batch's task ops write (a task of [`Workflow::claimed`]).
    workflow: Workflow,
}

/// Ops for one commit, in queue order.
pub struct Batch(Vec<Op>);

impl Writer {
    /// Open `path` (a new file) as the server does in `fast` mode (WAL,
    /// `synchronous=NORMAL`: no fsync per commit, so the figure is the CPU's, not
    /// the disk's), migrate it, list `agents` agents, and store one claimed
    /// [`Workflow`] task.
    pub fn open(path: &Path, agents: usize) -> Result<Writer, String> {
        let s = |e: crate::store::StoreError| e.to_string();
        let mut conn = writer::open_connection(path, Durability::Fast).map_err(s)?;
        let now = iso(Utc::now());
        migrate::run(&mut conn, &now).map_err(s)?;
        let listed: Vec<(String, String)> = (0..agents)
            .map(|i| (agent_name(i), auth::token_hash_column(&agent_name(i))))
            .collect();
        load::sync_agents(&mut conn, &listed, &now).map_err(s)?;
        let workflow = Workflow::claimed()?;
        let st = &workflow.state;
        let mut rows = vec![Op::TaskCreated(st.task.clone())];
        rows.extend(st.rounds.iter().cloned().map(Op::RoundUpsert));
        rows.extend(st.assignments.iter().cloned().map(Op::AssignmentUpsert));
        let mut w = Writer {
            conn,
            agents,
            workflow,
        };
        w.commit(&Batch(rows))?;
        Ok(w)
    }

    /// A busy commit's ops: `messages` direct `message_send`s (agent i to agent
    /// i+1, a 200-byte body, fresh time-ordered ids), then a progress report of
    /// each assignment of the task (its row and an audit row), and the task's and
    /// round's rows.
    pub fn batch(&self, messages: usize) -> Batch {
        let now = Utc::now();
        let at = iso(now);
        let body = "x".repeat(200);
        let mut ops = Vec::with_capacity(messages + 16);
        for i in 0..messages {
            let (from, to) = (
                agent_name(i % self.agents),
                agent_name((i + 1) % self.agents),
            );
            let Ok(draft) = validate_draft(Some(&to), "bench", &body, None, None, None, None)
            else {
                continue;
            };
            let message = draft.into_message(message_id(now.timestamp_millis()), &from, at.clone());
            ops.push(Op::MessageInsert {
                message: Arc::new(message),
                recipients: vec![to],
            });
        }
        let st = &self.workflow.state;
        for a in &st.assignments {
            ops.push(Op::AssignmentUpsert(a.clone()));
            ops.push(Op::Audit(AuditRow::new(
                "assignment_progress",
                ("task", &st.task.id),
                &a.agent_id,
                json!({"task_status": st.task.status.as_str()}).to_string(),
                now,
            )));
        }
        ops.push(Op::TaskUpsert(st.task.clone()));
        ops.extend(st.rounds.iter().cloned().map(Op::RoundUpsert));
        Batch(ops)
    }

    /// Apply and commit `batch` in one transaction, as the writer thread does.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), String> {
        let ops: Vec<&Op> = batch.0.iter().collect();
        writer::commit_batch(&mut self.conn, &ops)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl Batch {
    /// How many ops it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
