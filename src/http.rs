//! HTTP: the actix-web server, the MCP endpoint (`/mcp`), the operator API
//! (`/operator/...`) and `/healthz`. This layer only decodes, checks (size, Origin,
//! token, headers) and forwards to [`crate::mcp`] and the [`crate::actors::Hub`].

pub mod error;
pub mod guards;
pub mod mcp_route;
pub mod operator;
pub mod operator_tasks;
pub mod server;
pub mod sse;
pub mod state;

pub use error::ApiError;
pub use state::{AppState, Origins};
