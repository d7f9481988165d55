//! [`super::Reads`] on PostgreSQL (cluster mode): the queries of SQLite's
//! [`super::sqlite`] in PostgreSQL's dialect, as plain async functions over a
//! client, returning exactly the values SQLite's return for the same stored rows
//! (`tests/cluster_pg_reads.rs` compares them). Times are selected through
//! `hub_iso(col)` (migration 005), so they come back in the hub's own text format.

pub(crate) mod pages;
pub(crate) mod prune;
