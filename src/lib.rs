//! agent-hub: a coordination server for AI agents speaking MCP over Streamable HTTP.
//!
//! Layout (imports go one way: `domain` ← `store` ← `actors` ← `mcp`/`http` ← `cli`):
//! - [`domain`]: plain types and pure functions (ids, validation, time helpers). No I/O.
//! - [`config`]: `agents.env`, `config.yaml`, paths, first-run generation.
//! - [`auth`]: bearer tokens held as SHA-256 digests.
//! - [`store`]: SQLite schema, the single writer thread with group commit, start-up loading;
//!   [`pg`]: PostgreSQL for cluster mode (schema, shard leases, the epoch fence).
//! - [`actors`]: the live state, one owner per piece, behind the [`actors::Hub`] façade.
//! - [`mcp`]: JSON-RPC and MCP protocol types, sessions, tool definitions and dispatch.
//! - [`http`]: actix-web server, the `/mcp` endpoint and the operator API.
//! - [`cli`]: the `hubctl` commands.

pub(crate) mod access_log;
pub(crate) mod actors;
pub(crate) mod auth;
pub mod cli;
pub(crate) mod config;
pub(crate) mod domain;
pub(crate) mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub(crate) mod http;
pub(crate) mod log_filter;
pub(crate) mod log_limit;
pub(crate) mod mcp;
pub(crate) mod metrics;
#[cfg(feature = "microbench")]
pub mod microbench;
pub(crate) mod notify;
pub(crate) mod store;
/// PostgreSQL for cluster mode. Public so that `tests/cluster_pg.rs` can drive it
/// before `hubctl serve --store postgres://` uses it.
pub use store::pg;
