//! `hubctl floor` (hidden): the floor of this machine for `benches/compare.sh`, a
//! bare actix-web handler on `/mcp` answering a fixed JSON-RPC body (with a session
//! header for `initialize`), built like the real server (same workers, TCP_NODELAY),
//! so that a bench against it measures HTTP and the load generator and nothing else.

use super::CliError;
use actix_web::{web, App, HttpResponse, HttpServer};

/// `hubctl floor` options.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Port on 127.0.0.1
    #[arg(long)]
    pub port: u16,
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"floor","version":"1"}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"ok\":true}"}],"structuredContent":{"ok":true},"isError":false}}"#;

async fn post(body: web::Bytes) -> HttpResponse {
    // The body is read like the real server reads it; only `initialize` differs.
    if body.windows(12).any(|w| w == b"\"initialize\"") {
        return HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Mcp-Session-Id", "floor"))
            .body(INITIALIZED);
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(RESULT)
}

pub(crate) fn run(args: FloorArgs) -> Result<(), CliError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    actix_rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new().route("/mcp", web::post().to(post)).route(
                "/mcp",
                web::delete().to(|| async { HttpResponse::Ok().finish() }),
            )
        })
        .workers(workers)
        .tcp_nodelay(true)
        .bind(("127.0.0.1", args.port))
        .map_err(|e| CliError::Api(format!("cannot listen on port {}: {e}", args.port)))?;
        eprintln!("floor responder at http://127.0.0.1:{}/mcp", args.port);
        server.run().await.map_err(CliError::Server)
    })
}
