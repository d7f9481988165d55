//! Operator webhooks (`notify:` in config.yaml): events of the operator event stream
//! that a target asked for are POSTed to it as JSON, signed when it has a secret.
//! Each target has its own thread and a bounded queue, so a slow or dead receiver
//! delays only itself and never a tool call: the stream is read by one task that
//! only queues (a full queue drops the newest delivery and logs it).

pub(crate) mod message;

use crate::config::notify::{Kind, Target};
use crate::events::Event;
use serde::Serialize;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Deliveries waiting per target.
pub(crate) const QUEUE: usize = 1000;
/// Tries per delivery: the first, then after 1, 2, 4, 8 and 16 s.
pub(crate) const ATTEMPTS: u32 = 6;
/// One try's time limit (connect plus answer).
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// One POST to make.
struct Delivery {
    kind: Kind,
    event_id: String,
    body: Vec<u8>,
}

/// What one try gave.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    /// The target without path or query (its URL may be a secret).
    pub target: String,
    pub ok: bool,
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    pub error: Option<String>,
}

struct Sender {
    target: Arc<Target>,
    queue: SyncSender<Delivery>,
}

/// The configured webhooks and their delivery threads.
pub(crate) struct Webhooks {
    senders: Vec<Sender>,
    instance: String,
}

impl Webhooks {
    /// Start one delivery thread per target (none when `notify:` is empty).
    pub(crate) fn start(targets: &[Target], instance: &str) -> Arc<Webhooks> {
        let senders = targets
            .iter()
            .map(|t| {
                let target = Arc::new(t.clone());
                let (queue, rx) = sync_channel(QUEUE);
                let worker = target.clone();
                let spawned = std::thread::Builder::new()
                    .name("webhook".into())
                    .spawn(move || deliver_all(&worker, rx));
                if let Err(e) = spawned {
                    tracing::error!(target = %target.label(), error = %e, "webhook thread not started");
                }
                Sender { target, queue }
            })
            .collect();
        Arc::new(Webhooks {
            senders,
            instance: instance.to_string(),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Queue `e` for every target that wants its kind.
    fn offer(&self, e: &Event) {
        let Some(kind) = message::kind_of(e) else {
            return;
        };
        let mut body = None;
        for s in self
            .senders
            .iter()
            .filter(|s| s.target.kinds.contains(&kind))
        {
            let body = body
                .get_or_insert_with(|| message::body(kind, e, &self.instance))
                .clone();
            let d = Delivery {
                kind,
                event_id: e.id.clone(),
                body,
            };
            match s.queue.try_send(d) {
                Ok(()) => {}
                Err(TrySendError::Full(d)) => tracing::warn!(
                    target = %s.target.label(), kind = d.kind.as_str(), event = %d.event_id,
                    "webhook queue full ({QUEUE}); this notification is dropped"
                ),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Read the operator event stream's rare events (`live`, from
    /// `EventBus::subscribe_notable`, so that a flood of message and lock events
    /// never crowds out a round awaiting approval) and queue what targets want,
    /// until the stream closes. Run as a task; it only queues, it never waits on a receiver.
    pub(crate) async fn follow(self: Arc<Self>, mut live: broadcast::Receiver<Arc<Event>>) {
        use tokio::sync::broadcast::error::RecvError;
        if self.is_empty() {
            return;
        }
        loop {
            match live.recv().await {
                Ok(e) => self.offer(&e),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "webhooks missed events (the stream ran ahead)")
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// `hubctl notify test`: one try to every target, now; blocking (run it off the
    /// async runtime).
    pub(crate) fn test_all(&self) -> Vec<Outcome> {
        let e = Event {
            id: "test".into(),
            event_type: "test".into(),
            entity_type: "hub".into(),
            entity_id: self.instance.clone(),
            actor: "operator".into(),
            payload: serde_json::json!({}),
            at: crate::domain::time::iso(chrono::Utc::now()),
            relayed: false,
        };
        let d = Delivery {
            kind: Kind::Test,
            event_id: e.id.clone(),
            body: message::body(Kind::Test, &e, &self.instance),
        };
        // All at once: a dead target costs its timeout once, not once per target.
        std::thread::scope(|scope| {
            let tries: Vec<_> = self
                .senders
                .iter()
                .map(|s| {
                    let d = &d;
                    scope.spawn(move || post(&agent(), &s.target, d))
                })
                .collect();
            tries
                .into_iter()
                .zip(&self.senders)
                .map(|(t, s)| {
                    t.join().unwrap_or_else(|_| Outcome {
                        target: s.target.label(),
                        ok: false,
                        status: None,
                        error: Some("the try failed".into()),
                    })
                })
                .collect()
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(TRY_TIMEOUT)
        .redirects(0)
        .user_agent(concat!("agent-hub/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One try.
fn post(agent: &ureq::Agent, t: &Target, d: &Delivery) -> Outcome {
    let mut req = agent
        .post(&t.url)
        .set("Content-Type", "application/json")
        .set("X-Agent-Hub-Event", d.kind.as_str())
        .set("X-Agent-Hub-Delivery", &d.event_id);
    if let Some(secret) = &t.secret {
        req = req.set(
            message::SIGNATURE_HEADER,
            &message::signature(secret, &d.body),
        );
    }
    let (status, error) = match req.send_bytes(&d.body) {
        Ok(r) => (Some(r.status()), None),
        Err(ureq::Error::Status(code, _)) => (Some(code), Some(format!("HTTP {code}"))),
        // The transport error names the URL: only its kind goes out.
        Err(ureq::Error::Transport(tr)) => (None, Some(tr.kind().to_string())),
    };
    Outcome {
        target: t.label(),
        ok: error.is_none(),
        status,
        error,
    }
}

/// Whether a failed try is worth repeating: no answer, a server error, or 429.
fn retryable(o: &Outcome) -> bool {
    match o.status {
        None => true,
        Some(s) => s >= 500 || s == 429,
    }
}

/// A target's thread: each delivery in order, retried with backoff.
fn deliver_all(t: &Target, rx: Receiver<Delivery>) {
    let agent = agent();
    for d in rx {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let o = post(&agent, t, &d);
            if o.ok {
                break;
            }
            let error = o.error.as_deref().unwrap_or("failed");
            if attempt == ATTEMPTS || !retryable(&o) {
                tracing::warn!(target = %o.target, kind = d.kind.as_str(), event = %d.event_id, attempt, error, "webhook not delivered; giving up");
                break;
            }
            tracing::debug!(target = %o.target, attempt, error, "webhook failed; retrying");
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
}
