//! The operator API used by `hubctl` (JSON under `/operator/`). Only the operator
//! token is accepted; agent tokens get 403. hubctl never writes the database itself:
//! the actors own the state, and a write behind their back would be lost.

use super::guards;
use super::server::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/operator/agents").route(web::get().to(agents)))
        .configure(super::operator_tasks::configure);
}

/// Every agent of agents.env with its registration and presence.
async fn agents(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    try_resp!(guards::check_origin(&req, &st.origins));
    try_resp!(guards::operator(&req, &st));
    match st.hub.agents(Utc::now()).await {
        Ok(list) => HttpResponse::Ok().json(json!({"ok": true, "agents": list})),
        Err(e) => {
            tracing::error!(error = %e, "operator agents view failed");
            HttpResponse::InternalServerError()
                .json(json!({"ok": false, "error": "INTERNAL", "message": "the hub could not list agents"}))
        }
    }
}
