//! Domain refusals and their stable codes. Agents' prompts may depend on a code
//! (`{"ok": false, "error": CODE, "message": ...}`), so every code is one variant of
//! [`ErrorCode`]: a misspelled code is a compile error, not a new public code.

use serde::{Serialize, Serializer};
use thiserror::Error;

/// Declares [`ErrorCode`] with each code's wire text and documented meaning.
macro_rules! error_codes {
    ($($variant:ident => $text:literal: $meaning:literal,)+) => {
        /// Every error code a client or operator can see.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum ErrorCode {
            $(#[doc = $meaning] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the README's table (also the metrics'
            /// index of a code: the variants are declared in this order).
            pub(crate) const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as agents see it, e.g. `TASK_NOT_FOUND`.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }

            /// When the code is given (documentation, kept beside the code).
            #[cfg(test)]
            pub(crate) fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning),+ }
            }
        }
    };
}

error_codes! {
    InvalidArgument => "INVALID_ARGUMENT": "an argument is missing, of the wrong type, out of range or unknown",
    UnknownAgent => "UNKNOWN_AGENT": "`to_agent` or a plan's `agent_id` is not in agents.env",
    DuplicateMessage => "DUPLICATE_MESSAGE": "the sender already sent a message with this dedupe_key",
    ReplyToNotFound => "REPLY_TO_NOT_FOUND": "reply_to names a message the caller neither sent nor received",
    RoundNotFound => "ROUND_NOT_FOUND": "unknown round id",
    MessageLimitReached => "MESSAGE_LIMIT_REACHED": "the round's task already has max_messages_per_task agent messages",
    StoreUnavailable => "STORE_UNAVAILABLE": "operator API: storage cannot save writes now (a fault being healed, or shutdown); HTTP 503 with Retry-After",
    NotTaskParticipant => "NOT_TASK_PARTICIPANT": "message_send with a round_id by an agent that is neither the task's dispatcher nor assigned in any of its rounds",
    NotFound => "NOT_FOUND": "message_ack of an id not in the inbox, or handoff_get of an unknown id",
    TaskExists => "TASK_EXISTS": "the task id is taken",
    TaskNotFound => "TASK_NOT_FOUND": "unknown task id",
    TaskClosed => "TASK_CLOSED": "the task was closed by the operator",
    NotTaskDispatcher => "NOT_TASK_DISPATCHER": "only the task's creator plans and reviews",
    TaskNotDispatchable => "TASK_NOT_DISPATCHABLE": "a plan for a task that is neither draft nor dispatched (a completed one) and has no round awaiting approval",
    PlanSubmitFailed => "PLAN_SUBMIT_FAILED": "plan_json is malformed",
    TooManyAssignments => "TOO_MANY_ASSIGNMENTS": "the plan exceeds max_assignments_per_round",
    MaxRoundsReached => "MAX_ROUNDS_REACHED": "the task used max_rounds",
    AssignmentNotValid => "ASSIGNMENT_NOT_VALID": "unknown assignment, or not the caller's",
    AssignmentNotPending => "ASSIGNMENT_NOT_PENDING": "claim of an assignment that is not pending",
    RoundNotApproved => "ROUND_NOT_APPROVED": "claim in a round the operator has not approved",
    ActiveAssignmentLimit => "ACTIVE_ASSIGNMENT_LIMIT": "the caller holds max_simultaneous_assignments active assignments",
    AssignmentNotActive => "ASSIGNMENT_NOT_ACTIVE": "progress/complete on an assignment that is not claimed or in progress",
    InvalidStatus => "INVALID_STATUS": "a progress status other than claimed or in_progress",
    InvalidTransition => "INVALID_TRANSITION": "progress from in_progress back to claimed",
    CompleteFailed => "COMPLETE_FAILED": "handoff_json is malformed",
    InvalidVerdict => "INVALID_VERDICT": "a verdict other than approved or changes_requested",
    RoundNotReviewable => "ROUND_NOT_REVIEWABLE": "review of a round that is not awaiting review",
    AssignmentsNotComplete => "ASSIGNMENTS_NOT_COMPLETE": "review of a round with open assignments",
    RoundNotAwaitingApproval => "ROUND_NOT_AWAITING_APPROVAL": "operator approve/reject of a round in another state",
    LockConflict => "LOCK_CONFLICT": "another agent holds the lock",
    LockNotHeld => "LOCK_NOT_HELD": "lock_release of a lock the caller does not hold",
    LockNotFound => "LOCK_NOT_FOUND": "operator unlock of a key nobody holds",
    RateLimited => "RATE_LIMITED": "the caller sent faster than send_rate_per_second allows beyond send_burst; retry_after_seconds says when a send is accepted again",
    TooManyOpenTasks => "TOO_MANY_OPEN_TASKS": "the caller created max_open_tasks_per_agent tasks that are neither completed nor closed",
    TooManyLocks => "TOO_MANY_LOCKS": "the caller holds max_locks_per_agent locks, or has max_lock_waits_per_agent lock_acquire calls waiting",
    InboxFull => "INBOX_FULL": "the recipient of a direct message has max_inbox_messages unread messages or max_inbox_bytes unread bytes",
    Internal => "INTERNAL": "the hub failed (storage, shutdown or a bug); never a refusal of the call itself",
}

