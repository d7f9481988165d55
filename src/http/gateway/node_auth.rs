//! Node-to-node calls under the cluster key (issue 16: "a cluster key for
//! node-to-node calls"). A node marks what it sends to another
//! ([`super::FORWARDED_HEADER`], the request id and the retry mark of
//! `mcp::replay`), stamps it ([`NODE_STAMP_HEADER`]: its wall-clock time in
//! milliseconds and a nonce) and proves all of it with [`NODE_AUTH_HEADER`]:
//! HMAC-SHA256 under the cluster key of a domain label, the sending node's id,
//! the receiving node's id, the method, the path and query, the request id, the retry mark, the stamp and
//! the SHA-256 of the body when the call carries one ([`NODE_BODY_HEADER`]),
//! truncated to 128 bits, in hex.
//!
//! A receiving node honours the marks (answers from `request_log`, the standby
//! refusal of a request another node took it for the leader with, the inbox hint
//! of a stream opened again, `/internal/…`) only when the proof checks and the
//! stamp is within [`SKEW`] of its own clock: a client that sets them itself is an
//! ordinary client, and a proof read off the wire cannot be moved to another
//! node, method, path or body, nor used after [`SKEW`]. `/internal/…` calls, which carry
//! no client token and so rest on the proof alone, also bind their body and are
//! taken once ([`NodeKey::first_use`]): a copy of one is refused even within the
//! window. A call forwarded for a client binds no body: the client's own token is
//! what authorizes it, and the marks only let a retry have its logged answer.
//!
//! The nodes' clocks must agree within [`SKEW`] (NTP does far better); a node
//! whose clock is off the database's by more than a third of it says so in its
//! log at each lease round (`store::pg::lease::heartbeat`).

use super::FORWARDED_HEADER;
use crate::mcp::replay::{REQUEST_ID_HEADER, RETRY_HEADER};
use actix_web::dev::RequestHead;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The proof that a node of this cluster sent the marks.
pub(crate) const NODE_AUTH_HEADER: &str = "x-agent-hub-node-auth";
/// When the sending node sent it (Unix milliseconds) and a nonce: `<ms>.<hex>`.
pub(crate) const NODE_STAMP_HEADER: &str = "x-agent-hub-node-stamp";
/// The SHA-256 of the body, in hex, on the calls that bind theirs.
pub(crate) const NODE_BODY_HEADER: &str = "x-agent-hub-node-body";
/// The node a call is meant for (also bound by the proof): a node that gets
/// another's call (an address taken over by another node id) refuses it as a
/// standby does, for the sender to find the right node, not as a forgery.
pub(crate) const NODE_TO_HEADER: &str = "x-agent-hub-node-to";

/// How far a stamp may be from the receiving node's clock, either way.
pub(crate) const SKEW: Duration = Duration::from_secs(60);

/// Most `/internal/…` proofs remembered per generation (two are kept): past it
/// such calls get 503 until the generation turns. A cluster reaches it only past
/// 8,000 node-to-node calls per second.
const SEEN_CAP: usize = 1_000_000;

const LABEL: &[u8] = b"agent-hub node call v2\0";
const MAC: usize = 16;

/// What a node proves about a call it sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marks<'a> {
    pub node: &'a str,
    /// The node it is sent to: a proof read off the wire is no good at another.
    pub to: &'a str,
    pub method: &'a str,
    /// The path and query, as the receiver's request line has them.
    pub target: &'a str,
    pub request_id: Option<&'a str>,
    pub retry: bool,
    pub stamp: &'a str,
    /// The SHA-256 of the body, in hex, when bound.
    pub body: Option<&'a str>,
}

/// Why marks were not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unproven {
    /// No marks (an ordinary client's call).
    Unmarked,
    /// A proof that does not check: another cluster key, or marks made up or
    /// moved to another call.
    Forged,
    /// A proof stamped further than [`SKEW`] from this node's clock: a copy of an
    /// old call, or a node whose clock is off.
    Stale,
    /// A call proven for another node (the sender's map of who is where is out
    /// of date): nothing done, to be sent again.
    Elsewhere,
}

/// Marks that checked, for the calls that also bind a body or are taken once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proven {
    mac: u128,
    body: Option<[u8; 32]>,
}

impl Proven {
    /// Whether `body` is the one the proof binds (false if it binds none).
    pub(crate) fn binds(&self, body: &[u8]) -> bool {
        self.body
            .is_some_and(|d| d == <[u8; 32]>::from(Sha256::digest(body)))
    }
}

