//! Table-driven tests of every allowed and forbidden transition.

use super::*;
use crate::domain::task::{
    AssignmentStatus, HandoffDraft, Plan, ProgressStatus, RoundStatus, TaskStatus, Verdict,
};
use chrono::{TimeZone, Utc};

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn limits() -> Limits {
    Limits {
        max_rounds: 3,
        max_assignments_per_round: 3,
        max_messages_per_task: 2,
        lease: Duration::minutes(10),
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("id{n}")
    }
}

fn plan(items: &[(&str, &str)]) -> Vec<PlanItem> {
    items
        .iter()
        .map(|(a, g)| PlanItem {
            agent_id: a.to_string(),
            goal: g.to_string(),
        })
        .collect()
}

fn known(a: &str) -> bool {
    ["disp", "alice", "bob"].contains(&a)
}

fn code<T: std::fmt::Debug>(r: Result<T, DomainError>) -> &'static str {
    r.unwrap_err().code().as_str()
}

fn cx<'a>(now: Timestamp, limits: &'a Limits, ids: &'a mut dyn FnMut() -> String) -> Ctx<'a> {
    Ctx { now, limits, ids }
}

fn plan_of(items: &[PlanItem], json: &str) -> Plan {
    Plan {
        items: items.to_vec(),
        json: json.to_string(),
    }
}

fn verdict(v: &str) -> Verdict {
    Verdict::parse(v).unwrap()
}

fn status(s: &str) -> ProgressStatus {
    ProgressStatus::parse(s).unwrap()
}

/// A task with round 1 submitted: alice "a1", bob "b1".
fn planned() -> (TaskState, String, impl FnMut() -> String) {
    let mut g = ids();
    let mut s = TaskState::new("T", "title", "", "disp", t0());
    let (rid, _) = s
        .submit_plan(
            &mut cx(t0(), &limits(), &mut g),
            "disp",
            &plan_of(&plan(&[("alice", "a1"), ("bob", "b1")]), "{}"),
            &known,
        )
        .unwrap();
    (s, rid, g)
}

fn aid(s: &TaskState, round: &str, agent: &str) -> String {
    s.round_assignments(round)
        .find(|a| a.agent_id == agent)
        .unwrap()
        .id
        .clone()
}

#[test]
fn plan_refusals() {
    let mut g = ids();
    let mut s = TaskState::new("T", "t", "", "disp", t0());
    let l = limits();
    let cases: Vec<(&str, Vec<PlanItem>, &str)> = vec![
        ("alice", plan(&[("alice", "x")]), "NOT_TASK_DISPATCHER"),
        (
            "disp",
            plan(&[("alice", "1"), ("alice", "2"), ("bob", "3"), ("bob", "4")]),
            "TOO_MANY_ASSIGNMENTS",
        ),
        ("disp", plan(&[("zed", "x")]), "UNKNOWN_AGENT"),
    ];
    for (caller, items, want) in cases {
        assert_eq!(
            code(s.submit_plan(
                &mut cx(t0(), &l, &mut g),
                caller,
                &plan_of(&items, "{}"),
                &known
            )),
            want
        );
    }
    // Nothing was applied by the refusals.
    assert!(s.rounds.is_empty() && s.assignments.is_empty());
    assert_eq!(s.task.status, TaskStatus::Draft);
}

