//! Claude Code channel events (`notifications/claude/channel`): one short line saying
//! what happened for an agent and which tool to call next, with the ids in `meta`.
//! Pure: each AgentActor owns one [`Outbox`] and passes the time in; the transport
//! only serializes the [`Event`]s it hands out. The text is built here from ids the
//! hub chose or checked (agent ids, task ids, hex ids), never from a subject or body
//! an agent wrote, so an agent cannot make its message read like the hub's.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// What happened; `meta.kind`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A direct message or broadcast from an agent.
    Message,
    /// Assignments of an approved round dispatched to the agent.
    Assignment,
    /// The operator approved a round of the agent's task (to the dispatcher).
    RoundApproved,
    /// The operator rejected a round's plan (to the dispatcher).
    RoundRejected,
    /// Every assignment of a round is completed (to the dispatcher).
    RoundCompleted,
    /// One assignment was completed, with a handoff (to the dispatcher).
    Handoff,
    /// The dispatcher's verdict on a round (to its assignees).
    Review,
    /// The agent's lease on an assignment is about to lapse.
    LeaseExpiring,
    /// The agent's lease lapsed; the assignment is pending again.
    LeaseExpired,
    /// A lock the agent waited for is now its.
    LockGranted,
    /// The operator closed a task the agent had open work on.
    TaskClosed,
}

