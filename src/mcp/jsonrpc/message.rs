//! Decoding a POST body into JSON-RPC messages: one message or a batch, each
//! classified as request, notification or response. Members are read raw first, so
//! that the id keeps its exact text (see [`Id`]).

use super::{Id, RpcError};
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A POST body: one message, or a batch (a JSON array) of them, each still raw.
pub(crate) enum Body<'a> {
    One(&'a RawValue),
    Batch(Vec<&'a RawValue>),
}

/// Split a body; invalid JSON is a parse error.
pub(crate) fn parse_body(body: &[u8]) -> Result<Body<'_>, RpcError> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(RpcError::parse_error)?;
    if raw.get().starts_with('[') {
        let items = serde_json::from_str(raw.get()).map_err(RpcError::parse_error)?;
        Ok(Body::Batch(items))
    } else {
        Ok(Body::One(raw))
    }
}

/// A decoded message.
#[derive(Debug)]
pub(crate) enum Incoming {
    Request {
        id: Id,
        method: String,
        params: Option<Value>,
    },
    /// Params stay raw: only `notifications/cancelled` reads them (its `requestId`
    /// is an id, kept exact like the others).
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A response from the client to a server request.
    Response,
}

/// A member that is present, even as `null` (serde's `Option` would make `null`
/// look absent, and `"id": null` is an error while no id is a notification).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The members of a message object we look at; others are ignored.
#[derive(Deserialize)]
struct Wire {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    error: Option<IgnoredAny>,
}

/// Classify one message. On failure returns the id to echo (when it could be read,
/// else `null`) and the error.
pub(crate) fn classify(raw: &RawValue) -> Result<Incoming, (Id, RpcError)> {
    if !raw.get().starts_with('{') {
        return Err((
            Id::null(),
            RpcError::invalid_request("expected a JSON object"),
        ));
    }
    let w: Wire = match serde_json::from_str(raw.get()) {
        Ok(w) => w,
        // A number serde_json cannot hold (1e999) or nesting too deep: not JSON to us.
        Err(e) if e.is_syntax() => return Err((Id::null(), RpcError::parse_error(e))),
        // A member given twice: which id or method was meant is unknown.
        Err(e) => return Err((Id::null(), RpcError::invalid_request(e.to_string()))),
    };
    let had_id = w.id.is_some();
    let id_is_null = w.id.as_ref().is_some_and(|i| i.get() == "null");
    let id = w.id.and_then(Id::parse);
    let echo = id.clone().unwrap_or_else(Id::null);
    let fail = |why: &str| Err((echo.clone(), RpcError::invalid_request(why)));
    if w.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return fail("`jsonrpc` must be \"2.0\"");
    }
    if let Some(method) = w.method {
        let Value::String(method) = method else {
            return fail("`method` must be a string");
        };
        if w.params
            .as_ref()
            .is_some_and(|p| !p.get().starts_with(['{', '[']))
        {
            return fail("`params` must be an object");
        }
        return match id {
            None if !had_id => Ok(Incoming::Notification {
                method,
                params: w.params,
            }),
            None if id_is_null => fail("`id` must not be null"),
            None => fail("`id` must be a string or an integer"),
            Some(id) => {
                let params = match w.params.map(|p| serde_json::from_str(p.get())).transpose() {
                    Ok(p) => p,
                    Err(e) => return Err((Id::null(), RpcError::parse_error(e))),
                };
                Ok(Incoming::Request { id, method, params })
            }
        };
    }
    if had_id && (w.result.is_some() || w.error.is_some()) {
        return Ok(Incoming::Response);
    }
    fail("a message needs `method` (request or notification) or `result`/`error` (response)")
}

/// The `requestId` of `notifications/cancelled` params, when it is a valid id.
pub(crate) fn cancelled_request_id(params: Option<&RawValue>) -> Option<Id> {
    #[derive(Deserialize)]
    struct Cancelled {
        #[serde(rename = "requestId")]
        request_id: Box<RawValue>,
    }
    let p: Cancelled = serde_json::from_str(params?.get()).ok()?;
    Id::parse(p.request_id)
}

#[cfg(test)]
mod tests {
    use super::super::{INVALID_REQUEST, PARSE_ERROR};
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Result<Incoming, (Id, RpcError)> {
        match parse_body(text.as_bytes()) {
            Ok(Body::One(raw)) => classify(raw),
            Ok(Body::Batch(_)) => panic!("a batch: {text}"),
            Err(e) => Err((Id::null(), e)),
        }
    }

    fn refused(v: Value) -> (String, i64) {
        let (id, e) = one(&v.to_string()).unwrap_err();
        (id.as_str().to_string(), e.code)
    }

