//! 2026-07-28 `subscriptions/listen` streams: what replaced the GET stream. A
//! client opts in to notification kinds; we honour one, `notifications/resources/
//! updated` for its own inbox ([`INBOX_URI`]). The registry lives in [`Sessions`]'s
//! [`Listeners`] so that the inbox notifier and `close_agent` reach sessions and
//! listen streams alike; a stream unregisters itself when dropped (the client closed
//! it). Every message carries the listen request's id as the subscription id.
//! Claude Code channel events go on every listen stream of the agent, as on GET
//! streams: clients that do not know the method drop it.

use super::jsonrpc::{Id, RpcError};
use super::modern::SERVER_INFO_KEY;
use super::protocol;
use super::push::INBOX_URI;
use crate::domain::channel::Event;
use crate::domain::message::Message;
use crate::domain::AgentId;
use crate::log_limit::LogLimit;
use dashmap::DashMap;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Notifications that may wait on a listen stream whose client stopped reading
/// (they are hints: the inbox itself loses nothing).
const BUFFER: usize = 256;

/// What a listen request asked for that we honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filter {
    /// `resourceSubscriptions` named the inbox.
    pub inbox: bool,
}

/// Read `params.notifications` of a `subscriptions/listen` request. Kinds we never
/// send (list changes: our lists do not change) and other URIs are left out of the
/// acknowledgement, as the revision says.
pub(crate) fn filter(params: Option<&Value>) -> Result<Filter, RpcError> {
    let Some(n) = params.and_then(|p| p.get("notifications")) else {
        return Err(RpcError::invalid_params("notifications: is required"));
    };
    let Some(n) = n.as_object() else {
        return Err(RpcError::invalid_params("notifications: must be an object"));
    };
    let uris = match n.get("resourceSubscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|u| u.as_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                RpcError::invalid_params("notifications.resourceSubscriptions: must be strings")
            })?,
        Some(_) => {
            return Err(RpcError::invalid_params(
                "notifications.resourceSubscriptions: must be an array of URIs",
            ))
        }
    };
    Ok(Filter {
        inbox: uris.contains(&INBOX_URI),
    })
}

/// `_meta` naming the subscription (the id is written as the client sent it).
#[derive(Serialize)]
struct SubMeta<'a> {
    #[serde(rename = "io.modelcontextprotocol/subscriptionId")]
    id: &'a Id,
    #[serde(flatten)]
    more: Value,
}

#[derive(Serialize)]
struct Notification<'a> {
    jsonrpc: &'static str,
    method: &'static str,
    params: Params<'a>,
}

#[derive(Serialize)]
struct Params<'a> {
    #[serde(rename = "_meta")]
    meta: SubMeta<'a>,
    #[serde(flatten)]
    rest: Value,
}

fn notification(id: &Id, method: &'static str, meta: Value, rest: Value) -> String {
    let n = Notification {
        jsonrpc: "2.0",
        method,
        params: Params {
            meta: SubMeta { id, more: meta },
            rest,
        },
    };
    super::jsonrpc::to_json(&n)
}

/// The first message of a stream: what we agreed to send.
pub(crate) fn acknowledged(id: &Id, f: Filter) -> String {
    let honoured = if f.inbox {
        json!({"resourceSubscriptions": [INBOX_URI]})
    } else {
        json!({})
    };
    notification(
        id,
        "notifications/subscriptions/acknowledged",
        json!({}),
        json!({"notifications": honoured}),
    )
}

/// A new message in the inbox; `_meta` also names the message, as on GET streams.
fn inbox_updated(id: &Id, message: &Message) -> String {
    notification(
        id,
        "notifications/resources/updated",
        json!({"agent-hub/message": super::push::message_meta(message)}),
        json!({"uri": INBOX_URI}),
    )
}

/// The response that ends a stream we close (the agent's token was removed or
/// rotated): a graceful end, as opposed to a dropped connection.
pub(crate) fn closed(id: &Id) -> String {
    #[derive(Serialize)]
    struct Closed<'a> {
        jsonrpc: &'static str,
        id: &'a Id,
        result: Complete<'a>,
    }
    #[derive(Serialize)]
    struct Complete<'a> {
        #[serde(rename = "resultType")]
        result_type: &'static str,
        #[serde(rename = "_meta")]
        meta: SubMeta<'a>,
    }
    super::jsonrpc::to_json(&Closed {
        jsonrpc: "2.0",
        id,
        result: Complete {
            result_type: "complete",
            meta: SubMeta {
                id,
                more: json!({SERVER_INFO_KEY: protocol::server_info()}),
            },
        },
    })
}

