//! `assignment_list`, `assignment_claim`, `assignment_progress`,
//! `assignment_complete`, `handoff_get`: the assignees' tools.

use super::{fields, handler, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::domain::task::{note_arg, parse_handoff, ProgressStatus};
use serde::Deserialize;
use serde_json::{json, Map, Value};

fn id_schema(what: &str) -> Value {
    json!({"type": "string", "description": what})
}

/// Output properties of the tools answering with one assignment.
fn assignment_out() -> Value {
    json!({"assignment": {"type": "object", "description": "the assignment row"}})
}

pub(super) fn tools() -> Vec<Tool> {
    vec![
        Tool::new(list_def(), handler!(list)),
        Tool::new(claim_def(), handler!(claim)),
        Tool::new(progress_def(), handler!(progress)),
        Tool::new(complete_def(), handler!(complete)),
        Tool::new(handoff_get_def(), handler!(handoff_get)),
    ]
}

fn list_def() -> ToolDef {
    ToolDef {
        name: "assignment_list",
        title: "List my assignments",
        description:
            "List your assignments: of one round (oldest first) when round_id is given, else of \
                          every task (newest first, at most 200: truncated says whether there are \
                          more), with their status and lease.",
        input_schema: json!({
            "type": "object",
            "properties": {"round_id": id_schema("Optional round id.")},
            "additionalProperties": false
        }),
        output_properties: json!({
            "assignments": {"type": "array", "items": {"type": "object"}},
            "truncated": {"type": "boolean", "description": "without round_id: older assignments were left out"}
        }),
        read_only: true,
        idempotent: true,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListArgs {
    round_id: Option<String>,
}

async fn list(ctx: &CallCtx<'_>, a: ListArgs) -> Result<Map<String, Value>, HubError> {
    let round = a
        .round_id
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let (list, truncated) = match round {
        Some(r) => (ctx.hub.round_assignments_of(ctx.agent, r).await?, false),
        None => ctx.hub.assignments_of(ctx.agent).await?,
    };
    Ok(fields(json!({"assignments": list, "truncated": truncated})))
}

fn claim_def() -> ToolDef {
    ToolDef {
            name: "assignment_claim",
            title: "Claim assignment",
            description: "Claim one of your pending assignments in an operator-approved round. The claim holds a \
                          lease (lease_minutes); report progress with assignment_progress to renew it, or the \
                          assignment returns to pending.",
            input_schema: json!({
                "type": "object",
                "properties": {"assignment_id": id_schema("The assignment to claim.")},
                "required": ["assignment_id"],
                "additionalProperties": false
            }),
            output_properties: assignment_out(),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClaimArgs {
    assignment_id: String,
}

async fn claim(ctx: &CallCtx<'_>, a: ClaimArgs) -> Result<Map<String, Value>, HubError> {
    let assignment = ctx.hub.claim(ctx.agent, &a.assignment_id).await?;
    Ok(fields(json!({ "assignment": assignment })))
}

fn progress_def() -> ToolDef {
    ToolDef {
        name: "assignment_progress",
        title: "Report progress",
        description:
            "Report progress on your claimed assignment and renew its lease. status moves forward \
                          only: claimed → in_progress.",
        input_schema: json!({
            "type": "object",
            "properties": {
                "assignment_id": id_schema("Your claimed or in-progress assignment."),
                "status": {"type": "string", "enum": ["claimed", "in_progress"]},
                "note": {"type": "string", "description": "What you did so far."}
            },
            "required": ["assignment_id", "status"],
            "additionalProperties": false
        }),
        output_properties: assignment_out(),
        read_only: false,
        idempotent: true,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProgressArgs {
    assignment_id: String,
    status: String,
    note: Option<String>,
}

async fn progress(ctx: &CallCtx<'_>, a: ProgressArgs) -> Result<Map<String, Value>, HubError> {
    let note = note_arg(a.note)?;
    let status = ProgressStatus::parse(a.status.trim())?;
    let id = &a.assignment_id;
    let assignment = ctx.hub.progress(ctx.agent, id, status, note).await?;
    Ok(fields(json!({ "assignment": assignment })))
}

fn complete_def() -> ToolDef {
    ToolDef {
            name: "assignment_complete",
            title: "Complete assignment",
            description: "Finish your claimed assignment with a handoff document for the dispatcher. The \
                          dispatcher is told; when it was the round's last open assignment, the round awaits \
                          review.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "assignment_id": id_schema("Your claimed or in-progress assignment."),
                    "handoff_json": {
                        "description": "{branch, commit_hash, changed_files, tests_run, risks, next_steps, notes} as an object or a string holding one; every field optional, list fields are lists of strings.",
                        "anyOf": [
                            {"type": "object", "properties": {
                                "branch": {"type": "string"},
                                "commit_hash": {"type": "string"},
                                "changed_files": {"type": "array", "items": {"type": "string"}},
                                "tests_run": {"type": "array", "items": {"type": "string"}},
                                "risks": {"type": "array", "items": {"type": "string"}},
                                "next_steps": {"type": "array", "items": {"type": "string"}},
                                "notes": {"type": "string"}
                            }, "additionalProperties": false},
                            {"type": "string"}
                        ]
                    }
                },
                "required": ["assignment_id", "handoff_json"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "assignment": {"type": "object"},
                "handoff_id": {"type": "string"}
            }),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CompleteArgs {
    assignment_id: String,
    /// An object, or a string holding one (parsed by the domain).
    handoff_json: Option<Value>,
}

async fn complete(ctx: &CallCtx<'_>, a: CompleteArgs) -> Result<Map<String, Value>, HubError> {
    let draft = parse_handoff(a.handoff_json.as_ref())?;
    let done = ctx.hub.complete(ctx.agent, &a.assignment_id, draft).await?;
    Ok(fields(
        json!({"assignment": done.assignment, "handoff_id": done.handoff.id}),
    ))
}

fn handoff_get_def() -> ToolDef {
    ToolDef {
        name: "handoff_get",
        title: "Read handoff",
        description: "Read a handoff document by id (any agent may read any handoff).",
        input_schema: json!({
            "type": "object",
            "properties": {"handoff_id": id_schema("The handoff to read.")},
            "required": ["handoff_id"],
            "additionalProperties": false
        }),
        output_properties: json!({"handoff": {"type": "object"}}),
        read_only: true,
        idempotent: true,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HandoffArgs {
    handoff_id: String,
}

async fn handoff_get(ctx: &CallCtx<'_>, a: HandoffArgs) -> Result<Map<String, Value>, HubError> {
    let handoff = ctx.hub.handoff(&a.handoff_id).await?;
    Ok(fields(json!({ "handoff": handoff })))
}
