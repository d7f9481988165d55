//! One agent's inbox and the message keys it may refer to. The unread queue lives in
//! memory (arrival order), but only the oldest unread messages, up to [`HELD_BYTES`],
//! keep their bodies there (pulls take the oldest first): later ones are ids whose
//! rows the caller reads from SQLite when they are pulled ([`Unread::OnDisk`]). Of the ids it sent or received and the dedupe
//! keys it used, only the most recent [`RECENT_KEYS`] of each are kept, so memory
//! grows neither with history nor with the bytes of a backlog. A check those cannot answer returns a query for the stored rows; the
//! caller runs it on SQLite and brings the answer back ([`Stored`], [`StoredAck`]).
//!
//! Why an answer from storage is exact: the caller reads SQLite only after every
//! write queued before the query was committed, and everything this inbox recorded
//! after the query is still in its caches unless an eviction happened since, which
//! the query's `since` detects (then it is asked again).
//!
//! The operator's purge ([`purge`]) removes deliveries by sender, so each unread id
//! and recently received id keeps its sender (one shared `Arc<str>` per sender).

use super::error::DomainError;
use super::message::{Draft, Message};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Recent ids sent, ids received and dedupe keys kept per agent (each).
pub(crate) const RECENT_KEYS: usize = 256;

/// Bytes of unread messages per agent kept in memory (bodies, subjects and a fixed
/// cost per message); older ones are read back from SQLite when pulled.
pub(crate) const HELD_BYTES: usize = 512 * 1024;

/// What holding `m` in memory costs against [`HELD_BYTES`].
fn cost(m: &Message) -> usize {
    m.body.len() + m.subject.len() + 256
}

/// The per-agent inbox quota: unread messages, and their bytes as
/// [`Message::pull_size`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboxLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for InboxLimits {
    fn default() -> Self {
        InboxLimits {
            max_messages: usize::MAX,
            max_bytes: usize::MAX,
        }
    }
}

/// Which quota a message would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Messages(usize),
    Bytes(usize),
}

/// Unread plus promised messages of one inbox, and their bytes: shared by the hub,
/// which promises room before it stores a send, and the agent's actor, which gives
/// room back as messages are read. Atomics rather than a message to the actor: the
/// check costs a send nothing. Each count is held within its quota on its own (a
/// promise that breaks either is taken back), so neither ever passes it through
/// promises; hub notices, added without a promise, may.
#[derive(Debug, Default)]
pub(crate) struct InboxGauge {
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

impl InboxGauge {
    /// Promise room for one message of `bytes`, or say which quota it would break.
    pub(crate) fn reserve(&self, bytes: usize, limits: InboxLimits) -> Result<(), Full> {
        if self.messages.fetch_add(1, Ordering::AcqRel) >= limits.max_messages {
            self.messages.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Messages(limits.max_messages));
        }
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > limits.max_bytes {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.messages.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Bytes(limits.max_bytes));
        }
        Ok(())
    }

    /// Count messages that arrived without a promise (hub notices, start-up).
    pub(crate) fn add(&self, messages: usize, bytes: usize) {
        self.messages.fetch_add(messages, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Give room back: messages read, or a promise whose send was not stored.
    pub(crate) fn release(&self, messages: usize, bytes: usize) {
        let sub = |a: &AtomicUsize, n: usize| {
            let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.messages, messages);
        sub(&self.bytes, bytes);
    }

    /// Messages counted now (unread plus promised).
    pub(crate) fn unread(&self) -> usize {
        self.messages.load(Ordering::Relaxed)
    }

    /// (messages, bytes) counted now.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.messages.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }
}

/// An unread message: held in memory, or only its id (its row is on disk).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Unread {
    Held(Arc<Message>),
    OnDisk(String),
}

impl Unread {
    #[cfg(test)]
    pub(crate) fn id(&self) -> &str {
        match self {
            Unread::Held(m) => &m.id,
            Unread::OnDisk(id) => id,
        }
    }
}

