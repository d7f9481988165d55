//! MCP sessions: transport bookkeeping only (negotiated version, owning agent, the
//! open GET stream, last activity). No domain state hangs off a session, so losing
//! one loses nothing, and a stateless protocol revision can skip them entirely.

use super::jsonrpc::Id;
use super::listen::Listeners;
use super::protocol::Version;
use super::session_id::Signer;
use crate::domain::ids::{hex, random_hex};
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Notifications that may wait on a GET stream whose client stopped reading.
pub(crate) const STREAM_BUFFER: usize = 256;

pub(crate) struct Session {
    pub id: String,
    pub agent: AgentId,
    pub version: Version,
    /// A signed id's hash and end of life (Unix seconds): refused after it however
    /// busy, and once ended at any node. `None` for an id of this process only.
    signed: Option<Revocation>,
    /// Millis since [`Sessions::epoch`] of the last request on this session.
    last_active_ms: AtomicU64,
    /// Sender feeding the session's GET SSE stream, if one is open. The receiving end
    /// lives in that stream's response body; it drops when the client disconnects.
    stream: Mutex<Option<mpsc::Sender<String>>>,
    /// Requests in flight ([`Id::key`]) → (registration number, the
    /// switch that cancels it), for `notifications/cancelled`. Entries are removed by
    /// the [`InFlight`] guard, also when the HTTP request is dropped midway.
    inflight: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
    next_inflight: AtomicU64,
}

/// A request registered as in flight; dropping it unregisters it.
pub(crate) struct InFlight {
    session: Arc<Session>,
    key: String,
    number: u64,
    /// Fires when the client cancels the request.
    pub cancelled: oneshot::Receiver<()>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = self
            .session
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A later request reusing the id owns the entry now: leave it alone.
        if map.get(&self.key).is_some_and(|(n, _)| *n == self.number) {
            map.remove(&self.key);
        }
    }
}

impl Session {
    fn stream_open(&self) -> bool {
        self.stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Attach a new GET stream; `None` when one is already open (the caller answers 409).
    pub(crate) fn open_stream(&self) -> Option<mpsc::Receiver<String>> {
        let mut guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        *guard = Some(tx);
        Some(rx)
    }

    /// Send one JSON-RPC message on the GET stream; false when none is open, or when
    /// the client stopped reading and [`STREAM_BUFFER`] messages wait already (they
    /// are hints: the inbox itself loses nothing).
    pub(crate) fn push(&self, message: String) -> bool {
        let guard = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref().map(|tx| tx.try_send(message)) {
            Some(Ok(())) => true,
            Some(Err(mpsc::error::TrySendError::Full(_))) => {
                static DROPPED: LogLimit = LogLimit::new(10_000);
                if let Some(n) = DROPPED.hit() {
                    tracing::warn!(agent = %self.agent, dropped = n, "GET streams not read; notifications dropped (one line per 10 s at most)");
                }
                false
            }
            _ => false,
        }
    }

    /// Register request `id` as in flight until the returned guard is dropped.
    pub(crate) fn track(self: &Arc<Self>, id: &Id) -> InFlight {
        let (tx, rx) = oneshot::channel();
        let key = id.key();
        let number = self.next_inflight.fetch_add(1, Ordering::Relaxed);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (number, tx));
        InFlight {
            session: self.clone(),
            key,
            number,
            cancelled: rx,
        }
    }

    /// `notifications/cancelled`: stop request `id` if it is still running. Unknown
    /// or finished ids are ignored, as the spec asks.
    pub(crate) fn cancel(&self, id: &Id) -> bool {
        let tx = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id.key());
        tx.is_some_and(|(_, tx)| tx.send(()).is_ok())
    }

    pub(crate) fn close_stream(&self) {
        self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// What every node must remember once this session is ended by DELETE (a
    /// signed id, which would check still), `None` for an id of this process only.
    pub(crate) fn revocation(&self) -> Option<Revocation> {
        self.signed.clone()
    }
}

/// A signed session id ended by DELETE, as nodes remember it: the first 16 bytes
/// of SHA-256 of the id (hex), so that a stored list gives nobody a usable id, and
/// when the id would expire anyway (Unix seconds), after which it is forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub id_hash: String,
    pub until: u64,
}

fn revocation_key(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes())[..16])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionNotFound;

