//! The tool table: each tool is one [`Tool`], carrying what `tools/list` shows
//! (name, schema, annotations) and its handler, whose typed argument struct is
//! decoded from `tools/call` arguments (a test checks it against the schema). One
//! file per tool family under `tools/`; this file only routes and renders results.
//!
//! A result is the reference's JSON object (`{"ok": true, ...}` or `{"ok": false,
//! "error": CODE, "message": ...}`) as text content, plus the same object as
//! `structuredContent` for sessions at 2025-06-18 or later.

mod agent;
mod assignment;
mod hub;
mod lock;
pub(crate) mod message;
mod task;

use super::args::{accepted, decode};
use super::jsonrpc::RpcError;
use super::protocol::Version;
use super::session::Sessions;
use crate::actors::{Hub, HubError};
use crate::domain::{AgentId, DomainError};
use crate::log_limit::LogLimit;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};

/// Everything a tool may use besides its arguments.
pub(crate) struct CallCtx<'a> {
    pub hub: &'a Hub,
    pub sessions: &'a Sessions,
    /// The caller, from its bearer token.
    pub agent: &'a AgentId,
    pub now: DateTime<Utc>,
}

/// A domain refusal or a successful object (without `ok`).
pub(crate) type Outcome = Result<Map<String, Value>, DomainError>;

/// What a tool's handler returns: the success object, or why not.
type Answer<'a> = LocalBoxFuture<'a, Result<Map<String, Value>, HubError>>;

/// A handler taking its decoded arguments `A`.
type Handler<A> = for<'a> fn(&'a CallCtx<'a>, A) -> Answer<'a>;

/// A handler taking the raw arguments (decoding is part of it).
type RawHandler =
    Box<dyn for<'a> Fn(&'a CallCtx<'a>, Map<String, Value>) -> Answer<'a> + Send + Sync>;

/// What `tools/list` shows of a tool.
pub(crate) struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input_schema: Value,
    /// Properties of the success object besides `ok`.
    pub output_properties: Value,
    pub read_only: bool,
    pub idempotent: bool,
}

/// One tool: its definition and its handler.
pub(crate) struct Tool {
    def: ToolDef,
    run: RawHandler,
    /// The argument names the handler's struct accepts (a test checks them against
    /// the schema).
    #[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
    accepted: Arc<[String]>,
    /// Decoding alone, without the handler: what the property tests, fuzz targets
    /// and micro-benchmarks exercise (the handlers need a running hub).
    #[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
    decode_only: DecodeOnly,
}

/// Decoding of a tool's arguments alone, given the names it accepts.
#[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
type DecodeOnly = fn(Map<String, Value>, &[String]) -> Result<(), DomainError>;

/// Decode arguments into `A` and drop them.
#[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
fn decode_only<A: DeserializeOwned>(
    args: Map<String, Value>,
    accepted: &[String],
) -> Result<(), DomainError> {
    decode::<A>(args, accepted).map(drop)
}

/// Every tool's name, in table order (the metrics' rows).
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    all().iter().map(|t| t.def.name)
}

/// Decode `args` as tool `name`'s handler would, without running it; None for an
/// unknown tool.
#[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
pub(crate) fn decode_args(name: &str, args: Map<String, Value>) -> Option<Result<(), DomainError>> {
    let tool = all().iter().find(|t| t.def.name == name)?;
    Some((tool.decode_only)(args, &tool.accepted))
}

impl Tool {
    /// A tool whose handler takes arguments decoded into `A` (a serde struct with
    /// `deny_unknown_fields`).
    fn new<A: DeserializeOwned + 'static>(def: ToolDef, handler: Handler<A>) -> Tool {
        let names: Arc<[String]> = accepted::<A>().into();
        #[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
        let accepted = names.clone();
        Tool {
            def,
            run: Box::new(move |ctx, args| match decode::<A>(args, &names) {
                Ok(a) => handler(ctx, a),
                Err(e) => Box::pin(std::future::ready(Err(e.into()))),
            }),
            #[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
            accepted,
            #[cfg(any(test, feature = "fuzzing", feature = "microbench"))]
            decode_only: decode_only::<A>,
        }
    }
}

/// Wrap an `async fn(&CallCtx, Args)` as a [`Handler`].
macro_rules! handler {
    ($f:path) => {
        |ctx, args| Box::pin($f(ctx, args))
    };
}
use handler;

fn all() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let mut v = hub::tools();
        v.extend(agent::tools());
        v.extend(message::tools());
        v.extend(task::tools());
        v.extend(assignment::tools());
        v.extend(lock::tools());
        v
    })
}

