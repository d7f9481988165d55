//! The live state, one owner per piece, behind the [`Hub`] façade.
//! Actors own state and call `domain` for rules and `store` (enqueue only) for
//! persistence; they never see HTTP or SQL.

pub(crate) mod agent;
pub(crate) mod directory;
mod error;
pub(crate) mod hub;
pub(crate) mod lock_manager;
pub(crate) mod notify;
pub(crate) mod task;

pub(crate) use error::HubError;
pub(crate) use hub::Hub;