#[test]
fn happy_path_to_completion() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    assert_eq!(s.task.status, TaskStatus::AwaitingOperatorApproval);
    let a = aid(&s, &r1, "alice");
    let b = aid(&s, &r1, "bob");
    // Claim before approval is refused.
    assert_eq!(code(s.claim("alice", &a, t0(), &l)), "ROUND_NOT_APPROVED");
    let ch = s.approve(&r1, "ok", t0()).unwrap();
    let notices = ch.iter().filter(|c| matches!(c, Change::Notice(_))).count();
    assert_eq!(notices, 2, "each assignee is told");
    assert_eq!(s.task.status, TaskStatus::Dispatched);
    // Someone else's assignment, unknown ids: ASSIGNMENT_NOT_VALID.
    assert_eq!(code(s.claim("bob", &a, t0(), &l)), "ASSIGNMENT_NOT_VALID");
    assert_eq!(
        code(s.claim("alice", "nope", t0(), &l)),
        "ASSIGNMENT_NOT_VALID"
    );
    let ch = s.claim("alice", &a, t0(), &l).unwrap();
    assert!(
        ch.contains(&Change::Round(r1.clone())),
        "first claim puts the round in progress"
    );
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::InProgress);
    assert_eq!(
        code(s.claim("alice", &a, t0(), &l)),
        "ASSIGNMENT_NOT_PENDING"
    );
    // Review before everything is done.
    assert_eq!(
        code(s.review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r1,
            verdict("approved"),
            ""
        )),
        "ASSIGNMENTS_NOT_COMPLETE"
    );
    s.progress("alice", &a, status("in_progress"), "half", t0(), &l)
        .unwrap();
    s.complete(
        &mut cx(t0(), &limits(), &mut g),
        "alice",
        &a,
        HandoffDraft::default(),
    )
    .unwrap();
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::InProgress);
    s.claim("bob", &b, t0(), &l).unwrap();
    let (h, ch) = s
        .complete(
            &mut cx(t0(), &limits(), &mut g),
            "bob",
            &b,
            HandoffDraft::default(),
        )
        .unwrap();
    assert_eq!(
        s.assignment(&b).unwrap().handoff_id.as_deref(),
        Some(h.id.as_str())
    );
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::AwaitingReview);
    assert!(ch
        .iter()
        .any(|c| matches!(c, Change::Notice(n) if n.to == "disp" && n.msg_type == "review")));
    assert_eq!(
        code(s.review(
            &mut cx(t0(), &l, &mut g),
            "alice",
            &r1,
            verdict("approved"),
            ""
        )),
        "NOT_TASK_DISPATCHER"
    );
    assert_eq!(code(Verdict::parse("meh")), "INVALID_VERDICT");
    let (next, _) = s
        .review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r1,
            verdict("approved"),
            "great",
        )
        .unwrap();
    assert!(next.is_none());
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::Completed);
    assert_eq!(s.task.status, TaskStatus::Completed);
    assert_eq!(
        code(s.review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r1,
            verdict("approved"),
            ""
        )),
        "ROUND_NOT_REVIEWABLE"
    );
    assert_eq!(
        code(s.submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(&[("alice", "x")]), "{}"),
            &known
        )),
        "TASK_NOT_DISPATCHABLE"
    );
}

#[test]
fn reject_then_revise_keeps_the_round() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    let old = aid(&s, &r1, "alice");
    let ch = s.reject(&r1, "too vague", t0()).unwrap();
    assert!(ch
        .iter()
        .any(|c| matches!(c, Change::Notice(n) if n.to == "disp")));
    assert!(s.round(&r1).unwrap().rejected);
    assert_eq!(
        s.round(&r1).unwrap().status,
        RoundStatus::AwaitingOperatorApproval
    );
    let (r, ch) = s
        .submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(&[("bob", "precise")]), "{\"v\":2}"),
            &known,
        )
        .unwrap();
    assert_eq!(r, r1, "a revision reuses the round");
    assert!(ch.contains(&Change::AssignmentDeleted(old)));
    assert_eq!(s.rounds.len(), 1);
    assert_eq!(s.round_assignments(&r1).count(), 1);
    assert!(!s.round(&r1).unwrap().rejected);
    s.approve(&r1, "", t0()).unwrap();
    // Approve/reject act only on a round awaiting approval.
    assert_eq!(
        code(s.approve(&r1, "", t0())),
        "ROUND_NOT_AWAITING_APPROVAL"
    );
    assert_eq!(code(s.reject(&r1, "", t0())), "ROUND_NOT_AWAITING_APPROVAL");
    assert_eq!(code(s.approve("zz", "", t0())), "ROUND_NOT_FOUND");
}