/// The newest `cap` keys with a value each; every insertion has a sequence number.
#[derive(Debug)]
struct Recent<V> {
    cap: usize,
    map: HashMap<String, (u64, V)>,
    order: VecDeque<(u64, String)>,
}

impl<V> Recent<V> {
    fn new(cap: usize) -> Self {
        Recent {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    /// Insert `key`; returns the sequence number of an entry evicted to make room.
    fn insert(&mut self, key: String, seq: u64, v: V) -> Option<u64> {
        self.map.insert(key.clone(), (seq, v));
        self.order.push_back((seq, key));
        if self.order.len() <= self.cap {
            return None;
        }
        let (old, key) = self.order.pop_front()?;
        if self.map.get(&key).is_some_and(|(s, _)| *s == old) {
            self.map.remove(&key);
        }
        Some(old)
    }
}

/// What the stored rows say about a send the caches could not check. It answers
/// only what its query asked: a key that was in a cache then, and is not any more,
/// is asked again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub query: SendQuery,
    /// The id of the message the sender already sent with the asked dedupe key.
    pub dedupe_original: Option<String>,
    /// Whether the sender sent or received the asked `reply_to` message.
    pub reply_seen: bool,
}

/// The stored rows a send needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendQuery {
    pub since: u64,
    pub dedupe_key: Option<String>,
    pub reply_to: Option<String>,
}

/// A send's checks: passed, or waiting for stored rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SendCheck {
    Clear,
    LookUp(SendQuery),
}

/// Which of the `asked` ids the agent received, per the stored rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredAck {
    pub since: u64,
    pub asked: Vec<String>,
    pub received: HashSet<String>,
}

/// An ack: done (the ids that were unread until now), or waiting for stored rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AckCheck {
    Done(Vec<String>),
    LookUp { since: u64, ids: Vec<String> },
}

/// Why an ack was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckRefusal {
    NotFound(String),
}

#[derive(Debug)]
pub(crate) struct Inbox {
    /// Arrival number → message; only unread ones.
    unread: BTreeMap<u64, Unread>,
    /// What the unread messages held with their bodies cost, and their arrival
    /// numbers (to find the latest held ones quickly).
    held_bytes: usize,
    held: BTreeSet<u64>,
    /// Message id → arrival number, size ([`Message::pull_size`]) and sender, for
    /// acks and purges.
    unread_index: HashMap<String, Pending>,
    /// Sum of the sizes of the unread messages.
    unread_bytes: usize,
    next_arrival: u64,
    /// Recently received (read or not) ids → sender, sent ids, and dedupe keys →
    /// first id.
    received: Recent<Arc<str>>,
    sent: Recent<()>,
    dedupe: Recent<String>,
    /// Sequence number of the next insertion into any of the three (from 1).
    next_seq: u64,
    /// Highest sequence number evicted so far (0: none).
    evicted_upto: u64,
    /// One copy of each sender's id, shared by its unread and received entries.
    senders: HashSet<Arc<str>>,
    /// What the operator purged, for deliveries still on their way ([`purge`]).
    purged: purge::Floors,
}

/// An unread message's place, size and sender.
#[derive(Debug)]
struct Pending {
    arrival: u64,
    size: usize,
    from: Arc<str>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::with_capacity(RECENT_KEYS)
    }
}

impl Inbox {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Inbox {
            unread: BTreeMap::new(),
            held_bytes: 0,
            held: BTreeSet::new(),
            unread_index: HashMap::new(),
            unread_bytes: 0,
            next_arrival: 0,
            received: Recent::new(cap),
            sent: Recent::new(cap),
            dedupe: Recent::new(cap),
            next_seq: 1,
            evicted_upto: 0,
            senders: HashSet::new(),
            purged: purge::Floors::default(),
        }
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The shared copy of sender id `from`.
    fn sender(&mut self, from: &str) -> Arc<str> {
        if let Some(s) = self.senders.get(from) {
            return s.clone();
        }
        let s: Arc<str> = Arc::from(from);
        self.senders.insert(s.clone());
        s
    }

    fn evicted(&mut self, e: Option<u64>) {
        if let Some(s) = e {
            self.evicted_upto = self.evicted_upto.max(s);
        }
    }

