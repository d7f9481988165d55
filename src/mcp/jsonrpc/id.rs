//! Request ids, kept as the client wrote them: JSON-RPC lets an id be any string or
//! number, and decoding it into a `serde_json::Value` would turn integers beyond 64
//! bits into floats. The raw text is echoed byte for byte instead.

use serde::Serialize;
use serde_json::value::RawValue;

/// A request id exactly as received (a JSON string or integer of any size), or
/// `null` when the id of the message could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct Id(Box<RawValue>);

impl Id {
    /// The id of an answer to a message whose id could not be read.
    pub(crate) fn null() -> Id {
        Id(RawValue::NULL.to_owned())
    }

    /// `raw` when it is an id MCP allows: a string, or an integer written as one
    /// (optional minus and digits: `1e3` and `1.0` are not, though equal to integers).
    pub(crate) fn parse(raw: Box<RawValue>) -> Option<Id> {
        let t = raw.get();
        let digits = t.strip_prefix('-').unwrap_or(t);
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        // Raw text is read without decoding escapes: a string with a lone surrogate
        // (`"\ud800"`) gets here, and echoing it would give an answer strict parsers
        // (serde_json among them) refuse, so the client could not read it.
        let string = t.starts_with('"') && serde_json::from_str::<String>(t).is_ok();
        (string || integer).then_some(Id(raw))
    }

    /// The JSON text as received.
    pub(crate) fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Equal for ids that name the same request however they were escaped: a string's
    /// decoded value re-encoded, an integer's digits. Used to find a request to cancel.
    pub(crate) fn key(&self) -> String {
        let t = self.0.get();
        // Integers and strings without escapes are already canonical (most ids): no
        // decoding, and no error built for an integer that is not a string.
        if !t.starts_with('"') || !t.contains('\\') {
            return t.to_string();
        }
        match serde_json::from_str::<String>(t) {
            Ok(s) => serde_json::to_string(&s).unwrap_or_else(|_| t.to_string()),
            Err(_) => t.to_string(),
        }
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Option<Id> {
        Id::parse(RawValue::from_string(text.to_string()).unwrap())
    }

    #[test]
    fn strings_and_integers_of_any_size() {
        for ok in [
            "0",
            "-1",
            "18446744073709551616",
            "-9223372036854775809",
            r#""a\"b""#,
            r#""caf\u00e9""#,
            r#""""#,
        ] {
            assert_eq!(id(ok).map(|i| i.as_str().to_string()).as_deref(), Some(ok));
        }
        for bad in [
            "1e3",
            "1.0",
            "1.5",
            "-1E2",
            "true",
            "null",
            "{}",
            "[1]",
            r#""\ud800""#,
            r#""a\udc00b""#,
        ] {
            assert!(id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_ignore_escaping_but_not_type() {
        let key = |t: &str| id(t).unwrap().key();
        assert_eq!(key(r#""caf\u00e9""#), key("\"café\""));
        assert_eq!(key(r#""\u0037""#), key(r#""7""#));
        assert_ne!(key("7"), key(r#""7""#));
        assert_eq!(key("18446744073709551616"), "18446744073709551616");
    }

    #[test]
    fn serialises_verbatim() {
        let i = id("-9223372036854775809").unwrap();
        assert_eq!(serde_json::to_string(&i).unwrap(), "-9223372036854775809");
        assert_eq!(serde_json::to_string(&Id::null()).unwrap(), "null");
    }
}
