//! Pure domain types and rules: ids, agent metadata validation, time formatting.
//! Nothing here does I/O or reads a clock; callers pass time in.

pub(crate) mod agent;
pub(crate) mod audit_id;
pub(crate) mod channel;
pub(crate) mod error;
pub(crate) mod ids;
pub(crate) mod inbox;
pub(crate) mod lease;
pub(crate) mod message;
pub(crate) mod placement;
pub(crate) mod rate;
pub(crate) mod route;
pub(crate) mod shard;
pub(crate) mod task;
pub(crate) mod time;
pub(crate) mod workflow;

pub(crate) use error::{DomainError, ErrorCode};
pub(crate) use ids::AgentId;
