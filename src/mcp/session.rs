//! MCP sessions: transport bookkeeping only (negotiated version, owning agent, the
//! open GET stream, last activity). No domain state hangs off a session, so losing
//! one loses nothing, and a stateless protocol revision can skip them entirely.

use super::jsonrpc::Id;
use super::listen::Listeners;
use super::protocol::Version;
use crate::domain::ids::random_hex;
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use dashmap::DashMap;
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

    fn close_stream(&self) {
        self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionNotFound;

pub(crate) struct Sessions {
    map: DashMap<String, Arc<Session>>,
    /// The 2026-07-28 listen streams, the sessionless counterpart of GET streams:
    /// here so that inbox pushes and `close_agent` reach both.
    pub listeners: Arc<Listeners>,
    idle: Duration,
    max_per_agent: usize,
    epoch: Instant,
}

impl Sessions {
    pub(crate) fn new(idle: Duration, max_per_agent: usize) -> Self {
        Sessions {
            map: DashMap::new(),
            listeners: Arc::new(Listeners::default()),
            idle,
            max_per_agent: max_per_agent.max(1),
            epoch: Instant::now(),
        }
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
        let now = self.now_ms();
        let mine: Vec<(String, u64)> = self
            .map
            .iter()
            .filter(|e| e.agent == agent)
            .map(|e| (e.key().clone(), e.last_active_ms.load(Ordering::Relaxed)))
            .collect();
        if mine.len() >= self.max_per_agent {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, t)| *t) {
                if let Some((_, s)) = self.map.remove(oldest) {
                    s.close_stream();
                    tracing::info!(agent = %agent, "session cap reached; dropped least recently used session");
                }
            }
        }
        // 256 bits from the OS CSPRNG: unguessable, visible ASCII only.
        let session = Arc::new(Session {
            id: random_hex(32),
            agent,
            version,
            last_active_ms: AtomicU64::new(now),
            stream: Mutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            next_inflight: AtomicU64::new(0),
        });
        self.map.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session `id` of `agent`, marked active. Another agent's session is
    /// reported exactly like an unknown one, so ids cannot be probed.
    pub(crate) fn get(&self, id: &str, agent: &AgentId) -> Result<Arc<Session>, SessionNotFound> {
        let now = self.now_ms();
        let s = self.map.get(id).map(|e| e.clone()).ok_or(SessionNotFound)?;
        if &s.agent != agent {
            return Err(SessionNotFound);
        }
        if self.expired(&s, now) {
            self.map.remove(id);
            return Err(SessionNotFound);
        }
        s.last_active_ms.store(now, Ordering::Relaxed);
        Ok(s)
    }

    /// End session `id` of `agent` (DELETE).
    pub(crate) fn remove(&self, id: &str, agent: &AgentId) -> Result<(), SessionNotFound> {
        let s = self.get(id, agent)?;
        self.map.remove(&s.id);
        s.close_stream();
        Ok(())
    }

    /// Drop expired sessions; called periodically so memory follows live clients.
    pub(crate) fn sweep(&self) -> usize {
        let now = self.now_ms();
        let before = self.map.len();
        self.map.retain(|_, s| {
            let keep = !self.expired(s, now);
            if !keep {
                s.close_stream();
            }
            keep
        });
        before - self.map.len()
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
        let before = self.map.len();
        self.map.retain(|_, s| {
            let keep = &s.agent != agent;
            if !keep {
                s.close_stream();
            }
            keep
        });
        before - self.map.len()
    }

    /// Push `message` on every open GET stream of `agent`; returns how many took it.
    pub(crate) fn push_to_agent(&self, agent: &AgentId, message: &str) -> usize {
        self.map
            .iter()
            .filter(|e| &e.agent == agent)
            .filter(|e| e.push(message.to_string()))
            .count()
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
        assert_eq!(s.push_to_agent(&a("alice"), "m"), 1);
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