/// The cluster key, as node-to-node calls use it, and the `/internal/…` proofs
/// already taken.
pub(crate) struct NodeKey {
    key: [u8; 32],
    /// This node's id: what the calls it takes must be proven for.
    me: String,
    seen: Mutex<Seen>,
}

/// Two generations of taken proofs, each at least `2 × SKEW` long: a proof is
/// remembered for as long as its stamp is accepted.
struct Seen {
    since: Instant,
    now: HashSet<u128>,
    before: HashSet<u128>,
}

impl NodeKey {
    /// The cluster key `key` at node `me`.
    pub(crate) fn new(key: [u8; 32], me: &str) -> NodeKey {
        NodeKey {
            key,
            me: me.to_string(),
            seen: Mutex::new(Seen {
                since: Instant::now(),
                now: HashSet::new(),
                before: HashSet::new(),
            }),
        }
    }

    fn mac(&self, m: &Marks<'_>) -> Hmac<Sha256> {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("invariant: HMAC takes a key of any length");
        h.update(LABEL);
        // Header values and request targets hold no NUL: the fields cannot run
        // into each other.
        for field in [
            m.node,
            m.to,
            m.method,
            m.target,
            m.request_id.unwrap_or(""),
            if m.retry { "retry" } else { "first" },
            m.stamp,
            m.body.unwrap_or(""),
        ] {
            h.update(field.as_bytes());
            h.update(b"\0");
        }
        h
    }

    /// The proof for `marks`.
    pub(crate) fn sign(&self, marks: &Marks<'_>) -> String {
        let full = self.mac(marks).finalize().into_bytes();
        crate::domain::ids::hex(&full[..MAC])
    }

    /// Whether `head` carries marks of a node of this cluster, proven and stamped
    /// within [`SKEW`] of `now_ms`. Checked in constant time.
    pub(crate) fn check_at(&self, head: &RequestHead, now_ms: i64) -> Result<Proven, Unproven> {
        let h = &head.headers;
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let Some(node) = text(FORWARDED_HEADER) else {
            return Err(Unproven::Unmarked);
        };
        let (Some(proof), Some(stamp)) = (text(NODE_AUTH_HEADER), text(NODE_STAMP_HEADER)) else {
            return Err(Unproven::Forged);
        };
        let Some(proof) = crate::domain::ids::unhex(proof).filter(|p| p.len() == MAC) else {
            return Err(Unproven::Forged);
        };
        let body = text(NODE_BODY_HEADER);
        let body_digest = match body {
            None => None,
            Some(b) => match crate::domain::ids::unhex(b).and_then(|d| d.try_into().ok()) {
                Some(d) => Some(d),
                None => return Err(Unproven::Forged),
            },
        };
        let marks = Marks {
            node,
            to: &self.me,
            method: head.method.as_str(),
            target: target_of(&head.uri),
            request_id: text(REQUEST_ID_HEADER),
            retry: h.contains_key(RETRY_HEADER),
            stamp,
            body,
        };
        if self.mac(&marks).verify_truncated_left(&proof).is_err() {
            // Proven for the node it names, not this one?
            let named = text(NODE_TO_HEADER).filter(|to| *to != self.me);
            let elsewhere = named.is_some_and(|to| {
                let meant = Marks { to, ..marks };
                self.mac(&meant).verify_truncated_left(&proof).is_ok()
            });
            return Err(if elsewhere {
                Unproven::Elsewhere
            } else {
                Unproven::Forged
            });
        }
        // Proven: the stamp is the sender's own.
        let at = stamp_ms(stamp).ok_or(Unproven::Forged)?;
        if at.abs_diff(now_ms) > SKEW.as_millis() as u64 {
            return Err(Unproven::Stale);
        }
        let mut mac = [0u8; 16];
        mac.copy_from_slice(&proof);
        Ok(Proven {
            mac: u128::from_be_bytes(mac),
            body: body_digest,
        })
    }

    /// [`Self::check_at`] now.
    pub(crate) fn check(&self, head: &RequestHead) -> Result<Proven, Unproven> {
        self.check_at(head, unix_ms())
    }

    /// Whether `proven` is taken for the first time (`Some(true)`), a copy of one
    /// taken before (`Some(false)`), or cannot be remembered now (`None`: more
    /// than [`SEEN_CAP`] in one generation).
    pub(crate) fn first_use(&self, proven: &Proven) -> Option<bool> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.since.elapsed() >= SKEW * 2 {
            let now = std::mem::take(&mut seen.now);
            seen.before = now;
            seen.since = Instant::now();
        }
        if seen.before.contains(&proven.mac) || seen.now.contains(&proven.mac) {
            return Some(false);
        }
        if seen.now.len() >= SEEN_CAP {
            return None;
        }
        seen.now.insert(proven.mac);
        Some(true)
    }
}

