//! The Model Context Protocol: JSON-RPC framing, protocol revisions, sessions, tool
//! definitions and dispatch. Transport-agnostic: [`crate::http`] feeds it decoded
//! messages and turns its answers into HTTP responses.

pub mod args;
pub mod dispatch;
pub mod jsonrpc;
pub mod protocol;
pub mod push;
pub mod session;
pub mod tools;
