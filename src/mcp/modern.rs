//! The 2026-07-28 revision's per-request envelope: with no `initialize`, every
//! request names its protocol version and client capabilities (and, optionally, its
//! client info) in `params._meta`, and mirrors version, method and name into HTTP
//! headers that must agree with the body. Pure: the HTTP layer reads the headers
//! into [`Mirrored`] and turns the error codes into statuses. Also the revision's
//! result shapes (`resultType`, our identity in `_meta`, cache hints) and
//! `server/discover`.

use super::jsonrpc::RpcError;
use super::protocol::{self, Version};
use base64::Engine;
use serde_json::{json, Map, Value};

pub(crate) const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
pub(crate) const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
pub(crate) const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// How long a client may keep a list or `server/discover` result: they change only
/// with a new binary, so a restart is seen within this time.
const STATIC_TTL_MS: u64 = 300_000;

/// One mirrored header as the request carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    Absent,
    /// Given more than once: readers taking the first or the last would disagree.
    Repeated,
    /// Not visible ASCII.
    Unreadable,
    Value(&'a str),
}

/// The headers a 2026-07-28 request mirrors from its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mirrored<'a> {
    /// `MCP-Protocol-Version`
    pub version: Header<'a>,
    /// `Mcp-Method`
    pub method: Header<'a>,
    /// `Mcp-Name`
    pub name: Header<'a>,
}

/// What a request's `_meta` says about its client. Its capabilities are checked for
/// shape only: we never need one (we ask clients for no input), so no request is
/// refused with -32021.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub client_info: Option<Map<String, Value>>,
}

impl Envelope {
    /// The client's self-reported name, for logs.
    pub(crate) fn client_name(&self) -> &str {
        self.client_info
            .as_ref()
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("unnamed")
    }
}

/// The body member a method's `Mcp-Name` mirrors.
fn name_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Whether a request without a session claims the 2026-07-28 revision by its body:
/// `server/discover` (only this revision has it) or a protocol version in `_meta`.
pub(crate) fn claimed_by_body(method: &str, params: Option<&Value>) -> bool {
    method == "server/discover"
        || params
            .and_then(|p| p.get("_meta"))
            .is_some_and(|m| m.get(PROTOCOL_VERSION_KEY).is_some())
}

/// Check a 2026-07-28 request's envelope, in the order the Python SDK's reference
/// server does, so that a client gets the same first complaint from both: repeated
/// headers, then the required `_meta` members (-32602), then headers against the
/// body (-32020), then the version itself (-32022, naming what we serve).
pub(crate) fn check(
    method: &str,
    params: Option<&Value>,
    headers: &Mirrored<'_>,
) -> Result<Envelope, RpcError> {
    for (name, h) in [
        ("MCP-Protocol-Version", headers.version),
        ("Mcp-Method", headers.method),
        ("Mcp-Name", headers.name),
    ] {
        if h == Header::Repeated {
            return Err(RpcError::header_mismatch(format!(
                "the {name} header appears more than once"
            )));
        }
    }
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "params._meta must be an object carrying {PROTOCOL_VERSION_KEY} and {CLIENT_CAPABILITIES_KEY}"
            ))
        })?;
    let missing: Vec<&str> = [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing {}",
            missing.join(" and ")
        )));
    }
    let version = &meta[PROTOCOL_VERSION_KEY];
    check_headers(method, params, version, headers)?;
    let Some(version) = version.as_str() else {
        return Err(RpcError::invalid_params(format!(
            "{PROTOCOL_VERSION_KEY} must be a string"
        )));
    };
    if version != Version::MODERN.as_str() {
        let supported: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
        return Err(RpcError::unsupported_version(version, &supported));
    }
    if !meta[CLIENT_CAPABILITIES_KEY].is_object() {
        return Err(RpcError::invalid_params(format!(
            "{CLIENT_CAPABILITIES_KEY} must be an object"
        )));
    }
    let client_info = match meta.get(CLIENT_INFO_KEY) {
        None => None,
        Some(Value::Object(info)) => Some(info.clone()),
        Some(_) => {
            return Err(RpcError::invalid_params(format!(
                "{CLIENT_INFO_KEY} must be an object"
            )))
        }
    };
    Ok(Envelope { client_info })
}

