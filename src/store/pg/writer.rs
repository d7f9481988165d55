//! The writer thread's engine on PostgreSQL (cluster.md §3): the same batching,
//! progress and fault handling as SQLite's (`store::writer`), with each batch
//! written by [`super::apply::apply_ops`] in one transaction:
//!
//! 1. every op is tagged with the (shard, epoch) of each shard it writes, as
//!    [`Ownership`] holds them now;
//! 2. the epoch fence, then the ops in queue order, their statements pipelined;
//! 3. the transaction's id (`txid_current()`, asked for alongside the fence);
//! 4. COMMIT. If its answer is lost (the connection broke, or [`WRITE_TIMEOUT`]
//!    passed) the outcome is unknown: the engine asks PostgreSQL on a new
//!    connection (`txid_status`), waiting while the old transaction is still in
//!    progress. Committed: done. Aborted: not stored, and the writer retries it.
//!    Nothing later was written meanwhile (one writer, one batch at a time), which
//!    is what makes applying it again safe (see `docs/cluster.md`, "What re-applying
//!    assumes"). Still unknown after [`SETTLE_WAIT`]: the batch fails (its callers
//!    are told it was not saved, the hub reloads from the store).
//!
//! (`txid_status` answers exactly; the `batch_log` table of migration 002, a row
//! per batch to look up, is no longer written.)
//!
//! A node serves only while it holds every shard (standby placement) or the
//! shards its hub was loaded with (spread placement, whose hubs enqueue ops of
//! their own shards only). So a batch with an op of a shard not held, or a
//! fenced one, is not written at all: the commit fails, the writer refuses
//! writes, and once the lease loop holds its shards again its probe passes and
//! the hub reloads its state from the store, exactly as after a storage fault
//! on SQLite. No answered write is lost, and none computed from a
//! state the store does not hold is written.
//!
//! The thread owns a current-thread tokio runtime and a pool of one connection
//! of its own (the server's pool serves reads, on the server's runtime): the pool
//! gives the per-connection statement cache of `prepare_cached` and replaces a
//! connection found closed.

use super::apply::{apply_ops, TaggedOp};
use super::ownership::Ownership;
use super::{Member, PgError, Pool, PoolOptions};
use crate::domain::shard::{ShardId, SHARD_COUNT};
use crate::store::op::Scope;
use crate::store::writer::{Committed, Engine};
use crate::store::Op;
use deadpool_postgres::Object;
use futures_util::future::join;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Longest a batch may take, COMMIT included, before its outcome counts as
/// unknown (a database host gone silent would otherwise hold the writer until the
/// kernel gives up on the connection).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the engine waits for a transaction whose COMMIT answer was lost to end.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// PostgreSQL behind the writer thread.
pub(crate) struct PgEngine {
    /// Made on the writer thread at first use (a runtime may not be made or
    /// dropped on an async thread, where the engine is built).
    rt: Option<Runtime>,
    pool: Pool,
    client: Option<Object>,
    owned: Arc<Ownership>,
    member: Member,
    /// Spread placement: a node serves some shards, not every one.
    spread: bool,
}

/// `Ok(true)`: committed; `Ok(false)`: not committed (safe to retry).
type Outcome = Result<bool, PgError>;

