//! Task workflow records and their states: Task → Round → Assignment, handoffs.
//! What agents send about tasks is validated and parsed in [`input`]; the
//! transitions themselves live in [`super::workflow`].

mod input;

pub(crate) use input::{
    list_from_text, note_arg, parse_handoff, validate_task_id, validate_text, HandoffDraft, Plan,
    PlanItem, MAX_TEXT_BYTES, MAX_TITLE_CHARS,
};

use super::error::{DomainError, ErrorCode};
use super::time::{ser, ser_opt, Timestamp};
use serde::{Deserialize, Serialize};

macro_rules! status_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub(crate) enum $name { $($variant),+ }

        impl $name {
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub(crate) fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

status_enum!(TaskStatus {
    Draft => "draft",
    AwaitingOperatorApproval => "awaiting_operator_approval",
    Dispatched => "dispatched",
    Completed => "completed",
    Closed => "closed",
});

status_enum!(RoundStatus {
    AwaitingOperatorApproval => "awaiting_operator_approval",
    Dispatched => "dispatched",
    InProgress => "in_progress",
    AwaitingReview => "awaiting_review",
    Completed => "completed",
    ChangesRequested => "changes_requested",
    Cancelled => "cancelled",
});

status_enum!(AssignmentStatus {
    Pending => "pending",
    Claimed => "claimed",
    InProgress => "in_progress",
    Completed => "completed",
    Cancelled => "cancelled",
});

impl TaskStatus {
    /// Neither completed nor closed: counts against the dispatcher's
    /// `max_open_tasks_per_agent`.
    pub(crate) fn is_open(self) -> bool {
        !matches!(self, TaskStatus::Completed | TaskStatus::Closed)
    }
}

impl AssignmentStatus {
    /// Claimed or in progress: counts against `max_simultaneous_assignments` and
    /// holds a lease.
    pub(crate) fn is_active(self) -> bool {
        matches!(
            self,
            AssignmentStatus::Claimed | AssignmentStatus::InProgress
        )
    }
}

/// The dispatcher's verdict in `review_submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Approved,
    ChangesRequested,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::ChangesRequested => "changes_requested",
        }
    }

    /// An agent's `verdict` argument; anything else is INVALID_VERDICT.
    pub(crate) fn parse(s: &str) -> Result<Verdict, DomainError> {
        match s {
            "approved" => Ok(Verdict::Approved),
            "changes_requested" => Ok(Verdict::ChangesRequested),
            other => Err(DomainError::refused(
                ErrorCode::InvalidVerdict,
                format!("verdict {other:?} is not one of: approved, changes_requested"),
            )),
        }
    }
}

/// The status an assignee may report with `assignment_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProgressStatus {
    Claimed,
    InProgress,
}

impl ProgressStatus {
    /// An agent's `status` argument; anything else is INVALID_STATUS.
    pub(crate) fn parse(s: &str) -> Result<ProgressStatus, DomainError> {
        match s {
            "claimed" => Ok(ProgressStatus::Claimed),
            "in_progress" => Ok(ProgressStatus::InProgress),
            other => Err(DomainError::refused(
                ErrorCode::InvalidStatus,
                format!("status {other:?} is not one of: claimed, in_progress"),
            )),
        }
    }

    pub(crate) fn target(self) -> AssignmentStatus {
        match self {
            ProgressStatus::Claimed => AssignmentStatus::Claimed,
            ProgressStatus::InProgress => AssignmentStatus::InProgress,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Task {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    /// The creator; only it submits plans and reviews.
    pub dispatcher_agent_id: String,
    #[serde(serialize_with = "ser")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "ser")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Round {
    pub id: String,
    pub task_id: String,
    pub round_number: u32,
    pub status: RoundStatus,
    pub plan_json: String,
    /// The operator's note on the last approve/reject.
    pub operator_note: Option<String>,
    /// Rejected by the operator and waiting for a revised plan.
    pub rejected: bool,
    pub review_verdict: Option<String>,
    pub review_note: Option<String>,
    #[serde(serialize_with = "ser")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "ser")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Assignment {
    pub id: String,
    pub round_id: String,
    pub task_id: String,
    pub agent_id: String,
    pub goal: String,
    pub status: AssignmentStatus,
    pub progress_note: Option<String>,
    #[serde(serialize_with = "ser_opt")]
    pub claimed_at: Option<Timestamp>,
    #[serde(serialize_with = "ser_opt")]
    pub lease_expires_at: Option<Timestamp>,
    pub handoff_id: Option<String>,
    #[serde(serialize_with = "ser")]
    pub created_at: Timestamp,
    #[serde(serialize_with = "ser")]
    pub updated_at: Timestamp,
    /// Its place among its task's assignments, in the order the task created them
    /// (stored, so that they load in that order; never shown).
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Handoff {
    pub id: String,
    pub assignment_id: String,
    pub round_id: String,
    pub task_id: String,
    pub from_agent: String,
    pub branch: String,
    pub commit_hash: String,
    pub changed_files: Vec<String>,
    pub tests_run: Vec<String>,
    pub risks: Vec<String>,
    pub next_steps: Vec<String>,
    pub notes: String,
    #[serde(serialize_with = "ser")]
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            "draft",
            "awaiting_operator_approval",
            "dispatched",
            "completed",
            "closed",
        ] {
            assert_eq!(TaskStatus::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(
            RoundStatus::parse("changes_requested"),
            Some(RoundStatus::ChangesRequested)
        );
        assert_eq!(AssignmentStatus::parse("nope"), None);
        assert!(AssignmentStatus::Claimed.is_active() && !AssignmentStatus::Pending.is_active());
    }
}