impl ErrorCode {
    /// Codes that mean "no such thing" (HTTP 404 on the operator API).
    pub(crate) fn is_not_found(self) -> bool {
        matches!(
            self,
            ErrorCode::UnknownAgent
                | ErrorCode::RoundNotFound
                | ErrorCode::NotFound
                | ErrorCode::TaskNotFound
                | ErrorCode::LockNotFound
                | ErrorCode::ReplyToNotFound
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets tests and callers compare a code with its wire text.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum DomainError {
    /// A tool argument failed validation; `field` names it.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("agent {0} is not listed in agents.env")]
    UnknownAgent(String),
    #[error("you already sent message {message_id} with dedupe_key {dedupe_key:?}; it was not sent again")]
    DuplicateMessage {
        message_id: String,
        dedupe_key: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("reply_to: message {0} is not one you sent or received")]
    ReplyToNotFound(String),
    #[error("task {task_id} already has {limit} messages (max_messages_per_task)")]
    MessageLimitReached { task_id: String, limit: u32 },
    #[error("sending too fast: at most {rate} messages per second beyond a burst of {burst} (send_rate_per_second, send_burst); retry after {:.3} s", *retry_after_ms as f64 / 1000.0)]
    RateLimited {
        retry_after_ms: u64,
        rate: u64,
        burst: u64,
    },
    #[error("lock {key} is held by {holder} until {expires_at}")]
    LockConflict {
        key: String,
        holder: String,
        expires_at: String,
    },
    #[error("{}", match holder {
        Some(h) => format!("lock {key} is held by {h}, not by you"),
        None => format!("lock {key} is not held by anyone"),
    })]
    LockNotHeld { key: String, holder: Option<String> },
    /// A workflow rule refused the call; `code` is the reference's error code
    /// (TASK_NOT_FOUND, ASSIGNMENT_NOT_PENDING, MAX_ROUNDS_REACHED, ...).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
}

impl DomainError {
    pub(crate) fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        DomainError::Refused {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The stable code agents see in `error`.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            DomainError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            DomainError::UnknownAgent(_) => ErrorCode::UnknownAgent,
            DomainError::DuplicateMessage { .. } => ErrorCode::DuplicateMessage,
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::ReplyToNotFound(_) => ErrorCode::ReplyToNotFound,
            DomainError::MessageLimitReached { .. } => ErrorCode::MessageLimitReached,
            DomainError::RateLimited { .. } => ErrorCode::RateLimited,
            DomainError::LockConflict { .. } => ErrorCode::LockConflict,
            DomainError::LockNotHeld { .. } => ErrorCode::LockNotHeld,
            DomainError::Refused { code, .. } => *code,
        }
    }

    /// Extra fields for the error object beside `ok`, `error` and `message`, so that
    /// an agent can act without parsing the message text.
    pub(crate) fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        match self {
            DomainError::InvalidArgument { field, .. } => {
                m.insert("field".into(), field.clone().into());
            }
            DomainError::DuplicateMessage { message_id, .. } => {
                m.insert("message_id".into(), message_id.clone().into());
            }
            DomainError::RateLimited { retry_after_ms, .. } => {
                m.insert(
                    "retry_after_seconds".into(),
                    (*retry_after_ms as f64 / 1000.0).into(),
                );
            }
            DomainError::LockConflict {
                holder, expires_at, ..
            } => {
                m.insert("holder_agent_id".into(), holder.clone().into());
                m.insert("expires_at".into(), expires_at.clone().into());
            }
            DomainError::LockNotHeld {
                holder: Some(h), ..
            } => {
                m.insert("holder_agent_id".into(), h.clone().into());
            }
            _ => {}
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table of error codes names every code a client can get.
    #[test]
    fn every_code_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
        for code in ErrorCode::ALL.iter().filter(|c| **c != ErrorCode::Internal) {
            assert!(
                readme.contains(&format!("`{}`", code.as_str())),
                "{code} is missing from the README's error codes"
            );
            assert!(!code.meaning().is_empty());
        }
    }

    #[test]
    fn codes_serialize_as_their_text() {
        assert_eq!(
            serde_json::to_value(ErrorCode::TaskNotFound).unwrap(),
            "TASK_NOT_FOUND"
        );
        assert_eq!(
            DomainError::invalid("f", "x").code().as_str(),
            "INVALID_ARGUMENT"
        );
    }
}