/// Assignments are numbered in the order the task creates them, after every one it
/// holds (a revised plan's come last), so that they load from storage in the order
/// memory lists them.
#[test]
fn assignments_are_numbered_in_creation_order() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    s.approve(&r1, "", t0()).unwrap();
    let mut submit = |s: &mut TaskState, items: &[(&str, &str)]| {
        s.submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(items), "{}"),
            &known,
        )
        .unwrap()
    };
    submit(&mut s, &[("alice", "x"), ("bob", "y")]);
    let numbered = |s: &TaskState| -> Vec<(String, i64)> {
        s.assignments
            .iter()
            .map(|a| (a.goal.clone(), a.seq))
            .collect()
    };
    let want = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(g, n)| (g.to_string(), *n)).collect()
    };
    assert_eq!(
        numbered(&s),
        want(&[("a1", 1), ("b1", 2), ("x", 3), ("y", 4)])
    );
    // Round 2 still awaits approval: a new plan replaces its assignments.
    submit(&mut s, &[("bob", "z")]);
    assert_eq!(numbered(&s), want(&[("a1", 1), ("b1", 2), ("z", 3)]));
}

/// A plan for a dispatched task opens round max+1 while earlier rounds are worked on
/// (the reference's follow-up rounds); the task awaits the operator while any round
/// does, is dispatched while any is open, and completes with its last open round.
#[test]
fn follow_up_rounds_while_a_round_is_dispatched() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    let submit = |s: &mut TaskState, g: &mut dyn FnMut() -> String, who: &str| {
        s.submit_plan(
            &mut cx(t0(), &l, g),
            "disp",
            &plan_of(&plan(&[(who, "more")]), "{}"),
            &known,
        )
    };
    s.approve(&r1, "", t0()).unwrap();
    assert_eq!(s.task.status, TaskStatus::Dispatched);
    let (r2, _) = submit(&mut s, &mut g, "alice").unwrap();
    assert_eq!(s.round(&r2).unwrap().round_number, 2);
    assert_eq!(s.task.status, TaskStatus::AwaitingOperatorApproval);
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::Dispatched);
    // While round 2 awaits approval a plan replaces it.
    let (again, _) = submit(&mut s, &mut g, "bob").unwrap();
    assert_eq!((again.as_str(), s.rounds.len()), (r2.as_str(), 2));
    // Round 1 is still claimable while the task awaits the operator.
    finish_round_approved(&mut s, &r1, &mut g);
    assert_eq!(s.task.status, TaskStatus::AwaitingOperatorApproval);
    s.approve(&r2, "", t0()).unwrap();
    assert_eq!(s.task.status, TaskStatus::Dispatched);
    // Approving round 1 does not complete the task while round 2 is open.
    review_approved(&mut s, &r1, &mut g);
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::Completed);
    assert_eq!(s.task.status, TaskStatus::Dispatched);
    let (r3, _) = submit(&mut s, &mut g, "alice").unwrap();
    assert_eq!(s.round(&r3).unwrap().round_number, 3);
    s.approve(&r3, "", t0()).unwrap();
    // max_rounds (3) bounds plans and changes_requested alike.
    assert_eq!(code(submit(&mut s, &mut g, "bob")), "MAX_ROUNDS_REACHED");
    finish_round_approved(&mut s, &r2, &mut g);
    assert_eq!(
        code(s.review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r2,
            verdict("changes_requested"),
            ""
        )),
        "MAX_ROUNDS_REACHED"
    );
    review_approved(&mut s, &r2, &mut g);
    assert_eq!(s.task.status, TaskStatus::Dispatched);
    finish_round_approved(&mut s, &r3, &mut g);
    review_approved(&mut s, &r3, &mut g);
    assert_eq!(s.task.status, TaskStatus::Completed);
    assert_eq!(code(submit(&mut s, &mut g, "bob")), "TASK_NOT_DISPATCHABLE");
}

/// Changes requested on round 1 while a follow-up round awaits approval: the new
/// round is max+1, and a plan then replaces the newest round awaiting approval.
#[test]
fn changes_requested_beside_a_follow_up_round() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    finish_round(&mut s, &r1, &mut g);
    let (r2, _) = s
        .submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(&[("alice", "docs")]), "{}"),
            &known,
        )
        .unwrap();
    let (r3, _) = s
        .review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r1,
            verdict("changes_requested"),
            "",
        )
        .unwrap();
    let r3 = r3.unwrap();
    assert_eq!(r3.round_number, 3);
    assert_eq!(s.task.status, TaskStatus::AwaitingOperatorApproval);
    let (revised, _) = s
        .submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(&[("bob", "x")]), "{}"),
            &known,
        )
        .unwrap();
    assert_eq!(revised, r3.id);
    assert_eq!(s.round_assignments(&r2).count(), 1, "round 2 untouched");
}