impl Kind {
    pub(crate) const ALL: [Kind; 11] = [
        Kind::Message,
        Kind::Assignment,
        Kind::RoundApproved,
        Kind::RoundRejected,
        Kind::RoundCompleted,
        Kind::Handoff,
        Kind::Review,
        Kind::LeaseExpiring,
        Kind::LeaseExpired,
        Kind::LockGranted,
        Kind::TaskClosed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Assignment => "assignment",
            Kind::RoundApproved => "round_approved",
            Kind::RoundRejected => "round_rejected",
            Kind::RoundCompleted => "round_completed",
            Kind::Handoff => "handoff",
            Kind::Review => "review",
            Kind::LeaseExpiring => "lease_expiring",
            Kind::LeaseExpired => "lease_expired",
            Kind::LockGranted => "lock_granted",
            Kind::TaskClosed => "task_closed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The sender of everything the hub itself tells (`meta.from`).
pub(crate) const HUB: &str = "hub";

/// One thing that happened for one agent, before coalescing. Built with
/// [`Item::from_agent`] (a message: `from` is the authenticated sender) or
/// [`Item::hub`] (everything else: `from` is always "hub").
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Item {
    pub kind: Option<Kind>,
    /// `meta.from`: the sending agent's id as its token decided, or "hub".
    pub from: String,
    /// The agent whose action caused it, if any: nothing is pushed to an agent for
    /// what it did itself.
    pub by: Option<String>,
    pub message_id: Option<String>,
    pub task_id: Option<String>,
    pub round_id: Option<String>,
    /// One id, or several comma-separated (assignments of one round).
    pub assignment_id: Option<String>,
    pub handoff_id: Option<String>,
    pub verdict: Option<String>,
    pub lock_key: Option<String>,
    pub fencing_token: Option<String>,
    pub expires_at: Option<String>,
}

impl Item {
    /// A message from agent `from` (the id its token decided).
    pub(crate) fn from_agent(from: &str, message_id: &str) -> Item {
        Item {
            kind: Some(Kind::Message),
            from: from.to_string(),
            by: Some(from.to_string()),
            message_id: Some(message_id.to_string()),
            ..Item::default()
        }
    }

    /// Something the hub tells, caused by `by` (an agent) or by no agent.
    pub(crate) fn hub(kind: Kind, by: Option<&str>) -> Item {
        Item {
            kind: Some(kind),
            from: HUB.to_string(),
            by: by.map(str::to_string),
            ..Item::default()
        }
    }

    pub(crate) fn task(mut self, id: &str) -> Self {
        self.task_id = Some(id.to_string());
        self
    }

    pub(crate) fn round(mut self, id: &str) -> Self {
        self.round_id = Some(id.to_string());
        self
    }

    pub(crate) fn assignment(mut self, id: &str) -> Self {
        self.assignment_id = Some(id.to_string());
        self
    }

    /// The `meta` entries of the ids it carries, in a fixed order.
    fn ids(&self) -> Vec<(&'static str, &str)> {
        [
            ("message_id", &self.message_id),
            ("task_id", &self.task_id),
            ("round_id", &self.round_id),
            ("assignment_id", &self.assignment_id),
            ("handoff_id", &self.handoff_id),
            ("verdict", &self.verdict),
            ("lock_key", &self.lock_key),
            ("fencing_token", &self.fencing_token),
            ("expires_at", &self.expires_at),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// What makes two items the same: its kind and ids (a message's id alone is
    /// unique; a lease warning names its lease by when it lapses).
    fn key(&self) -> String {
        let kind = self.kind.map(Kind::as_str).unwrap_or_default();
        let mut key = kind.to_string();
        for (k, v) in self.ids() {
            key.push_str(&format!("|{k}={v}"));
        }
        key
    }

    /// The one line for this item alone.
    fn line(&self) -> String {
        let t = self.task_id.as_deref().unwrap_or("?");
        let r = self.round_id.as_deref().unwrap_or("?");
        let a = self.assignment_id.as_deref().unwrap_or("?");
        match self.kind.unwrap_or(Kind::Message) {
            Kind::Message => format!(
                "New message from {}. Call inbox_pull to read it, then message_ack it.",
                self.from
            ),
            Kind::Assignment => format!(
                "Round {r} of task {t} was approved and dispatched to you (assignments {a}). Call assignment_claim for each."
            ),
            Kind::RoundApproved => format!(
                "The operator approved round {r} of your task {t}; its assignments are dispatched. Nothing to do until it awaits your review."
            ),
            Kind::RoundRejected => format!(
                "The operator rejected the plan of round {r} of your task {t}. Call inbox_pull to read the note, then round_plan_submit a revised plan."
            ),
            Kind::RoundCompleted => format!(
                "Every assignment of round {r} of your task {t} is completed. Call review_submit with approved or changes_requested."
            ),
            Kind::Handoff => format!(
                "Assignment {a} of your task {t} was completed by {}. Call handoff_get to read its handoff.",
                self.by.as_deref().unwrap_or("an agent")
            ),
            Kind::Review => match self.verdict.as_deref() {
                Some("approved") => format!(
                    "The dispatcher approved round {r} of task {t}; your work on it is done."
                ),
                _ => format!(
                    "The dispatcher requested changes on task {t} (next round {r}). Call inbox_pull to read the note; you will be told when it is dispatched."
                ),
            },
            Kind::LeaseExpiring => format!(
                "Your lease on assignment {a} of task {t} lapses at {}. Call assignment_progress to keep it.",
                self.expires_at.as_deref().unwrap_or("?")
            ),
            Kind::LeaseExpired => format!(
                "Your lease on assignment {a} of task {t} lapsed; it is pending again. Call assignment_claim to continue."
            ),
            Kind::LockGranted => {
                "You now hold the lock you waited for (lock_key in meta). Call lock_release when done.".to_string()
            }
            Kind::TaskClosed => format!(
                "The operator closed task {t}; your open assignments on it are cancelled. Stop work on them."
            ),
        }
    }
}

/// One notification to push: `params.content` and `params.meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub content: String,
    pub meta: Vec<(&'static str, String)>,
}

/// How events are told (`push:` in config.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    pub enabled: bool,
    /// Items for one agent within this long of the first are sent as one event.
    pub window: Duration,
    /// Events per agent in any 60 s at most.
    pub max_per_minute: u32,
    /// Kinds turned off.
    pub off: Vec<Kind>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            enabled: true,
            window: Duration::from_millis(2000),
            max_per_minute: 6,
            off: Vec::new(),
        }
    }
}

impl Rules {
    fn allows(&self, kind: Kind) -> bool {
        self.enabled && !self.off.contains(&kind)
    }
}

/// Distinct senders named in one coalesced message event.
const MAX_SENDERS: usize = 5;
/// Item keys remembered per agent, so that nothing is told twice.
const SEEN: usize = 256;
const MINUTE: Duration = Duration::from_secs(60);

/// Items of one kind waiting to be told: a count, the newest item, and a few
/// senders. Memory stays the same however many arrive.
#[derive(Debug)]
struct Group {
    count: u64,
    latest: Item,
    senders: Vec<String>,
    more_senders: bool,
}

impl Group {
    fn event(&self, kind: Kind) -> Event {
        let from = self.senders.join(",");
        let mut meta = vec![("kind", kind.as_str().to_string()), ("from", from)];
        meta.extend(
            self.latest
                .ids()
                .into_iter()
                .map(|(k, v)| (k, v.to_string())),
        );
        if self.count == 1 {
            return Event {
                content: self.latest.line(),
                meta,
            };
        }
        meta.push(("count", self.count.to_string()));
        let content = match kind {
            Kind::Message => {
                let others = if self.more_senders { " and others" } else { "" };
                format!(
                    "{} new messages from {}{others}. Call inbox_pull to read them, then message_ack them.",
                    self.count,
                    self.senders.join(", ")
                )
            }
            _ => format!(
                "{} {} events; the latest: {}",
                self.count,
                kind.as_str(),
                self.latest.line()
            ),
        };
        Event { content, meta }
    }
}

/// One agent's events on their way: coalesced per kind within the window, at most
/// `max_per_minute` sent in any 60 s, each item at most once.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pending: BTreeMap<Kind, Group>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    /// When the recent events went out (at most `max_per_minute` kept).
    sent: VecDeque<Instant>,
    /// A flush is scheduled (the caller's timer).
    armed: bool,
}

