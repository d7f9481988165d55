//! HTTP and MCP client side: raw requests that return any status (`request`, `Resp`),
//! an MCP session (`Client`: initialize, post, rpc, tools/call), and an SSE reader.

use super::ACCEPT;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A raw HTTP answer.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.body))
    }
    /// Case-insensitive header lookup.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    /// The JSON-RPC error code of the body.
    pub(crate) fn rpc_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code (status {}): {}", self.status, self.body))
    }
    pub(crate) fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }
}

pub(crate) fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// A response whatever its status; panics only on transport errors.
pub(crate) fn to_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            resp.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// Any method, any headers, any body (GET and DELETE send none).
pub(crate) fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = http_agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = if method == "GET" || method == "DELETE" {
        req.call()
    } else {
        req.send_string(body)
    };
    to_resp(r)
}

/// The headers of a well-formed POST by `agent`, without session.
pub(crate) fn std_headers(auth: &str) -> Vec<(&str, &str)> {
    vec![
        ("Authorization", auth),
        ("Accept", ACCEPT),
        ("Content-Type", "application/json"),
    ]
}

pub(crate) fn init_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "agent-hub-tests", "version": "1"}}})
    .to_string()
}

pub(crate) fn ping_body(id: i64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string()
}

/// An MCP client with one session.
pub(crate) struct Client {
    pub url: String,
    pub token: String,
    pub session: String,
    /// The negotiated protocol version (from the initialize result).
    pub version: String,
    /// The whole initialize response.
    pub init: Value,
    /// Send `MCP-Protocol-Version` on every request (what ≥ 2025-06-18 clients do).
    pub send_version_header: bool,
    http: ureq::Agent,
    next_id: AtomicI64,
}

impl Client {
    /// `initialize` + `notifications/initialized`, as clients do.
    pub(crate) fn connect(url: &str, token: &str, version: &str) -> Client {
        let http = http_agent();
        let r = to_resp(
            http.post(url)
                .set("Authorization", &format!("Bearer {token}"))
                .set("Accept", ACCEPT)
                .set("Content-Type", "application/json")
                .send_string(&init_body(version)),
        );
        assert_eq!(r.status, 200, "initialize: {}", r.body);
        let session = r
            .header("mcp-session-id")
            .expect("Mcp-Session-Id header on the initialize answer")
            .to_string();
        let init = r.json();
        let negotiated = init["result"]["protocolVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("initialize result: {init}"))
            .to_string();
        let c = Client {
            url: url.to_string(),
            token: token.to_string(),
            session,
            send_version_header: negotiated.as_str() != "2025-03-26",
            version: negotiated,
            init,
            http,
            next_id: AtomicI64::new(100),
        };
        let n = c.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(n.status, 202, "notifications/initialized: {}", n.body);
        c
    }

    /// The headers of a request on this session (Authorization, Accept, Content-Type,
    /// Mcp-Session-Id, and MCP-Protocol-Version when `send_version_header`).
    pub(crate) fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            (
                "Authorization".to_string(),
                format!("Bearer {}", self.token),
            ),
            ("Accept".to_string(), ACCEPT.to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Mcp-Session-Id".to_string(), self.session.clone()),
        ];
        if self.send_version_header {
            h.push(("MCP-Protocol-Version".to_string(), self.version.clone()));
        }
        h
    }

    /// POST a raw body on this session with the usual headers, overridden or
    /// completed by `extra` (same name, case-insensitive: replaced; value "": removed).
    pub(crate) fn post_with(&self, body: &str, extra: &[(&str, &str)]) -> Resp {
        let mut h = self.headers();
        for (k, v) in extra {
            h.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            if !v.is_empty() {
                h.push((k.to_string(), v.to_string()));
            }
        }
        let mut req = self.http.post(&self.url);
        for (k, v) in &h {
            req = req.set(k, v);
        }
        to_resp(req.send_string(body))
    }

    /// POST a raw body on this session with the usual headers.
    pub(crate) fn post(&self, body: &str) -> Resp {
        self.post_with(body, &[])
    }

    /// POST a JSON value on this session.
    pub(crate) fn post_json(&self, body: &Value) -> Resp {
        self.post(&body.to_string())
    }