/// Claim and complete every assignment of an approved round.
fn finish_round_approved(s: &mut TaskState, round: &str, g: &mut dyn FnMut() -> String) {
    let l = limits();
    let list: Vec<(String, String)> = s
        .round_assignments(round)
        .map(|a| (a.agent_id.clone(), a.id.clone()))
        .collect();
    for (agent, id) in list {
        s.claim(&agent, &id, t0(), &l).unwrap();
        s.complete(&mut cx(t0(), &l, g), &agent, &id, HandoffDraft::default())
            .unwrap();
    }
    assert_eq!(s.round(round).unwrap().status, RoundStatus::AwaitingReview);
}

fn review_approved(s: &mut TaskState, round: &str, g: &mut dyn FnMut() -> String) {
    s.review(
        &mut cx(t0(), &limits(), g),
        "disp",
        round,
        verdict("approved"),
        "",
    )
    .unwrap();
}

/// Run a round to awaiting_review.
fn finish_round(s: &mut TaskState, round: &str, g: &mut dyn FnMut() -> String) {
    s.approve(round, "", t0()).unwrap();
    finish_round_approved(s, round, g);
}

#[test]
fn changes_requested_until_max_rounds() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    finish_round(&mut s, &r1, &mut g);
    let (r2, ch) = s
        .review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r1,
            verdict("changes_requested"),
            "fix tests",
        )
        .unwrap();
    let r2 = r2.unwrap();
    assert_eq!(r2.round_number, 2);
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::ChangesRequested);
    assert_eq!(s.task.status, TaskStatus::AwaitingOperatorApproval);
    assert!(s
        .round_assignments(&r2.id)
        .all(|a| a.status == AssignmentStatus::Pending));
    assert_eq!(s.round_assignments(&r2.id).count(), 2);
    assert_eq!(
        ch.iter().filter(|c| matches!(c, Change::Notice(_))).count(),
        2
    );
    finish_round(&mut s, &r2.id, &mut g);
    let (r3, _) = s
        .review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r2.id,
            verdict("changes_requested"),
            "",
        )
        .unwrap();
    let r3 = r3.unwrap();
    finish_round(&mut s, &r3.id, &mut g);
    assert_eq!(
        code(s.review(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &r3.id,
            verdict("changes_requested"),
            ""
        )),
        "MAX_ROUNDS_REACHED"
    );
    assert_eq!(
        s.round(&r3.id).unwrap().status,
        RoundStatus::AwaitingReview,
        "refusal changed nothing"
    );
    s.review(
        &mut cx(t0(), &l, &mut g),
        "disp",
        &r3.id,
        verdict("approved"),
        "",
    )
    .unwrap();
    assert_eq!(s.task.status, TaskStatus::Completed);
}

