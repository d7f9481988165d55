//! Identifier newtypes. `AgentId` is an `Arc<str>` because it is cloned into every
//! request span, session and actor message.

use std::fmt;
use std::sync::Arc;

/// An agent's id as written in `agents.env`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AgentId(Arc<str>);

impl AgentId {
    pub(crate) fn new(s: &str) -> Self {
        AgentId(Arc::from(s))
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", &self.0)
    }
}

impl serde::Serialize for AgentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(AgentId::new(&s))
    }
}

/// Whether `s` may be an agent id: 1–64 chars of `A-Z a-z 0-9 . _ -`.
/// Kept URL- and shell-safe because ids appear in paths, logs and CLI arguments.
pub(crate) fn is_valid_agent_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A message id: 6 bytes of Unix milliseconds then 4 bytes of a scrambled
/// per-process sequence, as 20 hex digits. New ids sort after older ones, so the
/// message tables' indexes grow at their right edge (pages already cached) instead
/// of at random places of a large history. The sequence makes the ids of one
/// process unique by construction, which 4 random bytes per id were not: at 10,000
/// messages a second two ids of one millisecond collide about once a day, and
/// `INSERT OR IGNORE` would drop the second message. It also saves a `getrandom`
/// system call per message. Ids need not be unguessable: an agent can only ack or
/// read messages delivered to it.
pub(crate) fn message_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    // (multiplier, start): random per process.
    static KEY: OnceLock<(u32, u32)> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (mul, start) = *KEY.get_or_init(|| {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("invariant: the OS random number generator is available");
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (word(0) | 1, word(4))
    });
    // Multiplying by an odd number and adding is a bijection on u32: ids stay
    // unique, and with both numbers secret the gap between two ids does not count
    // the messages the hub made in between.
    let seq = NEXT
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(mul)
        .wrapping_add(start);
    let mut buf = [0u8; 10];
    buf[..6].copy_from_slice(&(now_ms.max(0) as u64).to_be_bytes()[2..]);
    buf[6..].copy_from_slice(&seq.to_be_bytes());
    hex(&buf)
}

/// `n` random bytes from the OS CSPRNG as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The OS random source failing is not recoverable for a server that must issue
    // unguessable ids; there is nothing sensible to fall back to.
    getrandom::fill(&mut buf).expect("invariant: the OS random number generator is available");
    hex(&buf)
}

/// `id` as one URL path segment: unreserved characters (and `:`) as they are,
/// every other byte percent-encoded. Used by hubctl's operator calls and the
/// dashboard's links.
pub(crate) fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The bytes of hex text (either case); None unless it is an even number of hex
/// digits.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2)?;
            pair.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| u8::from_str_radix(pair, 16).ok())?
        })
        .collect()
}

/// Whether `s` is `len` lowercase hex digits (what [`hex`] writes).
pub(crate) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_time() {
        let a = message_id(1_700_000_000_000);
        let b = message_id(1_700_000_000_001);
        assert_eq!(a.len(), 20);
        assert!(a < b, "{a} {b}");
        assert_ne!(message_id(5), message_id(5));
    }

    #[test]
    fn message_ids_of_one_millisecond_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..200_000)
            .map(|_| message_id(1_700_000_000_000))
            .collect();
        assert_eq!(ids.len(), 200_000);
    }

    #[test]
    fn agent_id_rules() {
        assert!(is_valid_agent_id("claude-code"));
        assert!(is_valid_agent_id("codex.desktop_2"));
        assert!(!is_valid_agent_id(""));
        assert!(!is_valid_agent_id("has space"));
        assert!(!is_valid_agent_id("slash/y"));
        assert!(!is_valid_agent_id(&"a".repeat(65)));
    }

    #[test]
    fn random_hex_is_unique_and_sized() {
        let a = random_hex(16);
        let b = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn unhex_decodes_what_hex_encodes_and_nothing_else() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(unhex(""), Some(vec![]));
        for bad in ["abc", "zz", "+1", "é0"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
        assert!(is_lower_hex("00ff", 4));
        assert!(!is_lower_hex("00FF", 4) && !is_lower_hex("00ff", 2));
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }
}
