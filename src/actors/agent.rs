//! AgentActor: one per agent listed in `agents.env`. Owns the agent's registration
//! metadata, last heartbeat, its inbox (unread queue, read state, the dedupe keys it
//! used as a sender) and the long-poll waiters of `inbox_pull`.
//! It also owns the agent's channel [`Outbox`]: the Claude Code channel events on
//! their way, coalesced and rate-bounded by the pure rules in `domain::channel`.
//! Messages: [`Register`], [`Heartbeat`], [`GetView`], [`SendMessage`], [`Deliver`],
//! [`Push`], [`Pull`], [`Ack`], [`Purge`].

use super::directory::HUB_SENDER;
use super::notify::Notifier;
use crate::config::LiveSettings;
use crate::domain::channel::{Item, Outbox};
use crate::domain::inbox::{
    AckCheck, AckRefusal, Inbox, InboxGauge, SendCheck, SendQuery, Stored, StoredAck, Unread,
};
use crate::domain::message::{Draft, Message as Mail};
use crate::domain::time::{iso, Timestamp};
use crate::domain::{AgentId, DomainError};
use crate::store::op::Tally;
use crate::store::{AgentRow, MailState, Op, Store, Ticket};
use actix::prelude::*;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What the agent looks like to itself and to the operator.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct AgentView {
    pub agent_id: AgentId,
    pub name: String,
    pub capabilities: Vec<String>,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
}

/// A parked `inbox_pull`: answered by the next delivery or, empty, at its deadline.
struct Waiter {
    id: u64,
    limit: usize,
    reply: oneshot::Sender<Vec<Unread>>,
}

pub(crate) struct AgentActor {
    view: AgentView,
    inbox: Inbox,
    /// Unread plus promised messages, shared with the hub (which promises room
    /// before a send): kept in step as messages arrive and are read.
    gauge: Arc<InboxGauge>,
    waiters: Vec<Waiter>,
    next_waiter: u64,
    /// Removes waiters whose caller is gone, every second while any wait.
    sweep: Option<SpawnHandle>,
    /// Where state changes go; the writer thread holds the other end.
    store: Store,
    /// Tells the transport a message arrived (push on the agent's open GET streams).
    notifier: Arc<dyn Notifier>,
    /// Channel events waiting for their window or for the rate; flushed by a timer
    /// of this actor.
    outbox: Outbox,
    /// The settings in force (`push` is read per event: a reload may change it).
    settings: Arc<LiveSettings>,
}

impl AgentActor {
    pub(crate) fn from_row(
        row: AgentRow,
        mail: MailState,
        gauge: Arc<InboxGauge>,
        store: Store,
        notifier: Arc<dyn Notifier>,
        settings: Arc<LiveSettings>,
    ) -> Self {
        let mut inbox = Inbox::default();
        for u in mail.unread {
            inbox.deliver_stored(u.id, u.size, &u.from);
        }
        gauge.add(inbox.unread_count(), inbox.unread_bytes());
        AgentActor {
            view: AgentView {
                agent_id: AgentId::new(&row.id),
                name: row.name,
                capabilities: row.capabilities,
                registered_at: row.registered_at,
                last_heartbeat: row.last_heartbeat,
            },
            inbox,
            gauge,
            waiters: Vec::new(),
            next_waiter: 0,
            sweep: None,
            store,
            notifier,
            outbox: Outbox::default(),
            settings,
        }
    }

    /// Queue a channel event; the first one waiting arms the flush timer.
    fn offer(&mut self, item: Item, ctx: &mut Context<Self>) {
        let settings = self.settings.load();
        let me = self.view.agent_id.as_str();
        if let Some(wait) = self.outbox.offer(me, item, &settings.push) {
            ctx.run_later(wait, |act, ctx| act.flush(ctx));
        }
    }

    /// Push what the window gathered (as far as the rate allows; the rest waits
    /// for another timer).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.load();
        let (events, again) = self.outbox.flush(&settings.push, std::time::Instant::now());
        for e in &events {
            self.notifier.channel(&self.view.agent_id, e);
        }
        if let Some(wait) = again {
            ctx.run_later(wait, |act, ctx| act.flush(ctx));
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;
}

/// `agent_register`: already validated name and capabilities.
pub(crate) struct Register {
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
pub(crate) struct Heartbeat {
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
pub(crate) struct GetView;

impl Message for GetView {
    type Result = AgentView;
}

impl Handler<GetView> for AgentActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view.clone())
    }
}

/// `message_send`, handled by the SENDER's actor: it checks the sender's dedupe key
/// and `reply_to`, stores the message with its recipients, and forwards it to each
/// recipient's actor. Forwarding from this one actor, in order, is what keeps one
/// sender's messages in the order sent at every recipient.
pub(crate) struct SendMessage {
    pub id: String,
    pub draft: Draft,
    /// Resolved recipients served here.
    pub recipients: Vec<(AgentId, Addr<AgentActor>)>,
    /// Recipients whose shards other nodes serve (spread placement): their
    /// deliveries go to the outbox, in the same batch as the message.
    pub elsewhere: Vec<String>,
    pub at: Timestamp,
    /// The stored rows asked for by an earlier [`Sent::LookUp`].
    pub stored: Option<Stored>,
    /// Bytes reserved ([`Reserve`]) in each recipient's inbox for this message.
    pub reserved: usize,
}