    /// Whether an answer to a query made at `since` still holds: nothing recorded
    /// after it has been evicted.
    fn fresh(&self, since: u64) -> bool {
        self.evicted_upto < since
    }

    /// A message arrives (in arrival order); a second copy is ignored. It keeps its
    /// body in memory while the unread ones held fit in [`HELD_BYTES`]; past that,
    /// only its id (its row is on disk, and pulls reach it last).
    /// Whether message `id` was delivered here already (unread, or read and
    /// still remembered).
    pub(crate) fn has(&self, id: &str) -> bool {
        self.unread_index.contains_key(id) || self.received.get(id).is_some()
    }

    pub(crate) fn deliver(&mut self, m: Arc<Message>) {
        if self.has(&m.id) {
            return;
        }
        let seq = self.seq();
        let from = self.sender(&m.from_agent);
        let e = self.received.insert(m.id.clone(), seq, from.clone());
        self.evicted(e);
        let c = cost(&m);
        let size = m.pull_size();
        if self.held_bytes + c <= HELD_BYTES {
            self.held_bytes += c;
            let n = self.arrive(m.id.clone(), Unread::Held(m), size, from);
            self.held.insert(n);
        } else {
            self.arrive(m.id.clone(), Unread::OnDisk(m.id.clone()), size, from);
        }
    }

    /// Rows of unread messages just read back from disk for a pull: held in memory
    /// again, in place of later held ones if need be (the oldest are pulled first),
    /// so that pulling the same backlog again before acking it does not read it again.
    pub(crate) fn hold(&mut self, rows: &[Arc<Message>]) {
        for m in rows {
            let Some(n) = self.unread_index.get(&m.id).map(|p| p.arrival) else {
                continue;
            };
            if !matches!(self.unread.get(&n), Some(Unread::OnDisk(_))) {
                continue;
            }
            let c = cost(m);
            let later: u64 = self
                .held
                .range(n + 1..)
                .filter_map(|k| match self.unread.get(k) {
                    Some(Unread::Held(h)) => Some(cost(h) as u64),
                    _ => None,
                })
                .sum();
            // Only if it fits once every later held message made room.
            if self.held_bytes + c > HELD_BYTES + later as usize {
                continue;
            }
            while self.held_bytes + c > HELD_BYTES {
                let Some(&last) = self.held.range(n + 1..).next_back() else {
                    break;
                };
                self.held.remove(&last);
                if let Some(u) = self.unread.get_mut(&last) {
                    if let Unread::Held(h) = u {
                        self.held_bytes -= cost(h);
                        *u = Unread::OnDisk(h.id.clone());
                    }
                }
            }
            if let Some(u) = self.unread.get_mut(&n) {
                *u = Unread::Held(m.clone());
                self.held_bytes += c;
                self.held.insert(n);
            }
        }
    }

    /// An unread message known only by its id, size and sender (start-up: bodies
    /// stay on disk).
    pub(crate) fn deliver_stored(&mut self, id: String, size: usize, from: &str) {
        if !self.unread_index.contains_key(&id) {
            let from = self.sender(from);
            self.arrive(id.clone(), Unread::OnDisk(id), size, from);
        }
    }

    fn arrive(&mut self, id: String, u: Unread, size: usize, from: Arc<str>) -> u64 {
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.unread_bytes += size;
        let p = Pending {
            arrival,
            size,
            from,
        };
        self.unread_index.insert(id, p);
        self.unread.insert(arrival, u);
        arrival
    }

    /// This agent sent message `id` (with `dedupe_key`).
    pub(crate) fn record_sent(&mut self, id: &str, dedupe_key: Option<&str>) {
        let seq = self.seq();
        let e = self.sent.insert(id.to_string(), seq, ());
        self.evicted(e);
        if let Some(k) = dedupe_key {
            let e = self.dedupe.insert(k.to_string(), seq, id.to_string());
            self.evicted(e);
        }
    }

    fn knows(&self, id: &str) -> bool {
        self.unread_index.contains_key(id)
            || self.received.get(id).is_some()
            || self.sent.get(id).is_some()
    }

