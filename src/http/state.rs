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
}

/// A value filled in once, that readers wait for.
#[derive(Clone)]
pub(crate) struct Slot<T>(watch::Receiver<Option<T>>);

impl<T: Clone> Slot<T> {
    /// An empty slot, and the sender that fills it (dropping it unfilled makes
    /// waiting requests fail with 503).
    pub(crate) fn new() -> (watch::Sender<Option<T>>, Slot<T>) {
        let (tx, rx) = watch::channel(None);
        (tx, Slot(rx))
    }

    /// Whether start-up has filled the slot.
    pub(crate) fn is_filled(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// What start-up has done with the slot so far, without waiting.
    pub(crate) fn peek(&self) -> Fill<T> {
        if let Some(v) = self.0.borrow().clone() {
            return Fill::Ready(v);
        }
        // An error here means the sender is gone: start-up gave up.
        match self.0.has_changed() {
            Ok(_) => Fill::Loading,
            Err(_) => Fill::Failed,
        }
    }

    /// The value, waiting for start-up to fill it.
    pub(crate) async fn get(&self) -> Result<T, ApiError> {
        let mut rx = self.0.clone();
        let got = match rx.wait_for(Option::is_some).await {
            Ok(h) => h.clone(),
            Err(_) => None,
        };
        got.ok_or_else(ApiError::starting)
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
    pub admission: super::admission::Admission,
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
