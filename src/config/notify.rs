//! `notify:` in config.yaml: the operator's webhooks (see `crate::notify`).
//!
//! ```yaml
//! notify:
//!   - url: https://hooks.slack.com/services/T000/B000/XXXX
//!     events: [round_awaiting_approval, task_completed]
//!     secret_file: webhook.secret     # or secret: "..."; relative to this file
//! ```

use super::ConfigError;
use serde_norway::Value;
use std::path::Path;

/// Most webhook targets (each has its own delivery thread and queue).
pub(crate) const MAX_TARGETS: usize = 16;

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    RoundAwaitingApproval,
    RoundApproved,
    RoundRejected,
    TaskCompleted,
    LeaseLapsed,
    StoreFault,
    StoreHealed,
    AgentOnline,
    AgentOffline,
    /// `hubctl notify test`.
    Test,
}

impl Kind {
    /// Every kind a target may name (`all` is these).
    pub(crate) const ALL: [Kind; 9] = [
        Kind::RoundAwaitingApproval,
        Kind::RoundApproved,
        Kind::RoundRejected,
        Kind::TaskCompleted,
        Kind::LeaseLapsed,
        Kind::StoreFault,
        Kind::StoreHealed,
        Kind::AgentOnline,
        Kind::AgentOffline,
    ];

    /// When a target names none.
    pub(crate) const DEFAULT: [Kind; 5] = [
        Kind::RoundAwaitingApproval,
        Kind::TaskCompleted,
        Kind::LeaseLapsed,
        Kind::StoreFault,
        Kind::AgentOffline,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::RoundAwaitingApproval => "round_awaiting_approval",
            Kind::RoundApproved => "round_approved",
            Kind::RoundRejected => "round_rejected",
            Kind::TaskCompleted => "task_completed",
            Kind::LeaseLapsed => "lease_lapsed",
            Kind::StoreFault => "store_fault",
            Kind::StoreHealed => "store_healed",
            Kind::AgentOnline => "agent_online",
            Kind::AgentOffline => "agent_offline",
            Kind::Test => "test",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One webhook.
#[derive(Clone, PartialEq)]
pub(crate) struct Target {
    pub url: String,
    pub kinds: Vec<Kind>,
    /// Signs each body (HMAC-SHA256) when set.
    pub secret: Option<String>,
}

impl Target {
    /// The URL without path or query, for logs and answers: a webhook URL is often
    /// itself a secret (Slack's are).
    pub(crate) fn label(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let scheme = self.url.split("://").next().unwrap_or("http");
        format!("{scheme}://{host}")
    }
}

impl std::fmt::Debug for Target {
    // Never the secret or the full URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.label())
            .field("kinds", &self.kinds)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

fn bad(file: &str, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        file: file.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Parse the `notify:` list of `file` (secret files are relative to its directory).
pub(crate) fn parse(file: &str, v: &Value) -> Result<Vec<Target>, ConfigError> {
    let list = v.as_sequence().ok_or_else(|| {
        bad(
            file,
            "notify",
            "must be a list of `- url: ...` entries (with events and secret or secret_file)",
        )
    })?;
    if list.len() > MAX_TARGETS {
        return Err(bad(
            file,
            "notify",
            format!("at most {MAX_TARGETS} webhooks, got {}", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, entry)| target(file, i, entry))
        .collect()
}

fn target(file: &str, i: usize, entry: &Value) -> Result<Target, ConfigError> {
    let at = |k: &str| format!("notify[{i}].{k}");
    let map = entry.as_mapping().ok_or_else(|| {
        bad(
            file,
            &format!("notify[{i}]"),
            "must be a mapping with url (and events, secret or secret_file)",
        )
    })?;
    let (mut url, mut kinds, mut secret) = (None, None, None);
    for (k, v) in map {
        match k.as_str().unwrap_or_default() {
            "url" => {
                let u = v.as_str().map(str::trim).unwrap_or_default();
                if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                    return Err(bad(file, &at("url"), "must be an http:// or https:// URL"));
                }
                url = Some(u.to_string());
            }
            "events" => {
                let names = v
                    .as_sequence()
                    .ok_or_else(|| bad(file, &at("events"), "must be a list of event kinds"))?;
                let mut list = Vec::new();
                for n in names {
                    let name = n.as_str().unwrap_or_default();
                    if name == "all" {
                        list.extend(Kind::ALL);
                        continue;
                    }
                    let kind = Kind::parse(name).ok_or_else(|| {
                        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                        bad(
                            file,
                            &at("events"),
                            format!("unknown kind {name:?}; known: all, {}", known.join(", ")),
                        )
                    })?;
                    list.push(kind);
                }
                list.dedup();
                kinds = Some(list);
            }
            "secret" => {
                let s = v.as_str().unwrap_or_default();
                if s.trim().is_empty() {
                    return Err(bad(file, &at("secret"), "must be a non-empty string"));
                }
                secret = Some(s.trim().to_string());
            }
            "secret_file" => {
                let name = v.as_str().unwrap_or_default().trim();
                let dir = Path::new(file).parent().unwrap_or(Path::new("."));
                let path = dir.join(name);
                let s = std::fs::read_to_string(&path).map_err(|e| {
                    bad(file, &at("secret_file"), format!("{}: {e}", path.display()))
                })?;
                if s.trim().is_empty() {
                    return Err(bad(
                        file,
                        &at("secret_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
                secret = Some(s.trim().to_string());
            }
            other => {
                return Err(bad(
                    file,
                    &at(other),
                    "unknown; use url, events, secret or secret_file",
                ))
            }
        }
    }
    Ok(Target {
        url: url.ok_or_else(|| bad(file, &at("url"), "is required"))?,
        kinds: kinds.unwrap_or_else(|| Kind::DEFAULT.to_vec()),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_yaml(text: &str) -> Result<Vec<Target>, ConfigError> {
        let v: Value = serde_norway::from_str(text).unwrap();
        parse("/etc/agent-hub/config.yaml", &v)
    }

    #[test]
    fn targets_with_kinds_and_defaults() {
        let t = parse_yaml(
            "- url: https://hooks.example.com/services/SECRET\n  events: [round_awaiting_approval, store_fault]\n  secret: s3\n- url: http://127.0.0.1:9/x\n",
        )
        .unwrap();
        assert_eq!(t[0].kinds, [Kind::RoundAwaitingApproval, Kind::StoreFault]);
        assert_eq!(t[0].secret.as_deref(), Some("s3"));
        assert_eq!(t[1].kinds, Kind::DEFAULT);
        assert_eq!(t[0].label(), "https://hooks.example.com");
        let shown = format!("{:?}", t[0]);
        assert!(
            !shown.contains("SECRET") && !shown.contains("s3"),
            "{shown}"
        );
        let all = parse_yaml("- url: http://h.example/x\n  events: [all]\n").unwrap();
        assert_eq!(all[0].kinds, Kind::ALL);
    }

    #[test]
    fn bad_entries_name_their_key() {
        for (text, key) in [
            ("url: x", "notify"),
            ("- events: [all]", "notify[0].url"),
            ("- url: ftp://x.example/y", "notify[0].url"),
            (
                "- url: http://x.example/y\n  events: [everything]",
                "notify[0].events",
            ),
            (
                "- url: http://x.example/y\n  secret: ''",
                "notify[0].secret",
            ),
            (
                "- url: http://x.example/y\n  secret_file: /nonexistent/s",
                "notify[0].secret_file",
            ),
            ("- url: http://x.example/y\n  header: 1", "notify[0].header"),
        ] {
            match parse_yaml(text) {
                Err(ConfigError::BadValue { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
