//! Decoding `tools/call` arguments into a tool's typed argument struct. Every
//! refusal is an `INVALID_ARGUMENT` domain error naming the field, so the model can
//! correct its call. Structs use `deny_unknown_fields`: an argument the tool does not
//! take is refused, never ignored.

use crate::domain::DomainError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Decode `args` into `A`, turning serde's messages into the hub's field-named ones.
/// Unknown arguments are refused first (see [`refuse_unknown`]), as the reference did.
pub(crate) fn decode<A: DeserializeOwned>(
    args: Map<String, Value>,
    accepted: &[String],
) -> Result<A, DomainError> {
    refuse_unknown(&args, accepted)?;
    for (key, v) in &args {
        refuse_nul(key, v)?;
    }
    let value = Value::Object(args);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        refusal(&field, &e.into_inner().to_string())
    })
}

/// Refuse U+0000 anywhere in an argument (in strings and in object keys, nested
/// included): PostgreSQL's text cannot hold it, and a write that cannot be stored
/// must be refused here, before it changes anything, not fail in the writer.
fn refuse_nul(path: &str, v: &Value) -> Result<(), DomainError> {
    let nul = |path: &str| {
        DomainError::invalid(
            path,
            "contains U+0000 (NUL), which the hub does not store".to_string(),
        )
    };
    match v {
        Value::String(s) if s.contains('\0') => Err(nul(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| refuse_nul(&format!("{path}[{i}]"), item)),
        Value::Object(map) => map.iter().try_for_each(|(k, item)| {
            let at = format!("{path}.{k}");
            if k.contains('\0') {
                return Err(nul(&at));
            }
            refuse_nul(&at, item)
        }),
        _ => Ok(()),
    }
}

/// Text between the first pair of backticks after `prefix`, e.g. the field name in
/// "missing field `name`".
fn quoted<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?;
    rest.split('`').nth(1)
}

fn refusal(path: &str, msg: &str) -> DomainError {
    if let Some(unknown) = quoted(msg, "unknown field") {
        // serde lists what the struct takes: "expected `a`", "expected `a` or `b`",
        // "expected one of `a`, `b`, `c`", or "there are no fields".
        let expected = match msg.rsplit_once(", expected ") {
            Some((_, list)) => format!(
                "expected one of: {}",
                list.trim_start_matches("one of ")
                    .replace("` or `", "`, `")
                    .replace('`', "")
            ),
            None => "this tool takes no arguments".to_string(),
        };
        return DomainError::invalid(unknown, format!("unknown argument; {expected}"));
    }
    if let Some(missing) = quoted(msg, "missing field") {
        return DomainError::invalid(missing, "is required");
    }
    if msg.starts_with("invalid type: null") {
        return DomainError::invalid(path, "is required");
    }
    if let Some((_, expected)) = msg.split_once(", expected ") {
        return DomainError::invalid(path, format!("must be {expected}"));
    }
    DomainError::invalid(path, msg)
}

/// An argument the tool does not take, before any other check: a misspelled name
/// is the likeliest mistake, and it explains the other errors.
fn refuse_unknown(args: &Map<String, Value>, accepted: &[String]) -> Result<(), DomainError> {
    let Some(unknown) = args.keys().find(|k| !accepted.contains(k)) else {
        return Ok(());
    };
    let expected = if accepted.is_empty() {
        "this tool takes no arguments".to_string()
    } else {
        format!("expected one of: {}", accepted.join(", "))
    };
    Err(DomainError::invalid(
        unknown,
        format!("unknown argument; {expected}"),
    ))
}

/// The argument names `A` accepts, in declaration order, read once per tool from
/// serde's own refusal of an unknown one (a test checks them against each tool's
/// input schema).
pub(crate) fn accepted<A: DeserializeOwned>() -> Vec<String> {
    let mut probe = Map::new();
    probe.insert("\u{1}probe".into(), Value::Null);
    let value = Value::Object(probe);
    let refused = serde_path_to_error::deserialize::<_, A>(value)
        .map_err(|e| refusal(&e.path().to_string(), &e.into_inner().to_string()));
    match refused {
        Err(DomainError::InvalidArgument { reason, .. }) => reason
            .split_once("expected one of: ")
            .map(|(_, list)| list.split(", ").map(String::from).collect())
            .unwrap_or_default(),
        Err(other) => panic!("the probe was refused otherwise: {other}"),
        Ok(_) => panic!("the probe was accepted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Fields are read by the decoder only.
    struct Example {
        name: String,
        n: Option<Value>,
        z: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Fields are read by the decoder only.
    struct Two {
        a: String,
        b: String,
    }

    fn err<A: DeserializeOwned + std::fmt::Debug>(v: Value) -> String {
        let map = v.as_object().unwrap().clone();
        decode::<A>(map, &accepted::<A>()).unwrap_err().to_string()
    }

    #[test]
    fn nul_is_refused_wherever_it_is() {
        let nul = ": contains U+0000 (NUL), which the hub does not store";
        assert_eq!(
            err::<Example>(json!({"name": "a\u{0}b"})),
            format!("name{nul}")
        );
        assert_eq!(
            err::<Example>(json!({"name": "x", "n": {"k": ["ok", "b\u{0}"]}})),
            format!("n.k[1]{nul}")
        );
        assert_eq!(
            err::<Example>(json!({"name": "x", "n": {"a\u{0}": 1}})),
            format!("n.a\u{0}{nul}")
        );
    }

    #[test]
    fn access_and_refusals() {
        let args = json!({"name": "x", "n": 5, "z": null})
            .as_object()
            .unwrap()
            .clone();
        let a: Example = decode(args, &accepted::<Example>()).unwrap();
        assert_eq!(a.name, "x");
        assert_eq!(a.z, None);
        assert_eq!(err::<Example>(json!({"name": 5})), "name: must be a string");
        assert_eq!(err::<Example>(json!({})), "name: is required");
        assert_eq!(err::<Example>(json!({"name": null})), "name: is required");
        assert_eq!(
            err::<Example>(json!({"name": "x", "q": 1})),
            "q: unknown argument; expected one of: name, n, z"
        );
        assert_eq!(
            err::<Nothing>(json!({"q": 1})),
            "q: unknown argument; this tool takes no arguments"
        );
        assert_eq!(accepted::<Example>(), ["name", "n", "z"]);
        assert!(accepted::<Nothing>().is_empty());
        // An unknown argument is reported before a wrongly typed one.
        assert_eq!(
            err::<Example>(json!({"name": 5, "zz": 1})),
            "zz: unknown argument; expected one of: name, n, z"
        );
        assert_eq!(
            err::<Two>(json!({"q": 1})),
            "q: unknown argument; expected one of: a, b"
        );
    }
}
