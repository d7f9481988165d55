//! `GET /ui/agents/{id}`: one agent: its presence and registration, its inbox
//! (unread first, then everything delivered, with the Purge form), its assignments
//! across tasks, and the messages it sent, each a page at a time.

use super::error::UiError;
use super::format::{ago, seg, when};
use super::guard::Operator;
use super::layout::{badge, countdown, csrf, live_section, page, pager, prose, task_link};
use super::{html, page_request, page_request_of, shell, widgets, Done};
use crate::domain::task::Assignment;
use crate::domain::time::{parse_iso, Timestamp};
use crate::domain::{AgentId, ErrorCode};
use crate::http::error::{settle, ApiError};
use crate::http::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html as markup, Markup};

#[derive(serde::Deserialize)]
pub(super) struct Cursors {
    unread: Option<String>,
    inbox: Option<String>,
    assignments: Option<String>,
    sent: Option<String>,
}

pub(super) async fn show(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<Cursors>,
    done: web::Query<Done>,
) -> Result<HttpResponse, UiError> {
    let (op, hub) = page_request(&req, &st).await?;
    let now = Utc::now();
    let Some(agent) = settle(&hub, hub.agent_presence(&id, now).await).await? else {
        return Err(UiError::Api(ApiError::Operator {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::UnknownAgent,
            message: format!("agent {id} is not in agents.env"),
        }));
    };
    let agent_id = AgentId::new(&id);
    let u_req = page_request_of(q.unread.as_deref(), true, 25)?;
    let unread = settle(&hub, hub.delivery_page(u_req, &agent_id, true).await).await?;
    let i_req = page_request_of(q.inbox.as_deref(), true, 25)?;
    let inbox = settle(&hub, hub.delivery_page(i_req, &agent_id, false).await).await?;
    let a_req = page_request_of(q.assignments.as_deref(), true, 25)?;
    let assignments = settle(&hub, hub.agent_assignments_page(&id, a_req).await).await?;
    let s_req = page_request_of(q.sent.as_deref(), true, 25)?;
    let sent = settle(&hub, hub.sent_messages_page(&id, s_req).await).await?;

    let here = format!("/ui/agents/{}", seg(&id));
    let v = &agent.view;
    let content = markup! {
        h1 { "Agent " span.id { (v.agent_id.as_str()) } }
        (live_section("agent", "Presence", markup! {
            dl.facts {
                dt { "Presence" } dd { (badge(if agent.online { "online" } else { "offline" })) }
                dt { "Last seen" } dd { (seen(agent.last_seen.as_deref(), now)) }
                dt { "Last heartbeat" } dd { (seen(v.last_heartbeat.as_deref(), now)) }
                dt { "Name" } dd { (v.name) }
                dt { "Capabilities" } dd { (v.capabilities.join(", ")) }
                dt { "Registered" } dd { (v.registered_at.as_deref().map(when).unwrap_or_else(|| "never".into())) }
                dt { "Unread messages" } dd { (agent.unread) }
                dt { "Active assignments" } dd { (agent.active_assignments) }
            }
        }))
        (live_section("inbox", "Inbox", markup! {
            h3 { "Unread" }
            (widgets::deliveries(&unread.items, now))
            (pager(&here, "unread", unread.next_cursor.as_deref(), q.unread.is_some()))
            h3 { "All deliveries, read and unread, newest first" }
            (widgets::deliveries(&inbox.items, now))
            (pager(&here, "inbox", inbox.next_cursor.as_deref(), q.inbox.is_some()))
            (purge_form(&id, &op, &here))
        }))
        (live_section("assignments", "Assignments", markup! {
            (assignment_table(&assignments.items, now))
            (pager(&here, "assignments", assignments.next_cursor.as_deref(), q.assignments.is_some()))
        }))
        (live_section("sent", "Messages sent", markup! {
            (widgets::messages(&sent.items, now))
            (pager(&here, "sent", sent.next_cursor.as_deref(), q.sent.is_some()))
        }))
    };
    let title = format!("Agent {id}");
    let shell = shell(&title, "", &op, &hub, done.notice());
    Ok(html(page(&shell, content)))
}

/// Remove the deliveries to this agent (of one sender's messages, if named): for
/// messages sent by mistake (`hubctl purge-messages`).
fn purge_form(id: &str, op: &Operator, back: &str) -> Markup {
    markup! {
        details.purge {
            summary { "Purge messages delivered to " (id) "…" }
            form method="post" action={ "/ui/agents/" (seg(id)) "/purge" } {
                (csrf(op))
                input type="hidden" name="back" value=(back);
                p {
                    "Removes them from " (id) "'s inbox, read or unread, so it never pulls them. "
                    "The messages stay in the log. This cannot be undone."
                }
                label for="purge-from" { "Only the messages of (agent id, optional)" }
                input #purge-from type="text" name="from" autocomplete="off";
                button.danger type="submit" { "Purge messages to " (id) }
            }
        }
    }
}

fn seen(stored: Option<&str>, now: Timestamp) -> Markup {
    match stored {
        None => markup! { span.muted { "never" } },
        Some(s) => match parse_iso(s) {
            Some(t) => markup! { time datetime=(s) title=(when(s)) { (ago(t, now)) } },
            None => markup! { (s) },
        },
    }
}

fn assignment_table(list: &[Assignment], now: Timestamp) -> Markup {
    markup! {
        @if list.is_empty() {
            p.empty { "No assignments." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Task" }
                        th scope="col" { "Goal" }
                        th scope="col" { "State" }
                        th scope="col" { "Lease" }
                        th scope="col" { "Progress" }
                    }
                }
                tbody {
                    @for a in list {
                        tr {
                            td { (task_link(&a.task_id)) }
                            td { (prose(&a.goal)) }
                            td { (badge(a.status.as_str())) }
                            td {
                                @match (a.status.is_active(), a.lease_expires_at) {
                                    (true, Some(t)) => (countdown(t, now)),
                                    _ => span.muted { "—" },
                                }
                            }
                            td { @if let Some(n) = &a.progress_note { (prose(n)) } }
                        }
                    }
                }
            }
        }
    }
}
