//! What agents send about tasks, validated: task ids, titles and notes, and the
//! JSON arguments `plan_json` and `handoff_json` (as values or as text holding one).

use crate::domain::error::{DomainError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) const MAX_TASK_ID_CHARS: usize = 100;
pub(crate) const MAX_TITLE_CHARS: usize = 200;
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;
pub(crate) const MAX_NOTE_BYTES: usize = 16 * 1024;
pub(crate) const MAX_GOAL_BYTES: usize = 16 * 1024;

/// A caller-chosen task id: 1–100 characters of `A-Z a-z 0-9 . _ - :`.
pub(crate) fn validate_task_id(id: &str) -> Result<(), DomainError> {
    let ok = !id.is_empty()
        && id.chars().count() <= MAX_TASK_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "task_id",
            format!("use 1-{MAX_TASK_ID_CHARS} characters of A-Z a-z 0-9 . _ - :"),
        ))
    }
}

pub(crate) fn validate_text(field: &str, text: &str, max_bytes: usize) -> Result<(), DomainError> {
    if text.len() > max_bytes {
        return Err(DomainError::invalid(
            field,
            format!("at most {max_bytes} bytes"),
        ));
    }
    // Agents' arguments are checked when decoded (mcp/args.rs); this covers the
    // operator's notes: PostgreSQL's text cannot hold U+0000.
    if text.contains('\0') {
        return Err(DomainError::invalid(
            field,
            "contains U+0000 (NUL), which the hub does not store",
        ));
    }
    Ok(())
}

/// An optional `note` argument (progress, review): empty when absent, at most
/// MAX_NOTE_BYTES.
pub(crate) fn note_arg(note: Option<String>) -> Result<String, DomainError> {
    let note = note.unwrap_or_default();
    validate_text("note", &note, MAX_NOTE_BYTES)?;
    Ok(note)
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanItem {
    pub agent_id: String,
    pub goal: String,
}

/// Arguments the reference takes as JSON text may also arrive as JSON values.
pub(crate) fn json_arg(v: Option<&Value>) -> Result<Value, String> {
    match v {
        None | Some(Value::Null) => Err("is required".into()),
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| format!("is not valid JSON ({e})"))
        }
        Some(other) => Ok(other.clone()),
    }
}

/// `{"assignments": [{"agent_id", "goal"}, ...]}`. Structural problems are
/// PLAN_SUBMIT_FAILED (the reference's code for a malformed plan).
pub(crate) fn parse_plan(v: Option<&Value>) -> Result<Vec<PlanItem>, DomainError> {
    let fail = |why: String| {
        DomainError::refused(
            ErrorCode::PlanSubmitFailed,
            format!("plan_json {why}; expected {{\"assignments\": [{{\"agent_id\": \"...\", \"goal\": \"...\"}}]}}"),
        )
    };
    let v = json_arg(v).map_err(fail)?;
    let list = v
        .get("assignments")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("has no `assignments` array".into()))?;
    if list.is_empty() {
        return Err(fail("has no assignments".into()));
    }
    let mut items: Vec<PlanItem> = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let agent_id = a
            .get("agent_id")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        let goal = a
            .get("goal")
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("");
        if agent_id.is_empty() || goal.is_empty() {
            return Err(fail(format!(
                "assignments[{i}] needs a non-empty agent_id and goal"
            )));
        }
        if goal.len() > MAX_GOAL_BYTES {
            return Err(fail(format!(
                "assignments[{i}].goal is longer than {MAX_GOAL_BYTES} bytes"
            )));
        }
        let item = PlanItem {
            agent_id: agent_id.to_string(),
            goal: goal.to_string(),
        };
        if items.contains(&item) {
            return Err(fail(format!(
                "assignments[{i}] repeats an earlier assignment"
            )));
        }
        items.push(item);
    }
    Ok(items)
}

/// A submitted plan: its lines, and the JSON text stored with its round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub items: Vec<PlanItem>,
    pub json: String,
}

impl Plan {
    /// `plan_json` as an agent sent it (a JSON value or text holding one).
    pub(crate) fn parse(v: Option<&Value>) -> Result<Plan, DomainError> {
        let items = parse_plan(v)?;
        // Valid JSON by now: store the text as given, or the value serialised.
        let json = match v {
            Some(Value::String(text)) => text.clone(),
            Some(value) => value.to_string(),
            None => String::new(),
        };
        Ok(Plan { items, json })
    }
}

/// What an agent hands over with `assignment_complete`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct HandoffDraft {
    pub branch: String,
    pub commit_hash: String,
    pub changed_files: Vec<String>,
    pub tests_run: Vec<String>,
    pub risks: Vec<String>,
    pub next_steps: Vec<String>,
    pub notes: String,
}

/// A handoff list field sent as text. The reference took list fields only as
/// JSON-encoded strings (`"changed_files": "[\"a.py\"]"`, its documented form) and
/// stored the text as is, so: text that parses as a JSON array of strings is that
/// list; empty (or blank) text is no items; any other text, an array of non-strings
/// included, is one item holding the text.
pub(crate) fn list_from_text(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str::<Vec<String>>(text) {
        Ok(list) => list,
        Err(_) => vec![text.to_string()],
    }
}

