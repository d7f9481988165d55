//! The page shell and the small pieces every page uses, as maud markup. maud
//! escapes every spliced value, so whatever agents wrote (subjects, bodies, notes,
//! goals) reaches the browser as text, never as HTML.

use super::format::{remaining, seg, words};
use super::guard::Operator;
use crate::domain::time::{iso, Timestamp};
use actix_web::http::StatusCode;
use maud::{html, Markup, DOCTYPE};

/// What every page's shell shows besides its content.
pub(crate) struct Shell<'a> {
    pub title: &'a str,
    /// The navigation entry of this page (`overview`, `tasks`, `locks`, `audit`).
    pub nav: &'a str,
    pub op: &'a Operator,
    /// The newest event id when the page was rendered: the live stream resumes
    /// after it, so nothing between render and connect is missed.
    pub last_event: Option<String>,
    pub now: Timestamp,
    /// A one-line result of the action that led here.
    pub notice: Option<String>,
}

const NAV: &[(&str, &str, &str)] = &[
    ("overview", "/ui", "Overview"),
    ("tasks", "/ui/tasks", "Tasks"),
    ("locks", "/ui/locks", "Locks"),
    ("audit", "/ui/audit", "Audit"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · agent-hub" }
            link rel="stylesheet" href="/ui/static/app.css";
            script src="/ui/static/app.js" defer {}
        }
    }
}

/// A dashboard page: header with navigation, live status and logout, then `content`.
pub(crate) fn page(shell: &Shell, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(shell.title))
            body data-events="/ui/events"
                data-last-event=[shell.last_event.as_deref()]
                data-now=(shell.now.timestamp_millis()) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "agent-hub" }
                    nav aria-label="Dashboard" {
                        ul {
                            @for (key, href, label) in NAV {
                                li {
                                    @if *key == shell.nav {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    span #live .live role="status" aria-live="polite" { "Connecting…" }
                    form.logout method="post" action="/ui/logout" {
                        (csrf(shell.op))
                        button type="submit" { "Log out" }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(n) = &shell.notice {
                        p.notice role="status" { (n) }
                    }
                    (content)
                }
            }
        }
    }
}

/// The login form; `login_csrf` also goes in its cookie (double submit).
pub(crate) fn login_page(error: Option<&str>, login_csrf: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body.login {
                main #main {
                    h1 { "agent-hub dashboard" }
                    @if let Some(e) = error {
                        p.error role="alert" { (e) }
                    }
                    form method="post" action="/ui/login" {
                        input type="hidden" name="login_csrf" value=(login_csrf);
                        label for="token" { "Operator token" }
                        p.hint #token-hint {
                            "The text of " code { "operator.token" } " in the hub's config directory. "
                            "Agent tokens are not accepted."
                        }
                        input #token type="password" name="token" required
                            autocomplete="current-password" aria-describedby="token-hint"
                            autofocus;
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// A refusal or failure as a page of its own.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.login {
                main #main {
                    h1 { (status.as_u16()) " " (title) }
                    p.error role="alert" { (message) }
                    p {
                        a href="/ui" { "Back to the dashboard" }
                        " · "
                        a href="/ui/login" { "Log in" }
                    }
                }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub(crate) fn csrf(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

/// A state as a coloured word.
pub(crate) fn badge(state: &str) -> Markup {
    html! { span class={ "badge s-" (state) } { (words(state)) } }
}

/// Time left until `deadline`, counted down live by `app.js`.
pub(crate) fn countdown(deadline: Timestamp, now: Timestamp) -> Markup {
    let at = iso(deadline);
    html! { time.countdown datetime=(at) data-deadline=(at) { (remaining(deadline, now)) } }
}

pub(crate) fn task_link(id: &str) -> Markup {
    html! { a.id href={ "/ui/tasks/" (seg(id)) } { (id) } }
}

/// An agent's page; the hub (its notices), the operator and the system (audit
/// actors) have none.
pub(crate) fn agent_link(id: &str) -> Markup {
    if [crate::actors::directory::HUB_SENDER, "operator", "system"].contains(&id) {
        return html! { span.id { (id) } };
    }
    html! { a.id href={ "/ui/agents/" (seg(id)) } { (id) } }
}

/// Text an agent wrote, kept as written (line breaks and all), as text, in a box
/// (message bodies, descriptions, handoff notes).
pub(crate) fn text(s: &str) -> Markup {
    html! { pre.text { (s) } }
}

/// A short text (a goal, a note), line breaks kept, without a box.
pub(crate) fn prose(s: &str) -> Markup {
    html! { div.prose { (s) } }
}

/// A link to the next (older) page when there is one, and back to the newest.
pub(crate) fn pager(path: &str, param: &str, next: Option<&str>, paged: bool) -> Markup {
    html! {
        @if next.is_some() || paged {
            nav.pager aria-label="Pages" {
                @if paged {
                    a href=(path) { "Newest" }
                }
                @if let Some(c) = next {
                    a href=(super::format::with_query(path, &[(param, c)])) rel="next" { "Older" }
                }
            }
        }
    }
}

/// A page's `<section>` that `app.js` refreshes in place when events arrive.
pub(crate) fn live_section(id: &str, heading: &str, content: Markup) -> Markup {
    let h = format!("{id}-h");
    html! {
        section.card #(id) data-live aria-labelledby=(h) {
            h2 #(h) { (heading) }
            (content)
        }
    }
}
