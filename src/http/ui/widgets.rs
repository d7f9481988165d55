//! Pieces more than one page shows: a round's plan and its Approve / Reject forms,
//! a list of messages, a table of locks with their Release buttons, a table of
//! agents. Markup only; every value is escaped by maud.

use super::format::{ago, plan_items, when};
use super::guard::Operator;
use super::layout::{agent_link, badge, countdown, csrf, prose, task_link, text};
use crate::actors::hub::AgentStatus;
use crate::domain::lease::Lock;
use crate::domain::message::Message;
use crate::domain::task::Round;
use crate::domain::time::{parse_iso, Timestamp};
use crate::store::pages::Delivery;
use maud::{html, Markup};

/// A plan as a table of agents and goals (its text when it does not parse).
pub(crate) fn plan(plan_json: &str) -> Markup {
    match plan_items(plan_json) {
        Some(items) => html! {
            table {
                caption { "Plan: " (items.len()) " assignment" @if items.len() != 1 { "s" } }
                thead { tr { th scope="col" { "Agent" } th scope="col" { "Goal" } } }
                tbody {
                    @for i in &items {
                        tr { td { (agent_link(&i.agent_id)) } td { (prose(&i.goal)) } }
                    }
                }
            }
        },
        None => html! { p { "Plan (as sent):" } (text(plan_json)) },
    }
}

/// Approve (with an optional note) and Reject (with a note) for a round awaiting
/// approval; `back` is the page to return to.
pub(crate) fn decide(r: &Round, op: &Operator, back: &str) -> Markup {
    let what = format!("round {} of task {}", r.round_number, r.task_id);
    let (approve_note, reject_note) = (format!("approve-{}", r.id), format!("reject-{}", r.id));
    html! {
        div.decide {
            form method="post" action={ "/ui/rounds/" (super::format::seg(&r.id)) "/approve" } {
                (csrf(op))
                input type="hidden" name="back" value=(back);
                label for=(approve_note) { "Note (optional)" }
                input #(approve_note) type="text" name="note" maxlength="4000";
                button.primary type="submit" aria-label={ "Approve " (what) } { "Approve" }
            }
            form method="post" action={ "/ui/rounds/" (super::format::seg(&r.id)) "/reject" } {
                (csrf(op))
                input type="hidden" name="back" value=(back);
                label for=(reject_note) { "Why reject? (sent to the dispatcher)" }
                textarea #(reject_note) name="note" rows="2" maxlength="4000" required {}
                button.danger type="submit" aria-label={ "Reject " (what) } { "Reject" }
            }
        }
    }
}

/// A round waiting for the operator: its task, its plan, what was said before, and
/// the two buttons.
pub(crate) fn awaiting_round(r: &Round, op: &Operator, back: &str, now: Timestamp) -> Markup {
    html! {
        article.round.awaiting aria-labelledby={ "round-" (r.id) } {
            h3 #{ "round-" (r.id) } {
                "Task " (task_link(&r.task_id)) " · round " (r.round_number)
            }
            p.muted {
                "Plan submitted " (ago(r.updated_at, now)) " · round " span.id { (r.id) }
                @if r.rejected { " · " (badge("rejected")) " before" }
            }
            @if let Some(n) = r.operator_note.as_deref().filter(|n| !n.is_empty()) {
                p { "Your last note:" } (prose(n))
            }
            (plan(&r.plan_json))
            (decide(r, op, back))
        }
    }
}

/// Messages, newest first: who to whom, when, type, subject, and the body as text.
pub(crate) fn messages(list: &[Message], now: Timestamp) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No messages." }
        } @else {
            ul.messages { @for m in list { (message(m, None, now)) } }
        }
    }
}

/// Messages delivered to one agent, with its read state.
pub(crate) fn deliveries(list: &[Delivery], now: Timestamp) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "None." }
        } @else {
            ul.messages {
                @for d in list {
                    (message(&d.message, Some(d.read_at.as_deref()), now))
                }
            }
        }
    }
}

/// One message; `read`: its recipient's read state, when shown (`Some(None)`:
/// unread).
fn message(m: &Message, read: Option<Option<&str>>, now: Timestamp) -> Markup {
    html! {
        li {
            div.meta {
                (agent_link(&m.from_agent)) " → "
                @match &m.to_agent {
                    Some(to) => (agent_link(to)),
                    None => "everyone",
                }
                " · " (badge(&m.msg_type)) " · "
                (stored_time(&m.created_at, now))
                @if let Some(r) = &m.round_id { " · round " span.id { (r) } }
                @match read {
                    Some(None) => { " · " (badge("unread")) }
                    Some(Some(at)) => { " · read " (stored_time(at, now)) }
                    None => {}
                }
            }
            @if !m.subject.is_empty() { div.subject { (m.subject) } }
            (text(&m.body))
        }
    }
}

/// A stored time as an age, the time itself in its tooltip.
fn stored_time(stored: &str, now: Timestamp) -> Markup {
    html! {
        @match parse_iso(stored) {
            Some(t) => time datetime=(stored) title=(when(stored)) { (ago(t, now)) },
            None => (stored),
        }
    }
}

/// Held locks with their Release buttons.
pub(crate) fn locks(list: &[Lock], op: &Operator, back: &str, now: Timestamp) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No locks are held." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Lock" }
                        th scope="col" { "Holder" }
                        th scope="col" { "Resource" }
                        th scope="col" { "Expires in" }
                        th scope="col" .num { "Fencing token" }
                        th scope="col" { span.visually-hidden { "Action" } }
                    }
                }
                tbody {
                    @for l in list {
                        tr {
                            td.id { (l.lock_key) }
                            td { (agent_link(&l.holder_agent_id)) }
                            td { (l.resource_type) " " span.id { (l.resource_id) } }
                            td { (countdown(l.expires_at, now)) }
                            td.num { (l.fencing_token) }
                            td {
                                form method="post" action="/ui/locks/release" {
                                    (csrf(op))
                                    input type="hidden" name="key" value=(l.lock_key);
                                    input type="hidden" name="back" value=(back);
                                    button.danger type="submit"
                                        aria-label={ "Force release lock " (l.lock_key) " held by " (l.holder_agent_id) } {
                                        "Release"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Agents with their presence, last request, unread inbox and active assignments.
pub(crate) fn agents(list: &[AgentStatus], now: Timestamp) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No agents in agents.env." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Agent" }
                        th scope="col" { "Presence" }
                        th scope="col" { "Last seen" }
                        th scope="col" .num { "Unread" }
                        th scope="col" .num { "Active work" }
                        th scope="col" { "Capabilities" }
                    }
                }
                tbody {
                    @for a in list {
                        tr {
                            td { (agent_link(a.view.agent_id.as_str())) }
                            td { (badge(if a.online { "online" } else { "offline" })) }
                            td {
                                @match a.last_seen.as_deref().or(a.view.last_heartbeat.as_deref()) {
                                    Some(s) => @match parse_iso(s) {
                                        Some(t) => time datetime=(s) title=(when(s)) { (ago(t, now)) },
                                        None => (s),
                                    },
                                    None => span.muted { "never" },
                                }
                            }
                            td.num { (a.unread) }
                            td.num { (a.active_assignments) }
                            td { (a.view.capabilities.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}
