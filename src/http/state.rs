//! What every HTTP worker shares: the hub handle, sessions, tokens, and the
//! request limits; and the allowed browser origins. Route files import this, never
//! `server.rs`.

use super::error::ApiError;
use crate::actors::Hub;
use crate::auth::LiveTokens;
use crate::mcp::session::Sessions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Origins a browser page may call us from.
#[derive(Debug, Clone)]
pub(crate) enum Origins {
    Any,
    List(Vec<String>),
}

impl Origins {
    /// The configured list, or the loopback origins of the port we listen on; and
    /// the origin of `public_url` (our own, as a browser behind a proxy sees it).
    pub(crate) fn new(configured: Option<&[String]>, port: u16, public: Option<String>) -> Origins {
        let mut list = match configured {
            Some(list) if list.iter().any(|o| o == "*") => return Origins::Any,
            Some(list) => list.to_vec(),
            None => vec![
                format!("http://localhost:{port}"),
                format!("http://127.0.0.1:{port}"),
                format!("http://[::1]:{port}"),
            ],
        };
        list.extend(public);
        Origins::List(list)
    }

    pub(crate) fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(l) => {
                let o = origin.trim_end_matches('/');
                l.iter().any(|a| a.eq_ignore_ascii_case(o))
            }
        }
    }
}

/// The hub once start-up has loaded it. The listener opens before the load, so that
/// a big database never means refused connections: requests that arrive meanwhile
/// wait here (and `/healthz` answers at once).
pub(crate) type HubSlot = Slot<Hub>;

/// The state of a [`Slot`].
pub(crate) enum Fill<T> {
    /// Start-up is still working on it.
    Loading,
    /// Start-up failed: it will never be filled.
    Failed,
    /// Filled.
    Ready(T),
    /// Empty on purpose: a cluster node that does not hold its shards (a standby,
    /// or one that lost them), with why. Calls are answered 503 at once.
    Standby(String),
}

/// A value filled in once, that readers wait for.
#[derive(Clone)]
pub(crate) struct Slot<T> {
    value: watch::Receiver<Option<T>>,
    /// `Some(why)` while this node stands by (cluster mode).
    standby: watch::Receiver<Option<String>>,
    standby_tx: Arc<watch::Sender<Option<String>>>,
    /// Asked on every call while filled (cluster mode): `Some(why)` when this node
    /// may no longer hold its shards (its leases were not renewed in time, say
    /// after the process was stopped), so that it answers 503 at once rather than
    /// from memory another node may have moved past.
    guard: Arc<std::sync::OnceLock<Guard>>,
}

/// See [`Slot::set_guard`].
pub(crate) type Guard = Box<dyn Fn() -> Option<String> + Send + Sync>;

impl<T: Clone> Slot<T> {
    /// An empty slot, and the sender that fills it (dropping it unfilled makes
    /// waiting requests fail with 503).
    pub(crate) fn new() -> (watch::Sender<Option<T>>, Slot<T>) {
        let (tx, rx) = watch::channel(None);
        let (standby_tx, standby) = watch::channel(None);
        let slot = Slot {
            value: rx,
            standby,
            standby_tx: Arc::new(standby_tx),
            guard: Arc::default(),
        };
        (tx, slot)
    }

    /// Whether start-up has filled the slot.
    pub(crate) fn is_filled(&self) -> bool {
        self.value.borrow().is_some()
    }

    /// Stand by (`Some(why)`: calls get 503 until the slot is filled again) or
    /// not (`None`). The one filling the slot empties it first.
    pub(crate) fn set_standby(&self, why: Option<String>) {
        self.standby_tx.send_replace(why);
    }

    /// Install the check of [`Slot::get`] and [`Slot::peek`] (once; later calls
    /// are ignored).
    pub(crate) fn set_guard(&self, guard: Guard) {
        let _ = self.guard.set(guard);
    }

