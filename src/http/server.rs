//! The actix-web server: routes and server settings.

use super::error::ApiError;
use super::state::{AppState, Fill};
use super::{guards, mcp_route, operator};
use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;
use std::net::{SocketAddr, TcpListener};

/// Liveness, at once even while start-up loads the database; `ready` says whether
/// it has (requests sent before wait for it).
async fn healthz(st: web::Data<AppState>) -> HttpResponse {
    // Stopping (a stop signal came): 503, so that a load balancer's health check
    // stops sending here while the node still answers (`shutdown_drain_secs`).
    let stopping = st.stopping.load(std::sync::atomic::Ordering::Acquire);
    let mut resp = if stopping {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    resp.json(json!({
        "ok": !stopping,
        "service": "agent-hub",
        "version": env!("CARGO_PKG_VERSION"),
        "ready": st.hub.is_filled(),
        "stopping": stopping,
        "instance": st.instance,
    }))
}

/// What a 503 from `/readyz` tells the prober to wait before asking again.
const READY_RETRY_AFTER_SECS: &str = "5";

/// Readiness: 200 once the hub is loaded and its writes are being saved; 503 with
/// the reason otherwise. No token and no data, like `/healthz`.
async fn readyz(st: web::Data<AppState>) -> HttpResponse {
    let not_ready = match st.hub.peek() {
        _ if st.stopping.load(std::sync::atomic::Ordering::Acquire) => Some("stopping".to_string()),
        Fill::Ready(hub) => hub
            .write_health()
            .err()
            .map(|e| format!("writes refused: {e}")),
        Fill::Loading => Some("loading".to_string()),
        Fill::Failed => Some("start-up failed".to_string()),
        Fill::Standby(why) => Some(format!("standby: {why}")),
    };
    match not_ready {
        None => HttpResponse::Ok().json(json!({"ready": true})),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, READY_RETRY_AFTER_SECS))
            .json(json!({"ready": false, "reason": reason})),
    }
}

/// How long a scrape waits for the lock manager's counts (left out after).
const LOCK_COUNT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /metrics`: Prometheus text. Needs the operator token unless `metrics_public`
/// (the counts say how busy the hub is, not what agents say). Answers while start-up
/// loads the database, without the hub's gauges.
async fn metrics(
    req: actix_web::HttpRequest,
    st: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    guards::check_origin(&req, &st.origins)?;
    if !st.metrics_public {
        guards::operator(&req, &st)?;
    }
    let hub = match st.hub.peek() {
        Fill::Ready(hub) => Some(hub.gauges(LOCK_COUNT_WAIT).await),
        Fill::Loading | Fill::Failed | Fill::Standby(_) => None,
    };
    let gauges = crate::metrics::Gauges {
        sessions: st.sessions.len() as u64,
        get_streams: st.sessions.streams() as u64,
        listen_streams: st.sessions.listeners.len() as u64,
        requests_in_flight: st.admission.in_flight() as u64,
        hub,
    };
    let text = crate::metrics::render(gauges).map_err(|_| {
        ApiError::rpc(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            crate::mcp::jsonrpc::RpcError::internal("metrics could not be encoded"),
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/mcp")
            .route(web::post().to(mcp_route::post))
            .route(web::get().to(mcp_route::get))
            .route(web::delete().to(mcp_route::delete))
            .default_service(web::to(mcp_route::method_not_allowed)),
    )
    .configure(operator::configure)
    .configure(super::ui::configure)
    .configure(super::internal::routes)
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics));
}

/// Serve on an already bound listener. Returns the server: it runs once polled, and
/// stops through its handle (no signal handlers of its own).
pub(crate) fn serve(
    state: AppState,
    listener: TcpListener,
    max_connections: usize,
    write_timeout: std::time::Duration,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(state);
    {
        // Spread placement: a hub counts a message against a task another node
        // serves through that node (see `actors::hub::remote`).
        let st = state.clone();
        crate::actors::hub::set_count_at(std::sync::Arc::new(move |task, sender, step| {
            Box::pin(super::gateway::count_at_owner(
                st.clone(),
                task,
                sender,
                step,
            ))
        }));
        let st = state.clone();
        crate::actors::hub::set_statuses_at(std::sync::Arc::new(move |ids| {
            Box::pin(super::gateway::statuses_at_owners(st.clone(), ids))
        }));
        let st = state.clone();
        crate::actors::hub::set_push_at(std::sync::Arc::new(move |to, item| {
            Box::pin(super::gateway::push_at_owner(st.clone(), to, item))
        }));
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Outermost: a cluster node that does not serve forwards to the one
            // that does; a stopping server closes connections after answering.
            .wrap(actix_web::middleware::from_fn(super::gateway::front))
            .configure(routes)
    })
    .workers(workers)
    // Per worker: beyond it a worker stops accepting until a connection closes.
    .max_connections(max_connections.div_ceil(workers).max(1))
    // actix-web has no write timeout: the kernel closes a connection whose data
    // stays unacknowledged (a client that reads nothing) this long.
    .on_connect(move |conn, _| set_write_timeout(conn, write_timeout))
    // Without TCP_NODELAY a response written in several chunks (SSE) waits for
    // the client's delayed ACK: 40 ms per call.
    .tcp_nodelay(true)
    // Open GET streams never finish by themselves; do not wait long for them.
    .shutdown_timeout(2)
    // `hubctl serve` handles signals itself (a second one exits at once, SIGHUP
    // does not stop the server).
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// `TCP_USER_TIMEOUT` on an accepted connection: data unacknowledged (or unsent for
/// a zero window) longer than `timeout` closes it. A failure only logs.
fn set_write_timeout(conn: &dyn std::any::Any, timeout: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let ms = libc::c_uint::try_from(timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_uint and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            std::ptr::addr_of!(ms).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "TCP_USER_TIMEOUT not set");
    }
}

/// The URL clients use for `addr` (an unspecified bind address is reached via loopback).
pub(crate) fn mcp_url(addr: SocketAddr) -> String {
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
