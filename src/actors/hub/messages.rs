//! Messaging through the façade: send (with the task budget), pull, ack.

use super::Hub;
use crate::actors::agent::{
    Ack, Acked, AgentActor, CheckDraft, Hold, Pull, PullReply, SendMessage, Sent,
};
use crate::actors::task::commands::{CountMessage, CountStep};
use crate::actors::HubError;
use crate::domain::ids::message_id;
use crate::domain::inbox::{Full, InboxLimits, SendCheck, SendQuery, Stored, StoredAck, Unread};
use crate::domain::message::{fit_in, Draft, Message};
use crate::domain::rate::retry_after_ms;
use crate::domain::time::iso;
use crate::domain::{AgentId, DomainError, ErrorCode};
use crate::store::{Reads, Ticket};
use actix::Addr;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A recipient of a send and its actor.
type Recipient = (AgentId, Addr<AgentActor>);

/// How often one call may be sent back for stored rows: a second time only when
/// hundreds of the agent's messages went by during one look-up.
const LOOKUP_ATTEMPTS: usize = 4;

/// An accepted `message_send`: the stored message, who got it, and the recipients
/// of a broadcast skipped because their inbox was full.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub message: Arc<Message>,
    pub recipients: Vec<AgentId>,
    pub skipped: Vec<AgentId>,
}

/// INBOX_FULL for a direct message to `to`, naming the quota.
fn inbox_full(to: &str, full: Full) -> DomainError {
    let why = match full {
        Full::Messages(n) => format!("{n} unread messages (max_inbox_messages)"),
        Full::Bytes(n) => format!("{n} bytes of unread messages (max_inbox_bytes)"),
    };
    DomainError::refused(
        ErrorCode::InboxFull,
        format!("the inbox of {to} is full: it holds {why}; nothing was sent, retry once {to} has read its messages"),
    )
}

/// What one `inbox_pull` returns: the oldest unread messages, at most `limit` and
/// `max_pull_bytes` (but at least one), and whether more are waiting.
#[derive(Debug, Default)]
pub(crate) struct Pulled {
    pub messages: Vec<Arc<Message>>,
    pub more: bool,
}

