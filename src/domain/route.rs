//! The home of a call (shared/spec/cluster.md §2, "Routing requests"): the one
//! owner whose shard a tool call runs at when the shards are spread over several
//! nodes. Task tools run at their task's shard, lock tools at their key's, and
//! everything else (the inbox, presence, sends, reads of one's own work) at the
//! calling agent's. The gateway routes with it and the serving node checks it, so
//! that both always agree on where a call belongs.
//!
//! Round, assignment and handoff ids do not name their task: the caller resolves
//! them (in memory at the task's owner, or from the stored rows anywhere else;
//! ids never change owner, so a resolution can be cached).

use serde_json::{Map, Value};

/// Where a call belongs, before ids are resolved to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Home<'a> {
    /// The calling agent's (or another agent's) shard.
    Agent(&'a str),
    /// A task's shard.
    Task(&'a str),
    /// The shard of the task this round belongs to.
    Round(&'a str),
    /// The shard of the task this assignment belongs to.
    Assignment(&'a str),
    /// The shard of the task this handoff belongs to.
    Handoff(&'a str),
    /// A lock key's shard.
    Lock(&'a str),
}

/// A string argument as the tool reads it, if it is one and not blank: trimmed
/// where the tool trims it (a new task's id, a lock key, `assignment_list`'s
/// round), as sent elsewhere (an id the tool looks up as it is).
fn arg<'a>(args: &'a Map<String, Value>, name: &str, trimmed: bool) -> Option<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .map(|s| if trimmed { s.trim() } else { s })
        .filter(|s| !s.trim().is_empty())
}

/// The home of a call of tool `name` with `args`, made by `caller`. A call whose
/// id argument is missing or not a string belongs to its caller: wherever it
/// runs, it is refused with the same error.
pub(crate) fn home<'a>(name: &str, args: &'a Map<String, Value>, caller: &'a str) -> Home<'a> {
    let by = |field: &str, trimmed: bool, make: fn(&'a str) -> Home<'a>| {
        arg(args, field, trimmed).map_or(Home::Agent(caller), make)
    };
    match name {
        "task_draft_create" => by("task_id", true, Home::Task),
        "round_plan_submit" => by("task_id", false, Home::Task),
        "review_submit" => by("round_id", false, Home::Round),
        // Without a round: the caller's assignments over every task.
        "assignment_list" => by("round_id", true, Home::Round),
        "assignment_claim" | "assignment_progress" | "assignment_complete" => {
            by("assignment_id", false, Home::Assignment)
        }
        "handoff_get" => by("handoff_id", false, Home::Handoff),
        "lock_acquire" | "lock_release" => by("lock_key", true, Home::Lock),
        // message_send runs at the sender's shard (its dedupe keys, its rate);
        // the deliveries go to each recipient's. The others are the caller's own.
        _ => Home::Agent(caller),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn every_tool_has_its_home() {
        let a = args(json!({
            "task_id": " t-1 ", "round_id": "r-1", "assignment_id": "a-1",
            "handoff_id": "h-1", "lock_key": "branch:main", "to_agent": "bob"
        }));
        let cases = [
            ("task_draft_create", Home::Task("t-1")),
            // Looked up as sent (and so refused as not found wherever it runs).
            ("round_plan_submit", Home::Task(" t-1 ")),
            ("review_submit", Home::Round("r-1")),
            ("assignment_list", Home::Round("r-1")),
            ("assignment_claim", Home::Assignment("a-1")),
            ("assignment_progress", Home::Assignment("a-1")),
            ("assignment_complete", Home::Assignment("a-1")),
            ("handoff_get", Home::Handoff("h-1")),
            ("lock_acquire", Home::Lock("branch:main")),
            ("lock_release", Home::Lock("branch:main")),
            ("message_send", Home::Agent("alice")),
            ("inbox_pull", Home::Agent("alice")),
            ("message_ack", Home::Agent("alice")),
            ("agent_register", Home::Agent("alice")),
            ("agent_heartbeat", Home::Agent("alice")),
            ("hub_status", Home::Agent("alice")),
            ("no_such_tool", Home::Agent("alice")),
        ];
        for (tool, want) in cases {
            assert_eq!(home(tool, &a, "alice"), want, "{tool}");
        }
    }

    #[test]
    fn a_missing_or_bad_id_stays_with_the_caller() {
        for bad in [json!({}), json!({"task_id": 7}), json!({"task_id": "  "})] {
            assert_eq!(
                home("round_plan_submit", &args(bad), "alice"),
                Home::Agent("alice")
            );
        }
        assert_eq!(
            home("assignment_list", &Map::new(), "alice"),
            Home::Agent("alice")
        );
    }
}
