//! Messages between agents: validation of `message_send` input and the stored
//! record. Each agent's inbox is in [`super::inbox`].

use super::error::DomainError;
use serde::Serialize;

/// Allowed `msg_type` values. The reference's schema lists info, handoff, review,
/// question, answer; the hub itself also sends assignment and status notices.
pub(crate) const MSG_TYPES: &[&str] = &[
    "info",
    "question",
    "answer",
    "handoff",
    "review",
    "assignment",
    "status",
];
pub(crate) const MAX_SUBJECT_CHARS: usize = 300;
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
pub(crate) const MAX_DEDUPE_KEY_CHARS: usize = 200;
pub(crate) const MAX_PULL_LIMIT: u64 = 200;
pub(crate) const DEFAULT_PULL_LIMIT: u64 = 20;
pub(crate) const MAX_ACK_IDS: usize = 200;

/// One message as stored and as shown in `inbox_pull` (the reference's row fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Message {
    pub id: String,
    pub dedupe_key: Option<String>,
    pub reply_to: Option<String>,
    pub from_agent: String,
    /// `None` for a broadcast.
    pub to_agent: Option<String>,
    pub round_id: Option<String>,
    pub msg_type: String,
    pub subject: String,
    pub body: String,
    pub context_json: String,
    pub hop_count: i64,
    pub created_at: String,
}

impl Message {
    /// What this message counts for against `max_pull_bytes`: the UTF-8 length of
    /// its text fields plus [`PULL_OVERHEAD_BYTES`] for the JSON around them.
    pub(crate) fn pull_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_deref().map_or(0, str::len);
        self.id.len()
            + opt(&self.dedupe_key)
            + opt(&self.reply_to)
            + self.from_agent.len()
            + opt(&self.to_agent)
            + opt(&self.round_id)
            + self.msg_type.len()
            + self.subject.len()
            + self.body.len()
            + self.context_json.len()
            + self.created_at.len()
            + PULL_OVERHEAD_BYTES
    }
}

impl Draft {
    /// The stored message this draft becomes when `from` sends it as `id` at
    /// `created_at`.
    pub(crate) fn into_message(self, id: String, from: &str, created_at: String) -> Message {
        Message {
            id,
            dedupe_key: self.dedupe_key,
            reply_to: self.reply_to,
            from_agent: from.to_string(),
            to_agent: self.to_agent,
            round_id: self.round_id,
            msg_type: self.msg_type,
            subject: self.subject,
            body: self.body,
            context_json: "{}".into(),
            hop_count: 0,
            created_at,
        }
    }

    /// [`Message::pull_size`] of [`Draft::into_message`] without building it (the
    /// body is not copied), for the recipients' inbox quota.
    pub(crate) fn pull_size(&self, id: &str, from: &str, created_at: &str) -> usize {
        let opt = |s: &Option<String>| s.as_deref().map_or(0, str::len);
        id.len()
            + opt(&self.dedupe_key)
            + opt(&self.reply_to)
            + from.len()
            + opt(&self.to_agent)
            + opt(&self.round_id)
            + self.msg_type.len()
            + self.subject.len()
            + self.body.len()
            + "{}".len()
            + created_at.len()
            + PULL_OVERHEAD_BYTES
    }
}

/// Field names, quotes and numbers of one message as `inbox_pull` shows it.
pub(crate) const PULL_OVERHEAD_BYTES: usize = 200;

/// The longest prefix of `sizes` (oldest first) whose sum stays within `budget`,
/// but always at least one: how many messages one pull returns.
pub(crate) fn fit_in(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut used = 0usize;
    let mut n = 0;
    for size in sizes {
        used = used.saturating_add(size);
        if n > 0 && used > budget {
            break;
        }
        n += 1;
    }
    n
}

/// Validated `message_send` input (ids of sender/recipients are resolved elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub to_agent: Option<String>,
    pub subject: String,
    pub body: String,
    pub msg_type: String,
    pub dedupe_key: Option<String>,
    pub round_id: Option<String>,
    pub reply_to: Option<String>,
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

/// Validate the arguments of `message_send`; empty strings mean "not given", as in
/// the reference.
pub(crate) fn validate_draft(
    to_agent: Option<&str>,
    subject: &str,
    body: &str,
    msg_type: Option<&str>,
    dedupe_key: Option<&str>,
    round_id: Option<&str>,
    reply_to: Option<&str>,
) -> Result<Draft, DomainError> {
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(DomainError::invalid(
            "subject",
            format!("at most {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(DomainError::invalid(
            "body",
            format!("at most {MAX_BODY_BYTES} bytes; put large content in a handoff or a file and send its path"),
        ));
    }
    if subject.trim().is_empty() && body.trim().is_empty() {
        return Err(DomainError::invalid(
            "subject",
            "subject and body are both empty",
        ));
    }
    let msg_type = opt(msg_type).unwrap_or_else(|| "info".into());
    if !MSG_TYPES.contains(&msg_type.as_str()) {
        return Err(DomainError::invalid(
            "msg_type",
            format!("{msg_type:?} is not one of: {}", MSG_TYPES.join(", ")),
        ));
    }
    let dedupe_key = opt(dedupe_key);
    if dedupe_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > MAX_DEDUPE_KEY_CHARS)
    {
        return Err(DomainError::invalid(
            "dedupe_key",
            format!("at most {MAX_DEDUPE_KEY_CHARS} characters"),
        ));
    }
    Ok(Draft {
        to_agent: opt(to_agent),
        subject: subject.to_string(),
        body: body.to_string(),
        msg_type,
        dedupe_key,
        round_id: opt(round_id),
        reply_to: opt(reply_to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_fits_its_byte_budget_but_takes_at_least_one() {
        assert_eq!(fit_in([400, 400, 400], 1000), 2);
        assert_eq!(fit_in([400, 600, 1], 1000), 2);
        assert_eq!(fit_in([5000, 10], 1000), 1);
        assert_eq!(fit_in([], 1000), 0);
        assert_eq!(fit_in([10, 10], 1000), 2);
    }

    #[test]
    fn a_drafts_size_is_its_messages_size() {
        let d = validate_draft(Some("bob"), "s", "héllo", None, Some("k"), None, None).unwrap();
        let size = d.pull_size("0123", "alice", "2026-01-01T00:00:00.000000+00:00");
        let m = d.into_message(
            "0123".into(),
            "alice",
            "2026-01-01T00:00:00.000000+00:00".into(),
        );
        assert_eq!(size, m.pull_size());
    }

    #[test]
    fn draft_validation() {
        let d = validate_draft(Some(""), "hi", "there", None, Some(""), Some(" "), None).unwrap();
        assert_eq!(d.to_agent, None);
        assert_eq!(d.msg_type, "info");
        assert_eq!(d.dedupe_key, None);
        assert_eq!(d.round_id, None);
        let e = validate_draft(None, "s", "b", Some("shout"), None, None, None).unwrap_err();
        assert!(e.to_string().contains("info, question"), "{e}");
        assert!(validate_draft(None, &"x".repeat(301), "b", None, None, None, None).is_err());
        assert!(validate_draft(
            None,
            "s",
            &"x".repeat(MAX_BODY_BYTES + 1),
            None,
            None,
            None,
            None
        )
        .is_err());
        assert!(validate_draft(None, " ", "", None, None, None, None).is_err());
    }
}