impl Outbox {
    /// Take an item for agent `me`. Returns how long to wait before calling
    /// [`Outbox::flush`] when no flush is scheduled yet; `None` otherwise (also when
    /// the item is dropped: off, the agent's own doing, or told already).
    pub(crate) fn offer(&mut self, me: &str, item: Item, rules: &Rules) -> Option<Duration> {
        let kind = item.kind?;
        if !rules.allows(kind) || item.by.as_deref() == Some(me) {
            return None;
        }
        let key = item.key();
        if !self.seen.insert(key.clone()) {
            return None;
        }
        self.seen_order.push_back(key);
        if self.seen_order.len() > SEEN {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let sender = item.from.clone();
        let group = self.pending.entry(kind).or_insert_with(|| Group {
            count: 0,
            latest: item.clone(),
            senders: Vec::new(),
            more_senders: false,
        });
        group.count += 1;
        group.latest = item;
        if !group.senders.contains(&sender) {
            if group.senders.len() < MAX_SENDERS {
                group.senders.push(sender);
            } else {
                group.more_senders = true;
            }
        }
        if self.armed {
            return None;
        }
        self.armed = true;
        Some(rules.window)
    }

    /// The scheduled flush: the events to send now (one per kind waiting, as many
    /// as the rate allows), and when to flush again if some must wait for it.
    pub(crate) fn flush(&mut self, rules: &Rules, now: Instant) -> (Vec<Event>, Option<Duration>) {
        self.armed = false;
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            self.sent.pop_front();
        }
        let cap = rules.max_per_minute.max(1) as usize;
        let mut out = Vec::new();
        while self.sent.len() < cap {
            let Some((kind, group)) = self.pending.pop_first() else {
                break;
            };
            if rules.allows(kind) {
                out.push(group.event(kind));
                self.sent.push_back(now);
            }
        }
        if !rules.enabled {
            self.pending.clear();
        }
        if self.pending.is_empty() {
            return (out, None);
        }
        // The rate is used up: try again when the oldest send leaves the minute.
        self.armed = true;
        let next = self
            .sent
            .front()
            .map(|t| (*t + MINUTE).saturating_duration_since(now))
            .unwrap_or_default();
        (out, Some(next.max(Duration::from_millis(1))))
    }

    /// Items waiting (for tests and bounds checks).
    #[cfg(test)]
    fn waiting(&self) -> u64 {
        self.pending.values().map(|g| g.count).sum()
    }
}