/// The response that ends a stream because this node stopped serving (cluster
/// mode: its shards moved, or it lost them): "store unavailable", which clients
/// retry, rather than the graceful end of [`closed`], so that a gateway relaying
/// the stream listens again at the node serving now (`http::gateway::follow`),
/// and a client listening here directly knows to listen again.
pub(crate) fn stopped_serving(id: &Id) -> String {
    let why = RpcError::store_unavailable(
        "this node stopped serving (its shards are at another node now); listen again",
    );
    super::jsonrpc::to_json(&super::jsonrpc::err(id, &why))
}

/// How a listen stream ends once its senders are gone (after what was queued):
/// with its closing response ([`closed`]), or, when this node stopped serving,
/// with [`stopped_serving`]. A flag rather than a last message in the queue, which
/// a client that reads nothing may have filled.
pub(crate) struct Ending {
    subscription: Id,
    stopped_serving: Arc<AtomicBool>,
}

impl Ending {
    /// The response that ends the stream now (written once, at the end).
    pub(crate) fn last(&self) -> String {
        if self.stopped_serving.load(Ordering::Acquire) {
            stopped_serving(&self.subscription)
        } else {
            closed(&self.subscription)
        }
    }
}

struct Listener {
    agent: AgentId,
    subscription: Id,
    filter: Filter,
    tx: mpsc::Sender<String>,
    stopped_serving: Arc<AtomicBool>,
}

/// The open listen streams. Each entry's sender feeds its stream's response body;
/// the body holds a [`Registration`] that removes the entry when the client goes.
#[derive(Default)]
pub(crate) struct Listeners {
    map: DashMap<u64, Listener>,
    next: AtomicU64,
}

/// An open stream's entry; dropping it (the response body is dropped when the client
/// disconnects) unregisters it.
pub(crate) struct Registration {
    listeners: Arc<Listeners>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.listeners.map.remove(&self.key);
    }
}

impl Listeners {
    /// Register a stream of `agent` opened by request `subscription`; with
    /// `inbox_hint`, its first notification says that the inbox was updated.
    /// Returns what unregisters it, what it sends, and how it ends.
    pub(crate) fn open(
        self: &Arc<Self>,
        agent: AgentId,
        subscription: Id,
        filter: Filter,
        inbox_hint: bool,
    ) -> (Registration, mpsc::Receiver<String>, Ending) {
        let (tx, rx) = mpsc::channel(BUFFER);
        if inbox_hint {
            let hint = notification(
                &subscription,
                "notifications/resources/updated",
                json!({}),
                json!({"uri": INBOX_URI}),
            );
            let _ = tx.try_send(hint);
        }
        let stopped = Arc::new(AtomicBool::new(false));
        let ending = Ending {
            subscription: subscription.clone(),
            stopped_serving: stopped.clone(),
        };
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.insert(
            key,
            Listener {
                agent,
                subscription,
                filter,
                tx,
                stopped_serving: stopped,
            },
        );
        let reg = Registration {
            listeners: self.clone(),
            key,
        };
        (reg, rx, ending)
    }

    /// Push an inbox update to every stream of `agent` that subscribed to it;
    /// returns how many took it.
    pub(crate) fn inbox_updated(&self, agent: &AgentId, message: &Message) -> usize {
        self.send(agent, true, |id| inbox_updated(id, message))
    }

    /// Push a channel event to every stream of `agent`; returns how many took it.
    pub(crate) fn channel(&self, agent: &AgentId, event: &Event) -> usize {
        self.send(agent, false, |id| {
            notification(
                id,
                super::push::CHANNEL_METHOD,
                json!({}),
                Value::Object(super::push::channel_params(event)),
            )
        })
    }

