//! MCP protocol revisions we serve and what each one changes. The handshake
//! revisions (2025-03-26 to 2025-11-25) are negotiated by `initialize` and kept on a
//! session; 2026-07-28 has no handshake: every request names it (see [`super::modern`]).

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Version {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl Version {
    /// The newest revision `initialize` can negotiate.
    pub(crate) const LATEST: Version = Version::V2025_11_25;
    /// The stateless revision: no `initialize`, no session.
    pub(crate) const MODERN: Version = Version::V2026_07_28;
    /// Every revision served, newest first.
    pub(crate) const ALL: [Version; 4] = [
        Version::V2026_07_28,
        Version::V2025_11_25,
        Version::V2025_06_18,
        Version::V2025_03_26,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V2025_03_26 => "2025-03-26",
            Version::V2025_06_18 => "2025-06-18",
            Version::V2025_11_25 => "2025-11-25",
            Version::V2026_07_28 => "2026-07-28",
        }
    }

    /// A revision `initialize` can negotiate (and a session can be on).
    pub(crate) fn parse_handshake(s: &str) -> Option<Version> {
        Version::ALL
            .into_iter()
            .find(|v| !v.is_modern() && v.as_str() == s)
    }

    /// Whether this is the stateless revision.
    pub(crate) fn is_modern(self) -> bool {
        self == Version::MODERN
    }

    /// `structuredContent`, `outputSchema` and `title` exist from 2025-06-18 on.
    pub(crate) fn has_structured_content(self) -> bool {
        self >= Version::V2025_06_18
    }

    /// JSON-RPC batches were allowed only in 2025-03-26.
    pub(crate) fn allows_batches(self) -> bool {
        self == Version::V2025_03_26
    }
}

/// Answer the requested version when we support it, else our newest; the client then
/// decides whether it can talk to us.
pub(crate) fn negotiate(requested: &str) -> Version {
    Version::parse_handshake(requested).unwrap_or(Version::LATEST)
}

/// The `instructions` of `initialize` and `server/discover`, for the calling agent:
/// clients such as Claude Code put them in the model's system prompt.
pub(crate) fn instructions(agent: &str) -> String {
    format!(
        "You are agent \"{agent}\" on Agent Hub, which coordinates several agents on one job; \
your identity comes from your bearer token. Call agent_register once with your display name and capabilities.\n\
Workflow: a dispatcher creates a task (task_draft_create) and submits a plan of assignments (round_plan_submit); \
the human operator approves the round; each assignee finds its work with assignment_list, claims it (assignment_claim), \
reports progress (assignment_progress) and finishes with a handoff (assignment_complete); the dispatcher reads \
handoffs (handoff_get) and reviews the round (review_submit). Hold lock_acquire / lock_release around shared \
resources such as a branch.\n\
Waiting for work: when you have nothing to do, call inbox_pull with wait_seconds (up to 25) instead of polling; \
messages from \"hub\" tell you of new assignments, approvals, reviews and lapsed leases. If your client shows \
channel events from agent-hub, they say the same at once. Ack what you handled with message_ack.\n\
Every tool answers a JSON object with ok=true, or ok=false with an error code and a message saying what to change."
    )
}

/// What we declare, in every revision: tools, and the inbox resource (every session
/// is subscribed to its own inbox; a 2026-07-28 client subscribes with
/// `subscriptions/listen`).
pub(crate) fn capabilities() -> Value {
    json!({
        "tools": {"listChanged": false},
        "resources": {"subscribe": true, "listChanged": false},
        // Claude Code (2.1.80+) treats a server declaring this as a channel: each
        // `notifications/claude/channel` becomes a `<channel>` block in the session.
        "experimental": {"claude/channel": {}},
    })
}

/// `Implementation` of this server.
pub(crate) fn server_info() -> Value {
    json!({
        "name": "agent-hub",
        "title": "Agent Hub",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

pub(crate) fn initialize_result(v: Version, agent: &str) -> Value {
    json!({
        "protocolVersion": v.as_str(),
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": instructions(agent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate("2025-03-26"), Version::V2025_03_26);
        assert_eq!(negotiate("2025-06-18"), Version::V2025_06_18);
        assert_eq!(negotiate("2025-11-25"), Version::V2025_11_25);
        // 2026-07-28 has no handshake: asking for it in `initialize` gets our newest
        // handshake revision, like any version we cannot negotiate.
        for other in ["2024-11-05", "2026-07-28", "1.0.0", ""] {
            assert_eq!(negotiate(other), Version::LATEST);
        }
        assert_eq!(Version::parse_handshake("2026-07-28"), None);
        assert!(Version::ALL
            .iter()
            .filter(|v| v.is_modern())
            .eq([&Version::MODERN]));
    }

    #[test]
    fn gates() {
        assert!(Version::V2025_03_26.allows_batches());
        assert!(!Version::V2025_06_18.allows_batches());
        assert!(!Version::V2025_03_26.has_structured_content());
        assert!(Version::V2025_11_25.has_structured_content());
        assert!(Version::MODERN.has_structured_content() && !Version::MODERN.allows_batches());
    }
}