    #[test]
    fn requests_notifications_responses() {
        match one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap() {
            Incoming::Request { id, method, params } => {
                assert_eq!((id.as_str(), method.as_str(), params), ("1", "ping", None));
            }
            other => panic!("{other:?}"),
        }
        match one(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#).unwrap() {
            Incoming::Request { id, params, .. } => {
                assert_eq!((id.as_str(), params), ("\"a\"", Some(json!({}))));
            }
            other => panic!("{other:?}"),
        }
        match one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap() {
            Incoming::Notification { method, params } => {
                assert_eq!(method, "notifications/initialized");
                assert!(params.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Ok(Incoming::Response)
        ));
    }

    #[test]
    fn ids_keep_their_text() {
        for id in ["18446744073709551616", "-9223372036854775809", r#""a\"b""#] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            match one(&body).unwrap() {
                Incoming::Request { id: got, .. } => assert_eq!(got.as_str(), id),
                other => panic!("{other:?}"),
            }
            // Also when the message is refused for another reason.
            let body = format!(r#"{{"jsonrpc":"1.0","id":{id},"method":"ping"}}"#);
            assert_eq!(one(&body).unwrap_err().0.as_str(), id);
        }
    }

    #[test]
    fn invalid_messages() {
        let null = "null".to_string();
        assert_eq!(
            refused(json!({"jsonrpc":"1.0","id":1,"method":"ping"})),
            ("1".into(), INVALID_REQUEST)
        );
        for id in [
            json!(null),
            json!(1.5),
            json!(true),
            json!({"a": 1}),
            json!([1]),
        ] {
            assert_eq!(
                refused(json!({"jsonrpc":"2.0","id":id,"method":"ping"})),
                (null.clone(), INVALID_REQUEST),
                "{id}"
            );
        }
        assert_eq!(
            refused(json!({"jsonrpc":"2.0","id":2,"method":7})),
            ("2".into(), INVALID_REQUEST)
        );
        assert_eq!(
            refused(json!({"jsonrpc":"2.0","id":2,"method":"x","params":3})).1,
            INVALID_REQUEST
        );
        assert_eq!(refused(json!({"jsonrpc":"2.0","id":2})).1, INVALID_REQUEST);
        assert_eq!(refused(json!(42)), (null.clone(), INVALID_REQUEST));
        for text in [
            r#"{"jsonrpc":"2.0","id":1e3,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        ] {
            assert_eq!(one(text).unwrap_err().0.as_str(), "null", "{text}");
            assert_eq!(one(text).unwrap_err().1.code, INVALID_REQUEST, "{text}");
        }
        let e = one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"n":1e999}}"#);
        assert_eq!(e.unwrap_err().1.code, PARSE_ERROR);
        assert_eq!(one("{not json").unwrap_err().1.code, PARSE_ERROR);
    }

    #[test]
    fn batches_and_cancel_ids() {
        let Ok(Body::Batch(items)) = parse_body(br#" [1, {"a":2}] "#) else {
            panic!("a batch")
        };
        assert_eq!(items.len(), 2);
        let p = RawValue::from_string(r#"{"requestId":18446744073709551616}"#.into()).unwrap();
        let id = cancelled_request_id(Some(&p)).unwrap();
        assert_eq!(id.as_str(), "18446744073709551616");
        let p = RawValue::from_string(r#"{"requestId":1.5}"#.into()).unwrap();
        assert!(cancelled_request_id(Some(&p)).is_none());
        assert!(cancelled_request_id(None).is_none());
    }
}

/// Property tests: any bytes get an answer (a message or a JSON-RPC error), never a
/// panic, and every answer can be sent back with the id it echoes.
#[cfg(test)]
mod props {
    use super::super::{err, to_json, INVALID_REQUEST, PARSE_ERROR};
    use super::*;
    use proptest::prelude::*;

    /// The decoding path of a POST body, with what each step promises.
    fn decode(bytes: &[u8]) -> Result<(), TestCaseError> {
        let items = match parse_body(bytes) {
            Ok(Body::One(raw)) => vec![raw],
            Ok(Body::Batch(items)) => items,
            Err(e) => {
                prop_assert_eq!(e.code, PARSE_ERROR);
                return Ok(());
            }
        };
        for raw in items {
            let (id, error) = match classify(raw) {
                Ok(Incoming::Request { id, .. }) => (id, RpcError::internal("x")),
                Ok(Incoming::Notification { params, .. }) => {
                    if let Some(id) = cancelled_request_id(params.as_deref()) {
                        let _ = id.key();
                    }
                    continue;
                }
                Ok(Incoming::Response) => continue,
                Err((id, e)) => {
                    prop_assert!([PARSE_ERROR, INVALID_REQUEST].contains(&e.code), "{:?}", e);
                    (id, e)
                }
            };
            // The echoed id is one MCP allows (or null), and the answer is JSON.
            let text = id.as_str();
            prop_assert!(
                text == "null" || Id::parse(RawValue::from_string(text.into()).unwrap()).is_some()
            );
            let answer: Value = serde_json::from_str(&to_json(&err(&id, &error))).unwrap();
            prop_assert_eq!(answer["error"]["code"].as_i64(), Some(error.code));
            let _ = id.key();
        }
        Ok(())
    }

    /// Values a member may take, valid or not, as JSON text.
    fn member_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "\"2.0\"",
                "\"1.0\"",
                "null",
                "1",
                "-7",
                "0",
                "1.5",
                "1e3",
                "1e999",
                "-0",
                "18446744073709551616",
                "\"ping\"",
                "\"tools/call\"",
                "\"a\\\"b\"",
                "\"\\u0000\"",
                "\"\\ud800\"",
                "true",
                "[]",
                "[1,{}]",
                "{}",
                "{\"requestId\":3}",
                "{\"requestId\":1e2}",
                "{\"name\":\"x\"}",
                "\"\"",
            ])
            .prop_map(String::from),
            any::<i64>().prop_map(|n| n.to_string()),
            "\"[a-z/]{0,10}\"",
        ]
    }

    /// A message-shaped object: members of JSON-RPC (repeated or missing at random)
    /// and others, written by hand so that duplicates and big numbers stay as sent.
    fn message() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec![
            "jsonrpc", "id", "method", "params", "result", "error", "x",
        ]);
        prop::collection::vec((name, member_value()), 0..7).prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            decode(&bytes)?;
        }

        #[test]
        fn any_message_shaped_body_gets_an_answer(
            msgs in prop::collection::vec(message(), 1..4),
            batch in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let body = if batch { format!("[{}]", msgs.join(",")) } else { msgs[0].clone() };
            decode(body.as_bytes())?;
            // Truncated anywhere: still an answer.
            decode(&body.as_bytes()[..cut.index(body.len() + 1)])?;
        }
    }
}