/// The mirrored headers against the body: present, readable, equal.
fn check_headers(
    method: &str,
    params: Option<&Value>,
    version: &Value,
    headers: &Mirrored<'_>,
) -> Result<(), RpcError> {
    let mismatch = |name: &str, body: &str| {
        Err(RpcError::header_mismatch(format!(
            "the {name} header is missing, unreadable or differs from the body's {body}"
        )))
    };
    match headers.version {
        Header::Value(v) if version.as_str() == Some(v) => {}
        _ => return mismatch("MCP-Protocol-Version", PROTOCOL_VERSION_KEY),
    }
    match headers.method {
        Header::Value(m) if m == method => {}
        _ => return mismatch("Mcp-Method", "method"),
    }
    let Some(member) = name_member(method) else {
        return Ok(());
    };
    // A request without the member is refused by dispatch (-32602), like any
    // missing parameter; one that has it must mirror it.
    let body = match params.and_then(|p| p.get(member)) {
        None | Some(Value::Null) => return Ok(()),
        Some(v) => v.as_str(),
    };
    let header = match headers.name {
        Header::Value(h) => decode_header_value(h),
        _ => None,
    };
    match (body, header) {
        (Some(b), Some(h)) if b == h => Ok(()),
        _ => mismatch("Mcp-Name", &format!("params.{member}")),
    }
}

/// A header value as sent: verbatim, or the UTF-8 text inside the revision's
/// `=?base64?…?=` sentinel (used for values that are not plain ASCII). `None` for a
/// malformed sentinel, so that a corrupt header never matches.
pub(crate) fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    // The standard engine refuses non-canonical padding bits, as the revision's
    // encoders never produce them.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Cache hints of a result: the lists and `server/discover` are the same for every
/// agent until a new binary; an inbox read is the caller's own and changes any time.
fn cache_hint(method: &str) -> Option<(u64, &'static str)> {
    match method {
        "tools/list" | "resources/list" | "resources/templates/list" => {
            Some((STATIC_TTL_MS, "public"))
        }
        // Its instructions name the caller.
        "server/discover" => Some((STATIC_TTL_MS, "private")),
        "resources/read" => Some((0, "private")),
        _ => None,
    }
}

/// A result of `method` in the revision's shape: `resultType`, our identity in
/// `_meta`, and cache hints where the revision requires them.
pub(crate) fn complete(method: &str, mut result: Value) -> Value {
    if let Value::Object(m) = &mut result {
        m.insert("resultType".into(), json!("complete"));
        let meta = m.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(SERVER_INFO_KEY.into(), protocol::server_info());
        }
        if let Some((ttl, scope)) = cache_hint(method) {
            m.insert("ttlMs".into(), json!(ttl));
            m.insert("cacheScope".into(), json!(scope));
        }
    }
    result
}

/// The `_meta` of a result in this revision: our identity.
pub(crate) fn meta() -> Value {
    json!({ SERVER_INFO_KEY: protocol::server_info() })
}

