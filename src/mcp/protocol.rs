//! MCP protocol revisions we serve and what each one changes.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Version {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
}

impl Version {
    pub(crate) const LATEST: Version = Version::V2025_11_25;
    /// Newest first.
    pub(crate) const ALL: [Version; 3] = [
        Version::V2025_11_25,
        Version::V2025_06_18,
        Version::V2025_03_26,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::V2025_03_26 => "2025-03-26",
            Version::V2025_06_18 => "2025-06-18",
            Version::V2025_11_25 => "2025-11-25",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == s)
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
    Version::parse(requested).unwrap_or(Version::LATEST)
}

pub(crate) const INSTRUCTIONS: &str = "Agent Hub coordinates several agents on one job. Your identity comes from your bearer token. \
Call agent_register once with your display name and capabilities, then agent_heartbeat now and then. \
Wait for messages with inbox_pull and wait_seconds instead of polling in a loop; ack what you handled with message_ack. \
Every tool answers a JSON object with ok=true, or ok=false with an error code and a message saying what to change.";

pub(crate) fn initialize_result(v: Version) -> Value {
    json!({
        "protocolVersion": v.as_str(),
        "capabilities": {
            "tools": {"listChanged": false},
            // The inbox resource; every session is subscribed to its own inbox.
            "resources": {"subscribe": true, "listChanged": false},
        },
        "serverInfo": {
            "name": "agent-hub",
            "title": "Agent Hub",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": INSTRUCTIONS,
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
        for other in ["2024-11-05", "2026-07-28", "1.0.0", ""] {
            assert_eq!(negotiate(other), Version::LATEST);
        }
    }

    #[test]
    fn gates() {
        assert!(Version::V2025_03_26.allows_batches());
        assert!(!Version::V2025_06_18.allows_batches());
        assert!(!Version::V2025_03_26.has_structured_content());
        assert!(Version::V2025_11_25.has_structured_content());
    }
}
