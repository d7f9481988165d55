//! `GET /ui/tasks/{id}`: one task: its rounds (state, plan, operator decisions and
//! review), each round's assignments with live lease countdowns and its handoffs,
//! and the task's messages a page at a time.

use super::error::UiError;
use super::format::{ago, seg, when};
use super::layout::{agent_link, badge, countdown, csrf, live_section, page, pager, prose, text};
use super::{html, page_request, page_request_of, shell, widgets, Done};
use crate::domain::task::{Handoff, Round, RoundStatus, TaskStatus};
use crate::domain::time::Timestamp;
use crate::domain::workflow::TaskState;
use crate::http::error::settle;
use crate::http::state::AppState;
use crate::store::pages::Decision;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html as markup, Markup};

#[derive(serde::Deserialize)]
pub(super) struct Cursors {
    messages: Option<String>,
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
    let s = settle(&hub, hub.task_snapshot(&id).await).await?;
    let mut rounds: Vec<&Round> = s.rounds.iter().collect();
    rounds.sort_by_key(|r| std::cmp::Reverse(r.round_number));
    let mut decisions = Vec::with_capacity(rounds.len());
    for r in &rounds {
        decisions.push(settle(&hub, hub.decisions(&r.id).await).await?);
    }
    let msg_req = page_request_of(q.messages.as_deref(), true, 50)?;
    let messages = settle(&hub, hub.task_messages_page(&id, msg_req).await).await?;

    let back = format!("/ui/tasks/{}", seg(&id));
    let t = &s.task;
    let content = markup! {
        h1 { "Task " span.id { (t.id) } }
        (live_section("task", &t.title, markup! {
            dl.facts {
                dt { "State" } dd { (badge(t.status.as_str())) }
                dt { "Dispatcher" } dd { (agent_link(&t.dispatcher_agent_id)) }
                dt { "Created" } dd { (when(&crate::domain::time::iso(t.created_at))) }
                dt { "Changed" } dd { (ago(t.updated_at, now)) }
                dt { "Messages" } dd { (s.message_count) }
            }
            @if !t.description.is_empty() { (text(&t.description)) }
            @if !matches!(t.status, TaskStatus::Completed | TaskStatus::Closed) {
                details {
                    summary { "Close this task…" }
                    form method="post" action={ "/ui/tasks/" (seg(&t.id)) "/close" } {
                        (csrf(&op))
                        input type="hidden" name="back" value=(back);
                        p { "Closing cancels its open assignments; it cannot be undone." }
                        button.danger type="submit" { "Close task " (t.id) }
                    }
                }
            }
        }))
        (live_section("rounds", &format!("Rounds ({})", rounds.len()), markup! {
            @if rounds.is_empty() { p.empty { "No plan submitted yet." } }
            @for (r, d) in rounds.iter().zip(&decisions) {
                (round(&s, r, d, &op, &back, now))
            }
        }))
        (live_section("messages", "Messages", markup! {
            (widgets::messages(&messages.items, now))
            (pager(&back, "messages", messages.next_cursor.as_deref(), q.messages.is_some()))
        }))
    };
    let title = format!("Task {}", t.id);
    let shell = shell(&title, "tasks", &op, &hub, done.notice());
    Ok(html(page(&shell, content)))
}

fn round(
    s: &TaskState,
    r: &Round,
    decisions: &[Decision],
    op: &super::guard::Operator,
    back: &str,
    now: Timestamp,
) -> Markup {
    let awaiting = r.status == RoundStatus::AwaitingOperatorApproval;
    let assignments: Vec<_> = s.round_assignments(&r.id).collect();
    let handoffs: Vec<&Handoff> = s.handoffs.iter().filter(|h| h.round_id == r.id).collect();
    markup! {
        article.round.awaiting[awaiting] aria-labelledby={ "round-" (r.id) } {
            h3 #{ "round-" (r.id) } {
                "Round " (r.round_number) " " (badge(r.status.as_str()))
                @if r.rejected { " " (badge("rejected")) }
            }
            p.muted { "Round " span.id { (r.id) } " · changed " (ago(r.updated_at, now)) }
            // The assignments say what the plan said, with their states.
            @if assignments.is_empty() { (widgets::plan(&r.plan_json)) }
            @if !decisions.is_empty() {
                h4 { "Operator decisions" }
                ul {
                    @for d in decisions {
                        li {
                            (badge(if d.action == "approve" { "approved" } else { "rejected" }))
                            " " (when(&d.created_at))
                            @if !d.note.is_empty() { (prose(&d.note)) }
                        }
                    }
                }
            }
            @if let Some(v) = &r.review_verdict {
                h4 { "Review" }
                p { (badge(v)) }
                @if let Some(n) = r.review_note.as_deref().filter(|n| !n.is_empty()) { (prose(n)) }
            }
            @if awaiting { (widgets::decide(r, op, back)) }
            @if !assignments.is_empty() {
                table {
                    caption { "Assignments" }
                    thead {
                        tr {
                            th scope="col" { "Agent" }
                            th scope="col" { "Goal" }
                            th scope="col" { "State" }
                            th scope="col" { "Lease" }
                            th scope="col" { "Progress" }
                        }
                    }
                    tbody {
                        @for a in &assignments {
                            tr {
                                td { (agent_link(&a.agent_id)) }
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
            @for h in &handoffs { (handoff(h)) }
        }
    }
}

fn list(items: &[String]) -> Markup {
    markup! {
        @if items.is_empty() { span.muted { "none" } } @else {
            ul { @for i in items { li { (i) } } }
        }
    }
}

fn handoff(h: &Handoff) -> Markup {
    markup! {
        section.handoff aria-label={ "Handoff from " (h.from_agent) } {
            h4 { "Handoff from " (agent_link(&h.from_agent)) }
            dl.facts {
                dt { "Branch" } dd.id { (h.branch) }
                dt { "Commit" } dd.id { (h.commit_hash) }
                dt { "Changed files" } dd { (list(&h.changed_files)) }
                dt { "Tests run" } dd { (list(&h.tests_run)) }
                dt { "Risks" } dd { (list(&h.risks)) }
                dt { "Next steps" } dd { (list(&h.next_steps)) }
                dt { "Notes" } dd { @if h.notes.is_empty() { span.muted { "none" } } @else { (text(&h.notes)) } }
            }
        }
    }
}
