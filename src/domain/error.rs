//! Domain refusals. Each variant maps to a stable error code that agents' prompts
//! may depend on (`{"ok": false, "error": CODE, "message": ...}`).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
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
    Refused { code: &'static str, message: String },
}

impl DomainError {
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        DomainError::InvalidArgument {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The stable code agents see in `error`.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidArgument { .. } => "INVALID_ARGUMENT",
            DomainError::UnknownAgent(_) => "UNKNOWN_AGENT",
            DomainError::DuplicateMessage { .. } => "DUPLICATE_MESSAGE",
            DomainError::NotFound(_) => "NOT_FOUND",
            DomainError::ReplyToNotFound(_) => "REPLY_TO_NOT_FOUND",
            DomainError::MessageLimitReached { .. } => "MESSAGE_LIMIT_REACHED",
            DomainError::LockConflict { .. } => "LOCK_CONFLICT",
            DomainError::LockNotHeld { .. } => "LOCK_NOT_HELD",
            DomainError::Refused { code, .. } => code,
        }
    }

    /// Extra fields for the error object beside `ok`, `error` and `message`, so that
    /// an agent can act without parsing the message text.
    pub fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        match self {
            DomainError::InvalidArgument { field, .. } => {
                m.insert("field".into(), field.clone().into());
            }
            DomainError::DuplicateMessage { message_id, .. } => {
                m.insert("message_id".into(), message_id.clone().into());
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
