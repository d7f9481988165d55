//! Node-to-node calls under the cluster key (issue 16: "a cluster key for
//! node-to-node calls"). A gateway marks what it sends on to the serving node
//! ([`super::FORWARDED_HEADER`], the request id and the retry mark of
//! `mcp::replay`) and proves the marks with [`NODE_AUTH_HEADER`]: HMAC-SHA256
//! under the cluster key of a domain label, the sending node's id, the request id
//! and the retry mark, truncated to 128 bits, in hex. A receiving node honours the
//! marks (answers from `request_log`, the standby refusal of a request another
//! node took it for the leader with, the inbox hint of a stream opened again) only
//! when the proof checks: a client that sets them itself is an ordinary client.
//! The forwarded call still carries the client's own token and gains no
//! privilege. No time is signed (nodes' clocks are not trusted); the headers
//! travel between nodes only, never back to a client.

use super::FORWARDED_HEADER;
use crate::mcp::replay::{REQUEST_ID_HEADER, RETRY_HEADER};
use actix_web::http::header::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The proof that a node of this cluster sent the marks.
pub(crate) const NODE_AUTH_HEADER: &str = "x-agent-hub-node-auth";

const LABEL: &[u8] = b"agent-hub node call v1\0";
const MAC: usize = 16;

/// The cluster key, as node-to-node calls use it.
pub(crate) struct NodeKey([u8; 32]);

impl NodeKey {
    pub(crate) fn new(key: [u8; 32]) -> NodeKey {
        NodeKey(key)
    }

    fn mac(&self, node: &str, request_id: &str, retry: bool) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("invariant: HMAC takes a key of any length");
        m.update(LABEL);
        m.update(node.as_bytes());
        m.update(b"\0");
        m.update(request_id.as_bytes());
        m.update(if retry { b"\0retry" } else { b"\0first" });
        m
    }

    /// The proof for marks `node` (the sender's id), `request_id` and `retry`.
    pub(crate) fn sign(&self, node: &str, request_id: Option<&str>, retry: bool) -> String {
        let full = self
            .mac(node, request_id.unwrap_or(""), retry)
            .finalize()
            .into_bytes();
        crate::domain::ids::hex(&full[..MAC])
    }

    /// Whether `headers` carry marks of a node of this cluster, proven. Checked
    /// in constant time.
    pub(crate) fn check(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(node), Some(proof)) = (text(FORWARDED_HEADER), text(NODE_AUTH_HEADER)) else {
            return false;
        };
        let Some(proof) = crate::domain::ids::unhex(proof) else {
            return false;
        };
        let request_id = text(REQUEST_ID_HEADER).unwrap_or("");
        let retry = headers.contains_key(RETRY_HEADER);
        proof.len() == MAC
            && self
                .mac(node, request_id, retry)
                .verify_truncated_left(&proof)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in list {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    #[test]
    fn marks_count_only_when_proven() {
        let key = NodeKey::new([7; 32]);
        let id = "00112233445566778899aabbccddeeff";
        let proof = key.sign("n2", Some(id), true);
        let good = headers(&[
            (FORWARDED_HEADER, "n2"),
            (REQUEST_ID_HEADER, id),
            (RETRY_HEADER, "1"),
            (NODE_AUTH_HEADER, &proof),
        ]);
        assert!(key.check(&good));
        // Another key, node, request id or retry mark: not proven.
        assert!(!NodeKey::new([8; 32]).check(&good));
        let mut other_node = good.clone();
        other_node.insert(
            HeaderName::from_static(FORWARDED_HEADER),
            HeaderValue::from_static("n3"),
        );
        assert!(!key.check(&other_node));
        let mut first_try = good.clone();
        first_try.remove(RETRY_HEADER);
        assert!(!key.check(&first_try));
        let mut other_id = good.clone();
        other_id.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_static("ffeeddccbbaa99887766554433221100"),
        );
        assert!(!key.check(&other_id));
        // Marks a client set itself, without a proof or with a made-up one.
        assert!(!key.check(&headers(&[(FORWARDED_HEADER, "n2")])));
        let made_up = headers(&[(FORWARDED_HEADER, "n2"), (NODE_AUTH_HEADER, "00ff")]);
        assert!(!key.check(&made_up));
        // Without a request id (a stream opened again): proven as well.
        let stream = headers(&[
            (FORWARDED_HEADER, "n2"),
            (RETRY_HEADER, "1"),
            (NODE_AUTH_HEADER, &key.sign("n2", None, true)),
        ]);
        assert!(key.check(&stream));
    }
}