    /// The guard's objection, if any.
    fn guarded(&self) -> Option<String> {
        self.guard.get().and_then(|g| g())
    }

    /// Whether a value is in the slot and its guard does not object: calls are
    /// served here now.
    pub(crate) fn serves(&self) -> bool {
        matches!(self.peek(), Fill::Ready(_))
    }

    /// What start-up has done with the slot so far, without waiting.
    pub(crate) fn peek(&self) -> Fill<T> {
        if let Some(why) = self.guarded() {
            return Fill::Standby(why);
        }
        if let Some(v) = self.value.borrow().clone() {
            return Fill::Ready(v);
        }
        if let Some(why) = self.standby.borrow().clone() {
            return Fill::Standby(why);
        }
        // An error here means the sender is gone: start-up gave up.
        match self.value.has_changed() {
            Ok(_) => Fill::Loading,
            Err(_) => Fill::Failed,
        }
    }

    /// The value, waiting for start-up to fill it; at once a 503 on a standby.
    pub(crate) async fn get(&self) -> Result<T, ApiError> {
        let (mut value, mut standby) = (self.value.clone(), self.standby.clone());
        loop {
            if let Some(v) = value.borrow_and_update().clone() {
                return match self.guarded() {
                    Some(why) => Err(ApiError::standby(&why)),
                    None => Ok(v),
                };
            }
            if let Some(why) = standby.borrow_and_update().clone() {
                return Err(ApiError::standby(&why));
            }
            tokio::select! {
                r = value.changed() => if r.is_err() {
                    // Start-up gave up, unless it filled the slot on its way out.
                    return value.borrow().clone().ok_or_else(ApiError::starting);
                },
                _ = standby.changed() => {}
            }
        }
    }
}

impl AppState {
    /// `out` marked as sent by node `from_to.0` to node `from_to.1` and proven (see
    /// [`crate::http::gateway::node_auth::mark`]): the one place that signs what
    /// this server sends.
    pub(crate) fn mark(
        &self,
        out: awc::ClientRequest,
        from_to: (&str, &str),
        request_id: Option<&str>,
        retry: bool,
        body: Option<&[u8]>,
    ) -> awc::ClientRequest {
        crate::http::gateway::node_auth::mark(
            self.node_key.as_deref(),
            out,
            from_to,
            request_id,
            retry,
            body,
        )
    }

    /// How long a gateway waits for the leader to start an answer (cluster mode):
    /// the longest wait a call may park for under the settings in force (a
    /// 2025-03-26 batch runs its waits inline, not as a stream), then up to 30 s
    /// for its commit, and a margin.
    pub(crate) fn forward_timeout(&self) -> Duration {
        let s = self.settings.load();
        Duration::from_secs(s.inbox_wait_max_seconds.max(s.lock_wait_max_seconds) + 40)
    }
}

