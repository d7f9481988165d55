//! A 2026-07-28 client over raw HTTP: no session; every request carries the
//! revision's `_meta` (protocol version, client capabilities, client info) and the
//! mirrored headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), which the
//! tests then break one at a time.

use super::{http_agent, sse_data, to_resp, Resp, SseStream, ACCEPT};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};

pub(crate) const MODERN: &str = "2026-07-28";

/// The `_meta` every request of the revision carries.
pub(crate) fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "agent-hub-tests", "version": "1"},
    })
}

/// The body member `Mcp-Name` mirrors for `method`.
fn name_of<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let member = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(member).and_then(Value::as_str)
}

/// A stateless client of one agent.
pub(crate) struct Modern {
    pub url: String,
    pub token: String,
    next_id: AtomicI64,
}

impl Modern {
    pub(crate) fn new(url: &str, token: &str) -> Modern {
        Modern {
            url: url.to_string(),
            token: token.to_string(),
            next_id: AtomicI64::new(1),
        }
    }

    pub(crate) fn id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A request body: `params` with the revision's `_meta` added.
    pub(crate) fn body(id: &Value, method: &str, params: &Value) -> String {
        let mut params = params.clone();
        params["_meta"] = meta();
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
    }

    /// The headers a conforming client sends for `method` with `params`.
    pub(crate) fn headers(&self, method: &str, params: &Value) -> Vec<(String, String)> {
        let mut h = vec![
            ("Authorization".into(), format!("Bearer {}", self.token)),
            ("Accept".into(), ACCEPT.into()),
            ("Content-Type".into(), "application/json".into()),
            ("MCP-Protocol-Version".into(), MODERN.into()),
            ("Mcp-Method".into(), method.into()),
        ];
        if let Some(name) = name_of(method, params) {
            h.push(("Mcp-Name".into(), name.into()));
        }
        h
    }

    /// POST `body` with `headers` changed by `extra` (same name, case-insensitive:
    /// replaced; value "": removed).
    pub(crate) fn post_with(
        &self,
        body: &str,
        mut headers: Vec<(String, String)>,
        extra: &[(&str, &str)],
    ) -> Resp {
        for (k, v) in extra {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            if !v.is_empty() {
                headers.push((k.to_string(), v.to_string()));
            }
        }
        let mut req = http_agent().post(&self.url);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        to_resp(req.send_string(body))
    }

    /// A well-formed request, with `extra` header changes.
    pub(crate) fn send_with(&self, method: &str, params: Value, extra: &[(&str, &str)]) -> Resp {
        let body = Modern::body(&json!(self.id()), method, &params);
        self.post_with(&body, self.headers(method, &params), extra)
    }

    /// A well-formed request.
    pub(crate) fn send(&self, method: &str, params: Value) -> Resp {
        self.send_with(method, params, &[])
    }

    /// A request that must be answered 200 with a result in the revision's shape
    /// (as JSON, or as an SSE stream ending with it); returns the result.
    pub(crate) fn rpc(&self, method: &str, params: Value) -> Value {
        let id = self.id();
        let body = Modern::body(&json!(id), method, &params);
        let r = self.post_with(&body, self.headers(method, &params), &[]);
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        assert!(
            r.header("mcp-session-id").is_none(),
            "{method}: no session: {r:?}"
        );
        let v = if r.content_type().starts_with("text/event-stream") {
            let events = sse_data(&r.body);
            assert_eq!(events.len(), 1, "{method}: one answer: {}", r.body);
            events[0].clone()
        } else {
            r.json()
        };
        assert_eq!(
            (&v["jsonrpc"], &v["id"]),
            (&json!("2.0"), &json!(id)),
            "{v}"
        );
        let result = &v["result"];
        assert_eq!(result["resultType"], "complete", "{method}: {v}");
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "agent-hub",
            "{method}: {v}"
        );
        result.clone()
    }

    /// `tools/call`: (the tool's object, isError); `structuredContent` must equal
    /// the text block.
    pub(crate) fn call_raw(&self, tool: &str, args: Value) -> (Value, bool) {
        let r = self.rpc("tools/call", json!({"name": tool, "arguments": args}));
        let text: Value =
            serde_json::from_str(r["content"][0]["text"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{tool}: text is not JSON ({e}): {r}"));
        assert_eq!(r["structuredContent"], text, "{tool}: {r}");
        (text, r["isError"] == true)
    }

    /// A successful tool call's object.
    pub(crate) fn call(&self, tool: &str, args: Value) -> Value {
        let (v, err) = self.call_raw(tool, args.clone());
        assert!(!err && v["ok"] == true, "{tool}({args}) failed: {v}");
        v
    }

    /// Open a `subscriptions/listen` stream with request id `id` (JSON text, so that
    /// any integer can be sent).
    pub(crate) fn listen(&self, id: &str, notifications: Value) -> SseStream {
        let params = json!({"notifications": notifications});
        let body = Modern::body(&json!(0), "subscriptions/listen", &params).replacen(
            r#""id":0"#,
            &format!(r#""id":{id}"#),
            1,
        );
        let mut req = http_agent().post(&self.url);
        for (k, v) in self.headers("subscriptions/listen", &params) {
            req = req.set(&k, &v);
        }
        match req.send_string(&body) {
            Ok(r) => SseStream::from_response(r),
            Err(e) => panic!("listen: {:?}", to_resp(Err(e))),
        }
    }
}