/// `{branch, commit_hash, changed_files, tests_run, risks, next_steps, notes}`, every
/// field optional; list fields take a list of strings or one string (read by
/// [`list_from_text`]). Malformed input is COMPLETE_FAILED (the reference's code).
pub(crate) fn parse_handoff(v: Option<&Value>) -> Result<HandoffDraft, DomainError> {
    let fail = |why: String| {
        DomainError::refused(ErrorCode::CompleteFailed, format!("handoff_json {why}"))
    };
    let v = json_arg(v).map_err(fail)?;
    let obj = v
        .as_object()
        .ok_or_else(|| fail("must be a JSON object".into()))?;
    const FIELDS: [&str; 7] = [
        "branch",
        "commit_hash",
        "changed_files",
        "tests_run",
        "risks",
        "next_steps",
        "notes",
    ];
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(fail(format!(
            "has unknown field `{k}`; fields: {}",
            FIELDS.join(", ")
        )));
    }
    let text = |k: &str| -> Result<String, DomainError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(fail(format!("field `{k}` must be a string"))),
        }
    };
    let list = |k: &str| -> Result<Vec<String>, DomainError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(list_from_text(s)),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| fail(format!("field `{k}` must be a list of strings"))),
            Some(_) => Err(fail(format!("field `{k}` must be a list of strings"))),
        }
    };
    if v.to_string().len() > MAX_TEXT_BYTES {
        return Err(fail(format!("is larger than {MAX_TEXT_BYTES} bytes")));
    }
    Ok(HandoffDraft {
        branch: text("branch")?,
        commit_hash: text("commit_hash")?,
        changed_files: list("changed_files")?,
        tests_run: list("tests_run")?,
        risks: list("risks")?,
        next_steps: list("next_steps")?,
        notes: text("notes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_parsing() {
        let p = parse_plan(Some(&json!(
            "{\"assignments\":[{\"agent_id\":\"a\",\"goal\":\"g\"}]}"
        )))
        .unwrap();
        assert_eq!(
            p,
            vec![PlanItem {
                agent_id: "a".into(),
                goal: "g".into()
            }]
        );
        let p = parse_plan(Some(
            &json!({"assignments": [{"agent_id": "a", "goal": "g"}, {"agent_id": "a", "goal": "h"}]}),
        ));
        assert_eq!(p.unwrap().len(), 2);
        for bad in [
            json!("not json"),
            json!({"x": 1}),
            json!({"assignments": []}),
            json!({"assignments": [{"agent_id": "a"}]}),
            json!({"assignments": [{"agent_id": "a", "goal": "g"}, {"agent_id": "a", "goal": "g"}]}),
        ] {
            assert_eq!(
                parse_plan(Some(&bad)).unwrap_err().code(),
                "PLAN_SUBMIT_FAILED",
                "{bad}"
            );
        }
        assert_eq!(parse_plan(None).unwrap_err().code(), "PLAN_SUBMIT_FAILED");
    }

    #[test]
    fn handoff_parsing() {
        let h = parse_handoff(Some(
            &json!({"branch": "b", "changed_files": ["x", "y"], "risks": "one"}),
        ))
        .unwrap();
        assert_eq!(h.branch, "b");
        assert_eq!(h.changed_files, vec!["x", "y"]);
        assert_eq!(h.risks, vec!["one"]);
        assert!(h.tests_run.is_empty());
        let h = parse_handoff(Some(&json!("{\"notes\":\"n\"}"))).unwrap();
        assert_eq!(h.notes, "n");
        for bad in [
            json!("{"),
            json!([1]),
            json!({"branch": 1}),
            json!({"changed_files": [1]}),
            json!({"extra": 1}),
        ] {
            assert_eq!(
                parse_handoff(Some(&bad)).unwrap_err().code(),
                "COMPLETE_FAILED",
                "{bad}"
            );
        }
    }

    #[test]
    fn list_fields_sent_as_text() {
        let v = |t: &str| list_from_text(t);
        assert_eq!(v("[\"a.py\", \"b.py\"]"), vec!["a.py", "b.py"]);
        assert_eq!(v(" [\"a.py\"] "), vec!["a.py"]);
        assert_eq!(v("[]"), Vec::<String>::new());
        assert_eq!(v(""), Vec::<String>::new());
        assert_eq!(v("  "), Vec::<String>::new());
        // Not a JSON array of strings: one item, the text as sent.
        for one in [
            "a.py",
            "[1, 2]",
            "[\"a\", 1]",
            "{\"a\": 1}",
            "\"a.py\"",
            "[\"a\"",
            "null",
        ] {
            assert_eq!(v(one), vec![one.to_string()], "{one}");
        }
        // The reference's documented form inside handoff_json, as text or as a value.
        let h = parse_handoff(Some(&json!({
            "changed_files": "[\"src/a.py\",\"src/b.py\"]",
            "tests_run": "[]",
            "risks": "none known",
            "next_steps": ""
        })))
        .unwrap();
        assert_eq!(h.changed_files, vec!["src/a.py", "src/b.py"]);
        assert!(h.tests_run.is_empty() && h.next_steps.is_empty());
        assert_eq!(h.risks, vec!["none known"]);
        let text = json!({"changed_files": "[\"x\"]"}).to_string();
        let h = parse_handoff(Some(&Value::String(text))).unwrap();
        assert_eq!(h.changed_files, vec!["x"]);
    }

    #[test]
    fn task_ids() {
        assert!(validate_task_id("T-1:a.b_c").is_ok());
        assert!(validate_task_id("").is_err());
        assert!(validate_task_id("a b").is_err());
        assert!(validate_task_id(&"x".repeat(101)).is_err());
    }
}