impl PgEngine {
    /// Connections are made at the first write (this may run on an async thread,
    /// where the engine's runtime cannot block).
    pub(crate) fn new(
        config: super::Target,
        member: Member,
        owned: Arc<Ownership>,
        spread: bool,
    ) -> Result<PgEngine, PgError> {
        let options = PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        };
        Ok(PgEngine {
            rt: None,
            pool: super::pool(config, &options)?,
            client: None,
            owned,
            member,
            spread,
        })
    }

    /// A live connection: the one held, or one from the pool (which connects
    /// anew for a closed one). Its connection task runs whenever the runtime is
    /// driven, which is whenever the writer uses it (always through `block_on`).
    fn connect(&mut self) -> Result<(), PgError> {
        if self.rt.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PgError::Incompatible(format!("writer runtime: {e}")))?;
            self.rt = Some(rt);
        }
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if let (None, Some(rt)) = (&self.client, &self.rt) {
            self.client = Some(rt.block_on(self.pool.get())?);
        }
        Ok(())
    }

    /// The runtime and the connection, made if needed.
    fn parts(&mut self) -> Result<(&Runtime, &mut Object), PgError> {
        self.connect()?;
        match (self.rt.as_ref(), self.client.as_mut()) {
            (Some(rt), Some(c)) => Ok((rt, c)),
            _ => Err(PgError::Incompatible("no connection".into())),
        }
    }

    /// Tag each op with its shards' epochs; `Err` names a shard not held. A
    /// logged answer closing a group (`Op::End`) is tagged with every shard the
    /// group wrote in too: if one of them is fenced, the answer is left out with
    /// those writes, never stored for a call whose writes were not.
    fn tag<'a>(&self, ops: &[&'a Op]) -> Result<Vec<TaggedOp<'a>>, ShardId> {
        let mut tagged = Vec::with_capacity(ops.len());
        // Open groups and the shards written since each opened.
        let mut groups: std::collections::HashMap<u64, Vec<ShardId>> = Default::default();
        for &op in ops {
            let mut shards = match op.scope() {
                Scope::Nothing => Vec::new(),
                Scope::One(s) => vec![s],
                Scope::Many(list) => list,
                Scope::Every => (0..SHARD_COUNT).map(ShardId).collect(),
            };
            match op {
                Op::Begin(g) => {
                    groups.insert(*g, Vec::new());
                }
                Op::End { group, logged } => {
                    let wrote = groups.remove(group).unwrap_or_default();
                    if logged.is_some() {
                        shards.extend(wrote);
                        shards.sort();
                        shards.dedup();
                    }
                }
                _ => {
                    for wrote in groups.values_mut() {
                        wrote.extend(shards.iter().copied());
                    }
                }
            }
            let tags = shards
                .into_iter()
                .map(|s| self.owned.epoch(s).map(|e| (s, e)).ok_or(s))
                .collect::<Result<Vec<_>, _>>()?;
            tagged.push(TaggedOp { op, tags });
        }
        Ok(tagged)
    }

    /// One attempt. A fenced batch is rolled back: nothing of it is stored.
    fn write(&mut self, ops: &[TaggedOp<'_>]) -> Result<(), Unsure> {
        let (rt, client) = self.parts().map_err(Unsure::NotStored)?;
        // The transaction's id once known: what the outcome is asked by.
        let mut xid: Option<i64> = None;
        let batch = async {
            let tx = client.transaction().await.map_err(not_stored)?;
            // Prepared once per connection. The transaction's id is asked for
            // while the batch is applied: the request goes out with the fence's
            // (`join` polls the batch first, up to its fence's answer), and the
            // id is the same whenever it is asked within the transaction.
            let txid = tx
                .prepare_cached("SELECT txid_current()")
                .await
                .map_err(not_stored)?;
            let (applied, id) = join(apply_ops(&tx, ops), tx.query_one(&txid, &[])).await;
            let fenced = applied.map_err(Unsure::NotStored)?;
            if !fenced.is_empty() {
                // Dropping `tx` rolls it back.
                return Err(Unsure::Fenced(fenced));
            }
            let id: i64 = id.and_then(|r| r.try_get(0)).map_err(not_stored)?;
            xid = Some(id);
            tx.commit().await.map_err(|e| Unsure::Unknown(e.into(), id))
        };
        // The timer is made inside the runtime (it needs its clock).
        let attempt = rt.block_on(async { tokio::time::timeout(WRITE_TIMEOUT, batch).await });
        match attempt {
            Ok(done) => done,
            // Cut off before COMMIT was sent: rolled back with the connection.
            Err(_) => match xid {
                None => Err(Unsure::NotStored(PgError::Incompatible(format!(
                    "the batch took longer than {} s; not stored",
                    WRITE_TIMEOUT.as_secs()
                )))),
                Some(id) => Err(Unsure::Unknown(
                    PgError::Incompatible(format!(
                        "COMMIT was not answered within {} s",
                        WRITE_TIMEOUT.as_secs()
                    )),
                    id,
                )),
            },
        }
    }

    /// After a COMMIT whose answer was lost: ask PostgreSQL, on a new connection,
    /// how transaction `xid` ended, waiting while it is still in progress.
    fn settle(&mut self, xid: i64) -> Outcome {
        self.client = None;
        let (rt, client) = self.parts()?;
        rt.block_on(async {
            let started = Instant::now();
            loop {
                let row = client.query_one("SELECT txid_status($1)", &[&xid]).await?;
                let status: Option<String> = row.try_get(0)?;
                match status.as_deref() {
                    Some("committed") => return Ok(true),
                    Some("aborted") => return Ok(false),
                    Some("in progress") if started.elapsed() < SETTLE_WAIT => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => {
                        return Err(PgError::Incompatible(format!(
                            "transaction {xid} is {}",
                            other.unwrap_or("unknown to the server")
                        )))
                    }
                }
            }
        })
    }
}

