//! Checks several test files share: finding a tool in a listing, a small JSON Schema
//! validator for tool results, ISO-8601 timestamps, "this 4xx is not a success".

use super::Resp;
use serde_json::Value;

/// A 4xx answer's body, when there is one, must not look like a success.
pub(crate) fn assert_not_success(r: &Resp) {
    if let Ok(v) = serde_json::from_str::<Value>(&r.body) {
        assert!(
            v.get("result").is_none(),
            "a {} carrying a result: {v}",
            r.status
        );
    }
}

/// Find a tool by name in a tools/list answer.
pub(crate) fn tool<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array: {list}"))
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list}"))
}

/// Check `v` against the subset of JSON Schema our tools use (`type`, `properties`,
/// `required`, `additionalProperties: false`, `items`, `enum`, `const`, `anyOf`,
/// `oneOf`); other keywords are ignored. Returns the first violation.
pub(crate) fn schema_violation(schema: &Value, v: &Value, at: &str) -> Option<String> {
    if schema == &Value::Bool(true) || !schema.is_object() {
        return None;
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        });
        if !ok {
            return Some(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Some(format!("{at}: {v} not in enum {e:?}"));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Some(format!("{at}: {v} != const {c}"));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            if alts.iter().all(|s| schema_violation(s, v, at).is_some()) {
                return Some(format!("{at}: {v} matches none of {key}"));
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Some(format!("{at}: required `{r}` missing"));
                }
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => {
                    if let Some(e) = schema_violation(s, val, &format!("{at}.{k}")) {
                        return Some(e);
                    }
                }
                None => {
                    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
                        return Some(format!("{at}: `{k}` not allowed"));
                    }
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            if let Some(e) = schema_violation(items, x, &format!("{at}[{i}]")) {
                return Some(e);
            }
        }
    }
    None
}

/// A timestamp in the ISO-8601 form `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub(crate) fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !(b[10] == b'T' || b[10] == b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && rest[1..3]
                .bytes()
                .chain(rest[4..6].bytes())
                .all(|c| c.is_ascii_digit()))
}