/// A send: stored and forwarded, or waiting for the stored rows its checks need
/// (then send it again with them; nothing was written, and the message is handed
/// back so that nothing is copied).
pub(crate) enum Sent {
    Stored(Arc<Mail>, Ticket),
    LookUp(SendQuery, Box<SendMessage>),
}

impl Message for SendMessage {
    type Result = Result<Sent, DomainError>;
}

impl Handler<SendMessage> for AgentActor {
    type Result = Result<Sent, DomainError>;

    fn handle(&mut self, msg: SendMessage, _: &mut Context<Self>) -> Self::Result {
        if let SendCheck::LookUp(q) = self.inbox.check_send(&msg.draft, msg.stored.as_ref())? {
            return Ok(Sent::LookUp(q, Box::new(msg)));
        }
        let from = self.view.agent_id.to_string();
        let message = Arc::new(msg.draft.into_message(msg.id, &from, iso(msg.at)));
        let recipients: Vec<String> = msg
            .recipients
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        let ticket = if msg.elsewhere.is_empty() {
            self.store.enqueue(Op::MessageInsert {
                message: message.clone(),
                recipients,
            })
        } else {
            self.store.enqueue(Op::MessageElsewhere {
                message: message.clone(),
                recipients,
                elsewhere: msg.elsewhere,
                fence: from.clone(),
                event: None,
            })
        };
        self.inbox
            .record_sent(&message.id, message.dedupe_key.as_deref());
        for (_, addr) in &msg.recipients {
            addr.do_send(Deliver(message.clone(), Some(msg.reserved), ticket));
        }
        Ok(Sent::Stored(message, ticket))
    }
}

/// Check a draft without sending it, so that a duplicate is reported as such before
/// it could use up a task's message budget. [`SendMessage`] checks again.
pub(crate) struct CheckDraft {
    pub draft: Draft,
    pub stored: Option<Stored>,
}

impl Message for CheckDraft {
    type Result = Result<SendCheck, DomainError>;
}

impl Handler<CheckDraft> for AgentActor {
    type Result = Result<SendCheck, DomainError>;

    fn handle(&mut self, msg: CheckDraft, _: &mut Context<Self>) -> Self::Result {
        self.inbox.check_send(&msg.draft, msg.stored.as_ref())
    }
}

/// A message arriving in this agent's inbox (already stored by its sender), with
/// the bytes reserved for it ([`Reserve`]; `None` for hub notices, which bypass
/// the quota) and the ticket of its insert (to tell whether a [`Purge`] deleted
/// its row before it got here).
pub(crate) struct Deliver(pub Arc<Mail>, pub Option<usize>, pub Ticket);

impl Message for Deliver {
    type Result = ();
}

impl Handler<Deliver> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        let Ticket(stored_at) = msg.2;
        if self.inbox.purged_in_flight(&msg.0.from_agent, stored_at) {
            // Its row was purged: it never arrives; its promised room is free again.
            if let Some(bytes) = msg.1 {
                self.gauge.release(1, bytes);
            }
            return;
        }
        // Already here (spread placement: taken from the outbox by two takers at
        // once): nothing more arrives.
        if self.inbox.has(&msg.0.id) {
            if let Some(bytes) = msg.1 {
                self.gauge.release(1, bytes);
            }
            return;
        }
        self.notifier.inbox_updated(&self.view.agent_id, &msg.0);
        // A hub notice brings its own event ([`Push`]), with its kind and ids.
        if msg.0.from_agent != HUB_SENDER {
            self.offer(Item::from_agent(&msg.0.from_agent, &msg.0.id), ctx);
        }
        // A send's room was promised already (the promise becomes the unread
        // message); a hub notice comes without one.
        if msg.1.is_none() {
            self.gauge.add(1, msg.0.pull_size());
        }
        self.inbox.deliver(msg.0);
        for w in self.waiters.drain(..) {
            // A waiter whose HTTP request is gone has dropped its receiver; fine.
            let _ = w.reply.send(self.inbox.peek(w.limit));
        }
    }
}

/// A channel event for this agent: a hub notice's (sent right after its
/// [`Deliver`]), or one that is no inbox message at all.
pub(crate) struct Push(pub Item);

impl Message for Push {
    type Result = ();
}

impl Handler<Push> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Context<Self>) {
        self.offer(msg.0, ctx);
    }
}

/// Rows of this agent's unread messages, just read back from disk for a pull.
pub(crate) struct Hold(pub Vec<Arc<Mail>>);

impl Message for Hold {
    type Result = ();
}

impl Handler<Hold> for AgentActor {
    type Result = ();

