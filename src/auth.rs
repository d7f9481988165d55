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

/// The reference stores the first 32 hex chars of the SHA-256 in `agents.token_hash`.
pub(crate) fn token_hash_column(token: &str) -> String {
    crate::domain::ids::hex(&digest(token)[..16])
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

/// Token digests of every agent and of the operator.
#[derive(Debug, Clone)]
pub(crate) struct TokenIndex {
    by_digest: HashMap<Digest, Principal>,
    /// Kept so that a reload can build the next index without the plaintext.
    operator: Digest,
}

impl TokenIndex {
    pub(crate) fn new(agents: &AgentsFile, operator_token: &str) -> Self {
        Self::build(agents, digest(operator_token))
    }

    fn build(agents: &AgentsFile, operator: Digest) -> Self {
        let mut by_digest: HashMap<Digest, Principal> = agents
            .agents
            .iter()
            .map(|a| (digest(&a.token), Principal::Agent(AgentId::new(&a.id))))
            .collect();
        // An agent token equal to the operator token must not grant operator rights
        // to that agent; the operator entry wins and the agent cannot authenticate.
        by_digest.insert(operator, Principal::Operator);
        TokenIndex {
            by_digest,
            operator,
        }
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

    /// Each agent's token digest (to tell which tokens a reload rotated).
    pub(crate) fn agent_digests(&self) -> HashMap<&AgentId, &Digest> {
        self.by_digest
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
            .agent_digests()
            .into_iter()
            .map(|(id, d)| (id.to_string(), crate::domain::ids::hex(&d[..16])))
            .collect();
        rows.sort();
        rows
    }

    /// Resolve an `Authorization` header value.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = bearer(header)?;
        self.by_digest
            .get(&digest(token))
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
        let d = idx.agent_digests();
        assert_eq!(d.get(&AgentId::new("alice")), Some(&&digest("tok-a2")));
        assert_eq!(d.get(&AgentId::new("bob")), None);
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
