//! [`super::Reads`] on PostgreSQL (cluster mode): the queries of SQLite's
//! [`super::sqlite`] in PostgreSQL's dialect, as plain async functions over a
//! client, returning exactly the values SQLite's return for the same stored rows
//! (`tests/cluster_pg_reads_activation.rs` and `tests/cluster_pg_reads_pages.rs`
//! compare them). Times are selected through `hub_iso(col)` (migration 005), so
//! they come back in the hub's own text format; text ids are ordered
//! `COLLATE "C"`, SQLite's byte order, whatever the database's collation.

pub(crate) mod activation;
pub(crate) mod mail;
pub(crate) mod pages;
pub(crate) mod prune;