    fn handle(&mut self, msg: Hold, _: &mut Context<Self>) {
        self.inbox.hold(&msg.0);
    }
}

/// `inbox_pull`: the oldest unread messages, or a receiver that gets them as soon as
/// one arrives (or an empty list after `wait`).
pub(crate) struct Pull {
    pub limit: usize,
    pub wait: Duration,
}

pub(crate) enum PullReply {
    Ready(Vec<Unread>),
    Wait(oneshot::Receiver<Vec<Unread>>),
}

impl Message for Pull {
    type Result = PullReply;
}

impl Handler<Pull> for AgentActor {
    type Result = MessageResult<Pull>;

    fn handle(&mut self, msg: Pull, ctx: &mut Context<Self>) -> Self::Result {
        let ready = self.inbox.peek(msg.limit);
        if !ready.is_empty() || msg.wait.is_zero() {
            return MessageResult(PullReply::Ready(ready));
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.push(Waiter {
            id,
            limit: msg.limit,
            reply: tx,
        });
        ctx.run_later(msg.wait, move |act, _| {
            if let Some(pos) = act.waiters.iter().position(|w| w.id == id) {
                let w = act.waiters.swap_remove(pos);
                let _ = w.reply.send(Vec::new());
            }
        });
        self.sweep_gone_waiters(ctx);
        MessageResult(PullReply::Wait(rx))
    }
}

impl AgentActor {
    /// While any pull is parked, drop each second those whose caller hung up (the
    /// HTTP layer drops its receiver when the client's connection fails), so that a
    /// client that leaves never holds a waiter until its deadline.
    fn sweep_gone_waiters(&mut self, ctx: &mut Context<Self>) {
        if self.sweep.is_some() {
            return;
        }
        let handle = ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            act.waiters.retain(|w| !w.reply.is_closed());
            if act.waiters.is_empty() {
                if let Some(h) = act.sweep.take() {
                    ctx.cancel_future(h);
                }
            }
        });
        self.sweep = Some(handle);
    }
}

/// `message_ack`: mark messages read for this agent only, all or nothing.
pub(crate) struct Ack {
    pub ids: Vec<String>,
    pub at: Timestamp,
    /// The stored rows asked for by an earlier [`Acked::LookUp`].
    pub stored: Option<StoredAck>,
}

/// An ack: the ids that were unread until now, or the ids whose delivery rows it
/// needs (then ack again with them; nothing was written).
pub(crate) enum Acked {
    Done(Vec<String>, Ticket),
    LookUp { since: u64, ids: Vec<String> },
}

impl Message for Ack {
    type Result = Result<Acked, DomainError>;
}

impl Handler<Ack> for AgentActor {
    type Result = Result<Acked, DomainError>;

    fn handle(&mut self, msg: Ack, _: &mut Context<Self>) -> Self::Result {
        let before = (self.inbox.unread_count(), self.inbox.unread_bytes());
        let checked =
            self.inbox
                .ack(&msg.ids, msg.stored.as_ref())
                .map_err(|AckRefusal::NotFound(id)| {
                    DomainError::NotFound(format!(
                    "message {id} is not in your inbox (unknown id, or addressed to another agent)"
                ))
                })?;
        let newly = match checked {
            AckCheck::Done(newly) => newly,
            AckCheck::LookUp { since, ids } => return Ok(Acked::LookUp { since, ids }),
        };
        // Read messages free their room in the inbox quota.
        self.gauge.release(
            before.0 - self.inbox.unread_count(),
            before.1 - self.inbox.unread_bytes(),
        );
        let ticket = if newly.is_empty() {
            Ticket::NONE
        } else {
            self.store.enqueue(Op::MessageAck {
                agent: self.view.agent_id.to_string(),
                message_ids: newly.clone(),
                at: iso(msg.at),
            })
        };
        Ok(Acked::Done(newly, ticket))
    }
}

/// The operator's purge of this agent's deliveries (from one sender, if given),
/// read or unread: stored rows and inbox alike, in this actor's order with sends,
/// pulls and acks. Answers with where the writer leaves the number of rows deleted
/// (final once the ticket is committed).
pub(crate) struct Purge {
    pub from: Option<String>,
}

impl Message for Purge {
    type Result = (Tally, Ticket);
}

impl Handler<Purge> for AgentActor {
    type Result = MessageResult<Purge>;

    fn handle(&mut self, msg: Purge, _: &mut Context<Self>) -> Self::Result {
        let deleted = Tally::default();
        let ticket = self.store.enqueue(Op::DeliveriesPurge {
            agent: self.view.agent_id.to_string(),
            from: msg.from.clone(),
            deleted: deleted.clone(),
        });
        let purged = self.inbox.purge(msg.from.as_deref(), ticket.0);
        self.gauge.release(purged.messages, purged.bytes);
        // Parked pulls stay parked: the inbox they saw empty has not gained anything.
        MessageResult((deleted, ticket))
    }
}

#[cfg(test)]
mod tests;
