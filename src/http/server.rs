//! The actix-web server: shared state, routes, and server settings.

use super::{mcp_route, operator};
use crate::actors::Hub;
use crate::auth::TokenIndex;
use crate::mcp::session::Sessions;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Origins a browser page may call us from.
#[derive(Debug, Clone)]
pub enum Origins {
    Any,
    List(Vec<String>),
}

impl Origins {
    /// The configured list, or the loopback origins of the port we listen on.
    pub fn new(configured: Option<&[String]>, port: u16) -> Origins {
        match configured {
            Some(list) if list.iter().any(|o| o == "*") => Origins::Any,
            Some(list) => Origins::List(list.to_vec()),
            None => Origins::List(vec![
                format!("http://localhost:{port}"),
                format!("http://127.0.0.1:{port}"),
                format!("http://[::1]:{port}"),
            ]),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(l) => {
                let o = origin.trim_end_matches('/');
                l.iter().any(|a| a.eq_ignore_ascii_case(o))
            }
        }
    }
}

/// Shared by every worker (actix clones the `web::Data` Arc).
pub struct AppState {
    pub hub: Hub,
    pub sessions: Arc<Sessions>,
    pub tokens: TokenIndex,
    pub origins: Origins,
    pub max_body_bytes: usize,
    pub sse_keepalive: Duration,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"ok": true, "service": "agent-hub", "version": env!("CARGO_PKG_VERSION")}))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/mcp")
            .route(web::post().to(mcp_route::post))
            .route(web::get().to(mcp_route::get))
            .route(web::delete().to(mcp_route::delete))
            .default_service(web::to(mcp_route::method_not_allowed)),
    )
    .configure(operator::configure)
    .route("/healthz", web::get().to(healthz));
}

/// Serve on an already bound listener. Returns the running server (await it; it
/// stops on SIGINT/SIGTERM).
pub fn serve(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        // Without TCP_NODELAY a response written in several chunks (SSE) waits for
        // the client's delayed ACK: 40 ms per call.
        .tcp_nodelay(true)
        // Open GET streams never finish by themselves; do not wait long for them.
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
    Ok(server)
}

/// The URL clients use for `addr` (an unspecified bind address is reached via loopback).
pub fn mcp_url(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let host = if ip.is_unspecified() {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{}/mcp", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_origins_are_loopback_of_our_port() {
        let o = Origins::new(None, 8765);
        assert!(o.allows("http://localhost:8765"));
        assert!(o.allows("http://127.0.0.1:8765/"));
        assert!(!o.allows("http://localhost:9999"));
        assert!(!o.allows("http://evil.example"));
        assert!(Origins::new(Some(&["*".to_string()]), 1).allows("http://evil.example"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            mcp_url("127.0.0.1:80".parse().unwrap()),
            "http://127.0.0.1:80/mcp"
        );
        assert_eq!(
            mcp_url("0.0.0.0:1".parse().unwrap()),
            "http://127.0.0.1:1/mcp"
        );
        assert_eq!(mcp_url("[::1]:2".parse().unwrap()), "http://[::1]:2/mcp");
    }
}