/// How long before a lease lapses its holder is warned: 10% of the lease or
/// 5 minutes, whichever is less.
pub(crate) fn lease_warning_lead(lease: chrono::Duration) -> chrono::Duration {
    (lease / 10).min(chrono::Duration::minutes(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
        e.meta
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn msg(from: &str, id: &str) -> Item {
        Item::from_agent(from, id)
    }

    #[test]
    fn one_message_names_its_sender_and_the_next_tool() {
        let rules = Rules::default();
        let mut o = Outbox::default();
        assert_eq!(
            o.offer("bob", msg("alice", "m1"), &rules),
            Some(rules.window)
        );
        let (events, again) = o.flush(&rules, Instant::now());
        assert_eq!(again, None);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            e.content,
            "New message from alice. Call inbox_pull to read it, then message_ack it."
        );
        assert_eq!(meta(e, "kind"), Some("message"));
        assert_eq!(meta(e, "from"), Some("alice"));
        assert_eq!(meta(e, "message_id"), Some("m1"));
        assert_eq!(meta(e, "count"), None);
    }

    #[test]
    fn a_burst_is_one_event_with_a_count_and_bounded_memory() {
        let rules = Rules::default();
        let mut o = Outbox::default();
        let mut arms = 0;
        for i in 0..1000 {
            let from = format!("w{}", i % 8);
            arms += o
                .offer("bob", msg(&from, &format!("m{i}")), &rules)
                .is_some() as u32;
        }
        assert_eq!(arms, 1, "one flush scheduled for the whole burst");
        assert_eq!(o.waiting(), 1000);
        assert!(o.seen.len() <= SEEN && o.seen_order.len() <= SEEN);
        assert!(o.pending[&Kind::Message].senders.len() <= MAX_SENDERS);
        let (events, _) = o.flush(&rules, Instant::now());
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(meta(e, "count"), Some("1000"));
        assert_eq!(meta(e, "from"), Some("w0,w1,w2,w3,w4"));
        assert_eq!(meta(e, "message_id"), Some("m999"), "the newest");
        assert!(e
            .content
            .starts_with("1000 new messages from w0, w1, w2, w3, w4 and others."));
    }

    #[test]
    fn never_twice_never_own_doing_never_off_kinds() {
        let mut rules = Rules::default();
        let mut o = Outbox::default();
        assert!(
            o.offer("bob", msg("bob", "m0"), &rules).is_none(),
            "own message"
        );
        assert!(o.offer("bob", msg("alice", "m1"), &rules).is_some());
        assert!(o.offer("bob", msg("alice", "m1"), &rules).is_none());
        let (events, _) = o.flush(&rules, Instant::now());
        assert_eq!(events.len(), 1);
        assert!(
            o.offer("bob", msg("alice", "m1"), &rules).is_none(),
            "told already"
        );
        let review = Item::hub(Kind::Handoff, Some("bob")).task("T");
        assert!(o.offer("bob", review, &rules).is_none(), "bob completed it");
        rules.off = vec![Kind::LockGranted];
        assert!(o
            .offer("bob", Item::hub(Kind::LockGranted, None), &rules)
            .is_none());
        rules.enabled = false;
        assert!(o.offer("bob", msg("carol", "m2"), &rules).is_none());
    }

    #[test]
    fn rate_bounds_events_per_minute_and_keeps_the_rest() {
        let rules = Rules {
            max_per_minute: 2,
            ..Rules::default()
        };
        let mut o = Outbox::default();
        let t0 = Instant::now();
        let kinds = [Kind::RoundApproved, Kind::RoundCompleted, Kind::Handoff];
        for (i, k) in kinds.into_iter().enumerate() {
            o.offer(
                "d",
                Item::hub(k, None).task("T").round(&format!("r{i}")),
                &rules,
            );
        }
        let (first, again) = o.flush(&rules, t0);
        assert_eq!(first.len(), 2);
        assert_eq!(again, Some(MINUTE));
        // More arrive meanwhile: no new timer, they wait with the rest.
        assert!(o.offer("d", msg("a", "m1"), &rules).is_none());
        let (none, again) = o.flush(&rules, t0 + Duration::from_secs(30));
        assert!(none.is_empty());
        assert_eq!(again, Some(Duration::from_secs(30)));
        let (rest, again) = o.flush(&rules, t0 + MINUTE);
        assert_eq!(rest.len(), 2);
        assert_eq!(again, None);
        let kinds = |es: &[Event]| -> Vec<String> {
            es.iter()
                .filter_map(|e| meta(e, "kind"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(kinds(&first), ["round_approved", "round_completed"]);
        assert_eq!(kinds(&rest), ["message", "handoff"]);
    }

    #[test]
    fn hub_items_say_hub_and_carry_their_ids() {
        let rules = Rules::default();
        let mut o = Outbox::default();
        let mut item = Item::hub(Kind::Review, Some("disp")).task("T").round("r1");
        item.verdict = Some("approved".into());
        o.offer("w1", item, &rules);
        let (events, _) = o.flush(&rules, Instant::now());
        let e = &events[0];
        assert_eq!(meta(e, "from"), Some("hub"));
        assert_eq!(meta(e, "kind"), Some("review"));
        assert_eq!(meta(e, "task_id"), Some("T"));
        assert_eq!(meta(e, "round_id"), Some("r1"));
        assert_eq!(meta(e, "verdict"), Some("approved"));
        assert!(
            e.content.contains("approved round r1 of task T"),
            "{}",
            e.content
        );
    }

    #[test]
    fn every_kind_has_a_line_naming_a_next_step() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            // Between nodes (spread placement) by the same name.
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            let line = Item::hub(k, None)
                .task("T")
                .round("r")
                .assignment("a")
                .line();
            assert!(!line.contains('\n') && line.len() < 200, "{line}");
        }
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn lease_warning_lead_is_ten_percent_or_five_minutes() {
        let m = chrono::Duration::minutes;
        assert_eq!(lease_warning_lead(m(90)), m(5));
        assert_eq!(lease_warning_lead(m(20)), m(2));
        assert_eq!(
            lease_warning_lead(chrono::Duration::seconds(3)),
            chrono::Duration::milliseconds(300)
        );
    }
}
