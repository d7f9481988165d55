//! Agent metadata rules: what `agent_register` accepts, and presence.

use super::error::DomainError;
use super::time::Timestamp;
use serde_json::Value;

pub(crate) const MAX_NAME_CHARS: usize = 200;
pub(crate) const MAX_CAPABILITIES: usize = 64;
pub(crate) const MAX_CAPABILITY_CHARS: usize = 100;

/// Validate a display name: non-empty after trimming, at most [`MAX_NAME_CHARS`].
pub(crate) fn validate_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            "name",
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// Capabilities arrive either as a JSON array of strings or, as in the reference, as a
/// string holding one. Anything else is refused (the reference stored it unchecked).
pub(crate) fn parse_capabilities(v: Option<&Value>) -> Result<Vec<String>, DomainError> {
    let owned;
    let arr = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => {
            owned = serde_json::from_str::<Value>(s).map_err(|_| {
                DomainError::invalid(
                    "capabilities",
                    "must be a JSON array of strings, e.g. [\"planning\", \"review\"]",
                )
            })?;
            match &owned {
                Value::Array(a) => a,
                _ => {
                    return Err(DomainError::invalid(
                        "capabilities",
                        "must be a JSON array of strings, e.g. [\"planning\", \"review\"]",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(DomainError::invalid(
                "capabilities",
                "must be a JSON array of strings (or a string holding one)",
            ))
        }
    };
    if arr.len() > MAX_CAPABILITIES {
        return Err(DomainError::invalid(
            "capabilities",
            format!("at most {MAX_CAPABILITIES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(arr.len());
    for (i, item) in arr.iter().enumerate() {
        let s = item.as_str().ok_or_else(|| {
            DomainError::invalid("capabilities", format!("entry {i} is not a string"))
        })?;
        let s = s.trim();
        if s.is_empty() || s.chars().count() > MAX_CAPABILITY_CHARS {
            return Err(DomainError::invalid(
                "capabilities",
                format!("entry {i} must be 1–{MAX_CAPABILITY_CHARS} characters"),
            ));
        }
        if !out.iter().any(|c| c == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// An agent counts as online when it made any call within `window_secs`.
pub(crate) fn is_online(last_seen: Option<Timestamp>, now: Timestamp, window_secs: u64) -> bool {
    match last_seen {
        Some(t) => (now - t).num_milliseconds() <= (window_secs as i64) * 1000,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use serde_json::json;

    #[test]
    fn capabilities_accepts_array_and_string() {
        let v = json!(["a", "b", "a"]);
        assert_eq!(parse_capabilities(Some(&v)).unwrap(), vec!["a", "b"]);
        let s = json!("[\"x\"]");
        assert_eq!(parse_capabilities(Some(&s)).unwrap(), vec!["x"]);
        assert!(parse_capabilities(None).unwrap().is_empty());
        assert!(parse_capabilities(Some(&json!(""))).unwrap().is_empty());
    }

    #[test]
    fn capabilities_refuses_garbage() {
        for bad in [
            json!("not json"),
            json!([1, 2]),
            json!({"a": 1}),
            json!("{}"),
            json!(5),
        ] {
            let e = parse_capabilities(Some(&bad)).unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT");
        }
        let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
        assert!(parse_capabilities(Some(&json!(many))).is_err());
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_name("  Claude ").unwrap(), "Claude");
        assert!(validate_name("  ").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn presence_window() {
        let now = Utc::now();
        assert!(is_online(Some(now - Duration::seconds(10)), now, 60));
        assert!(!is_online(Some(now - Duration::seconds(61)), now, 60));
        assert!(!is_online(None, now, 60));
    }
}