/// `server/discover`: every revision we serve (a client picks one; handshake
/// revisions need `initialize`), what we offer, and how to use it.
pub(crate) fn discover(agent: &str) -> Value {
    let versions: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    json!({
        "supportedVersions": versions,
        "capabilities": protocol::capabilities(),
        "instructions": protocol::instructions(agent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::{HEADER_MISMATCH, INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION};

    const V: &str = "2026-07-28";

    fn meta() -> Value {
        json!({PROTOCOL_VERSION_KEY: V, CLIENT_CAPABILITIES_KEY: {}, CLIENT_INFO_KEY: {"name": "t", "version": "1"}})
    }

    fn headers<'a>(method: &'a str, name: Option<&'a str>) -> Mirrored<'a> {
        Mirrored {
            version: Header::Value(V),
            method: Header::Value(method),
            name: name.map_or(Header::Absent, Header::Value),
        }
    }

    fn code(method: &str, params: Value, h: Mirrored<'_>) -> i64 {
        check(method, Some(&params), &h).map_or_else(|e| e.code, |_| 0)
    }

    #[test]
    fn a_well_formed_request_passes() {
        let params = json!({"name": "hub_status", "_meta": meta()});
        let env = check(
            "tools/call",
            Some(&params),
            &headers("tools/call", Some("hub_status")),
        );
        assert_eq!(
            env.map(|e| e.client_name().to_string()).ok().as_deref(),
            Some("t")
        );
        let discover = json!({"_meta": meta()});
        assert_eq!(
            code(
                "server/discover",
                discover,
                headers("server/discover", None)
            ),
            0
        );
    }

    #[test]
    fn the_ladder_in_order() {
        let call = |p: Value, h| code("tools/call", p, h);
        let ok_h = headers("tools/call", Some("x"));
        // Repeated headers first, whatever else is wrong.
        let mut rep = ok_h;
        rep.method = Header::Repeated;
        assert_eq!(call(json!({}), rep), HEADER_MISMATCH);
        // Then the required _meta members.
        assert_eq!(call(json!({"name": "x"}), ok_h), INVALID_PARAMS);
        assert_eq!(code("tools/call", json!(null), ok_h), INVALID_PARAMS);
        for drop in [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY] {
            let mut m = meta();
            m.as_object_mut().unwrap().remove(drop);
            assert_eq!(call(json!({"name": "x", "_meta": m}), ok_h), INVALID_PARAMS);
        }
        // Then headers against the body.
        let p = json!({"name": "x", "_meta": meta()});
        for bad in [
            Mirrored {
                version: Header::Absent,
                ..ok_h
            },
            Mirrored {
                version: Header::Value("2025-11-25"),
                ..ok_h
            },
            Mirrored {
                version: Header::Unreadable,
                ..ok_h
            },
            Mirrored {
                method: Header::Absent,
                ..ok_h
            },
            Mirrored {
                method: Header::Value("tools/list"),
                ..ok_h
            },
            Mirrored {
                name: Header::Absent,
                ..ok_h
            },
            Mirrored {
                name: Header::Value("y"),
                ..ok_h
            },
            Mirrored {
                name: Header::Value("=?base64?!!?="),
                ..ok_h
            },
        ] {
            assert_eq!(call(p.clone(), bad), HEADER_MISMATCH, "{bad:?}");
        }
        // A name that is no string cannot be mirrored.
        assert_eq!(
            call(json!({"name": 5, "_meta": meta()}), ok_h),
            HEADER_MISMATCH
        );
        // Then the version: unsupported names what we serve.
        let mut m = meta();
        m[PROTOCOL_VERSION_KEY] = json!("2099-01-01");
        let h = Mirrored {
            version: Header::Value("2099-01-01"),
            ..ok_h
        };
        let e = check("tools/call", Some(&json!({"name": "x", "_meta": m})), &h).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        let data = e.data.unwrap();
        assert_eq!(data["requested"], "2099-01-01");
        assert_eq!(data["supported"][0], V);
        assert!(data["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25")));
        // Shapes last.
        let mut m = meta();
        m[CLIENT_CAPABILITIES_KEY] = json!([]);
        assert_eq!(call(json!({"name": "x", "_meta": m}), ok_h), INVALID_PARAMS);
        let mut m = meta();
        m[CLIENT_INFO_KEY] = json!("me");
        assert_eq!(call(json!({"name": "x", "_meta": m}), ok_h), INVALID_PARAMS);
    }

    #[test]
    fn names_are_decoded_and_only_checked_where_mirrored() {
        let p = json!({"uri": "agent-hub://inbox", "_meta": meta()});
        let h = headers(
            "resources/read",
            Some("=?base64?YWdlbnQtaHViOi8vaW5ib3g=?="),
        );
        assert_eq!(code("resources/read", p, h), 0);
        let p = json!({"name": "caf\u{e9}", "_meta": meta()});
        assert_eq!(
            code(
                "tools/call",
                p.clone(),
                headers("tools/call", Some("=?base64?Y2Fmw6k=?="))
            ),
            0
        );
        assert_eq!(
            code("tools/call", p, headers("tools/call", Some("caf"))),
            HEADER_MISMATCH
        );
        // No name member: dispatch refuses it; tools/list mirrors no name.
        assert_eq!(
            code(
                "tools/call",
                json!({"_meta": meta()}),
                headers("tools/call", None)
            ),
            0
        );
        assert_eq!(
            code(
                "tools/list",
                json!({"_meta": meta()}),
                headers("tools/list", Some("z"))
            ),
            0
        );
        assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
        assert_eq!(decode_header_value("=?base64?/w==?="), None, "not UTF-8");
    }

    #[test]
    fn results_are_complete_with_identity_and_cache_hints() {
        let r = complete("tools/list", json!({"tools": []}));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][SERVER_INFO_KEY]["name"], "agent-hub");
        assert_eq!(
            (r["ttlMs"].as_u64(), &r["cacheScope"]),
            (Some(STATIC_TTL_MS), &json!("public"))
        );
        let r = complete("resources/read", json!({"contents": []}));
        assert_eq!(
            (r["ttlMs"].as_u64(), &r["cacheScope"]),
            (Some(0), &json!("private"))
        );
        let r = complete("tools/call", json!({"content": [], "_meta": {"x": 1}}));
        assert!(r.get("ttlMs").is_none() && r["_meta"]["x"] == 1);
        assert!(claimed_by_body("server/discover", None));
        assert!(claimed_by_body(
            "tools/list",
            Some(&json!({"_meta": meta()}))
        ));
        assert!(!claimed_by_body("tools/list", Some(&json!({"_meta": {}}))));
        let d = discover("alice");
        assert_eq!(d["supportedVersions"].as_array().map(Vec::len), Some(4));
        let text = d["instructions"].as_str().unwrap();
        assert!(text.starts_with("You are agent \"alice\""), "{text}");
        assert!(text.contains("inbox_pull with wait_seconds"));
    }
}