    fn id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A JSON-RPC request that must get a 200 answer with the same id, as JSON or
    /// (calls that may wait) as an SSE stream ending with it; returns the whole
    /// response object.
    pub(crate) fn rpc(&self, method: &str, params: Value) -> Value {
        let id = self.id();
        let r = self
            .post_json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        let v = if r.content_type().starts_with("text/event-stream") {
            let events = sse_data(&r.body);
            assert_eq!(events.len(), 1, "{method}: one answer: {}", r.body);
            events[0].clone()
        } else {
            assert!(
                r.content_type().starts_with("application/json"),
                "{method}: content type {:?}",
                r.content_type()
            );
            r.json()
        };
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["id"], id, "{method}: answer to another id: {v}");
        v
    }

    /// `tools/call`; returns the whole JSON-RPC response object.
    pub(crate) fn call_tool(&self, name: &str, args: Value) -> Value {
        self.rpc("tools/call", json!({"name": name, "arguments": args}))
    }

    /// `tools/call` that must give a result; returns (the tool's object, isError).
    /// Checks that `structuredContent`, when present, equals the parsed text block.
    pub(crate) fn call_raw(&self, tool: &str, args: Value) -> (Value, bool) {
        let v = self.call_tool(tool, args);
        let result = &v["result"];
        assert!(result.is_object(), "{tool}: no result: {v}");
        assert_eq!(result["content"][0]["type"], "text", "{tool}: {v}");
        let text: Value = serde_json::from_str(
            result["content"][0]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("{tool}: no text content: {v}")),
        )
        .unwrap_or_else(|e| panic!("{tool}: text is not JSON ({e}): {v}"));
        if let Some(sc) = result.get("structuredContent") {
            assert_eq!(sc, &text, "{tool}: structuredContent equals the text");
        }
        (text, result["isError"] == Value::Bool(true))
    }

    /// A successful tool call's object (panics on a refusal).
    pub(crate) fn call(&self, tool: &str, args: Value) -> Value {
        let (v, err) = self.call_raw(tool, args.clone());
        assert!(!err && v["ok"] == true, "{tool}({args}) failed: {v}");
        v
    }

    /// A refused tool call's error code.
    pub(crate) fn refused(&self, tool: &str, args: Value) -> String {
        let (v, err) = self.call_raw(tool, args.clone());
        assert!(err && v["ok"] == false, "{tool}({args}) should fail: {v}");
        v["error"].as_str().unwrap_or_default().to_string()
    }

    /// DELETE this session.
    pub(crate) fn delete(&self) -> Resp {
        request(
            "DELETE",
            &self.url,
            &[
                ("Authorization", &format!("Bearer {}", self.token)),
                ("Mcp-Session-Id", &self.session),
            ],
            "",
        )
    }

    /// Open the GET stream of this session.
    pub(crate) fn open_stream(&self) -> Result<SseStream, Resp> {
        let mut h = vec![
            (
                "Authorization".to_string(),
                format!("Bearer {}", self.token),
            ),
            ("Accept".to_string(), "text/event-stream".to_string()),
            ("Mcp-Session-Id".to_string(), self.session.clone()),
        ];
        if self.send_version_header {
            h.push(("MCP-Protocol-Version".to_string(), self.version.clone()));
        }
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        SseStream::open(&self.url, &hv)
    }
}

/// An open SSE response read line by line on a background thread.
pub(crate) struct SseStream {
    pub status: u16,
    pub content_type: String,
    lines: mpsc::Receiver<String>,
}

impl SseStream {
    /// GET with these headers; a non-2xx answer comes back as `Err`.
    pub(crate) fn open(url: &str, headers: &[(&str, &str)]) -> Result<SseStream, Resp> {
        let mut req = http_agent().get(url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e @ ureq::Error::Status(..)) => return Err(to_resp(Err(e))),
            Err(e) => panic!("transport error: {e}"),
        };
        Ok(SseStream::from_response(resp))
    }

    pub(crate) fn from_response(resp: ureq::Response) -> SseStream {
        let status = resp.status();
        let content_type = resp.header("content-type").unwrap_or("").to_string();
        let (tx, rx) = mpsc::channel();
        let reader = resp.into_reader();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SseStream {
            status,
            content_type,
            lines: rx,
        }
    }

    /// The next line, `None` on timeout or end of stream.
    pub(crate) fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Whether the stream ends (the server closes it) within `timeout`; lines before
    /// the end are skipped.
    pub(crate) fn ends_within(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// The next event's JSON (`data:` line), skipping comments and `event:` lines;
    /// `None` on timeout or end of stream.
    pub(crate) fn next_event(&self, timeout: Duration) -> Option<Value> {
        let end = Instant::now() + timeout;
        loop {
            let line = self.next_line(end.saturating_duration_since(Instant::now()))?;
            if let Some(data) = line.strip_prefix("data:") {
                return Some(
                    serde_json::from_str(data.trim())
                        .unwrap_or_else(|e| panic!("data not JSON ({e}): {line}")),
                );
            }
        }
    }

    /// Read lines until `n` keep-alive comments (`:` lines) have arrived; returns every
    /// line read. Panics after `timeout`.
    pub(crate) fn read_comments(&self, n: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut comments = 0;
        while comments < n {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.next_line(left).unwrap_or_else(|| {
                panic!("{n} comment lines expected within {timeout:?}; got {seen:?}")
            });
            if line.starts_with(':') {
                comments += 1;
            }
            seen.push(line);
        }
        seen
    }
}

/// The JSON payloads of the `data:` lines of an SSE body.
pub(crate) fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("data not JSON ({e}): {d}")))
        .collect()
}
