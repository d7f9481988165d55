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

/// Stop an actor now (its hub was replaced by one rebuilt from disk).
pub(crate) struct Stop;

impl actix::Message for Stop {
    type Result = ();
}

/// `Stop` for actors whose context is a plain `Context`.
macro_rules! stoppable {
    ($($actor:ty),*) => {$(
        impl actix::Handler<Stop> for $actor {
            type Result = ();
            fn handle(&mut self, _: Stop, ctx: &mut actix::Context<Self>) {
                actix::ActorContext::stop(ctx);
            }
        }
    )*};
}
stoppable!(
    agent::AgentActor,
    task::TaskActor,
    lock_manager::LockManager
);
pub(crate) use hub::Hub;
