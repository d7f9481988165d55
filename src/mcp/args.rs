//! Typed access to `tools/call` arguments. Every refusal is an `INVALID_ARGUMENT`
//! domain error naming the field, so the model can correct its call.

use crate::domain::DomainError;
use serde_json::{Map, Value};

pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Wrap `map`, refusing arguments the tool does not take.
    pub fn new(map: &'a Map<String, Value>, allowed: &[&str]) -> Result<Self, DomainError> {
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let expected = if allowed.is_empty() {
                "this tool takes no arguments".to_string()
            } else {
                format!("expected one of: {}", allowed.join(", "))
            };
            return Err(DomainError::invalid(
                unknown,
                format!("unknown argument; {expected}"),
            ));
        }
        Ok(Args { map })
    }

    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn str_opt(&self, field: &str) -> Result<Option<&'a str>, DomainError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(DomainError::invalid(field, "must be a string")),
        }
    }

    pub fn str_req(&self, field: &str) -> Result<&'a str, DomainError> {
        self.str_opt(field)?
            .ok_or_else(|| DomainError::invalid(field, "is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_and_refusals() {
        let v = json!({"name": "x", "n": 5, "z": null});
        let m = v.as_object().unwrap();
        assert!(Args::new(m, &["name"]).is_err());
        let a = Args::new(m, &["name", "n", "z"]).unwrap();
        assert_eq!(a.str_req("name").unwrap(), "x");
        assert_eq!(a.str_opt("z").unwrap(), None);
        let e = a.str_req("n").unwrap_err();
        assert_eq!(e.to_string(), "n: must be a string");
        assert_eq!(
            a.str_req("missing").unwrap_err().to_string(),
            "missing: is required"
        );
    }
}
