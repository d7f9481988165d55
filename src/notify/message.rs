//! What a webhook receives: which events concern it, the body (JSON with a
//! Slack-compatible `text`), and the body's signature. Pure functions.

use crate::config::notify::Kind;
use crate::events::Event;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The signature header: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub(crate) const SIGNATURE_HEADER: &str = "X-Agent-Hub-Signature-256";

/// The webhook kind an event of the operator event stream is, if any.
pub(crate) fn kind_of(e: &Event) -> Option<Kind> {
    let status = e.payload["task_status"].as_str();
    Some(match e.event_type.as_str() {
        "round_plan_submitted" => Kind::RoundAwaitingApproval,
        "round_approved" => Kind::RoundApproved,
        "round_rejected" => Kind::RoundRejected,
        "review_submitted" if status == Some("completed") => Kind::TaskCompleted,
        // `changes_requested` opened a new round, which awaits the operator.
        "review_submitted" if status == Some("awaiting_operator_approval") => {
            Kind::RoundAwaitingApproval
        }
        "lease_expired" => Kind::LeaseLapsed,
        "store_fault" => Kind::StoreFault,
        "store_healed" => Kind::StoreHealed,
        "agent_online" => Kind::AgentOnline,
        "agent_offline" => Kind::AgentOffline,
        _ => return None,
    })
}

/// One line for people (Slack shows `text`), saying what to do next.
pub(crate) fn text(kind: Kind, e: &Event) -> String {
    let id = &e.entity_id;
    match kind {
        Kind::RoundAwaitingApproval => format!(
            "Task {id}: a round awaits your approval (planned by {}). See `hubctl list-rounds {id}`, then `hubctl approve ROUND` or `hubctl reject ROUND --note ...`.",
            e.actor
        ),
        Kind::RoundApproved => format!("Task {id}: a round was approved."),
        Kind::RoundRejected => format!("Task {id}: a round was rejected."),
        Kind::TaskCompleted => format!("Task {id} is completed (review approved by {}).", e.actor),
        Kind::LeaseLapsed => format!(
            "Task {id}: an assignment's lease lapsed; it can be claimed again (`hubctl show {id}`)."
        ),
        Kind::StoreFault => format!(
            "agent-hub cannot write its database; writes are refused until it heals: {}",
            e.payload["reason"].as_str().unwrap_or("unknown reason")
        ),
        Kind::StoreHealed => "agent-hub writes its database again.".to_string(),
        Kind::AgentOnline => format!("Agent {id} is online."),
        Kind::AgentOffline => format!("Agent {id} went offline (no request within the presence window)."),
        Kind::Test => "agent-hub test notification: this webhook works.".to_string(),
    }
}

/// The JSON body for `kind` about `e`, from hub `instance`.
pub(crate) fn body(kind: Kind, e: &Event, instance: &str) -> Vec<u8> {
    let v: Value = json!({
        "text": text(kind, e),
        "kind": kind.as_str(),
        "event": e,
        "hub_instance": instance,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The value of [`SIGNATURE_HEADER`] for `body`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    format!(
        "sha256={}",
        crate::domain::ids::hex(&mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: Value) -> Event {
        Event {
            id: "01-02".into(),
            event_type: kind.into(),
            entity_type: "task".into(),
            entity_id: "T-1".into(),
            actor: "disp".into(),
            payload,
            at: "2026-11-29T12:00:00.000000+00:00".into(),
            relayed: false,
        }
    }

    #[test]
    fn events_map_to_kinds() {
        let e = event("round_plan_submitted", json!({}));
        assert_eq!(kind_of(&e), Some(Kind::RoundAwaitingApproval));
        let done = event("review_submitted", json!({"task_status": "completed"}));
        assert_eq!(kind_of(&done), Some(Kind::TaskCompleted));
        let more = event("review_submitted", json!({"task_status": "dispatched"}));
        assert_eq!(kind_of(&more), None);
        let again = event(
            "review_submitted",
            json!({"task_status": "awaiting_operator_approval"}),
        );
        assert_eq!(kind_of(&again), Some(Kind::RoundAwaitingApproval));
        assert_eq!(kind_of(&event("message_delivered", json!({}))), None);
    }

    #[test]
    fn bodies_carry_text_kind_and_event() {
        let e = event("round_plan_submitted", json!({}));
        let b: Value =
            serde_json::from_slice(&body(Kind::RoundAwaitingApproval, &e, "i1")).unwrap();
        assert_eq!(b["kind"], "round_awaiting_approval");
        assert!(b["text"]
            .as_str()
            .unwrap()
            .contains("hubctl list-rounds T-1"));
        assert_eq!(b["event"]["entity_id"], "T-1");
        assert_eq!(b["hub_instance"], "i1");
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let s = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
