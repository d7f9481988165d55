//! Messages between agents: validation of `message_send` input, the stored record,
//! and the per-agent inbox (unread queue in arrival order, per-recipient read state).

use super::error::DomainError;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

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

/// One agent's view of messages: its unread queue in arrival order, the ids it may
/// refer to (sent or received), and the dedupe keys it has used as a sender.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Arrival number → message; only unread ones.
    unread: BTreeMap<u64, Arc<Message>>,
    /// Message id → arrival number, for acks.
    unread_index: HashMap<String, u64>,
    next_arrival: u64,
    /// Every message this agent received (read or not).
    received: HashSet<String>,
    /// Every message this agent sent.
    sent: HashSet<String>,
    /// This agent's dedupe keys → the message id first sent with each.
    dedupe: HashMap<String, String>,
}

/// Why an ack was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckRefusal {
    NotFound(String),
}

impl Inbox {
    /// A message arrives (in arrival order).
    pub(crate) fn deliver(&mut self, m: Arc<Message>) {
        if !self.received.insert(m.id.clone()) {
            return; // already delivered: at most one copy per recipient
        }
        let n = self.next_arrival;
        self.next_arrival += 1;
        self.unread_index.insert(m.id.clone(), n);
        self.unread.insert(n, m);
    }

    /// A message that was received and already read (start-up loading).
    pub(crate) fn remember_read(&mut self, id: String) {
        self.received.insert(id);
    }

    pub(crate) fn record_sent(&mut self, id: &str, dedupe_key: Option<&str>) {
        self.sent.insert(id.to_string());
        if let Some(k) = dedupe_key {
            self.dedupe
                .entry(k.to_string())
                .or_insert_with(|| id.to_string());
        }
    }

    /// The id of the message this agent already sent with `key`.
    pub(crate) fn duplicate_of(&self, key: &str) -> Option<&str> {
        self.dedupe.get(key).map(String::as_str)
    }

    /// Whether this agent sent or received message `id`.
    pub(crate) fn can_see(&self, id: &str) -> bool {
        self.sent.contains(id) || self.received.contains(id)
    }

    /// The oldest `limit` unread messages; they stay unread until acked.
    pub(crate) fn peek(&self, limit: usize) -> Vec<Arc<Message>> {
        self.unread.values().take(limit).cloned().collect()
    }

    #[cfg(test)]
    pub(crate) fn unread_count(&self) -> usize {
        self.unread.len()
    }

    /// Mark `ids` read, all or nothing. Returns the ids that were unread until now
    /// (acking an already read message of one's own is accepted and changes nothing).
    pub(crate) fn ack(&mut self, ids: &[String]) -> Result<Vec<String>, AckRefusal> {
        if let Some(bad) = ids.iter().find(|id| !self.received.contains(*id)) {
            return Err(AckRefusal::NotFound(bad.clone()));
        }
        let mut newly = Vec::new();
        for id in ids {
            if let Some(n) = self.unread_index.remove(id) {
                self.unread.remove(&n);
                newly.push(id.clone());
            }
        }
        Ok(newly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, from: &str) -> Arc<Message> {
        Arc::new(Message {
            id: id.into(),
            dedupe_key: None,
            reply_to: None,
            from_agent: from.into(),
            to_agent: None,
            round_id: None,
            msg_type: "info".into(),
            subject: "s".into(),
            body: "b".into(),
            context_json: "{}".into(),
            hop_count: 0,
            created_at: "t".into(),
        })
    }

    #[test]
    fn unread_in_arrival_order_until_acked() {
        let mut i = Inbox::default();
        i.deliver(msg("m2", "a"));
        i.deliver(msg("m1", "b"));
        i.deliver(msg("m2", "a")); // a second copy is ignored
        let ids: Vec<_> = i.peek(10).iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids, vec!["m2", "m1"]);
        assert_eq!(i.peek(1).len(), 1);
        assert_eq!(i.ack(&["m2".into()]).unwrap(), vec!["m2"]);
        assert_eq!(i.peek(10)[0].id, "m1");
        // Acking again is harmless; acking what we never received is refused, and
        // a refused batch acks nothing.
        assert_eq!(i.ack(&["m2".into()]).unwrap(), Vec::<String>::new());
        assert_eq!(
            i.ack(&["m1".into(), "zz".into()]),
            Err(AckRefusal::NotFound("zz".into()))
        );
        assert_eq!(i.unread_count(), 1);
    }

    #[test]
    fn dedupe_per_sender_and_visibility() {
        let mut i = Inbox::default();
        i.record_sent("m1", Some("k"));
        i.record_sent("m2", Some("k"));
        assert_eq!(i.duplicate_of("k"), Some("m1"));
        assert_eq!(i.duplicate_of("other"), None);
        assert!(i.can_see("m1"));
        i.deliver(msg("m9", "x"));
        assert!(i.can_see("m9"));
        assert!(!i.can_see("m10"));
        i.remember_read("m10".into());
        assert!(i.can_see("m10"));
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
