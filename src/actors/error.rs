//! The actor layer's error: a domain refusal (answered as a tool result), or a
//! failure of the hub itself (answered as a protocol or HTTP 500 error and logged).

use crate::domain::DomainError;
use crate::store::StoreError;
use actix::MailboxError;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum HubError {
    /// The call was refused by a rule; the client can act on the code.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The change could not be stored; it was not acknowledged.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The actor is gone (shutdown) or its mailbox is full.
    #[error("actor mailbox: {0}")]
    Mailbox(#[from] MailboxError),
    /// What the call needs belongs to a shard this node does not serve (spread
    /// placement): nothing was done; the call belongs at the shard's owner.
    #[error("{0} belongs to a shard another node serves")]
    NotOwner(String),
    /// A bug: an invariant did not hold, or a task of ours panicked. Never a refusal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HubError {
    /// A broken invariant, logged where it is found.
    pub(crate) fn bug(what: impl Into<String>) -> HubError {
        let what = what.into();
        tracing::error!(invariant = %what, "internal error");
        HubError::Internal(what)
    }
}
