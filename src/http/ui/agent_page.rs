//! `GET /ui/agents/{id}`: one agent: its presence and registration, its
//! assignments across tasks, and the messages it sent, each a page at a time.

use super::error::UiError;
use super::format::{ago, seg, when};
use super::layout::{badge, countdown, live_section, page, pager, prose, task_link};
use super::{html, page_request, page_request_of, shell, widgets, Done};
use crate::domain::task::Assignment;
use crate::domain::time::{parse_iso, Timestamp};
use crate::domain::ErrorCode;
use crate::http::error::{settle, ApiError};
use crate::http::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html as markup, Markup};

#[derive(serde::Deserialize)]
pub(super) struct Cursors {
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