/// `out` marked as sent by node `node` to node `to` (with `request_id`, a later
/// try with `retry`), stamped, and the marks proven under `key` with `out`'s
/// method and target and, for a call that binds it, the SHA-256 of `body`.
pub(crate) fn mark(
    key: Option<&NodeKey>,
    mut out: awc::ClientRequest,
    (node, to): (&str, &str),
    request_id: Option<&str>,
    retry: bool,
    body: Option<&[u8]>,
) -> awc::ClientRequest {
    out = out.insert_header((FORWARDED_HEADER, node));
    if let Some(id) = request_id {
        out = out.insert_header((REQUEST_ID_HEADER, id));
    }
    if retry {
        out = out.insert_header((RETRY_HEADER, "1"));
    }
    let Some(k) = key else {
        return out;
    };
    let stamp = stamp();
    let digest = body.map(body_digest);
    if let Some(d) = &digest {
        out = out.insert_header((NODE_BODY_HEADER, d.as_str()));
    }
    out = out.insert_header((NODE_TO_HEADER, to));
    let proof = k.sign(&Marks {
        node,
        to,
        method: out.get_method().as_str(),
        target: target_of(out.get_uri()),
        request_id,
        retry,
        stamp: &stamp,
        body: digest.as_deref(),
    });
    out.insert_header((NODE_STAMP_HEADER, stamp))
        .insert_header((NODE_AUTH_HEADER, proof))
}

/// The request target a proof binds: the path and query.
pub(crate) fn target_of(uri: &actix_web::http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// A new stamp: the time now and a nonce (a random prefix drawn once per process
/// and a counter), so that two calls alike in the same millisecond differ.
pub(crate) fn stamp() -> String {
    static PREFIX: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::domain::ids::random_hex(8));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{}{n:x}", unix_ms(), *PREFIX)
}

/// The SHA-256 of `body`, in hex, as [`NODE_BODY_HEADER`] carries it.
pub(crate) fn body_digest(body: &[u8]) -> String {
    crate::domain::ids::hex(&Sha256::digest(body))
}

/// Whether `name` is one of the marks only a node sets.
pub(crate) fn is_mark(name: &str) -> bool {
    matches!(
        name,
        FORWARDED_HEADER
            | NODE_TO_HEADER
            | NODE_AUTH_HEADER
            | NODE_STAMP_HEADER
            | NODE_BODY_HEADER
            | REQUEST_ID_HEADER
            | RETRY_HEADER
    )
}