impl Hub {
    /// `message_send` from `from`: resolve recipients (one agent, or every other agent
    /// for a broadcast), then let the sender's actor check, store and forward it.
    pub(crate) async fn send_message(
        &self,
        from: &AgentId,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<Delivered, HubError> {
        self.writable()?;
        self.take_send_token(from, now)?;
        // A logged call runs in a task of its own already, and its group (a
        // task-local) must reach every step.
        if crate::store::group::in_call() {
            return self.send_steps(from, draft, now).await;
        }
        // Counting against the task's budget, sending and giving the count back on a
        // refusal must not stop halfway when the caller goes away (a disconnect,
        // notifications/cancelled): they run as a task of their own.
        let (this, from) = (self.clone(), from.clone());
        actix_rt::spawn(async move { this.send_steps(&from, draft, now).await })
            .await
            .map_err(|e| {
                if e.is_cancelled() {
                    // Shutdown: the runtime dropped the task.
                    HubError::Mailbox(actix::MailboxError::Closed)
                } else {
                    HubError::bug(format!("message_send task panicked: {e}"))
                }
            })?
    }

    /// One `message_send` against the sender's rate (a broadcast counts once). A
    /// refused send takes nothing; an accepted one that is refused later (a
    /// duplicate, a full inbox) still counts: the rate is of attempts.
    fn take_send_token(&self, from: &AgentId, now: DateTime<Utc>) -> Result<(), HubError> {
        let Some(h) = self.inner.dir.agents.get(from) else {
            return Err(DomainError::UnknownAgent(from.to_string()).into());
        };
        // A panic while held cannot leave a bucket half-updated: use it as it is.
        let mut bucket = h.send_bucket.lock().unwrap_or_else(|e| e.into_inner());
        let s = self.settings();
        // The rate in force now (a reload may have changed it; a no-op otherwise).
        bucket.reconfigure(s.send_rate_per_second, s.send_burst);
        bucket.take(now).map_err(|secs| {
            DomainError::RateLimited {
                retry_after_ms: retry_after_ms(secs),
                rate: s.send_rate_per_second,
                burst: s.send_burst,
            }
            .into()
        })
    }

    /// The recipients of a send served here, with their actors, and those whose
    /// shards other nodes serve (spread placement: delivered through the outbox).
    fn recipients(
        &self,
        from: &AgentId,
        draft: &Draft,
    ) -> Result<(Vec<Recipient>, Vec<AgentId>), HubError> {
        let dir = &self.inner.dir;
        if let Some(to) = &draft.to_agent {
            let id = AgentId::new(to);
            if dir.elsewhere.contains_key(&id) {
                return Ok((Vec::new(), vec![id]));
            }
            let addr = self.agent(&id)?;
            return Ok((vec![(id, addr)], Vec::new()));
        }
        let mut here: Vec<Recipient> = dir
            .agents
            .iter()
            .filter(|e| e.key() != from)
            .map(|e| (e.key().clone(), e.addr.clone()))
            .collect();
        here.sort_by(|a, b| a.0.cmp(&b.0));
        let mut elsewhere: Vec<AgentId> = dir
            .elsewhere
            .iter()
            .map(|e| e.key().clone())
            .filter(|id| id != from)
            .collect();
        elsewhere.sort();
        Ok((here, elsewhere))
    }

    async fn send_steps(
        &self,
        from: &AgentId,
        draft: Draft,
        now: DateTime<Utc>,
    ) -> Result<Delivered, HubError> {
        let (recipients, elsewhere) = self.recipients(from, &draft)?;
        if draft.reply_to.is_some() {
            // A reply to a message sent from another node a moment ago: it is in
            // the sender's inbox first (spread placement).
            self.take_outbox_of(from).await?;
        }
        let id = message_id(now.timestamp_millis());
        let size = draft.pull_size(&id, from.as_str(), &iso(now));
        // The inboxes served elsewhere are their owners' to count: as stored
        // (concurrent sends from several nodes may each see the last free place).
        // Before any room here is promised, which an error would leave taken.
        let mut room_elsewhere = Vec::with_capacity(elsewhere.len());
        let mut full_elsewhere = Vec::new();
        for to in elsewhere {
            match self.inbox_full_elsewhere(to.as_str(), size).await? {
                Some(full) if draft.to_agent.is_some() => {
                    return Err(inbox_full(to.as_str(), full).into())
                }
                Some(full) => full_elsewhere.push((to, full)),
                None => room_elsewhere.push(to),
            }
        }
        let elsewhere = room_elsewhere;
        let (recipients, mut skipped) = self.reserve_inboxes(recipients, size);
        if let (Some(to), Some((_, full))) = (&draft.to_agent, skipped.first()) {
            return Err(inbox_full(to, *full).into());
        }
        skipped.append(&mut full_elsewhere);
        skipped.sort_by(|a, b| a.0.cmp(&b.0));
        let ids: Vec<AgentId> = recipients.iter().map(|(id, _)| id.clone()).collect();
        let sent = self
            .count_and_store(from, draft, (recipients, elsewhere.clone()), id, size, now)
            .await;
        if sent.is_err() {
            // Nothing was stored or delivered: the promised room is free again.
            self.release_inboxes(&ids, size);
        }
        let message = self.durable(sent?).await?;
        let mut all = ids;
        all.extend(elsewhere);
        all.sort();
        Ok(Delivered {
            message,
            recipients: all,
            skipped: skipped.into_iter().map(|(id, _)| id).collect(),
        })
    }

    /// Promise room for a message of `bytes` in each recipient's inbox: those with
    /// room, and those without (with the quota it would break). A promise is kept
    /// until the message is read or given back, so concurrent sends never take an
    /// inbox past its quota. No message to the actors: the gauges are shared.
    fn reserve_inboxes(
        &self,
        recipients: Vec<Recipient>,
        bytes: usize,
    ) -> (Vec<Recipient>, Vec<(AgentId, Full)>) {
        let s = self.settings();
        let limits = InboxLimits {
            max_messages: s.max_inbox_messages,
            max_bytes: s.max_inbox_bytes,
        };
        let mut room = Vec::with_capacity(recipients.len());
        let mut full = Vec::new();
        for (id, addr) in recipients {
            let promised = match self.inner.dir.agents.get(&id) {
                Some(h) => h.inbox.reserve(bytes, limits),
                // Not an agent of this hub any more: nothing promised, nothing to deliver to.
                None => Err(Full::Messages(0)),
            };
            match promised {
                Ok(()) => room.push((id, addr)),
                Err(f) => full.push((id, f)),
            }
        }
        (room, full)
    }

    /// Whether the inbox of `to`, served by another node, has no room for a
    /// message of `bytes` (what is stored, delivered or in the outbox, counted).
    async fn inbox_full_elsewhere(&self, to: &str, bytes: usize) -> Result<Option<Full>, HubError> {
        let s = self.settings();
        let (n, used) = self.inner.store.inbox_size(to).await?;
        let (n, used) = (n as usize, used as usize);
        Ok(if n >= s.max_inbox_messages {
            Some(Full::Messages(n))
        } else if used + bytes > s.max_inbox_bytes {
            Some(Full::Bytes(used))
        } else {
            None
        })
    }

    /// Give back the room promised to `recipients` for a send that was not stored.
    fn release_inboxes(&self, recipients: &[AgentId], bytes: usize) {
        for id in recipients {
            if let Some(h) = self.inner.dir.agents.get(id) {
                h.inbox.release(1, bytes);
            }
        }
    }

    /// Count the message against its task's budget (if it has a round), then store
    /// and deliver it; refusals give the count back. Returns the stored message and
    /// its ticket; an error means nothing was stored.
    async fn count_and_store(
        &self,
        from: &AgentId,
        draft: Draft,
        recipients: (Vec<Recipient>, Vec<AgentId>),
        id: String,
        reserved: usize,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Message>, Ticket), HubError> {
        let mut checked = None;
        // A message about a round counts against its task's max_messages_per_task;
        // the count is given back if the send is then refused (e.g. a duplicate).
        let counted = match &draft.round_id {
            Some(round) => {
                let task = self.task_of_round(round).await?;
                checked = self.check_draft(from, &draft).await?;
                if self.owns(&task) {
                    let count = CountMessage {
                        step: CountStep::Count,
                        sender: from.clone(),
                    };
                    // Not waited for: the message's own commit, queued after it, covers it.
                    self.to_task(&task, count).await?;
                } else {
                    // Spread placement: at the task's owner, stored before the send.
                    self.count_elsewhere(&task, from, CountStep::Count).await?;
                }
                Some(task)
            }
            // A logged call reads the sender's stored rows before its group opens
            // (reads inside it do not wait for what was queued before it).
            None if crate::store::group::in_call() => {
                checked = self.check_draft(from, &draft).await?;
                None
            }
            None => None,
        };
        let sent = self
            .store_message(from, draft, recipients, (id, reserved), now, checked)
            .await;
        match (&sent, &counted) {
            (Ok(_), Some(task)) if !self.owns(task) => {
                self.tell_elsewhere(task, from, CountStep::Stored);
            }
            (Err(_), Some(task)) if !self.owns(task) => {
                // Best effort: a slot not given back only tightens the budget.
                let _ = self.count_elsewhere(task, from, CountStep::Undo).await;
            }
            // Nothing to wait for: the task only learns the message is in flight no more.
            (Ok(_), Some(task)) => {
                if let Some(a) = self.inner.task_env.tasks.get(task) {
                    a.do_send(CountMessage {
                        step: CountStep::Stored,
                        sender: from.clone(),
                    });
                }
            }
            (Err(_), Some(task)) => {
                let undo = CountMessage {
                    step: CountStep::Undo,
                    sender: from.clone(),
                };
                let _ = self.on_task(task, undo).await;
            }
            _ => {}
        }
        sent
    }

    /// The sender's checks of a draft, with the stored rows when its recent keys
    /// cannot decide; returns those rows for the send that follows.
    async fn check_draft(&self, from: &AgentId, draft: &Draft) -> Result<Option<Stored>, HubError> {
        let addr = self.agent(from)?;
        let mut stored = None;
        for _ in 0..LOOKUP_ATTEMPTS {
            let check = CheckDraft {
                draft: draft.clone(),
                stored: stored.clone(),
            };
            match addr.send(check).await?? {
                SendCheck::Clear => return Ok(stored),
                SendCheck::LookUp(q) => stored = Some(self.look_up_send(from, q).await?),
            }
        }
        Err(HubError::bug(
            "message_send checks kept asking for stored rows",
        ))
    }

    /// The sender's actor checks, stores and forwards the message, asking for stored
    /// rows when it needs them.
    async fn store_message(
        &self,
        from: &AgentId,
        draft: Draft,
        (recipients, elsewhere): (Vec<Recipient>, Vec<AgentId>),
        (id, reserved): (String, usize),
        now: DateTime<Utc>,
        checked: Option<Stored>,
    ) -> Result<(Arc<Message>, Ticket), HubError> {
        let addr = self.agent(from)?;
        // A logged call's group opens before the message is written (a no-op
        // elsewhere, or when the round's count opened it).
        crate::store::group::before_write(&self.inner.store).await;
        let mut send = SendMessage {
            id,
            draft,
            recipients,
            elsewhere: elsewhere.iter().map(|a| a.to_string()).collect(),
            at: now,
            stored: checked,
            reserved,
        };
        for _ in 0..LOOKUP_ATTEMPTS {
            match addr.send(send).await?? {
                Sent::Stored(m, ticket) => return Ok((m, ticket)),
                // Inside a logged call's group a read would not see what was queued
                // before the group (nothing there waits for the writer): the rows read
                // before it went stale (the sender's recent keys moved on since), so
                // the call is refused, not logged, and the client tries again.
                Sent::LookUp(..) if crate::store::group::in_group() => {
                    return Err(crate::store::StoreError::Refusing(
                        "the sender's history changed while this send was being stored; retry"
                            .into(),
                    )
                    .into());
                }
                Sent::LookUp(q, back) => {
                    send = *back;
                    send.stored = Some(self.look_up_send(from, q).await?);
                }
            }
        }
        Err(HubError::bug("message_send kept asking for stored rows"))
    }

    /// Answer a [`SendQuery`] from the store, after every queued write is committed.
    async fn look_up_send(&self, from: &AgentId, q: SendQuery) -> Result<Stored, HubError> {
        Ok(self.inner.store.send_history(from.as_str(), q).await?)
    }

    /// `inbox_pull`: up to `limit` unread messages, waiting up to `wait` for one.
    pub(crate) async fn pull(
        &self,
        agent: &AgentId,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Pulled, HubError> {
        let addr = self.agent(agent)?;
        self.take_outbox_of(agent).await?;
        // One more than asked: whether more are waiting.
        let ask = Pull {
            limit: limit + 1,
            wait,
        };
        let mut list = match addr.send(ask).await? {
            PullReply::Ready(v) => v,
            // The actor answers every waiter by its deadline; a dropped sender means
            // the actor stopped (shutdown, or a rebuild after a storage fault): the
            // caller is told to retry rather than shown an empty inbox.
            PullReply::Wait(rx) => rx
                .await
                .map_err(|_| HubError::Mailbox(actix::MailboxError::Closed))?,
        };
        let mut more = list.len() > limit;
        list.truncate(limit);
        if list.is_empty() {
            return Ok(Pulled::default());
        }
        // Show only messages already on disk.
        self.settled().await?;
        let on_disk: Vec<String> = list
            .iter()
            .filter_map(|u| match u {
                Unread::OnDisk(id) => Some(id.clone()),
                Unread::Held(_) => None,
            })
            .collect();
        let mut rows = if on_disk.is_empty() {
            Default::default()
        } else {
            self.inner.store.messages_by_id(on_disk).await?
        };
        let mut out = Vec::with_capacity(list.len());
        let mut read_back = Vec::new();
        for u in list {
            match u {
                Unread::Held(m) => out.push(m),
                Unread::OnDisk(id) => match rows.remove(&id) {
                    Some(m) => {
                        let m = Arc::new(m);
                        read_back.push(m.clone());
                        out.push(m);
                    }
                    None => {
                        HubError::bug(format!("unread message {id} has no stored row"));
                    }
                },
            }
        }
        if !read_back.is_empty() {
            addr.do_send(Hold(read_back));
        }
        let budget = self.settings().max_pull_bytes;
        let fit = fit_in(out.iter().map(|m| m.pull_size()), budget);
        if fit < out.len() {
            out.truncate(fit);
            more = true;
        }
        Ok(Pulled {
            messages: out,
            more,
        })
    }

    /// `message_ack`: returns the ids that were unread until now.
    pub(crate) async fn ack(
        &self,
        agent: &AgentId,
        ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, HubError> {
        self.writable()?;
        let addr = self.agent(agent)?;
        self.take_outbox_of(agent).await?;
        let mut stored = None;
        for _ in 0..LOOKUP_ATTEMPTS {
            let ack = Ack {
                ids: ids.clone(),
                at: now,
                stored: stored.take(),
            };
            match addr.send(ack).await?? {
                Acked::Done(newly, ticket) => return self.durable((newly, ticket)).await,
                Acked::LookUp { since, ids } => {
                    let asked = ids.clone();
                    let received = self.inner.store.received_of(agent.as_str(), ids).await?;
                    stored = Some(StoredAck {
                        since,
                        asked,
                        received,
                    });
                }
            }
        }
        Err(HubError::bug("message_ack kept asking for stored rows"))
    }
}