pub(crate) struct Sessions {
    map: DashMap<String, Arc<Session>>,
    /// The same sessions by agent: the cap check and a push look at one agent's few
    /// sessions instead of scanning every session of the hub per message. Lock order:
    /// an entry here, then `map`, never the other way round.
    by_agent: DashMap<AgentId, Vec<Arc<Session>>>,
    /// The 2026-07-28 listen streams, the sessionless counterpart of GET streams:
    /// here so that inbox pushes and `close_agent` reach both.
    pub listeners: Arc<Listeners>,
    idle: Duration,
    max_per_agent: usize,
    epoch: Instant,
    /// Cluster mode: ids signed with the cluster key, taken back on any node.
    signer: Option<Signer>,
    /// Signed ids ended by DELETE (they would check still), by [`Revocation`]'s
    /// hash, with when they would expire anyway (Unix seconds): here or, in
    /// cluster mode, at any node (`http::revoked`). At most [`MAX_REVOKED`].
    revoked: DashMap<String, u64>,
}

/// Ended signed ids remembered at once; beyond, an ended id of an agent that ends
/// sessions faster than they expire may be taken back if its client sends it again,
/// which gives that client nothing its token does not.
const MAX_REVOKED: usize = 100_000;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    pub(crate) fn new(idle: Duration, max_per_agent: usize) -> Self {
        Sessions {
            map: DashMap::new(),
            by_agent: DashMap::new(),
            listeners: Arc::new(Listeners::default()),
            idle,
            max_per_agent: max_per_agent.max(1),
            epoch: Instant::now(),
            signer: None,
            revoked: DashMap::new(),
        }
    }

    /// Sign session ids with the cluster key (see [`super::session_id`]): a
    /// session's id stays valid for [`super::session_id::LIFETIME`] on every node
    /// holding the key, and is taken back when used after its session left memory
    /// (idle, evicted by the cap, or held by a node that has since stopped).
    pub(crate) fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn expired(&self, s: &Session, now_ms: u64) -> bool {
        let idle_ms = now_ms.saturating_sub(s.last_active_ms.load(Ordering::Relaxed));
        // A session whose client keeps a GET stream open is in use even when it sends
        // nothing.
        idle_ms > self.idle.as_millis() as u64 && !s.stream_open()
    }

    /// A new session for `agent`. When the agent is at its cap, its least recently
    /// used session is dropped: clients that never DELETE must not lock an agent out.
    pub(crate) fn create(&self, agent: AgentId, version: Version) -> Arc<Session> {
        let (id, signed) = match &self.signer {
            Some(signer) => {
                let now = unix_now();
                let id = signer.issue(&agent, version, now);
                let signed = Revocation {
                    id_hash: revocation_key(&id),
                    until: now + super::session_id::LIFETIME.as_secs(),
                };
                (id, Some(signed))
            }
            // 256 bits from the OS CSPRNG: unguessable, visible ASCII only.
            None => (random_hex(32), None),
        };
        self.insert(id, agent, version, signed)
    }

    /// A session of `agent` with `id` in both maps, under the agent's cap.
    fn insert(
        &self,
        id: String,
        agent: AgentId,
        version: Version,
        signed: Option<Revocation>,
    ) -> Arc<Session> {
        let now = self.now_ms();
        let session = Arc::new(Session {
            id,
            signed,
            agent: agent.clone(),
            version,
            last_active_ms: AtomicU64::new(now),
            stream: Mutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            next_inflight: AtomicU64::new(0),
        });
        // The agent's entry stays locked until the new session is in both maps, so
        // two concurrent creates cannot both slip under the cap.
        let mut mine = self.by_agent.entry(agent).or_default();
        if mine.len() >= self.max_per_agent {
            let oldest = mine
                .iter()
                .enumerate()
                // A session holding a GET stream is in use even if it sends nothing:
                // sessions without one go first.
                .min_by_key(|(_, s)| (s.stream_open(), s.last_active_ms.load(Ordering::Relaxed)))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                let old = mine.swap_remove(i);
                self.map.remove(&old.id);
                old.close_stream();
                tracing::info!(agent = %old.agent, "session cap reached; dropped least recently used session");
            }
        }
        mine.push(session.clone());
        self.map.insert(session.id.clone(), session.clone());
        session
    }

    /// Take `session` out of the per-agent index (it left `map` already).
    fn unindex(&self, session: &Session) {
        if let Some(mut mine) = self.by_agent.get_mut(&session.agent) {
            mine.retain(|s| s.id != session.id);
        }
        self.by_agent
            .remove_if(&session.agent, |_, mine| mine.is_empty());
    }

    /// The live session `id` of `agent`, marked active. Another agent's session is
    /// reported exactly like an unknown one, so ids cannot be probed.
    pub(crate) fn get(&self, id: &str, agent: &AgentId) -> Result<Arc<Session>, SessionNotFound> {
        let now = self.now_ms();
        let Some(s) = self.map.get(id).map(|e| e.clone()) else {
            return self.take_back(id, agent);
        };
        if &s.agent != agent {
            return Err(SessionNotFound);
        }
        // Expired, or ended at another node while this one held it in memory (it
        // stood by meanwhile, and serves again).
        let over = s
            .signed
            .as_ref()
            .is_some_and(|r| unix_now() > r.until || self.revoked.contains_key(&r.id_hash));
        if over {
            self.map.remove(id);
            self.unindex(&s);
            s.close_stream();
            return Err(SessionNotFound);
        }
        if self.expired(&s, now) {
            self.map.remove(id);
            self.unindex(&s);
            // Idle expiry frees memory; a signed id is valid still.
            return self.take_back(id, agent);
        }
        s.last_active_ms.store(now, Ordering::Relaxed);
        Ok(s)
    }

    /// A signed id of `agent` not in memory: its session again, if the id checks
    /// and was not ended.
    fn take_back(&self, id: &str, agent: &AgentId) -> Result<Arc<Session>, SessionNotFound> {
        let signer = self.signer.as_ref().ok_or(SessionNotFound)?;
        let id_hash = revocation_key(id);
        if self.revoked.contains_key(&id_hash) {
            return Err(SessionNotFound);
        }
        let claims = signer.check(id, agent, unix_now()).ok_or(SessionNotFound)?;
        static TAKEN: LogLimit = LogLimit::new(1000);
        if let Some(n) = TAKEN.hit() {
            tracing::info!(agent = %agent, sessions = n, "signed session taken back");
        }
        let signed = Revocation {
            id_hash,
            until: claims.issued_at + super::session_id::LIFETIME.as_secs(),
        };
        Ok(self.insert(id.to_string(), agent.clone(), claims.version, Some(signed)))
    }

    /// End session `id` of `agent` (DELETE).
    pub(crate) fn remove(&self, id: &str, agent: &AgentId) -> Result<(), SessionNotFound> {
        let s = self.get(id, agent)?;
        // Remembered before it leaves memory: a request racing this one must not
        // take it back in between.
        if let Some(r) = s.revocation() {
            self.learn_revoked(r);
        }
        self.map.remove(&s.id);
        self.unindex(&s);
        s.close_stream();
        Ok(())
    }

    /// Remember an ended signed id (ended here, or at another node of the
    /// cluster): it is never taken back. Full, or expired already: not remembered
    /// (the full map is pruned by the sweep).
    pub(crate) fn learn_revoked(&self, r: Revocation) {
        if r.until >= unix_now() && self.remembers_more() {
            self.revoked.insert(r.id_hash, r.until);
        }
    }

    /// Whether one more ended id would be remembered ([`MAX_REVOKED`]): beyond,
    /// an ended id is not stored for other nodes either, so that a client ending
    /// sessions in a loop cannot grow the table without bound.
    pub(crate) fn remembers_more(&self) -> bool {
        self.revoked.len() < MAX_REVOKED
    }

    /// Forget ended ids that have expired anyway.
    fn prune_revoked(&self) {
        let now = unix_now();
        self.revoked.retain(|_, until| *until >= now);
    }

    /// Drop expired sessions; called periodically so memory follows live clients.
    pub(crate) fn sweep(&self) -> usize {
        self.prune_revoked();
        let now = self.now_ms();
        let mut dropped = 0;
        self.by_agent.retain(|_, mine| {
            mine.retain(|s| {
                let keep = !self.expired(s, now);
                if !keep {
                    self.map.remove(&s.id);
                    s.close_stream();
                    dropped += 1;
                }
                keep
            });
            !mine.is_empty()
        });
        dropped
    }

    /// Sessions with an open GET stream (one short lock per session: for scrapes).
    pub(crate) fn streams(&self) -> usize {
        self.map.iter().filter(|e| e.stream_open()).count()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// End every session of `agent` and its GET stream, and its listen streams (its
    /// token was removed or rotated); returns how many sessions were open.
    pub(crate) fn close_agent(&self, agent: &AgentId) -> usize {
        self.listeners.close_agent(agent);
        let Some((_, mine)) = self.by_agent.remove(agent) else {
            return 0;
        };
        for s in &mine {
            self.map.remove(&s.id);
            s.close_stream();
        }
        mine.len()
    }

    /// End every open GET stream and listen stream (cluster mode: this node no
    /// longer serves, so nothing would reach them any more); the sessions stay.
    /// Their clients, or the gateways relaying them, open them again at the node
    /// serving now. Returns how many GET streams were open.
    pub(crate) fn end_streams(&self) -> usize {
        self.listeners.close_all();
        let mut ended = 0;
        for s in self.map.iter() {
            if s.stream_open() {
                s.close_stream();
                ended += 1;
            }
        }
        ended
    }

    /// Push the message `text` makes on every open GET stream of `agent`; returns
    /// how many took it. `text` runs at most once, and only when a stream is open:
    /// most agents have none, and building the JSON is most of the cost.
    pub(crate) fn push_to_agent(&self, agent: &AgentId, text: impl FnOnce() -> String) -> usize {
        let open: Vec<Arc<Session>> = match self.by_agent.get(agent) {
            Some(mine) => mine.iter().filter(|s| s.stream_open()).cloned().collect(),
            None => return 0,
        };
        let Some((last, rest)) = open.split_last() else {
            return 0;
        };
        let message = text();
        let mut sent = rest.iter().filter(|s| s.push(message.clone())).count();
        if last.push(message) {
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    #[test]
    fn bound_to_agent() {
        let s = Sessions::new(Duration::from_secs(60), 8);
        let x = s.create(a("alice"), Version::LATEST);
        assert!(x.id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert!(s.get(&x.id, &a("alice")).is_ok());
        assert_eq!(s.get(&x.id, &a("bob")).err(), Some(SessionNotFound));
        assert_eq!(s.remove(&x.id, &a("bob")), Err(SessionNotFound));
        assert_eq!(s.remove(&x.id, &a("alice")), Ok(()));
        assert!(s.get(&x.id, &a("alice")).is_err());
    }

    #[test]
    fn ids_are_unique() {
        let s = Sessions::new(Duration::from_secs(60), 2000);
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| s.create(a("x"), Version::LATEST).id.clone())
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn expiry_and_sweep() {
        let s = Sessions::new(Duration::from_millis(0), 8);
        let x = s.create(a("alice"), Version::LATEST);
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&x.id, &a("alice")).is_err());
        s.create(a("alice"), Version::LATEST);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.sweep(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn open_stream_keeps_session_alive_and_is_exclusive() {
        let s = Sessions::new(Duration::from_millis(0), 8);
        let x = s.create(a("alice"), Version::LATEST);
        let mut rx = x.open_stream().expect("first stream");
        assert!(x.open_stream().is_none());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.sweep(), 0);
        assert_eq!(s.push_to_agent(&a("alice"), || "m".into()), 1);
        assert_eq!(s.push_to_agent(&a("bob"), || unreachable!("no stream")), 0);
        assert_eq!(rx.try_recv().unwrap(), "m");
        drop(rx);
        assert!(x.open_stream().is_some());
    }

    #[test]
    fn cancel_fires_once_for_tracked_requests() {
        let s = Sessions::new(Duration::from_secs(60), 8);
        let x = s.create(a("alice"), Version::LATEST);
        let id = |text: &str| {
            Id::parse(serde_json::value::RawValue::from_string(text.into()).unwrap()).unwrap()
        };
        let mut first = x.track(&id("7"));
        assert!(!x.cancel(&id("\"7\"")), "ids differ by type");
        assert!(x.cancel(&id("7")));
        assert!(first.cancelled.try_recv().is_ok());
        assert!(!x.cancel(&id("7")), "only once");
        // The same string however escaped; integers of any size.
        let mut escaped = x.track(&id(r#""caf\u00e9""#));
        assert!(x.cancel(&id("\"café\"")));
        assert!(escaped.cancelled.try_recv().is_ok());
        let mut big = x.track(&id("18446744073709551616"));
        assert!(!x.cancel(&id("18446744073709551617")));
        assert!(x.cancel(&id("18446744073709551616")));
        assert!(big.cancelled.try_recv().is_ok());
        // Dropping the guard unregisters; a reused id belongs to its latest request.
        drop(x.track(&id("8")));
        assert!(!x.cancel(&id("8")));
        let old = x.track(&id("9"));
        let mut new = x.track(&id("9"));
        drop(old);
        assert!(x.cancel(&id("9")), "the old guard left the new entry alone");
        assert!(new.cancelled.try_recv().is_ok());
    }

    #[test]
    fn index_by_agent_follows_close_sweep_and_remove() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let x = s.create(a("alice"), Version::LATEST);
        let y = s.create(a("alice"), Version::LATEST);
        let b = s.create(a("bob"), Version::LATEST);
        let _rx = b.open_stream().expect("stream");
        assert_eq!(s.close_agent(&a("alice")), 2);
        assert!(s.get(&x.id, &a("alice")).is_err() && s.get(&y.id, &a("alice")).is_err());
        assert_eq!(s.close_agent(&a("alice")), 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s.push_to_agent(&a("bob"), || "m".into()), 1);
        // After a remove the agent is under its cap again: nothing else is dropped.
        let z = s.create(a("alice"), Version::LATEST);
        let w = s.create(a("alice"), Version::LATEST);
        assert_eq!(s.remove(&z.id, &a("alice")), Ok(()));
        let v = s.create(a("alice"), Version::LATEST);
        assert!(s.get(&w.id, &a("alice")).is_ok() && s.get(&v.id, &a("alice")).is_ok());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn cap_spares_a_session_holding_a_stream() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let listening = s.create(a("alice"), Version::LATEST);
        let _rx = listening.open_stream().expect("stream");
        std::thread::sleep(Duration::from_millis(2));
        let idle = s.create(a("alice"), Version::LATEST);
        s.create(a("alice"), Version::LATEST);
        assert!(s.get(&listening.id, &a("alice")).is_ok());
        assert!(s.get(&idle.id, &a("alice")).is_err());
    }

    #[test]
    fn signed_ids_come_back_until_deleted() {
        let s = Sessions::new(Duration::from_millis(0), 8).with_signer(Signer::new([3; 32]));
        let x = s.create(a("alice"), Version::V2025_06_18);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.sweep(), 1, "idle: out of memory");
        // Taken back, with its version; another agent cannot.
        let back = s.get(&x.id, &a("alice")).expect("taken back");
        assert_eq!(
            (back.id.as_str(), back.version),
            (x.id.as_str(), Version::V2025_06_18)
        );
        assert!(s.get(&x.id, &a("bob")).is_err());
        // Another node with the same key takes it back too; one without does not.
        let other = Sessions::new(Duration::from_secs(60), 8).with_signer(Signer::new([3; 32]));
        assert!(other.get(&x.id, &a("alice")).is_ok());
        let plain = Sessions::new(Duration::from_secs(60), 8);
        assert!(plain.get(&x.id, &a("alice")).is_err());
        // DELETE ends it for good here.
        let ended = x.revocation().expect("signed");
        assert_eq!(s.remove(&x.id, &a("alice")), Ok(()));
        assert!(s.get(&x.id, &a("alice")).is_err());
        assert!(s.get("s1.AAAA", &a("alice")).is_err());
        // And at a node that learns of it (cluster mode: `revoked_sessions`),
        // which remembers the id's hash only.
        assert!(crate::domain::ids::is_lower_hex(&ended.id_hash, 32));
        let third = Sessions::new(Duration::from_secs(60), 8).with_signer(Signer::new([3; 32]));
        third.learn_revoked(ended.clone());
        assert!(third.get(&x.id, &a("alice")).is_err());
        // Ended elsewhere while `other` held it in memory: refused there too.
        other.learn_revoked(ended.clone());
        assert!(other.get(&x.id, &a("alice")).is_err());
        // An expired one is not worth remembering.
        let fourth = Sessions::new(Duration::from_secs(60), 8).with_signer(Signer::new([3; 32]));
        fourth.learn_revoked(Revocation { until: 1, ..ended });
        assert_eq!(fourth.revoked.len(), 0);
        // An id of this process only needs no revocation.
        assert!(plain
            .create(a("alice"), Version::LATEST)
            .revocation()
            .is_none());
    }

    #[test]
    fn cap_drops_least_recently_used() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let first = s.create(a("alice"), Version::LATEST);
        std::thread::sleep(Duration::from_millis(2));
        let second = s.create(a("alice"), Version::LATEST);
        std::thread::sleep(Duration::from_millis(2));
        s.create(a("bob"), Version::LATEST);
        let third = s.create(a("alice"), Version::LATEST);
        assert!(s.get(&first.id, &a("alice")).is_err());
        assert!(s.get(&second.id, &a("alice")).is_ok());
        assert!(s.get(&third.id, &a("alice")).is_ok());
        assert_eq!(s.len(), 3);
    }
}