/// A failed attempt: not stored (an error, or shards with a newer epoch), or
/// perhaps stored (COMMIT's answer lost), with the transaction's id.
enum Unsure {
    NotStored(PgError),
    Fenced(Vec<ShardId>),
    Unknown(PgError, i64),
}

fn not_stored(e: tokio_postgres::Error) -> Unsure {
    Unsure::NotStored(e.into())
}

impl Engine for PgEngine {
    fn commit(&mut self, ops: &[&Op]) -> Result<Committed, String> {
        let batch = self.tag(ops).map_err(|shard| {
            format!(
                "this node does not hold shard {} now; nothing of the batch was written",
                shard.0
            )
        })?;
        match self.write(&batch) {
            Ok(()) => Ok(Committed { vacuum: None }),
            Err(Unsure::NotStored(e)) => {
                self.client = None;
                Err(e.to_string())
            }
            Err(Unsure::Fenced(shards)) => {
                crate::metrics::get().fenced_batch();
                for s in &shards {
                    self.owned.lose(*s);
                }
                tracing::error!(
                    ?shards,
                    "batch fenced: another node holds these shards now; nothing of it was written"
                );
                Err(format!(
                    "{} shard(s) were taken over by another node; nothing of the batch was written",
                    shards.len()
                ))
            }
            Err(Unsure::Unknown(e, xid)) => match self.settle(xid) {
                Ok(true) => {
                    tracing::warn!(error = %e, xid, "COMMIT's answer was lost; PostgreSQL says it committed");
                    Ok(Committed { vacuum: None })
                }
                Ok(false) => Err(format!("{e} (the batch was not committed)")),
                Err(e2) => {
                    self.client = None;
                    Err(format!(
                        "{e}; whether the batch committed is unknown ({e2}): the hub reloads from the store"
                    ))
                }
            },
        }
    }

    /// Writes are taken again once the database answers a write and this node
    /// holds every shard, or (spread placement) some (see the module's comment).
    fn probe(&mut self) -> Result<(), String> {
        let held = self.owned.count();
        if self.spread && held == 0 {
            return Err("this node holds no shard now".into());
        }
        if !self.spread && held < usize::from(SHARD_COUNT) {
            return Err(format!(
                "this node holds {held} of {SHARD_COUNT} shards; waiting for the rest"
            ));
        }
        let member = self.member.clone();
        let (rt, client) = self.parts().map_err(|e| e.to_string())?;
        // A write, not a SELECT: a server in recovery answers reads.
        rt.block_on(super::lease::heartbeat(&*client, &member))
            .map_err(|e| e.to_string())
    }

    /// PostgreSQL's autovacuum gives space back by itself.
    fn vacuum(&mut self, _full: bool) {}

    /// Nothing is a file that can vanish under the server.
    fn lost(&self) -> Option<String> {
        None
    }

    fn rescue(&mut self) -> Option<PathBuf> {
        None
    }
}
