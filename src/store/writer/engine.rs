//! What the writer thread needs of a database: commit a batch, prove writes work
//! again after a fault, and tell when its storage is gone for good. SQLite's file
//! (`SqliteEngine` in `writer.rs`) and PostgreSQL (`store::pg::writer`) implement
//! it; the batching, the published progress, the fault handling and the
//! generations around it are the same for both.

use crate::store::Op;
use std::path::PathBuf;

/// A batch written.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// The vacuum the batch asked for, to run once the commit is published
    /// (`Some(true)`: a full one).
    pub vacuum: Option<bool>,
}

/// One database behind the writer thread. Called from that thread only.
pub(crate) trait Engine: Send {
    /// Apply `ops` in one transaction and commit it. An error means nothing of
    /// the batch is stored (or, after a lost connection, that the engine could not
    /// find out and reports it as not stored: the hub then reloads from the store).
    fn commit(&mut self, ops: &[&Op]) -> Result<Committed, String>;

    /// One harmless write: `Ok` once the store takes writes again.
    fn probe(&mut self) -> Result<(), String>;

    /// Give freed space back, after a commit that asked for it. Never fails the
    /// batch: the data is committed.
    fn vacuum(&mut self, full: bool);

    /// Why the storage is gone for good (the file deleted or replaced), if it is.
    fn lost(&self) -> Option<String>;

    /// Save what the engine still holds of lost storage; where it went.
    fn rescue(&mut self) -> Option<PathBuf>;
}
