//! Bearer tokens. Tokens live in memory only as SHA-256 digests and are looked up by
//! digest, so no plaintext comparison (and no timing leak on a prefix) ever happens.
//! The token decides who is calling; no argument ever does.

use crate::config::AgentsFile;
use crate::domain::AgentId;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use thiserror::Error;

pub(crate) type Digest = [u8; 32];

pub(crate) fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// What tokens are looked up by: the first 16 bytes of their SHA-256, which is also
/// what the reference stores (hex) in `agents.token_hash`, so that a cluster node
/// can accept the agents of the table without ever seeing their tokens. (128 bits:
/// finding a token for a given key is still a 2^128 search.)
pub(crate) type Key = [u8; 16];

pub(crate) fn key(token: &str) -> Key {
    key_of(&digest(token))
}

fn key_of(d: &Digest) -> Key {
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The reference stores the first 32 hex chars of the SHA-256 in `agents.token_hash`.
pub(crate) fn token_hash_column(token: &str) -> String {
    crate::domain::ids::hex(&key(token))
}

/// Whether `hex` is a `token_hash` as this server writes it: 32 lowercase hex digits.
pub(crate) fn is_token_hash(hex: &str) -> bool {
    crate::domain::ids::is_lower_hex(hex, 32)
}

/// The key of a `token_hash` column value; None if it is not 32 hex digits.
fn key_from_column(hex: &str) -> Option<Key> {
    crate::domain::ids::unhex(hex)?.try_into().ok()
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Agent(AgentId),
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(crate) enum AuthError {
    #[error("missing Authorization header: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("Authorization header must use the Bearer scheme")]
    WrongScheme,
    /// The same words for every token, known once or never: nothing tells a caller
    /// whether a token exists (or existed).
    #[error(
        "unknown bearer token; a newly added agent's token works once the operator runs \
         `hubctl reload` (or `hubctl agent add`, which reloads)"
    )]
    InvalidToken,
}

/// Token keys of every agent and of the operator.
#[derive(Debug, Clone)]
pub(crate) struct TokenIndex {
    by_key: HashMap<Key, Principal>,
    /// Kept so that a reload can build the next index without the plaintext.
    operator: Digest,
}

impl TokenIndex {
    pub(crate) fn new(agents: &AgentsFile, operator_token: &str) -> Self {
        Self::build(agents, digest(operator_token))
    }

    fn build(agents: &AgentsFile, operator: Digest) -> Self {
        let agents = agents
            .agents
            .iter()
            .map(|a| (key(&a.token), Principal::Agent(AgentId::new(&a.id))));
        Self::with_operator(agents.collect(), operator)
    }

    /// The agents of `(id, token_hash)` rows of the agents table (cluster mode's
    /// registry) and the operator token's digest. A row whose hash is not 32 hex
    /// digits cannot be matched by any token: it is left out and named in the
    /// second value.
    pub(crate) fn from_rows(rows: &[(String, String)], operator: Digest) -> (Self, Vec<String>) {
        let mut unusable = Vec::new();
        let mut by_key = HashMap::with_capacity(rows.len() + 1);
        for (id, hash) in rows {
            match key_from_column(hash) {
                Some(k) => {
                    by_key.insert(k, Principal::Agent(AgentId::new(id)));
                }
                None => unusable.push(id.clone()),
            }
        }
        (Self::with_operator(by_key, operator), unusable)
    }

    fn with_operator(mut by_key: HashMap<Key, Principal>, operator: Digest) -> Self {
        // An agent token equal to the operator token must not grant operator rights
        // to that agent; the operator entry wins and the agent cannot authenticate.
        by_key.insert(key_of(&operator), Principal::Operator);
        TokenIndex { by_key, operator }
    }

    /// The operator token's digest (a dashboard session remembers it, so that a
    /// rotated token ends the sessions logged in with the old one).
    pub(crate) fn operator_digest(&self) -> Digest {
        self.operator
    }

    /// Whether `token` is this index's operator token.
    pub(crate) fn is_operator_token(&self, token: &str) -> bool {
        self.operator == digest(token)
    }

    /// Each agent's token key (to tell which tokens a reload rotated).
    pub(crate) fn agent_keys(&self) -> HashMap<&AgentId, &Key> {
        self.by_key
            .iter()
            .filter_map(|(d, p)| match p {
                Principal::Agent(a) => Some((a, d)),
                Principal::Operator => None,
            })
            .collect()
    }

    /// The agents this index accepts as `(id, token_hash)` rows of the agents
    /// table ([`token_hash_column`] of each token), by id: what a cluster node
    /// taking over writes to the table, so that the hub and the tokens agree.
    pub(crate) fn agent_rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = self
            .agent_keys()
            .into_iter()
            .map(|(id, k)| (id.to_string(), crate::domain::ids::hex(k)))
            .collect();
        rows.sort();
        rows
    }

    /// Resolve an `Authorization` header value.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer(header)?;
        self.by_key
            .get(&key(token))
            .cloned()
            .ok_or(AuthError::InvalidToken)
    }
}

