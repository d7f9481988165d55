//! The dashboard's script and style sheet, compiled into the binary (no network
//! and no files needed at run time) and served from `/ui/static/`, the only place
//! the Content-Security-Policy lets scripts and styles come from.

use actix_web::{web, HttpResponse};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub(super) async fn get(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type(kind).body(body)
}