    /// The sender-side rules of `message_send`: the dedupe key is not used yet, and
    /// `reply_to` is a message this agent sent or received. `stored` is the answer
    /// to an earlier [`SendCheck::LookUp`].
    pub(crate) fn check_send(
        &self,
        d: &Draft,
        stored: Option<&Stored>,
    ) -> Result<SendCheck, DomainError> {
        let stored = stored.filter(|s| self.fresh(s.query.since));
        let mut query = SendQuery {
            since: self.next_seq,
            dedupe_key: None,
            reply_to: None,
        };
        if let Some(key) = &d.dedupe_key {
            let answered = stored.filter(|s| s.query.dedupe_key.as_ref() == Some(key));
            let original = self
                .dedupe
                .get(key)
                .cloned()
                .or_else(|| answered.and_then(|s| s.dedupe_original.clone()));
            if let Some(original) = original {
                return Err(DomainError::DuplicateMessage {
                    message_id: original,
                    dedupe_key: key.clone(),
                });
            }
            if answered.is_none() {
                query.dedupe_key = Some(key.clone());
            }
        }
        if let Some(r) = d.reply_to.as_ref().filter(|r| !self.knows(r)) {
            match stored.filter(|s| s.query.reply_to.as_ref() == Some(r)) {
                Some(s) if !s.reply_seen => return Err(DomainError::ReplyToNotFound(r.clone())),
                Some(_) => {}
                None => query.reply_to = Some(r.clone()),
            }
        }
        if query.dedupe_key.is_some() || query.reply_to.is_some() {
            return Ok(SendCheck::LookUp(query));
        }
        Ok(SendCheck::Clear)
    }

    /// The oldest `limit` unread messages; they stay unread until acked.
    pub(crate) fn peek(&self, limit: usize) -> Vec<Unread> {
        self.unread.values().take(limit).cloned().collect()
    }

    /// Bytes of the unread messages, as [`Message::pull_size`] counts them.
    pub(crate) fn unread_bytes(&self) -> usize {
        self.unread_bytes
    }

    /// How many messages are unread.
    pub(crate) fn unread_count(&self) -> usize {
        self.unread.len()
    }

    /// Mark `ids` read, all or nothing. Done: the ids that were unread until now
    /// (acking an already read message of one's own is accepted and changes
    /// nothing). Ids the caches do not know need the stored rows (`stored`).
    pub(crate) fn ack(
        &mut self,
        ids: &[String],
        stored: Option<&StoredAck>,
    ) -> Result<AckCheck, AckRefusal> {
        let stored = stored.filter(|s| self.fresh(s.since));
        let mut unknown = Vec::new();
        let received =
            |id: &String| self.unread_index.contains_key(id) || self.received.get(id).is_some();
        for id in ids.iter().filter(|id| !received(id)) {
            match stored.filter(|s| s.asked.contains(id)) {
                Some(s) if s.received.contains(id) => {}
                Some(_) => return Err(AckRefusal::NotFound(id.clone())),
                None => unknown.push(id.clone()),
            }
        }
        if !unknown.is_empty() {
            return Ok(AckCheck::LookUp {
                since: self.next_seq,
                ids: unknown,
            });
        }
        let mut newly = Vec::new();
        for id in ids {
            if let Some(p) = self.unread_index.remove(id) {
                self.forget(&p);
                newly.push(id.clone());
            }
        }
        self.shrink();
        Ok(AckCheck::Done(newly))
    }

    /// Take the unread message `p` (already out of the index) out of the queue.
    fn forget(&mut self, p: &Pending) {
        self.unread_bytes -= p.size;
        if let Some(Unread::Held(m)) = self.unread.remove(&p.arrival) {
            self.held_bytes -= cost(&m);
            self.held.remove(&p.arrival);
        }
    }

    /// A drained backlog gives its table's memory back.
    fn shrink(&mut self) {
        if self.unread.len() < self.unread_index.capacity() / 4 {
            self.unread_index.shrink_to_fit();
        }
    }
}

mod purge;
#[cfg(test)]
mod tests;
