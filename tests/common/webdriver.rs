//! A W3C WebDriver client over ureq, for the browser test: Debian's chromedriver
//! driving headless Chromium (no network, a fresh profile). Only what the test
//! needs: navigate, find, type, click, run a script, take a screenshot.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one browser session; both end on drop.
pub(crate) struct Browserd {
    child: Child,
    base: String,
    session: String,
    http: ureq::Agent,
    _profile: tempfile::TempDir,
}

/// Why the browser test cannot run here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "{bin} is missing (Debian packages chromium and chromium-driver; .ci/run installs them as root)"
            ));
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browserd {
    /// Start chromedriver and open a headless Chromium session.
    pub(crate) fn start() -> Browserd {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let base = format!("http://127.0.0.1:{port}");
        let ready = super::wait_for(Duration::from_secs(20), || {
            let r = http.get(&format!("{base}/status")).call().ok()?;
            let v: Value = r.into_json().ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        });
        let profile = tempfile::tempdir().expect("profile dir");
        let mut d = Browserd {
            child,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        assert!(ready.is_some(), "chromedriver did not become ready");
        let mut args = vec![
            "--headless".to_string(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", d._profile.path().display()),
        ];
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            // Chromium's sandbox refuses to run as root.
            args.push("--no-sandbox".into());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: {v}"))
            .to_string();
        d
    }

    /// A WebDriver command; its `value`. Panics on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = self.http.request(method, &url);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let v: Value = match r {
            Ok(r) => r.into_json().expect("WebDriver JSON"),
            Err(ureq::Error::Status(_, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                panic!("WebDriver {method} {path}: {v}");
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        };
        v["value"].clone()
    }

    fn on(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub(crate) fn goto(&self, url: &str) {
        self.on("POST", "/url", Some(json!({"url": url})));
    }

    pub(crate) fn url(&self) -> String {
        self.on("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The element `css` selects (it must exist).
    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.on(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.on(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    pub(crate) fn click(&self, css: &str) {
        let e = self.find(css);
        self.on("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Run `script` (a function body) in the page; what it returns.
    pub(crate) fn run(&self, script: &str) -> Value {
        self.on(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Wait until `script` returns true in the page; panics with `what` after 20 s.
    pub(crate) fn wait_true(&self, what: &str, script: &str) {
        let ok = super::wait_for(Duration::from_secs(20), || {
            self.run(script).as_bool().filter(|b| *b)
        });
        if ok.is_none() {
            let text = self.run("return document.body ? document.body.innerText : ''");
            panic!("timed out waiting for {what}; at {}: {text}", self.url());
        }
    }

    /// Make the window `width` wide and as tall as the page (at least `min_height`),
    /// so that a screenshot shows all of it.
    pub(crate) fn fit_page(&self, width: u64, min_height: u64) {
        let h = self
            .run("return document.documentElement.scrollHeight")
            .as_u64()
            .unwrap_or(min_height)
            .max(min_height);
        self.on(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": h + 120})),
        );
    }

    /// A PNG of the viewport, written to `path`.
    pub(crate) fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let v = self.on("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browserd {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.http.delete(&url).call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