/// The token index the server authenticates with, replaced whole by a reload.
/// An `RwLock<Arc<_>>` rather than the `arc-swap` crate: a read is one uncontended
/// read lock and an `Arc` clone per request (noise next to the SHA-256 of the token),
/// writes happen only on reload, and it needs no new dependency.
#[derive(Debug)]
pub(crate) struct LiveTokens(RwLock<Arc<TokenIndex>>);

impl LiveTokens {
    pub(crate) fn new(index: TokenIndex) -> Self {
        LiveTokens(RwLock::new(Arc::new(index)))
    }

    /// The index in force now.
    pub(crate) fn current(&self) -> Arc<TokenIndex> {
        // A panic while holding the lock cannot leave a half-built index (the swap
        // is one assignment), so a poisoned lock is still sound.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Put `index` in force for every request from now on.
    pub(crate) fn replace(&self, index: TokenIndex) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
    }
}

/// Extract the token of `Bearer <token>` (scheme case-insensitive, per RFC 7235).
pub(crate) fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    if h.is_empty() || h.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let (scheme, rest) = h.split_once(' ').ok_or(AuthError::WrongScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::WrongScheme);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::agents_env;

    fn index() -> TokenIndex {
        let f = agents_env::parse("f", "alice=tok-a\nbob=tok-b\n").unwrap();
        TokenIndex::new(&f, "op-token")
    }

    #[test]
    fn lookup_by_token() {
        let idx = index();
        assert_eq!(
            idx.authenticate(Some("Bearer tok-a")),
            Ok(Principal::Agent(AgentId::new("alice")))
        );
        assert_eq!(
            idx.authenticate(Some("bearer  tok-b ")),
            Ok(Principal::Agent(AgentId::new("bob")))
        );
        assert_eq!(
            idx.authenticate(Some("Bearer op-token")),
            Ok(Principal::Operator)
        );
    }

    #[test]
    fn refusals() {
        let idx = index();
        assert_eq!(idx.authenticate(None), Err(AuthError::Missing));
        assert_eq!(idx.authenticate(Some("")), Err(AuthError::Missing));
        assert_eq!(idx.authenticate(Some("Bearer ")), Err(AuthError::Missing));
        assert_eq!(
            idx.authenticate(Some("Basic dXNlcjpwYXNz")),
            Err(AuthError::WrongScheme)
        );
        assert_eq!(idx.authenticate(Some("tok-a")), Err(AuthError::WrongScheme));
        assert_eq!(
            idx.authenticate(Some("Bearer tok-c")),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            idx.authenticate(Some("Bearer tok-a2")),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn live_tokens_are_replaced_whole() {
        let live = LiveTokens::new(index());
        let f = agents_env::parse("f", "alice=tok-a2\ncarol=tok-c\n").unwrap();
        assert!(live.current().is_operator_token("op-token"));
        live.replace(TokenIndex::new(&f, "op-token"));
        let idx = live.current();
        assert_eq!(
            idx.authenticate(Some("Bearer tok-a")),
            Err(AuthError::InvalidToken)
        );
        assert_eq!(
            idx.authenticate(Some("Bearer tok-c")),
            Ok(Principal::Agent(AgentId::new("carol")))
        );
        assert_eq!(
            idx.authenticate(Some("Bearer op-token")),
            Ok(Principal::Operator)
        );
        let d = idx.agent_keys();
        assert_eq!(d.get(&AgentId::new("alice")), Some(&&key("tok-a2")));
        assert_eq!(d.get(&AgentId::new("bob")), None);
    }

    #[test]
    fn an_index_from_table_rows_accepts_the_same_tokens() {
        let file = agents_env::parse("f", "alice=tok-a\nbob=tok-b\n").unwrap();
        let rows = TokenIndex::new(&file, "op").agent_rows();
        let mut with_bad = rows.clone();
        with_bad.push(("carol".into(), String::new()));
        with_bad.push(("dave".into(), "zz".repeat(16)));
        let (idx, unusable) = TokenIndex::from_rows(&with_bad, digest("op"));
        assert_eq!(unusable, ["carol", "dave"]);
        assert_eq!(idx.agent_rows(), rows);
        assert_eq!(
            idx.authenticate(Some("Bearer tok-b")),
            Ok(Principal::Agent(AgentId::new("bob")))
        );
        assert_eq!(idx.authenticate(Some("Bearer op")), Ok(Principal::Operator));
        assert_eq!(
            idx.authenticate(Some("Bearer tok-c")),
            Err(AuthError::InvalidToken)
        );
        // A row carrying the operator token's hash does not make that agent the
        // operator, nor the operator that agent.
        let (idx, _) =
            TokenIndex::from_rows(&[("mallory".into(), token_hash_column("op"))], digest("op"));
        assert_eq!(idx.authenticate(Some("Bearer op")), Ok(Principal::Operator));
        assert!(idx.agent_rows().is_empty());
    }

    #[test]
    fn reference_hash_column_is_32_hex() {
        assert_eq!(token_hash_column("x").len(), 32);
        let file = crate::config::agents_env::parse("t", "b=tok-b\na=tok-a\n").unwrap();
        let rows = TokenIndex::new(&file, "op").agent_rows();
        assert_eq!(
            rows,
            vec![
                ("a".to_string(), token_hash_column("tok-a")),
                ("b".to_string(), token_hash_column("tok-b"))
            ]
        );
    }
}