impl ToolDef {
    fn to_json(&self, version: Version) -> Value {
        let mut annotations = json!({
            "title": self.title,
            "readOnlyHint": self.read_only,
            "idempotentHint": self.idempotent,
            // Everything a tool touches lives inside the hub.
            "openWorldHint": false,
        });
        if !self.read_only {
            annotations["destructiveHint"] = json!(false);
        }
        let mut tool = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": annotations,
        });
        if version.has_structured_content() {
            tool["title"] = json!(self.title);
            let mut props = self.output_properties.clone();
            props["ok"] = json!({"type": "boolean", "description": "true on success"});
            props["error"] =
                json!({"type": "string", "description": "error code when ok is false"});
            props["message"] = json!({"type": "string", "description": "what went wrong and how to fix it, when ok is false"});
            tool["outputSchema"] =
                json!({"type": "object", "properties": props, "required": ["ok"]});
        }
        tool
    }
}

/// The `tools/list` result for `version`, built once per version.
pub(crate) fn list(version: Version) -> &'static Value {
    static LISTS: OnceLock<Vec<(Version, Value)>> = OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        Version::ALL
            .iter()
            .map(|v| {
                (
                    *v,
                    json!({"tools": all().iter().map(|t| t.def.to_json(*v)).collect::<Vec<_>>()}),
                )
            })
            .collect()
    });
    lists
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, l)| l)
        .expect("invariant: a list is built for every supported version")
}

/// Turn a hub failure into either a tool error (domain) or a protocol error.
/// A failure of the hub as a protocol error (a refusal there is a bug's).
pub(crate) fn rpc_error(e: HubError) -> RpcError {
    match from_hub(e) {
        Err(rpc) => rpc,
        Ok(d) => RpcError::internal(d.to_string()),
    }
}

fn from_hub(e: HubError) -> Result<DomainError, RpcError> {
    match e {
        HubError::Domain(d) => Ok(d),
        HubError::Store(s) => {
            // Every write during a fault ends here: one line per interval.
            static UNAVAILABLE: LogLimit = LogLimit::new(10_000);
            if let Some(n) = UNAVAILABLE.hit() {
                tracing::warn!(error = %s, calls = n, "storage unavailable during tool calls (one line per 10 s at most)");
            }
            Err(RpcError::store_unavailable(s))
        }
        HubError::Mailbox(m) => {
            static GONE: LogLimit = LogLimit::new(10_000);
            if let Some(n) = GONE.hit() {
                tracing::warn!(error = %m, calls = n, "actor unavailable during tool calls (one line per 10 s at most)");
            }
            Err(RpcError::store_unavailable(
                "the hub is rebuilding its live state or shutting down; retry",
            ))
        }
        HubError::NotOwner(what) => Err(RpcError::not_owner(format!(
            "{what} belongs to a shard another node serves"
        ))),
        // Logged where it was found.
        HubError::Internal(_) => Err(RpcError::internal(
            "the hub hit an internal error; see its log",
        )),
    }
}

/// The name of the tool at `index`, `unknown` for none (never a client's text).
pub(crate) fn name_at(index: Option<usize>) -> &'static str {
    index
        .and_then(|i| all().get(i))
        .map_or("unknown", |t| t.def.name)
}

/// Whether the tool at `index` only reads.
#[cfg(test)]
pub(crate) fn is_read_only(index: usize) -> bool {
    all()[index].def.read_only
}

/// The table index of tool `name`.
pub(crate) fn find(name: &str) -> Option<usize> {
    all().iter().position(|t| t.def.name == name)
}

/// Run tool `name`, found at `index` by [`find`]. Unknown tools are protocol errors
/// (-32602); refusals are results.
pub(crate) async fn call(
    ctx: &CallCtx<'_>,
    index: Option<usize>,
    name: &str,
    args: Map<String, Value>,
) -> Result<Outcome, RpcError> {
    let Some(tool) = index.and_then(|i| all().get(i)) else {
        return Err(RpcError::invalid_params(format!(
            "unknown tool `{name}`; call tools/list for the tools this hub offers"
        )));
    };
    let result = (tool.run)(ctx, args).await;
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(HubError::Domain(d)) => {
            // A refusal shows state (a holder, an original message id, "already
            // exists"): answer once that state is on disk.
            if let Err(e) = ctx.hub.settled().await {
                return from_hub(e).map(Err);
            }
            Ok(Err(d))
        }
        Err(e) => from_hub(e).map(Err),
    }
}

