//! The dashboard as a browser sees it, without a browser: a cookie jar, GETs and
//! form posts that do not follow redirects, the login dance, and the CSRF token
//! scraped from a page. The real browser test is tests/dashboard_browser.rs.

use super::{Hub, Resp};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// One browser: its cookies, sent to every request.
pub(crate) struct Browser {
    pub base: String,
    pub cookies: RefCell<HashMap<String, String>>,
    http: ureq::Agent,
}

/// The value of `name="NAME" value="..."` in a page (the first form field).
pub(crate) fn field(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The first link (`href`) of `page` containing `part`, as a path to GET.
pub(crate) fn link(page: &str, part: &str) -> Option<String> {
    page.split("href=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap_or(0)].replace("&amp;", "&"))
        .find(|h| h.contains(part))
}

impl Browser {
    pub(crate) fn new(hub: &Hub) -> Browser {
        Browser {
            base: hub.base.clone(),
            cookies: RefCell::new(HashMap::new()),
            http: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// A browser logged in with the operator token.
    pub(crate) fn logged_in(hub: &Hub) -> Browser {
        let b = Browser::new(hub);
        let r = b.login(&hub.operator_token());
        assert_eq!(r.status, 303, "login: {}", r.body);
        b
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Send a request with our cookies (and `headers`), keep the cookies it sets.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = self.http.request(method, &format!("{}{path}", self.base));
        let jar = self.cookie_header();
        if !jar.is_empty() {
            req = req.set("Cookie", &jar);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = match body {
            Some(b) => req
                .set("Content-Type", "application/x-www-form-urlencoded")
                .send_string(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        for c in resp.all("set-cookie") {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.borrow_mut().remove(k);
                } else {
                    self.cookies
                        .borrow_mut()
                        .insert(k.to_string(), v.to_string());
                }
            }
        }
        let status = resp.status();
        let mut hs = HashMap::new();
        for n in resp.headers_names() {
            let all = resp.all(&n).join("\n");
            hs.insert(n.to_ascii_lowercase(), all);
        }
        let body = resp.into_string().unwrap_or_default();
        Resp {
            status,
            headers: hs,
            body,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None)
    }

    /// A page that must render: its HTML.
    pub(crate) fn page(&self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.body
    }

    /// POST a form of `fields`.
    pub(crate) fn post(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.post_with(path, fields, &[])
    }

    /// POST a form of `fields` with extra headers.
    pub(crate) fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = serde_urlencoded::to_string(fields).expect("form");
        self.send("POST", path, headers, Some(&body))
    }

    /// The login form, then the token: the answer to the post.
    pub(crate) fn login(&self, token: &str) -> Resp {
        let form = self.get("/ui/login");
        assert_eq!(form.status, 200, "login form: {}", form.body);
        let csrf = field(&form.body, "login_csrf").expect("login_csrf field");
        self.post("/ui/login", &[("token", token), ("login_csrf", &csrf)])
    }

    /// This session's CSRF token, as the overview's forms carry it.
    pub(crate) fn csrf(&self) -> String {
        field(&self.page("/ui"), "csrf").expect("csrf field")
    }

    /// The session cookie, if any.
    pub(crate) fn session(&self) -> Option<String> {
        self.cookies.borrow().get("ahub_session").cloned()
    }
}
