//! Pure domain types and rules: ids, agent metadata validation, time formatting.
//! Nothing here does I/O or reads a clock; callers pass time in.

pub mod agent;
pub mod error;
pub mod ids;
pub mod lease;
pub mod message;
pub mod task;
pub mod time;
pub mod workflow;

pub use error::{DomainError, ErrorCode};
pub use ids::AgentId;
