//! The Model Context Protocol: JSON-RPC framing, protocol revisions, sessions, tool
//! definitions and dispatch. Transport-agnostic: [`crate::http`] feeds it decoded
//! messages and turns its answers into HTTP responses.

pub(crate) mod args;
pub(crate) mod dispatch;
pub(crate) mod jsonrpc;
pub(crate) mod listen;
pub(crate) mod modern;
pub(crate) mod protocol;
pub(crate) mod push;
pub(crate) mod replay;
pub(crate) mod session;
pub(crate) mod session_id;
pub(crate) mod tools;
