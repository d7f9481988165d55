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
}

impl DomainError {
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
        }
    }
}
