//! Model test: random sequences of workflow operations run on [`TaskState`] and on a
//! small reference model of the rules written here from the README (who may do what,
//! in which state, follow-up rounds, `max_rounds`, `max_assignments_per_round`,
//! leases, close). After
//! every operation both must agree on the outcome (success or the error code), on the
//! status of task, rounds and assignments, and on the active-assignment slots given
//! back (`Change::Released`).

use super::*;
use crate::domain::task::{HandoffDraft, Plan, ProgressStatus, Verdict};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

const DISPATCHER: &str = "disp";
/// Agents of the hub, then one that is not.
const AGENTS: [&str; 4] = ["disp", "alice", "bob", "zed"];
const LIMITS: Limits = Limits {
    max_rounds: 3,
    max_assignments_per_round: 2,
    max_messages_per_task: 10,
    lease: Duration::minutes(10),
};

fn known(a: &str) -> bool {
    a != "zed"
}

/// Which round or assignment an operation names: mostly the one that moves the task
/// on (the latest round, the first open assignment), so that sequences reach the last
/// round; or any of them, or one past the end (an unknown id).
#[derive(Debug, Clone)]
enum Pick {
    Next,
    Any(prop::sample::Index),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![3 => Just(Pick::Next), 1 => any::<prop::sample::Index>().prop_map(Pick::Any)]
}

/// One operation. `caller: None` is the rightful caller (the dispatcher, the
/// assignee), `Some(i)` is `AGENTS[i]`.
#[derive(Debug, Clone)]
enum Op {
    Submit {
        caller: Option<usize>,
        agents: Vec<usize>,
    },
    Approve(Pick),
    Reject(Pick),
    Claim {
        caller: Option<usize>,
        a: Pick,
    },
    Progress {
        caller: Option<usize>,
        a: Pick,
        in_progress: bool,
    },
    Complete {
        caller: Option<usize>,
        a: Pick,
    },
    Review {
        caller: Option<usize>,
        round: Pick,
        approved: bool,
    },
    Close,
    /// Time passes, then the lease timer of an assignment fires.
    Expire {
        minutes: i64,
        a: Pick,
    },
}

fn caller() -> impl Strategy<Value = Option<usize>> {
    prop::option::weighted(0.15, 0..AGENTS.len())
}

