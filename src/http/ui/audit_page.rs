//! `GET /ui/audit`: the stored audit log a page at a time, newest first, narrowed
//! by task, agent (who did it), kind and time, as `hubctl audit` narrows it.

use super::error::UiError;
use super::format::{ago, when, with_query};
use super::layout::{agent_link, live_section, page, pager, task_link};
use super::{html, page_request, page_request_of, shell};
use crate::domain::time::{iso, parse_iso, parse_since};
use crate::http::error::settle;
use crate::http::state::AppState;
use crate::store::pages::{AuditEvent, AuditFilter};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html as markup, Markup};

/// Kinds offered as suggestions (the field takes any kind).
const KINDS: &[&str] = &[
    "round_plan_submitted",
    "round_approved",
    "round_rejected",
    "assignment_claimed",
    "assignment_progress",
    "assignment_completed",
    "review_submitted",
    "task_closed",
    "lease_expired",
    "lock_force_released",
    "lock_released_agent_removed",
    "agent_added",
    "agent_removed",
    "agent_token_rotated",
    "operator_token_rotated",
    "messages_purged",
];

#[derive(serde::Deserialize, Default)]
pub(super) struct Query {
    task: Option<String>,
    agent: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(super) async fn show(
    req: HttpRequest,
    st: web::Data<AppState>,
    q: web::Query<Query>,
) -> Result<HttpResponse, UiError> {
    let (op, hub) = page_request(&req, &st).await?;
    let now = Utc::now();
    let (task, agent, kind, since) = (
        given(&q.task),
        given(&q.agent),
        given(&q.kind),
        given(&q.since),
    );
    let since_at = match &since {
        None => None,
        Some(s) => Some(parse_since(s, now).ok_or_else(|| {
            UiError::Bad(format!(
                "{s:?} is not a time (2026-11-29T12:00:00Z), a date (2026-11-29) or an age (90s, 30m, 2h, 7d)"
            ))
        })?),
    };
    let filter = AuditFilter {
        entity: task.clone().map(|t| ("task".to_string(), t)),
        actor: agent.clone(),
        event_type: kind.clone(),
        since: since_at.map(iso),
    };
    let page_req = page_request_of(q.cursor.as_deref(), true, 50)?;
    let events = settle(&hub, hub.audit_page(page_req, filter).await).await?;
    let mut here = "/ui/audit".to_string();
    for (k, v) in [
        ("task", &task),
        ("agent", &agent),
        ("kind", &kind),
        ("since", &since),
    ] {
        if let Some(v) = v {
            here = with_query(&here, &[(k, v)]);
        }
    }
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    let content = markup! {
        h1 { "Audit log" }
        form.filters.card method="get" action="/ui/audit" role="search" aria-label="Filter the audit log" {
            div { label for="f-task" { "Task" } input #f-task type="text" name="task" value=(field(&task)); }
            div { label for="f-agent" { "Agent (who did it)" } input #f-agent type="text" name="agent" value=(field(&agent)) placeholder="alice, operator, system"; }
            div {
                label for="f-kind" { "Kind" }
                input #f-kind type="text" name="kind" list="kinds" value=(field(&kind));
                datalist #kinds { @for k in KINDS { option value=(k) {} } }
            }
            div { label for="f-since" { "Since" } input #f-since type="text" name="since" value=(field(&since)) placeholder="2h, 2026-11-29, …"; }
            button.primary type="submit" { "Filter" }
            a href="/ui/audit" { "Clear" }
        }
        (live_section("audit-list", "Events, newest first", markup! {
            (table(&events.items, now))
            (pager(&here, "cursor", events.next_cursor.as_deref(), q.cursor.is_some()))
        }))
    };
    let shell = shell("Audit", "audit", &op, &hub, None);
    Ok(html(page(&shell, content)))
}

fn entity(e: &AuditEvent) -> Markup {
    match e.entity_type.as_str() {
        "task" => markup! { "task " (task_link(&e.entity_id)) },
        "agent" => markup! { "agent " (agent_link(&e.entity_id)) },
        other => markup! { (other) " " span.id { (e.entity_id) } },
    }
}

fn table(list: &[AuditEvent], now: chrono::DateTime<Utc>) -> Markup {
    markup! {
        @if list.is_empty() {
            p.empty { "No events match." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "When" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Entity" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for e in list {
                        tr {
                            td {
                                @match parse_iso(&e.created_at) {
                                    Some(t) => time datetime=(e.created_at) title=(when(&e.created_at)) { (ago(t, now)) },
                                    None => (e.created_at),
                                }
                            }
                            td.id { (e.event_type) }
                            td { (entity(e)) }
                            td { @if let Some(a) = &e.actor { (agent_link(a)) } }
                            td.id { (e.payload.to_string()) }
                        }
                    }
                }
            }
        }
    }
}
