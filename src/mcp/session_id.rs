//! Session ids that check themselves (cluster mode, shared/spec/cluster.md §2
//! "Sessions, SSE and the load balancer"): any node holding the cluster key can tell
//! a session id it issued, for that agent, without a lookup. The node that serves
//! after a failover (or a restart) takes the client's session back instead of
//! answering 404 and making it initialize again.
//!
//! `s1.` then base64url (no padding) of `nonce (16) ‖ version (1) ‖ issued_at (8,
//! Unix seconds, big-endian) ‖ mac (16)`, where `mac` is HMAC-SHA256 under the
//! cluster key of a domain label, those fields and the agent id, truncated to 128
//! bits. The agent id is not in the id: a session is bound to the token's agent by
//! the MAC, so another agent's session id checks exactly like a forged one.

use super::protocol::Version;
use crate::domain::AgentId;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

const PREFIX: &str = "s1.";
const NONCE: usize = 16;
const MAC: usize = 16;
const BODY: usize = NONCE + 1 + 8;
const LABEL: &[u8] = b"agent-hub session id v1\0";

/// How long a signed session id stays valid after it was issued, however busy: an
/// absolute lifetime (idle expiry only frees the memory of a session; its id is
/// taken back on its next use).
pub(crate) const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Issues and checks session ids under the cluster key.
pub(crate) struct Signer {
    key: [u8; 32],
    lifetime: Duration,
}

/// What a valid id says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claims {
    pub version: Version,
    /// Unix seconds.
    pub issued_at: u64,
}

fn code(v: Version) -> u8 {
    match v {
        Version::V2025_03_26 => 1,
        Version::V2025_06_18 => 2,
        Version::V2025_11_25 => 3,
        Version::V2026_07_28 => 4,
    }
}

fn from_code(c: u8) -> Option<Version> {
    Some(match c {
        1 => Version::V2025_03_26,
        2 => Version::V2025_06_18,
        3 => Version::V2025_11_25,
        // The stateless revision has no sessions.
        _ => return None,
    })
}

impl Signer {
    pub(crate) fn new(key: [u8; 32]) -> Signer {
        Signer {
            key,
            lifetime: LIFETIME,
        }
    }

    fn mac(&self, body: &[u8], agent: &AgentId) -> [u8; MAC] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("invariant: HMAC takes a key of any length");
        m.update(LABEL);
        m.update(body);
        m.update(agent.as_str().as_bytes());
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC];
        out.copy_from_slice(&full[..MAC]);
        out
    }

    /// A new id for `agent`'s session of `version`, issued at `now` (Unix seconds).
    pub(crate) fn issue(&self, agent: &AgentId, version: Version, now: u64) -> String {
        let mut raw = [0u8; BODY + MAC];
        getrandom::fill(&mut raw[..NONCE])
            .expect("invariant: the OS random number generator is available");
        raw[NONCE] = code(version);
        raw[NONCE + 1..BODY].copy_from_slice(&now.to_be_bytes());
        let mac = self.mac(&raw[..BODY], agent);
        raw[BODY..].copy_from_slice(&mac);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    }

    /// What `id` says, if this key issued it for `agent` and it has not outlived
    /// [`LIFETIME`] at `now` (Unix seconds). Checked in constant time.
    pub(crate) fn check(&self, id: &str, agent: &AgentId, now: u64) -> Option<Claims> {
        let b64 = id.strip_prefix(PREFIX)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        if raw.len() != BODY + MAC {
            return None;
        }
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("invariant: HMAC takes a key of any length");
        m.update(LABEL);
        m.update(&raw[..BODY]);
        m.update(agent.as_str().as_bytes());
        m.verify_truncated_left(&raw[BODY..]).ok()?;
        let version = from_code(raw[NONCE])?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&raw[NONCE + 1..BODY]);
        let issued_at = u64::from_be_bytes(at);
        // Issued in the future (another node's clock ahead): up to a minute is
        // clock skew; beyond, refused.
        if issued_at > now + 60 || now.saturating_sub(issued_at) > self.lifetime.as_secs() {
            return None;
        }
        Some(Claims { version, issued_at })
    }
}

/// The cluster key as it is stored: 64 hex digits (32 bytes).
pub(crate) fn parse_key(text: &str) -> Option<[u8; 32]> {
    crate::domain::ids::unhex(text.trim())?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgentId {
        AgentId::new(s)
    }

    #[test]
    fn issued_ids_check_for_their_agent_only() {
        let s = Signer::new([7; 32]);
        let id = s.issue(&a("alice"), Version::V2025_06_18, 1_000);
        assert!(id.starts_with("s1.") && id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(
            s.check(&id, &a("alice"), 1_010),
            Some(Claims {
                version: Version::V2025_06_18,
                issued_at: 1_000
            })
        );
        assert_eq!(s.check(&id, &a("bob"), 1_010), None, "bound to the agent");
        assert_eq!(Signer::new([8; 32]).check(&id, &a("alice"), 1_010), None);
        assert_ne!(
            s.issue(&a("alice"), Version::LATEST, 1_000),
            id,
            "a nonce each"
        );
    }

    #[test]
    fn lifetime_skew_and_tampering() {
        let s = Signer::new([1; 32]);
        let id = s.issue(&a("x"), Version::LATEST, 10_000);
        let day = LIFETIME.as_secs();
        assert!(s.check(&id, &a("x"), 10_000 + day).is_some());
        assert!(s.check(&id, &a("x"), 10_001 + day).is_none(), "expired");
        assert!(s.check(&id, &a("x"), 10_000 - 60).is_some(), "skew");
        assert!(s.check(&id, &a("x"), 10_000 - 61).is_none());
        // Any changed character fails (the version byte and time included).
        for i in 3..id.len() {
            let mut b = id.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(b).unwrap();
            if forged != id {
                assert!(s.check(&forged, &a("x"), 10_000).is_none(), "{forged}");
            }
        }
        for junk in ["", "s1.", "s1.!!", "abc", &id[..id.len() - 2], "s2.AAAA"] {
            assert!(s.check(junk, &a("x"), 10_000).is_none(), "{junk}");
        }
        // A hex id of the unsigned kind is simply not one of these.
        assert!(s.check(&"ab".repeat(32), &a("x"), 10_000).is_none());
    }

    #[test]
    fn keys_parse_from_hex() {
        let k = parse_key(&format!("{}\n", "0f".repeat(32))).unwrap();
        assert_eq!(k, [0x0f; 32]);
        assert!(parse_key("0f").is_none());
        assert!(parse_key(&"zz".repeat(32)).is_none());
    }
}