#[test]
fn progress_moves_forward_only() {
    let (mut s, r1, _g) = planned();
    let l = limits();
    let a = aid(&s, &r1, "alice");
    assert_eq!(
        code(s.progress("alice", &a, status("in_progress"), "", t0(), &l)),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    s.approve(&r1, "", t0()).unwrap();
    s.claim("alice", &a, t0(), &l).unwrap();
    let cases = [
        ("claimed", Ok(AssignmentStatus::Claimed)),
        ("in_progress", Ok(AssignmentStatus::InProgress)),
        ("in_progress", Ok(AssignmentStatus::InProgress)),
        ("claimed", Err("INVALID_TRANSITION")),
        ("completed", Err("INVALID_STATUS")),
        ("pending", Err("INVALID_STATUS")),
    ];
    for (status, want) in cases {
        let got = ProgressStatus::parse(status)
            .and_then(|st| s.progress("alice", &a, st, "n", t0(), &l))
            .map(|_| s.assignment(&a).unwrap().status);
        match want {
            Ok(st) => assert_eq!(got.unwrap(), st, "{status}"),
            Err(c) => assert_eq!(got.unwrap_err().code(), c, "{status}"),
        }
    }
    s.complete(
        &mut cx(t0(), &limits(), &mut ids()),
        "alice",
        &a,
        HandoffDraft::default(),
    )
    .unwrap();
    // The reference let a completed assignment go back to in_progress; we don't.
    assert_eq!(
        code(s.progress("alice", &a, status("in_progress"), "", t0(), &l)),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    assert_eq!(
        code(s.complete(
            &mut cx(t0(), &limits(), &mut ids()),
            "alice",
            &a,
            HandoffDraft::default()
        )),
        "ASSIGNMENT_NOT_ACTIVE"
    );
}

#[test]
fn lease_expiry_and_renewal() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    let a = aid(&s, &r1, "alice");
    s.approve(&r1, "", t0()).unwrap();
    s.claim("alice", &a, t0(), &l).unwrap();
    // Progress at +5 min renews the lease to +15: the timer of the first lease at +10 finds nothing to do.
    s.progress(
        "alice",
        &a,
        status("in_progress"),
        "",
        t0() + Duration::minutes(5),
        &l,
    )
    .unwrap();
    assert!(s.expire_lease(&a, t0() + Duration::minutes(10)).is_empty());
    let ch = s.expire_lease(&a, t0() + Duration::minutes(15));
    assert!(ch
        .iter()
        .any(|c| matches!(c, Change::Released { agent, .. } if agent == "alice")));
    assert!(ch
        .iter()
        .any(|c| matches!(c, Change::Notice(n) if n.to == "alice")));
    assert_eq!(s.assignment(&a).unwrap().status, AssignmentStatus::Pending);
    assert_eq!(
        code(s.complete(
            &mut cx(t0(), &limits(), &mut g),
            "alice",
            &a,
            HandoffDraft::default()
        )),
        "ASSIGNMENT_NOT_ACTIVE"
    );
    // Claimable again.
    s.claim("alice", &a, t0() + Duration::minutes(16), &l)
        .unwrap();
}

#[test]
fn close_cancels_open_work_and_blocks_everything() {
    let (mut s, r1, mut g) = planned();
    let l = limits();
    let a = aid(&s, &r1, "alice");
    let b = aid(&s, &r1, "bob");
    s.approve(&r1, "", t0()).unwrap();
    s.claim("alice", &a, t0(), &l).unwrap();
    let ch = s.close(t0()).unwrap();
    assert_eq!(s.task.status, TaskStatus::Closed);
    assert!(ch
        .iter()
        .any(|c| matches!(c, Change::Released { agent, .. } if agent == "alice")));
    assert!(
        !ch.iter()
            .any(|c| matches!(c, Change::Released { agent, .. } if agent == "bob")),
        "bob held no slot"
    );
    assert!(s
        .assignments
        .iter()
        .all(|x| x.status == AssignmentStatus::Cancelled));
    assert_eq!(s.round(&r1).unwrap().status, RoundStatus::Cancelled);
    assert_eq!(code(s.claim("bob", &b, t0(), &l)), "TASK_CLOSED");
    assert_eq!(
        code(s.complete(
            &mut cx(t0(), &limits(), &mut g),
            "alice",
            &a,
            HandoffDraft::default()
        )),
        "TASK_CLOSED"
    );
    assert_eq!(code(s.approve(&r1, "", t0())), "TASK_CLOSED");
    assert_eq!(code(s.close(t0())), "TASK_CLOSED");
    assert_eq!(
        code(s.submit_plan(
            &mut cx(t0(), &l, &mut g),
            "disp",
            &plan_of(&plan(&[("bob", "x")]), "{}"),
            &known
        )),
        "TASK_CLOSED"
    );
    assert!(s.expire_lease(&a, t0() + Duration::days(1)).is_empty());
}

#[test]
fn message_limit() {
    let (mut s, _, _) = planned();
    let l = limits();
    s.count_message("disp", &l).unwrap();
    s.count_message("alice", &l).unwrap();
    assert_eq!(code(s.count_message("bob", &l)), "MESSAGE_LIMIT_REACHED");
}

#[test]
fn only_participants_spend_a_tasks_message_budget() {
    let (mut s, _, _) = planned();
    let l = limits();
    // Not the dispatcher, not assigned in any round: refused, and nothing counted.
    assert_eq!(code(s.count_message("mallory", &l)), "NOT_TASK_PARTICIPANT");
    assert_eq!(s.message_count, 0);
    s.count_message("bob", &l).unwrap();
    assert_eq!(s.message_count, 1);
}