/// Shared by every worker (actix clones the `web::Data` Arc).
pub(crate) struct AppState {
    pub hub: HubSlot,
    /// Random per start, answered by `/healthz`: lets `hubctl` tell this server from
    /// a stale discovery file's (see `cli/discovery.rs`).
    pub instance: String,
    pub sessions: Arc<Sessions>,
    /// Read per request: a reload replaces it.
    pub tokens: Arc<LiveTokens>,
    /// `POST /operator/reload` (shared with the SIGHUP handler).
    pub reloader: Arc<super::reload::Reloader>,
    pub origins: Origins,
    pub max_body_bytes: usize,
    /// How long an authenticated POST may take to send its whole body (408 after).
    pub body_read_timeout: Duration,
    /// Most messages in one JSON-RPC batch.
    pub max_batch_items: usize,
    /// Caps on POST requests in flight.
    /// Shared with the graceful stop, which waits for the calls in flight.
    pub admission: Arc<super::admission::Admission>,
    pub sse_keepalive: Duration,
    /// `GET /metrics` answers without the operator token.
    pub metrics_public: bool,
    /// Where this server listens and what it stores in, for `GET /operator/hub`.
    pub url: String,
    pub database: String,
    /// The dashboard's sessions and settings (`/ui`).
    pub ui: super::ui::UiState,
    /// The operator's webhooks (`hubctl notify test`).
    pub webhooks: Arc<crate::notify::Webhooks>,
    /// This node, in cluster mode (set once it has registered).
    pub cluster: Arc<std::sync::OnceLock<Arc<crate::store::pg::node::Node>>>,
    /// Cluster mode: the cluster key, as node-to-node calls prove their marks
    /// (`http::gateway::node_auth`).
    pub node_key: Option<Arc<crate::http::gateway::node_auth::NodeKey>>,
    /// The settings in force (a reload replaces them): what a gateway reads its
    /// answer timeout from ([`AppState::forward_timeout`]).
    pub settings: Arc<crate::config::LiveSettings>,
    /// Set on a stop signal: answers ask clients to close their connection, so
    /// that none sends a request on a kept-alive one that the stop then cuts.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_slot_waits_until_filled_and_fails_if_never() {
        let (fill, slot) = Slot::<u32>::new();
        let waiting = tokio::spawn({
            let slot = slot.clone();
            async move { slot.get().await.ok() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(!slot.is_filled());
        assert!(matches!(slot.peek(), Fill::Loading));
        fill.send(Some(7)).unwrap();
        assert!(slot.is_filled());
        assert!(matches!(slot.peek(), Fill::Ready(7)));
        assert_eq!(waiting.await.unwrap(), Some(7));
        assert_eq!(slot.get().await.ok(), Some(7));
        let (fill, slot) = Slot::<u32>::new();
        drop(fill);
        assert!(matches!(slot.peek(), Fill::Failed));
        assert!(slot.get().await.is_err());
    }

    #[tokio::test]
    async fn a_standby_answers_at_once_and_a_fill_ends_it() {
        let (fill, slot) = Slot::<u32>::new();
        let waiting = tokio::spawn({
            let slot = slot.clone();
            async move { slot.get().await.is_err() }
        });
        tokio::task::yield_now().await;
        slot.set_standby(Some("another node holds the shards".into()));
        // The call that was waiting is answered too.
        assert!(waiting.await.unwrap());
        assert!(matches!(slot.peek(), Fill::Standby(w) if w.contains("another node")));
        assert!(slot.get().await.is_err());
        fill.send(Some(3)).unwrap();
        slot.set_standby(None);
        assert_eq!(slot.get().await.ok(), Some(3));
        // Demoted: emptied, then standing by.
        fill.send(None).unwrap();
        slot.set_standby(Some("lost".into()));
        assert!(matches!(slot.peek(), Fill::Standby(_)));
        // A guard objects even while filled.
        fill.send(Some(4)).unwrap();
        slot.set_standby(None);
        let objecting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = objecting.clone();
        slot.set_guard(Box::new(move || {
            flag.load(std::sync::atomic::Ordering::Relaxed)
                .then(|| "leases may have lapsed".to_string())
        }));
        assert_eq!(slot.get().await.ok(), Some(4));
        objecting.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(slot.get().await.is_err());
        assert!(matches!(slot.peek(), Fill::Standby(w) if w.contains("lapsed")));
    }

    #[test]
    fn default_origins_are_loopback_of_our_port() {
        let o = Origins::new(None, 8765, None);
        assert!(o.allows("http://localhost:8765"));
        assert!(o.allows("http://127.0.0.1:8765/"));
        assert!(!o.allows("http://localhost:9999"));
        assert!(!o.allows("http://evil.example"));
        let any = Origins::new(Some(&["*".to_string()]), 1, None);
        assert!(any.allows("http://evil.example"));
        let proxied = Origins::new(None, 8765, Some("https://hub.example.org".into()));
        assert!(proxied.allows("https://hub.example.org"));
        assert!(proxied.allows("http://localhost:8765"));
    }
}
