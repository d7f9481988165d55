//! Property tests of the tool-argument decoders: any arguments, for any tool, get an
//! answer (decoded, or an `INVALID_ARGUMENT` naming a field), never a panic; so do the
//! JSON-valued arguments (`plan_json`, `handoff_json`), whose refusals have their
//! own codes.

use super::{decode_args, names};
use crate::domain::error::ErrorCode;
use crate::domain::task::{parse_handoff, Plan};
use crate::domain::DomainError;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Strings the decoders care about, then arbitrary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "x",
            "claimed",
            "in_progress",
            "approved",
            "changes_requested",
            "branch",
            "[\"a\"]",
            "{}",
            "null",
            "{\"assignments\":[{\"agent_id\":\"a\",\"goal\":\"g\"}]}",
            "{\"assignments\":[]}",
            "{\"branch\":1}",
            "1e999",
            "\u{0}",
        ])
        .prop_map(String::from),
        "\\PC{0,40}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Argument names of some tool (so decoding gets past the unknown-name check), or not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "to_agent", "subject", "body", "msg_type", "dedupe_key", "round_id", "reply_to",
            "limit", "wait_seconds", "message_id", "task_id", "title", "description",
            "plan_json", "assignment_id", "status", "note", "handoff_json", "handoff_id",
            "lock_key", "resource_type", "resource_id", "ttl_seconds", "verdict", "name",
            "capabilities", "assignments", "agent_id", "goal", "branch", "changed_files",
        ])
        .prop_map(String::from),
        1 => text(),
    ]
}

fn tool() -> impl Strategy<Value = &'static str> {
    prop::sample::select(names().collect::<Vec<_>>())
}

fn args() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), json()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

/// A decoder's refusal names a field and is `INVALID_ARGUMENT`.
fn check_refusal(e: &DomainError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.code(), ErrorCode::InvalidArgument, "{}", e);
    prop_assert!(
        e.details().get("field").is_some_and(Value::is_string),
        "{}",
        e
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_arguments_get_an_answer(tool in tool(), args in args()) {
        let unknown = args.keys().any(|k| !key_of(tool, k));
        match decode_args(tool, args) {
            None => prop_assert!(false, "{} is a tool", tool),
            Some(Ok(())) => prop_assert!(!unknown, "{}: an unknown argument was accepted", tool),
            Some(Err(e)) => check_refusal(&e)?,
        }
    }

    #[test]
    fn any_bytes_as_arguments_get_an_answer(
        tool in tool(),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Ok(map) = serde_json::from_slice::<Map<String, Value>>(&bytes) {
            if let Some(Err(e)) = decode_args(tool, map) {
                check_refusal(&e)?;
            }
        }
    }

    #[test]
    fn any_plan_or_handoff_gets_an_answer(v in json(), as_text in any::<bool>()) {
        let v = if as_text { Value::String(v.to_string()) } else { v };
        if let Err(e) = Plan::parse(Some(&v)) {
            prop_assert_eq!(e.code(), ErrorCode::PlanSubmitFailed, "{}", e);
        }
        if let Err(e) = parse_handoff(Some(&v)) {
            prop_assert_eq!(e.code(), ErrorCode::CompleteFailed, "{}", e);
        }
    }
}

/// Whether `tool` takes an argument named `k` (read from its input schema).
fn key_of(tool: &str, k: &str) -> bool {
    super::all()
        .iter()
        .find(|t| t.def.name == tool)
        .is_some_and(|t| t.def.input_schema["properties"].get(k).is_some())
}
