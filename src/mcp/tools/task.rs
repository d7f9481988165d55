//! `task_draft_create`, `round_plan_submit`, `review_submit`: the dispatcher's tools.

use super::{fields, handler, CallCtx, Tool, ToolDef};
use crate::actors::HubError;
use crate::domain::task::{
    note_arg, validate_task_id, validate_text, Plan, Verdict, MAX_TEXT_BYTES, MAX_TITLE_CHARS,
};
use crate::domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub(super) fn tools() -> Vec<Tool> {
    vec![
        Tool::new(draft_create_def(), handler!(draft_create)),
        Tool::new(plan_submit_def(), handler!(plan_submit)),
        Tool::new(review_def(), handler!(review)),
    ]
}

fn draft_create_def() -> ToolDef {
    ToolDef {
        name: "task_draft_create",
        title: "Create task",
        description:
            "Create a task in draft state. You become its dispatcher: only you submit its round \
                          plans and review its rounds. Next: round_plan_submit.",
        input_schema: json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$", "description": "Your id for the task, e.g. \"T-42\"; must be new."},
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS, "description": "One-line title."},
                "description": {"type": "string", "description": "What the task is about (optional)."}
            },
            "required": ["task_id", "title"],
            "additionalProperties": false
        }),
        output_properties: json!({"task_id": {"type": "string"}, "status": {"type": "string"}}),
        read_only: false,
        idempotent: false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DraftArgs {
    task_id: String,
    title: String,
    description: Option<String>,
}

async fn draft_create(ctx: &CallCtx<'_>, a: DraftArgs) -> Result<Map<String, Value>, HubError> {
    let id = a.task_id.trim();
    validate_task_id(id)?;
    let title = a.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(DomainError::invalid(
            "title",
            format!("must be 1-{MAX_TITLE_CHARS} characters"),
        )
        .into());
    }
    let description = a.description.as_deref().unwrap_or("");
    validate_text("description", description, MAX_TEXT_BYTES)?;
    let task = ctx
        .hub
        .create_task(ctx.agent, id, title, description, ctx.now)
        .await?;
    Ok(fields(
        json!({"task_id": task.id, "status": task.status, "title": task.title}),
    ))
}

fn plan_submit_def() -> ToolDef {
    ToolDef {
            name: "round_plan_submit",
            title: "Submit round plan",
            description: "Submit the plan of the next round of your task: one assignment per agent_id and goal. \
                          The round then awaits the operator's approval. A draft task gets its first round; a \
                          dispatched task gets a follow-up round while earlier rounds are still worked on (at \
                          most max_rounds in all). If the operator rejected a plan (or it still awaits \
                          approval), this replaces that round's assignments without using up a round.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "task_id": {"type": "string"},
                    "plan_json": {
                        "description": "{\"assignments\": [{\"agent_id\": \"codex\", \"goal\": \"...\"}, ...]} as a JSON object or as a string holding it. agent_id must be an agent of this hub.",
                        "anyOf": [
                            {"type": "object", "properties": {"assignments": {"type": "array", "items": {
                                "type": "object",
                                "properties": {"agent_id": {"type": "string"}, "goal": {"type": "string"}},
                                "required": ["agent_id", "goal"]
                            }}}, "required": ["assignments"]},
                            {"type": "string"}
                        ]
                    }
                },
                "required": ["task_id", "plan_json"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "round_id": {"type": "string"},
                "round_number": {"type": "integer"},
                "status": {"type": "string"},
                "assignments": {"type": "array", "items": {"type": "object"}}
            }),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanArgs {
    task_id: String,
    /// An object, or a string holding one (parsed by the domain).
    plan_json: Option<Value>,
}

async fn plan_submit(ctx: &CallCtx<'_>, a: PlanArgs) -> Result<Map<String, Value>, HubError> {
    let plan = Plan::parse(a.plan_json.as_ref())?;
    let planned = ctx.hub.submit_plan(ctx.agent, &a.task_id, plan).await?;
    let round = planned.round;
    Ok(fields(json!({
        "round_id": round.id,
        "round_number": round.round_number,
        "status": round.status,
        "assignments": planned.assignments,
    })))
}

fn review_def() -> ToolDef {
    ToolDef {
            name: "review_submit",
            title: "Review round",
            description: "As the task's dispatcher, review a round whose assignments are all completed (read \
                          the handoffs first with handoff_get). \"approved\" completes the round, and the task \
                          unless another of its rounds is still open (task_status says which); \
                          \"changes_requested\" opens the next round with the same assignments, awaiting the \
                          operator's approval.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "round_id": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["approved", "changes_requested"]},
                    "note": {"type": "string", "description": "What is good or what to change."}
                },
                "required": ["round_id", "verdict"],
                "additionalProperties": false
            }),
            output_properties: json!({
                "status": {"type": "string"},
                "round_id": {"type": "string", "description": "the completed round, or the new round on changes_requested"},
                "round_number": {"type": "integer"},
                "task_status": {"type": "string", "description": "the task's status after the review: completed, or still awaiting_operator_approval or dispatched while another round is open"},
                "message": {"type": "string"}
            }),
            read_only: false,
            idempotent: false,
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewArgs {
    round_id: String,
    verdict: String,
    note: Option<String>,
}

async fn review(ctx: &CallCtx<'_>, a: ReviewArgs) -> Result<Map<String, Value>, HubError> {
    let note = note_arg(a.note)?;
    let verdict = Verdict::parse(a.verdict.trim())?;
    let reviewed = ctx
        .hub
        .review(ctx.agent, &a.round_id, verdict, note)
        .await?;
    let round = reviewed.round;
    let task_status = reviewed.task_status.as_str();
    Ok(match reviewed.next {
        None => fields(json!({
            "status": "completed",
            "round_id": round.id,
            "round_number": round.round_number,
            "task_status": task_status,
        })),
        Some(n) => fields(json!({
            "status": "awaiting_operator_approval",
            "task_status": task_status,
            "round_id": n.id,
            "round_number": n.round_number,
            "previous_round_id": round.id,
            "message": format!("Changes requested: round {} opened with the same assignments; it awaits operator approval.", n.round_number),
        })),
    })
}