/// A plan's agents: mostly a valid plan, sometimes too long or naming an unknown agent.
fn plan_agents() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        3 => prop::collection::vec(0..AGENTS.len() - 1, 1..=2),
        1 => prop::collection::vec(0..AGENTS.len(), 1..=3),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Closing ends a sequence's interest: rare.
    prop_oneof![
        24 => (caller(), plan_agents())
            .prop_map(|(caller, agents)| Op::Submit { caller, agents }),
        36 => pick().prop_map(Op::Approve),
        8 => pick().prop_map(Op::Reject),
        48 => (caller(), pick()).prop_map(|(caller, a)| Op::Claim { caller, a }),
        24 => (caller(), pick(), any::<bool>())
            .prop_map(|(caller, a, in_progress)| Op::Progress { caller, a, in_progress }),
        48 => (caller(), pick()).prop_map(|(caller, a)| Op::Complete { caller, a }),
        36 => (caller(), pick(), prop::bool::weighted(0.25))
            .prop_map(|(caller, round, approved)| Op::Review { caller, round, approved }),
        1 => Just(Op::Close),
        8 => (0..15i64, pick()).prop_map(|(minutes, a)| Op::Expire { minutes, a }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MRound {
    number: u32,
    status: R,
    rejected: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct MAssignment {
    /// Index into `Model::rounds`.
    round: usize,
    agent: String,
    status: A,
    lease: Option<Timestamp>,
    handoff: bool,
}

/// The reference model. Rounds and assignments are kept in the same order as
/// `TaskState` keeps them, so they are compared position by position.
#[derive(Debug, Clone)]
struct Model {
    task: T,
    rounds: Vec<MRound>,
    assignments: Vec<MAssignment>,
    now: Timestamp,
}

type Outcome = Result<(), &'static str>;

impl Model {
    fn active(&self) -> usize {
        self.assignments
            .iter()
            .filter(|a| matches!(a.status, A::Claimed | A::InProgress))
            .count()
    }

    fn open(&self) -> Outcome {
        if self.task == T::Closed {
            return Err("TASK_CLOSED");
        }
        Ok(())
    }

    fn dispatcher(&self, caller: &str) -> Outcome {
        self.open()?;
        if caller != DISPATCHER {
            return Err("NOT_TASK_DISPATCHER");
        }
        Ok(())
    }

    fn new_assignments(&mut self, round: usize, agents: &[String]) {
        for agent in agents {
            self.assignments.push(MAssignment {
                round,
                agent: agent.clone(),
                status: A::Pending,
                lease: None,
                handoff: false,
            });
        }
    }

    fn submit(&mut self, caller: &str, agents: &[String]) -> Outcome {
        self.dispatcher(caller)?;
        if agents.len() > LIMITS.max_assignments_per_round as usize {
            return Err("TOO_MANY_ASSIGNMENTS");
        }
        if agents.iter().any(|a| !known(a)) {
            return Err("UNKNOWN_AGENT");
        }
        // The newest round awaiting approval, if any.
        let awaiting = (0..self.rounds.len())
            .rev()
            .find(|&r| self.rounds[r].status == R::AwaitingOperatorApproval);
        let round = match awaiting {
            // A plan while a round awaits approval replaces its assignments.
            Some(r) => {
                self.assignments.retain(|a| a.round != r);
                self.rounds[r].rejected = false;
                r
            }
            // Otherwise a draft or dispatched task gets round max+1.
            None if !matches!(self.task, T::Draft | T::Dispatched) => {
                return Err("TASK_NOT_DISPATCHABLE")
            }
            None => {
                let number = self.next_number();
                if number > LIMITS.max_rounds {
                    return Err("MAX_ROUNDS_REACHED");
                }
                self.rounds.push(MRound {
                    number,
                    status: R::AwaitingOperatorApproval,
                    rejected: false,
                });
                self.rounds.len() - 1
            }
        };
        self.new_assignments(round, agents);
        self.settle(T::AwaitingOperatorApproval);
        Ok(())
    }

    fn next_number(&self) -> u32 {
        self.rounds.iter().map(|r| r.number).max().unwrap_or(0) + 1
    }

    /// The task awaits the operator while any round does, is dispatched while any
    /// round is open, and is `idle` otherwise.
    fn settle(&mut self, idle: T) {
        let has = |f: &dyn Fn(R) -> bool| self.rounds.iter().any(|r| f(r.status));
        self.task = if has(&|s| s == R::AwaitingOperatorApproval) {
            T::AwaitingOperatorApproval
        } else if has(&|s| matches!(s, R::Dispatched | R::InProgress | R::AwaitingReview)) {
            T::Dispatched
        } else {
            idle
        };
    }

    fn decide(&mut self, round: usize, reject: bool) -> Outcome {
        self.open()?;
        let r = self.rounds.get_mut(round).ok_or("ROUND_NOT_FOUND")?;
        if r.status != R::AwaitingOperatorApproval {
            return Err("ROUND_NOT_AWAITING_APPROVAL");
        }
        r.rejected = reject;
        if !reject {
            r.status = R::Dispatched;
            self.settle(T::Dispatched);
        }
        Ok(())
    }

    /// The caller's own assignment of a task still open.
    fn own(&self, caller: &str, a: usize) -> Result<usize, &'static str> {
        match self.assignments.get(a) {
            Some(x) if x.agent == caller => self.open().map(|_| a),
            _ => Err("ASSIGNMENT_NOT_VALID"),
        }
    }

    fn claim(&mut self, caller: &str, a: usize) -> Outcome {
        let a = self.own(caller, a)?;
        if self.assignments[a].status != A::Pending {
            return Err("ASSIGNMENT_NOT_PENDING");
        }
        let r = self.assignments[a].round;
        if !matches!(self.rounds[r].status, R::Dispatched | R::InProgress) {
            return Err("ROUND_NOT_APPROVED");
        }
        self.assignments[a].status = A::Claimed;
        self.assignments[a].lease = Some(self.now + LIMITS.lease);
        self.rounds[r].status = R::InProgress;
        Ok(())
    }

    fn progress(&mut self, caller: &str, a: usize, in_progress: bool) -> Outcome {
        let a = self.own(caller, a)?;
        let x = &mut self.assignments[a];
        match (x.status, in_progress) {
            (A::Claimed | A::InProgress, true) => x.status = A::InProgress,
            (A::Claimed, false) => {}
            (A::InProgress, false) => return Err("INVALID_TRANSITION"),
            _ => return Err("ASSIGNMENT_NOT_ACTIVE"),
        }
        x.lease = Some(self.now + LIMITS.lease);
        Ok(())
    }

    fn complete(&mut self, caller: &str, a: usize) -> Outcome {
        let a = self.own(caller, a)?;
        let x = &mut self.assignments[a];
        if !matches!(x.status, A::Claimed | A::InProgress) {
            return Err("ASSIGNMENT_NOT_ACTIVE");
        }
        x.status = A::Completed;
        x.lease = None;
        x.handoff = true;
        let r = x.round;
        let done = self
            .assignments
            .iter()
            .filter(|x| x.round == r)
            .all(|x| x.status == A::Completed);
        if done && matches!(self.rounds[r].status, R::Dispatched | R::InProgress) {
            self.rounds[r].status = R::AwaitingReview;
        }
        Ok(())
    }

    fn review(&mut self, caller: &str, round: usize, approved: bool) -> Outcome {
        self.dispatcher(caller)?;
        let r = self.rounds.get(round).ok_or("ROUND_NOT_FOUND")?;
        match r.status {
            R::AwaitingReview => {}
            R::Dispatched | R::InProgress => return Err("ASSIGNMENTS_NOT_COMPLETE"),
            _ => return Err("ROUND_NOT_REVIEWABLE"),
        }
        if approved {
            self.rounds[round].status = R::Completed;
            self.settle(T::Completed);
            return Ok(());
        }
        let number = self.next_number();
        if number > LIMITS.max_rounds {
            return Err("MAX_ROUNDS_REACHED");
        }
        self.rounds[round].status = R::ChangesRequested;
        self.rounds.push(MRound {
            number,
            status: R::AwaitingOperatorApproval,
            rejected: false,
        });
        let agents: Vec<String> = self
            .assignments
            .iter()
            .filter(|a| a.round == round)
            .map(|a| a.agent.clone())
            .collect();
        self.new_assignments(self.rounds.len() - 1, &agents);
        self.settle(T::AwaitingOperatorApproval);
        Ok(())
    }

    fn close(&mut self) -> Outcome {
        self.open()?;
        for a in &mut self.assignments {
            if !matches!(a.status, A::Completed | A::Cancelled) {
                a.status = A::Cancelled;
                a.lease = None;
            }
        }
        for r in &mut self.rounds {
            if !matches!(r.status, R::Completed | R::ChangesRequested) {
                r.status = R::Cancelled;
            }
        }
        self.task = T::Closed;
        Ok(())
    }

    fn expire(&mut self, a: usize) {
        let (open, now) = (self.task != T::Closed, self.now);
        if let Some(x) = self.assignments.get_mut(a) {
            let active = matches!(x.status, A::Claimed | A::InProgress);
            if open && active && x.lease.is_some_and(|t| t <= now) {
                x.status = A::Pending;
                x.lease = None;
            }
        }
    }
}

/// The real state machine and the model, stepped together.
struct Pair {
    real: TaskState,
    model: Model,
    next_id: u32,
}

fn code<T>(r: Result<T, DomainError>) -> Result<T, &'static str> {
    r.map_err(|e| e.code().as_str())
}

impl Pair {
    fn new() -> Pair {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Pair {
            real: TaskState::new("T", "title", "", DISPATCHER, t0),
            model: Model {
                task: T::Draft,
                rounds: Vec::new(),
                assignments: Vec::new(),
                now: t0,
            },
            next_id: 0,
        }
    }

    fn round_id(&self, i: usize) -> String {
        self.real
            .rounds
            .get(i)
            .map_or_else(|| "no-such-round".to_string(), |r| r.id.clone())
    }

    fn assignment_id(&self, i: usize) -> String {
        self.real
            .assignments
            .get(i)
            .map_or_else(|| "no-such-assignment".to_string(), |a| a.id.clone())
    }

    fn round_ix(&self, p: &Pick) -> usize {
        let n = self.real.rounds.len();
        match p {
            Pick::Next => n.saturating_sub(1),
            Pick::Any(i) => i.index(n + 1),
        }
    }

    fn assignment_ix(&self, p: &Pick) -> usize {
        let list = &self.real.assignments;
        match p {
            Pick::Next => list
                .iter()
                .position(|a| !matches!(a.status, A::Completed | A::Cancelled))
                .unwrap_or(list.len()),
            Pick::Any(i) => i.index(list.len() + 1),
        }
    }

    fn assignee(&self, i: usize, caller: Option<usize>) -> String {
        match (caller, self.real.assignments.get(i)) {
            (Some(c), _) => AGENTS[c].to_string(),
            (None, Some(a)) => a.agent_id.clone(),
            (None, None) => "alice".to_string(),
        }
    }

    /// Run `op` on both; returns (real outcome, model outcome, slots released by the real one).
    fn step(&mut self, op: &Op) -> (Outcome, Outcome, usize) {
        // Picks are resolved once, before either side changes.
        let ai = match op {
            Op::Claim { a, .. }
            | Op::Progress { a, .. }
            | Op::Complete { a, .. }
            | Op::Expire { a, .. } => self.assignment_ix(a),
            _ => 0,
        };
        let ri = match op {
            Op::Approve(r) | Op::Reject(r) | Op::Review { round: r, .. } => self.round_ix(r),
            _ => 0,
        };
        let now = self.model.now;
        let mut n = self.next_id;
        let mut ids = move || {
            n += 1;
            format!("id{n}")
        };
        let mut cx = Ctx {
            now,
            limits: &LIMITS,
            ids: &mut ids,
        };
        let dispatcher = |c: Option<usize>| c.map_or(DISPATCHER, |i| AGENTS[i]);
        let real: Result<Changes, &'static str> = match op {
            Op::Submit { caller, agents } => {
                let items: Vec<PlanItem> = agents
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| PlanItem {
                        agent_id: AGENTS[i].to_string(),
                        goal: format!("goal {k}"),
                    })
                    .collect();
                let plan = Plan {
                    items,
                    json: "{}".to_string(),
                };
                code(
                    self.real
                        .submit_plan(&mut cx, dispatcher(*caller), &plan, &known),
                )
                .map(|(_, ch)| ch)
            }
            Op::Approve(_) => code(self.real.approve(&self.round_id(ri), "", now)),
            Op::Reject(_) => code(self.real.reject(&self.round_id(ri), "no", now)),
            Op::Claim { caller, .. } => code(self.real.claim(
                &self.assignee(ai, *caller),
                &self.assignment_id(ai),
                now,
                &LIMITS,
            )),
            Op::Progress {
                caller,
                in_progress,
                ..
            } => {
                let st = if *in_progress {
                    ProgressStatus::InProgress
                } else {
                    ProgressStatus::Claimed
                };
                code(self.real.progress(
                    &self.assignee(ai, *caller),
                    &self.assignment_id(ai),
                    st,
                    "note",
                    now,
                    &LIMITS,
                ))
            }
            Op::Complete { caller, .. } => code(self.real.complete(
                &mut cx,
                &self.assignee(ai, *caller),
                &self.assignment_id(ai),
                HandoffDraft::default(),
            ))
            .map(|(_, ch)| ch),
            Op::Review {
                caller, approved, ..
            } => {
                let v = if *approved {
                    Verdict::Approved
                } else {
                    Verdict::ChangesRequested
                };
                code(
                    self.real
                        .review(&mut cx, dispatcher(*caller), &self.round_id(ri), v, ""),
                )
                .map(|(_, ch)| ch)
            }
            Op::Close => code(self.real.close(now)),
            Op::Expire { minutes, .. } => {
                self.model.now = now + Duration::minutes(*minutes);
                Ok(self
                    .real
                    .expire_lease(&self.assignment_id(ai), self.model.now))
            }
        };
        self.next_id += 100;

        let m = &mut self.model;
        let model = match op {
            Op::Submit { caller, agents } => {
                let agents: Vec<String> = agents.iter().map(|&i| AGENTS[i].to_string()).collect();
                m.submit(dispatcher(*caller), &agents)
            }
            Op::Approve(_) => m.decide(ri, false),
            Op::Reject(_) => m.decide(ri, true),
            Op::Claim { caller, .. } => {
                let who = caller.map_or_else(|| owner(m, ai), |c| AGENTS[c].to_string());
                m.claim(&who, ai)
            }
            Op::Progress {
                caller,
                in_progress,
                ..
            } => {
                let who = caller.map_or_else(|| owner(m, ai), |c| AGENTS[c].to_string());
                m.progress(&who, ai, *in_progress)
            }
            Op::Complete { caller, .. } => {
                let who = caller.map_or_else(|| owner(m, ai), |c| AGENTS[c].to_string());
                m.complete(&who, ai)
            }
            Op::Review {
                caller, approved, ..
            } => m.review(dispatcher(*caller), ri, *approved),
            Op::Close => m.close(),
            Op::Expire { .. } => {
                m.expire(ai);
                Ok(())
            }
        };
        let released = real.as_ref().map_or(0, |ch| {
            ch.iter()
                .filter(|c| matches!(c, Change::Released { .. }))
                .count()
        });
        (real.map(|_| ()), model, released)
    }

    /// Statuses side by side: rounds and assignments position by position.
    fn check_same(&self) -> Result<(), TestCaseError> {
        let (real, m) = (&self.real, &self.model);
        prop_assert_eq!(real.task.status, m.task);
        // The README's rule, whatever the path: awaiting the operator while any round
        // does, else dispatched while any round is open.
        let awaiting = real
            .rounds
            .iter()
            .any(|r| r.status == R::AwaitingOperatorApproval);
        let open = real
            .rounds
            .iter()
            .any(|r| matches!(r.status, R::Dispatched | R::InProgress | R::AwaitingReview));
        let expected = match real.task.status {
            T::Closed => T::Closed,
            _ if awaiting => T::AwaitingOperatorApproval,
            _ if open => T::Dispatched,
            T::Draft if real.rounds.is_empty() => T::Draft,
            _ => T::Completed,
        };
        prop_assert_eq!(real.task.status, expected);
        let rounds: Vec<MRound> = real
            .rounds
            .iter()
            .map(|r| MRound {
                number: r.round_number,
                status: r.status,
                rejected: r.rejected,
            })
            .collect();
        prop_assert_eq!(&rounds, &m.rounds);
        let assignments: Vec<MAssignment> = real
            .assignments
            .iter()
            .map(|a| MAssignment {
                round: real
                    .rounds
                    .iter()
                    .position(|r| r.id == a.round_id)
                    .unwrap_or(usize::MAX),
                agent: a.agent_id.clone(),
                status: a.status,
                lease: a.lease_expires_at,
                handoff: a
                    .handoff_id
                    .as_ref()
                    .is_some_and(|h| real.handoff(h).is_some()),
            })
            .collect();
        prop_assert_eq!(&assignments, &m.assignments);
        Ok(())
    }
}

fn owner(m: &Model, a: usize) -> String {
    m.assignments
        .get(a)
        .map_or_else(|| "alice".to_string(), |x| x.agent.clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn workflow_agrees_with_the_model(ops in prop::collection::vec(op(), 5..100)) {
        let mut p = Pair::new();
        for op in &ops {
            let active_before = p.model.active();
            let (real, model, released) = p.step(op);
            prop_assert_eq!(real, model, "{:?}", op);
            p.check_same()?;
            // Every assignment that stopped being active gave its slot back, once.
            let stopped = active_before.saturating_sub(p.model.active());
            prop_assert_eq!(released, stopped, "slots released by {:?}", op);
        }
    }
}