fn stamp_ms(stamp: &str) -> Option<i64> {
    stamp.split_once('.')?.0.parse().ok()
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::test::TestRequest;

    const ID: &str = "00112233445566778899aabbccddeeff";

    fn marks<'a>(stamp: &'a str, body: Option<&'a str>) -> Marks<'a> {
        Marks {
            node: "n2",
            to: "n1",
            method: "POST",
            target: "/internal/count?x=1",
            request_id: Some(ID),
            retry: true,
            stamp,
            body,
        }
    }

    /// The request `marks` describe, proven with `proof`.
    fn request(m: &Marks<'_>, proof: &str) -> TestRequest {
        let mut r = TestRequest::post()
            .uri(m.target)
            .insert_header((FORWARDED_HEADER, m.node))
            .insert_header((NODE_STAMP_HEADER, m.stamp))
            .insert_header((NODE_AUTH_HEADER, proof));
        if let Some(id) = m.request_id {
            r = r.insert_header((REQUEST_ID_HEADER, id));
        }
        if m.retry {
            r = r.insert_header((RETRY_HEADER, "1"));
        }
        if let Some(b) = m.body {
            r = r.insert_header((NODE_BODY_HEADER, b));
        }
        r
    }

    fn check(key: &NodeKey, r: TestRequest, now: i64) -> Result<Proven, Unproven> {
        key.check_at(r.to_http_request().head(), now)
    }

    fn with(r: TestRequest, name: &'static str, value: &str) -> TestRequest {
        r.insert_header((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        ))
    }

    #[test]
    fn marks_count_only_when_proven_for_this_call_and_time() {
        let key = NodeKey::new([7; 32], "n1");
        let now = 1_764_000_000_000_i64;
        let stamp = format!("{now}.ab1");
        let digest = body_digest(b"{}");
        let m = marks(&stamp, Some(&digest));
        let proof = key.sign(&m);
        let proven = check(&key, request(&m, &proof), now).expect("proven");
        assert!(proven.binds(b"{}"));
        assert!(!proven.binds(b"{ }"));
        // Another key, node, request id, retry mark, stamp or body digest.
        assert_eq!(
            check(&NodeKey::new([8; 32], "n1"), request(&m, &proof), now),
            Err(Unproven::Forged)
        );
        let r = with(request(&m, &proof), FORWARDED_HEADER, "n3");
        assert_eq!(check(&key, r, now), Err(Unproven::Forged));
        let r = with(
            request(&m, &proof),
            REQUEST_ID_HEADER,
            "ffeeddccbbaa99887766554433221100",
        );
        assert_eq!(check(&key, r, now), Err(Unproven::Forged));
        let first_try = Marks { retry: false, ..m };
        assert_eq!(
            check(&key, request(&first_try, &proof), now),
            Err(Unproven::Forged)
        );
        let r = with(
            request(&m, &proof),
            NODE_STAMP_HEADER,
            &format!("{now}.ab2"),
        );
        assert_eq!(check(&key, r, now), Err(Unproven::Forged));
        let other_body = body_digest(b"[]");
        let r = with(request(&m, &proof), NODE_BODY_HEADER, &other_body);
        assert_eq!(check(&key, r, now), Err(Unproven::Forged));
        // Taken to another node: a forgery, unless it says whom it was for.
        assert_eq!(
            check(&NodeKey::new([7; 32], "n3"), request(&m, &proof), now),
            Err(Unproven::Forged)
        );
        let named = request(&m, &proof).insert_header((NODE_TO_HEADER, "n1"));
        assert_eq!(
            check(&NodeKey::new([7; 32], "n3"), named, now),
            Err(Unproven::Elsewhere)
        );
        // Moved to another path or method.
        let moved = Marks {
            target: "/internal/act?x=1",
            ..m
        };
        assert_eq!(
            check(&key, request(&moved, &proof), now),
            Err(Unproven::Forged)
        );
        let get = request(&m, &proof).method(actix_web::http::Method::GET);
        assert_eq!(check(&key, get, now), Err(Unproven::Forged));
        // Proven, but stamped too long before or after this node's clock.
        let late = now + SKEW.as_millis() as i64 + 1;
        assert_eq!(check(&key, request(&m, &proof), late), Err(Unproven::Stale));
        let early = now - SKEW.as_millis() as i64 - 1;
        assert_eq!(
            check(&key, request(&m, &proof), early),
            Err(Unproven::Stale)
        );
        assert!(check(&key, request(&m, &proof), now + 59_000).is_ok());
        // Marks a client set itself: none, without a proof, with a made-up one.
        assert_eq!(
            check(&key, TestRequest::post().uri("/mcp"), now),
            Err(Unproven::Unmarked)
        );
        let bare = TestRequest::post()
            .uri("/mcp")
            .insert_header((FORWARDED_HEADER, "n2"));
        assert_eq!(check(&key, bare, now), Err(Unproven::Forged));
        let made_up = with(request(&m, &proof), NODE_AUTH_HEADER, "00ff");
        assert_eq!(check(&key, made_up, now), Err(Unproven::Forged));
        // Without a request id or a body (a stream opened again): proven as well.
        let stream = Marks {
            request_id: None,
            body: None,
            ..m
        };
        let p = key.sign(&stream);
        let proven = check(&key, request(&stream, &p), now).expect("proven");
        assert!(!proven.binds(b""));
    }

    #[test]
    fn an_internal_proof_is_taken_once() {
        let key = NodeKey::new([7; 32], "n1");
        let now = unix_ms();
        let (a, b) = (format!("{now}.1"), format!("{now}.2"));
        let proven = |stamp: &str| {
            let m = marks(stamp, None);
            check(&key, request(&m, &key.sign(&m)), now).expect("proven")
        };
        let first = proven(&a);
        assert_eq!(key.first_use(&first), Some(true));
        assert_eq!(key.first_use(&first), Some(false));
        // The same call with another nonce is another call.
        assert_eq!(key.first_use(&proven(&b)), Some(true));
        // Still remembered once the generation turns.
        let mut seen = key.seen.lock().unwrap();
        seen.since = seen.since.checked_sub(SKEW * 2).expect("uptime past 2 min");
        drop(seen);
        assert_eq!(key.first_use(&first), Some(false));
    }
}
