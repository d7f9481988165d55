//! HTTP: the actix-web server, the MCP endpoint (`/mcp`), the operator API
//! (`/operator/...`), the operator dashboard ([`ui`], `/ui`), `/healthz` and
//! `/readyz`. This layer only decodes, checks (size, Origin, token, headers) and
//! forwards to [`crate::mcp`] and the [`crate::actors::Hub`].

pub(crate) mod admission;
pub(crate) mod body;
pub(crate) mod error;
pub(crate) mod event_stream;
pub(crate) mod gateway;
pub(crate) mod guards;
pub(crate) mod hub_state;
pub(crate) mod internal;
pub(crate) mod mcp_batch;
pub(crate) mod mcp_modern;
pub(crate) mod mcp_route;
pub(crate) mod operator;
pub(crate) mod operator_tasks;
pub(crate) mod reload;
pub(crate) mod revoked;
pub(crate) mod server;
pub(crate) mod sse;
pub(crate) mod state;
pub(crate) mod ui;

pub(crate) use state::{AppState, Origins};
