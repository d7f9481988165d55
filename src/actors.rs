//! The live state, one owner per piece, behind the [`Hub`] façade.
//! Actors own state and call `domain` for rules and `store` (enqueue only) for
//! persistence; they never see HTTP or SQL.

pub mod agent;
pub mod directory;
mod error;
pub mod hub;
pub mod lock_manager;
pub mod notify;
pub mod task;

pub use error::HubError;
pub use hub::{AgentStatus, Hub, StatusCounts};