/// Render a tool outcome as a `CallToolResult`, in `version`'s shape. The object is
/// serialised once: `structuredContent` is that text, and `text` its escaped copy.
pub(crate) fn render(outcome: Outcome, version: Version) -> Box<RawValue> {
    let (object, is_error) = match outcome {
        Ok(mut fields) => {
            fields.insert("ok".into(), Value::Bool(true));
            (fields, false)
        }
        Err(e) => {
            let mut object = e.details();
            object.insert("ok".into(), Value::Bool(false));
            object.insert("error".into(), e.code().as_str().into());
            object.insert("message".into(), e.to_string().into());
            (object, true)
        }
    };
    #[derive(Serialize)]
    struct Text<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        text: &'a str,
    }
    #[derive(Serialize)]
    struct CallToolResult<'a> {
        #[serde(rename = "resultType", skip_serializing_if = "Option::is_none")]
        result_type: Option<&'static str>,
        #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
        meta: Option<Value>,
        content: [Text<'a>; 1],
        #[serde(rename = "structuredContent", skip_serializing_if = "Option::is_none")]
        structured: Option<&'a RawValue>,
        #[serde(rename = "isError", skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    }
    // A map of `Value`s always serialises; the fallbacks only satisfy the types.
    let object =
        serde_json::value::to_raw_value(&object).unwrap_or_else(|_| RawValue::NULL.to_owned());
    let modern = version.is_modern();
    let result = CallToolResult {
        result_type: modern.then_some("complete"),
        meta: modern.then(super::modern::meta),
        content: [Text {
            kind: "text",
            text: object.get(),
        }],
        structured: version.has_structured_content().then_some(&*object),
        is_error,
    };
    serde_json::value::to_raw_value(&result).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The output schema of a field that may be null: `anyOf` a type and null, never
/// `"type": [T, "null"]`, which is valid JSON Schema but warned about by the
/// Inspector's `--strict` mode and rejected by some clients' schema dialects.
fn nullable(ty: &str, description: &str) -> Value {
    let mut schema = json!({"anyOf": [{"type": ty}, {"type": "null"}]});
    if !description.is_empty() {
        schema["description"] = description.into();
    }
    schema
}

/// Helper for tool modules: a success object from a `json!({...})` literal.
fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod arg_props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_well_formed() {
        for t in all().iter().map(|t| &t.def) {
            assert!(t
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_eq!(t.input_schema["type"], "object");
            assert!(!t.description.is_empty() && !t.title.is_empty());
        }
        let l = list(Version::LATEST);
        assert!(l["tools"][0]["outputSchema"].is_object());
        assert!(l["tools"][0]["title"].is_string());
        let old = list(Version::V2025_03_26);
        assert!(old["tools"][0].get("outputSchema").is_none());
        assert!(old["tools"][0]["annotations"].is_object());
    }

    /// The schema a client sees and the struct the handler decodes name the same
    /// arguments, and names are unique.
    #[test]
    fn schemas_match_argument_structs() {
        let mut names: Vec<&str> = all().iter().map(|t| t.def.name).collect();
        for t in all() {
            let mut schema: Vec<String> = t.def.input_schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let mut accepted = t.accepted.to_vec();
            schema.sort();
            accepted.sort();
            assert_eq!(schema, accepted, "{}", t.def.name);
            assert_eq!(t.def.input_schema["additionalProperties"], false);
            for r in t.def.input_schema["required"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert!(schema.iter().any(|s| r == s), "{}: {r}", t.def.name);
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
    }

    #[test]
    fn render_success_and_error() {
        let parse = |raw: Box<RawValue>| -> Value { serde_json::from_str(raw.get()).unwrap() };
        let r = parse(render(Ok(fields(json!({"a": 1}))), Version::LATEST));
        let text: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, r["structuredContent"]);
        assert_eq!(text["ok"], true);
        assert!(r.get("isError").is_none() && r.get("resultType").is_none());
        // 2026-07-28: the revision's members, written in the same pass.
        let m = parse(render(Ok(fields(json!({"a": 1}))), Version::MODERN));
        assert_eq!(m["resultType"], "complete");
        assert_eq!(
            m["_meta"][super::super::modern::SERVER_INFO_KEY]["name"],
            "agent-hub"
        );
        assert_eq!(m["structuredContent"], json!({"a": 1, "ok": true}));
        // The same members `modern::complete` gives every other result: if a cache
        // hint is ever added for tools/call, render must add it too.
        for outcome in [
            || Ok(fields(json!({"a": 1}))),
            || Err(DomainError::invalid("name", "bad")),
        ] {
            let written = parse(render(outcome(), Version::MODERN));
            let completed = super::super::modern::complete(
                "tools/call",
                parse(render(outcome(), Version::V2025_11_25)),
            );
            assert_eq!(written, completed);
        }
        let r = parse(render(
            Err(DomainError::invalid("name", "bad")),
            Version::V2025_03_26,
        ));
        assert_eq!(r["isError"], true);
        assert!(r.get("structuredContent").is_none());
        let text: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text,
            json!({"ok": false, "error": "INVALID_ARGUMENT", "message": "name: bad", "field": "name"})
        );
    }
}