    /// Send what `text` makes for each stream of `agent` (only those subscribed to
    /// the inbox when `inbox_only`); returns how many took it.
    fn send(&self, agent: &AgentId, inbox_only: bool, text: impl Fn(&Id) -> String) -> usize {
        let mut sent = 0;
        for l in self
            .map
            .iter()
            .filter(|l| &l.agent == agent && (l.filter.inbox || !inbox_only))
        {
            match l.tx.try_send(text(&l.subscription)) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    static DROPPED: LogLimit = LogLimit::new(10_000);
                    if let Some(n) = DROPPED.hit() {
                        tracing::warn!(agent = %agent, dropped = n, "listen streams not read; notifications dropped (one line per 10 s at most)");
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        sent
    }

    /// End every stream of `agent` (its token was removed or rotated): their senders
    /// drop, and each stream sends its closing response. Returns how many.
    pub(crate) fn close_agent(&self, agent: &AgentId) -> usize {
        let before = self.map.len();
        self.map.retain(|_, l| &l.agent != agent);
        before - self.map.len()
    }

    /// End every stream (this node no longer serves) with [`stopped_serving`],
    /// after what was queued on it; returns how many.
    pub(crate) fn close_all(&self) -> usize {
        let mut ended = 0;
        self.map.retain(|_, l| {
            l.stopped_serving.store(true, Ordering::Release);
            ended += 1;
            false
        });
        ended
    }

    /// Streams open now (for the metrics).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";

    fn id(text: &str) -> Id {
        Id::parse(RawValue::from_string(text.into()).unwrap()).unwrap()
    }

    #[test]
    fn filters() {
        let f = |v: Value| filter(Some(&json!({"notifications": v})));
        assert_eq!(
            f(json!({"resourceSubscriptions": [INBOX_URI, "x://y"]})),
            Ok(Filter { inbox: true })
        );
        assert_eq!(
            f(json!({"toolsListChanged": true})),
            Ok(Filter { inbox: false })
        );
        assert!(f(json!({"resourceSubscriptions": [1]})).is_err());
        assert!(f(json!({"resourceSubscriptions": "x"})).is_err());
        assert!(f(json!([])).is_err());
        assert!(filter(Some(&json!({}))).is_err());
        assert!(filter(None).is_err());
    }

    #[test]
    fn messages_carry_the_id_verbatim() {
        let big = id("18446744073709551616");
        let ack: Value = serde_json::from_str(&acknowledged(&big, Filter { inbox: true })).unwrap();
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(
            ack["params"]["notifications"]["resourceSubscriptions"][0],
            INBOX_URI
        );
        assert!(acknowledged(&big, Filter { inbox: true })
            .contains(r#""io.modelcontextprotocol/subscriptionId":18446744073709551616"#));
        let none: Value =
            serde_json::from_str(&acknowledged(&id("\"s\""), Filter { inbox: false })).unwrap();
        assert_eq!(none["params"]["notifications"], json!({}));
        assert_eq!(none["params"]["_meta"][SUBSCRIPTION_ID_KEY], "s");
        let text = closed(&big);
        assert!(text.contains(r#""id":18446744073709551616"#), "{text}");
        assert!(
            text.contains(r#""io.modelcontextprotocol/subscriptionId":18446744073709551616"#),
            "{text}"
        );
        let v: Value = serde_json::from_str(&closed(&id("\"l-1\""))).unwrap();
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["_meta"][SUBSCRIPTION_ID_KEY], "l-1");
    }

    #[test]
    fn registrations_come_and_go() {
        let l = Arc::new(Listeners::default());
        let (a, b) = (AgentId::new("a"), AgentId::new("b"));
        let (reg, _rx, _) = l.open(a.clone(), id("1"), Filter { inbox: true }, false);
        let (_other, mut rx2, ending) = l.open(b.clone(), id("2"), Filter { inbox: false }, false);
        assert_eq!(l.len(), 2);
        drop(reg);
        assert_eq!(l.len(), 1);
        assert_eq!(l.close_agent(&a), 0);
        assert_eq!(l.close_agent(&b), 1);
        assert_eq!(l.len(), 0);
        // Its sender is gone: the stream sees the end and closes gracefully.
        assert!(rx2.try_recv().is_err() && rx2.is_closed());
        let v: Value = serde_json::from_str(&ending.last()).unwrap();
        assert_eq!(v["result"]["resultType"], "complete");
        // A node that stops serving ends each stream with "store unavailable",
        // after what was queued (here the inbox hint).
        let (_reg, mut rx3, ending) =
            l.open(a.clone(), id("\"l-3\""), Filter { inbox: true }, true);
        assert_eq!(l.close_all(), 1);
        let hint = rx3.try_recv().expect("the inbox hint");
        let v: Value = serde_json::from_str(&hint).unwrap();
        assert_eq!(v["method"], "notifications/resources/updated");
        assert_eq!(v["params"]["uri"], INBOX_URI);
        assert_eq!(v["params"]["_meta"][SUBSCRIPTION_ID_KEY], "l-3");
        let v: Value = serde_json::from_str(&ending.last()).unwrap();
        assert_eq!(v["id"], "l-3");
        assert_eq!(v["error"]["code"], crate::mcp::jsonrpc::SERVER_ERROR);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Store unavailable: "));
        assert!(rx3.try_recv().is_err() && rx3.is_closed());
    }
}
