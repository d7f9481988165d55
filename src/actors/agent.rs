//! AgentActor: one per agent listed in `agents.env`. Owns the agent's registration
//! metadata and last heartbeat; later also its inbox and long-poll waiters.
//! Messages: [`Register`], [`Heartbeat`], [`GetView`].

use crate::domain::time::{iso, Timestamp};
use crate::domain::AgentId;
use crate::store::{AgentRow, Op, Store, Ticket};
use actix::prelude::*;
use serde::Serialize;

/// What the agent looks like to itself and to the operator.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentView {
    pub agent_id: AgentId,
    pub name: String,
    pub capabilities: Vec<String>,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
}

pub struct AgentActor {
    view: AgentView,
    /// Where state changes go; the writer thread holds the other end.
    store: Store,
}

impl AgentActor {
    pub fn from_row(row: AgentRow, store: Store) -> Self {
        AgentActor {
            view: AgentView {
                agent_id: AgentId::new(&row.id),
                name: row.name,
                capabilities: row.capabilities,
                registered_at: row.registered_at,
                last_heartbeat: row.last_heartbeat,
            },
            store,
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// `agent_register`: already validated name and capabilities.
pub struct Register {
    pub name: String,
    pub capabilities: Vec<String>,
    pub at: Timestamp,
}

impl Message for Register {
    type Result = (AgentView, Ticket);
}

impl Handler<Register> for AgentActor {
    type Result = MessageResult<Register>;

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        let at = iso(msg.at);
        let capabilities_json =
            serde_json::to_string(&msg.capabilities).unwrap_or_else(|_| "[]".into());
        let ticket = self.store.enqueue(Op::AgentRegister {
            id: self.view.agent_id.to_string(),
            name: msg.name.clone(),
            capabilities_json,
            at: at.clone(),
        });
        self.view.name = msg.name;
        self.view.capabilities = msg.capabilities;
        self.view.registered_at = Some(at);
        MessageResult((self.view.clone(), ticket))
    }
}

/// `agent_heartbeat`. Returns the stored timestamp.
pub struct Heartbeat {
    pub at: Timestamp,
}

impl Message for Heartbeat {
    type Result = (String, Ticket);
}

impl Handler<Heartbeat> for AgentActor {
    type Result = MessageResult<Heartbeat>;

    fn handle(&mut self, msg: Heartbeat, _: &mut Context<Self>) -> Self::Result {
        let at = iso(msg.at);
        let ticket = self.store.enqueue(Op::AgentHeartbeat {
            id: self.view.agent_id.to_string(),
            at: at.clone(),
        });
        self.view.last_heartbeat = Some(at.clone());
        MessageResult((at, ticket))
    }
}

/// A copy of the agent's metadata.
pub struct GetView;

impl Message for GetView {
    type Result = AgentView;
}

impl Handler<GetView> for AgentActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.clone())
    }
}
