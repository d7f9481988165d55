//! The dashboard's doors: the login form (operator token only, failed logins
//! capped), the session cookie (HttpOnly, SameSite=Strict, Secure when configured,
//! rotated at login, ended by logout), CSRF and same-site checks on every action,
//! the security headers, and the operator API staying bearer-only.

mod common;
use common::workflow::{draft, plan, submit_plan};
use common::*;

const PAGES: &[&str] = &[
    "/ui",
    "/ui/tasks",
    "/ui/tasks/T-1",
    "/ui/agents/alice",
    "/ui/locks",
    "/ui/audit",
];

fn assert_security_headers(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
        "{what}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

#[test]
fn pages_need_a_session_and_every_answer_has_the_security_headers() {
    let hub = Hub::start(&["alice"], "");
    let b = Browser::new(&hub);
    for p in PAGES {
        let r = b.get(p);
        assert_eq!(r.status, 303, "{p}: {}", r.body);
        assert_eq!(r.header("location"), Some("/ui/login"), "{p}");
        assert_security_headers(&r, p);
    }
    let r = b.get("/ui/events");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_security_headers(&r, "events");
    for action in [
        "/ui/rounds/R-1/approve",
        "/ui/rounds/R-1/reject",
        "/ui/tasks/T-1/close",
        "/ui/locks/release",
        "/ui/agents/alice/purge",
        "/ui/logout",
    ] {
        let r = b.post(action, &[("csrf", "x"), ("key", "k")]);
        assert_eq!(r.status, 401, "{action}: {}", r.body);
        assert_security_headers(&r, action);
    }
    // A bearer token is no way in either.
    let auth = format!("Bearer {}", hub.operator_token());
    let r = b.send("GET", "/ui", &[("Authorization", &auth)], None);
    assert_eq!(r.status, 303, "the dashboard takes no bearer token");
    let r = b.get("/ui/login");
    assert_eq!(r.status, 200);
    assert_security_headers(&r, "login");
    assert_security_headers(&b.get("/ui/nope"), "404");
    let js = b.get("/ui/static/app.js");
    assert_eq!(js.status, 200);
    assert!(js.content_type().starts_with("text/javascript"));
    assert_security_headers(&js, "app.js");
}

#[test]
fn only_the_operator_token_logs_in_and_the_session_id_is_not_the_token() {
    let hub = Hub::start(&["alice"], "");
    let b = Browser::new(&hub);
    for wrong in [token("alice"), "guess".to_string(), String::new()] {
        let r = b.login(&wrong);
        assert_eq!(r.status, 401, "{wrong}: {}", r.body);
        assert!(r.body.contains("not the operator token"), "{}", r.body);
        assert_eq!(b.session(), None);
    }
    // The login form's token must come with its cookie (another site cannot post it).
    let form = b.get("/ui/login");
    let csrf = field(&form.body, "login_csrf").unwrap();
    b.cookies.borrow_mut().clear();
    let op = hub.operator_token();
    let r = b.post("/ui/login", &[("token", &op), ("login_csrf", &csrf)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(b.session(), None);

    let r = b.login(&format!("  {op}\n"));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/ui"));
    let set = r.header("set-cookie").unwrap();
    let session = set
        .lines()
        .find(|c| c.starts_with("ahub_session="))
        .unwrap_or_else(|| panic!("{set}"));
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    let id = b.session().unwrap();
    assert!(!id.contains(&op) && id.len() >= 64, "{id}");
    assert!(b.page("/ui").contains("Overview"));
    // Already logged in: the form sends the browser on.
    assert_eq!(b.get("/ui/login").status, 303);
}

#[test]
fn a_login_rotates_the_session_and_logout_ends_it() {
    let hub = Hub::start(&["alice"], "");
    let b = Browser::logged_in(&hub);
    let first = b.session().unwrap();
    let old = Browser::new(&hub);
    old.cookies
        .borrow_mut()
        .insert("ahub_session".into(), first.clone());
    // A login posted by a browser that still sends a session cookie (its own, or
    // one planted by someone else) gets a new id, and the old one ends.
    b.cookies.borrow_mut().remove("ahub_session");
    let csrf = field(&b.get("/ui/login").body, "login_csrf").unwrap();
    b.cookies
        .borrow_mut()
        .insert("ahub_session".into(), first.clone());
    let r = b.post(
        "/ui/login",
        &[("token", &hub.operator_token()), ("login_csrf", &csrf)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let second = b.session().unwrap();
    assert_ne!(first, second);
    assert_eq!(old.get("/ui").status, 303, "the old id no longer works");
    assert_eq!(b.get("/ui").status, 200);

    // Logout needs the session's CSRF token too.
    assert_eq!(b.post("/ui/logout", &[("csrf", "wrong")]).status, 403);
    let csrf = b.csrf();
    let r = b.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    assert_eq!(b.session(), None, "cookie cleared");
    let again = Browser::new(&hub);
    again
        .cookies
        .borrow_mut()
        .insert("ahub_session".into(), second);
    assert_eq!(again.get("/ui").status, 303, "ended on the server too");
}

#[test]
fn a_rotated_operator_token_ends_dashboard_sessions() {
    let hub = Hub::start(&["alice"], "");
    let b = Browser::logged_in(&hub);
    assert_eq!(b.get("/ui").status, 200);
    common::workflow::hubctl_ok(&hub, &["operator-token", "rotate"]);
    assert_eq!(b.get("/ui").status, 303);
}

#[test]
fn failed_logins_are_capped_per_minute() {
    let hub = Hub::start(&["alice"], "dashboard_failed_logins_per_minute: 2\n");
    let b = Browser::new(&hub);
    assert_eq!(b.login("guess-1").status, 401);
    assert_eq!(b.login("guess-2").status, 401);
    let r = b.login(&hub.operator_token());
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.body.contains("too many failed logins"), "{}", r.body);
    assert_eq!(b.session(), None);
}

#[test]
fn sessions_are_bounded_and_the_least_recently_used_goes() {
    let hub = Hub::start(&["alice"], "dashboard_max_sessions: 2\n");
    let a = Browser::logged_in(&hub);
    let b = Browser::logged_in(&hub);
    assert_eq!(a.get("/ui").status, 200, "a used after b logged in");
    let c = Browser::logged_in(&hub);
    assert_eq!(b.get("/ui").status, 303, "b was the least recently used");
    assert_eq!(a.get("/ui").status, 200);
    assert_eq!(c.get("/ui").status, 200);
}

#[test]
fn actions_need_this_sessions_csrf_token_and_no_foreign_origin() {
    let hub = Hub::start(&["disp", "alice"], "");
    let d = hub.client("disp");
    draft(&d, "T-1");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    let b = Browser::logged_in(&hub);
    let csrf = b.csrf();
    let approve = format!("/ui/rounds/{round}/approve");
    let r = b.post(&approve, &[("note", "ok")]);
    assert_eq!(r.status, 403, "no token: {}", r.body);
    assert!(
        r.body.contains("not from your current session"),
        "{}",
        r.body
    );
    assert_eq!(b.post(&approve, &[("csrf", "0123")]).status, 403);
    // Another session's token is no good either.
    let other = Browser::logged_in(&hub).csrf();
    assert_eq!(b.post(&approve, &[("csrf", &other)]).status, 403);
    let ok = [("csrf", csrf.as_str())];
    let r = b.post_with(&approve, &ok, &[("Origin", "http://evil.example")]);
    assert_eq!(r.status, 403, "{}", r.body);
    for site in ["cross-site", "same-site"] {
        let r = b.post_with(&approve, &ok, &[("Sec-Fetch-Site", site)]);
        assert_eq!(r.status, 403, "{site}: {}", r.body);
    }
    // `Origin: null` (a sandboxed frame, or our own form under no-referrer) passes
    // only when the browser says the request is same-origin.
    let r = b.post_with(&approve, &ok, &[("Origin", "null")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let status = hub.operator_get(&format!("/operator/rounds/{round}"));
    assert_eq!(status["round"]["status"], "awaiting_operator_approval");
    // What Chromium sends for our own form, the right token: approved.
    let r = b.post_with(
        &approve,
        &ok,
        &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let status = hub.operator_get(&format!("/operator/rounds/{round}"));
    assert_eq!(status["round"]["status"], "dispatched");
}

#[test]
fn the_operator_api_never_takes_the_session_cookie() {
    let hub = Hub::start(&["alice"], "");
    let b = Browser::logged_in(&hub);
    for path in ["/operator/rounds", "/operator/hub", "/operator/events"] {
        let r = b.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    let r = b.post("/operator/rounds/R-1/approve", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn an_https_public_url_makes_the_cookie_secure_and_its_origin_allowed() {
    let hub = Hub::start(&["disp", "alice"], "public_url: https://hub.example.org/\n");
    let b = Browser::new(&hub);
    let form = b.get("/ui/login");
    assert!(form.header("set-cookie").unwrap().contains("; Secure"));
    let r = b.login(&hub.operator_token());
    assert_eq!(r.status, 303);
    assert!(
        r.header("set-cookie").unwrap().contains("; Secure"),
        "{:?}",
        r.headers
    );
    let d = hub.client("disp");
    draft(&d, "T-1");
    let round = submit_plan(&d, "T-1", plan(&[("alice", "code")]));
    let csrf = b.csrf();
    let r = b.post_with(
        &format!("/ui/rounds/{round}/reject"),
        &[("csrf", &csrf), ("note", "split it")],
        &[("Origin", "https://hub.example.org")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
}
