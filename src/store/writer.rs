//! The writer thread and the [`Store`] handle. `hubctl serve` opens the store
//! ([`Store::open`]); every actor holds a clone of the handle and enqueues [`Op`]s.
//!
//! Group commit: the thread blocks for the first op, then keeps taking whatever is
//! already queued (and, if `window` > 0, whatever arrives within `window`) up to
//! `max_ops`, applies them in ONE transaction, commits, and publishes the highest
//! committed sequence number on a `watch` channel. While one commit is being fsync'd,
//! new ops pile up in the channel and share the next commit, so throughput grows with
//! concurrency instead of paying one fsync per call.

use super::pg::ownership::Ownership;
use super::{apply, load, migrate, Op, Snapshot, StoreError};
use crate::config::Durability;
use crate::domain::shard::Shards;
use health::{next_backoff, Health, Progress, FIRST_BACKOFF};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The sequence number of an enqueued op; the write is durable once the writer has
/// published a committed sequence at least this high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(pub u64);

impl Ticket {
    /// For replies that wrote nothing.
    pub(crate) const NONE: Ticket = Ticket(0);
}

#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    pub durability: Durability,
    pub max_ops: usize,
    pub window: Duration,
}

// Shutdown is sent once; boxing every op to shrink it would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// An op: its sequence number, the generation and the ownership term of the
    /// handle that queued it.
    Op(u64, u64, u64, Op),
    /// From now on, drop the ops of older generations (their hub was replaced by
    /// one rebuilt from disk), and resume writing if a probe found the fault cleared.
    Adopt(u64),
    /// Probe now if writes are refused (instead of at the end of the backoff).
    Probe,
    /// Commit everything before this, then exit.
    Shutdown,
}

/// Cheap-to-clone handle held by every actor.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
    /// The hub generation this handle writes for (see [`Store::adopt`]).
    generation: u64,
    /// Cluster mode: the ownership term this handle's hub was loaded under. Its ops
    /// are written only while the node has lost no shard since (see `Ownership`):
    /// what a hub computed before a loss is never written after it, whatever the
    /// epochs are by then. Always 0 on SQLite.
    term: u64,
}

struct Inner {
    /// The next sequence number and the sending end of the writer's FIFO channel,
    /// under one lock so that sequence order equals channel order (the writer
    /// publishes "done up to N" and that is only true if nothing below N is still
    /// behind it in the queue).
    tx: Mutex<(u64, mpsc::Sender<Msg>)>,
    /// Published by the writer after each batch; waited on through this thread's
    /// [`relay`] (or a clone, off actix threads).
    progress: watch::Receiver<Progress>,
    /// Unique per store in this process: which [`relay`] serves it.
    id: u64,
    durability: Durability,
    /// The writer thread, joined by [`Store::shutdown`].
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Where reads go.
    reads: ReadSide,
    /// The newest generation handed out by [`Store::next_generation`].
    latest_generation: AtomicU64,
    /// Committed audit rows, for `/operator/events`.
    events: Arc<crate::events::EventBus>,
    /// Cluster mode: the shards this node holds (their term).
    ownership: Option<Arc<Ownership>>,
    /// Shared with the writer's `Batcher`.
    gate: Arc<super::group::Gate>,
}

/// Where a store's reads run: SQLite's read-only connections, or PostgreSQL's pool.
pub(crate) enum ReadSide {
    Sqlite(SqliteReaders),
    Postgres(crate::store::pg::Pool),
}

/// SQLite's read-only connections on the database file.
pub(crate) struct SqliteReaders {
    /// The database file, for the read-only connections of [`Store::read`].
    path: PathBuf,
    /// Idle read-only connections, taken by one read at a time (a short lock: never
    /// held across a query).
    readers: Mutex<Vec<Connection>>,
    /// Reads running at once. Each holds a connection (with its page cache) and a
    /// thread of the blocking pool: bounded, so that a burst of calls neither opens
    /// a connection per call nor grows the process by a thread and arena per call.
    read_slots: Arc<tokio::sync::Semaphore>,
}

/// Read-only connections: at most this many, each kept open once made.
const MAX_READERS: usize = 4;

impl SqliteReaders {
    fn new(path: &Path) -> SqliteReaders {
        SqliteReaders {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            read_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        }
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
    }
}

/// WAL frames between the writer's automatic checkpoints (SQLite's default: 1,000).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

pub(crate) fn open_connection(
    path: &Path,
    durability: Durability,
) -> Result<Connection, StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| StoreError::Io { path: p, source: e }
    };
    // The database holds message bodies and handoffs: private, like agents.env.
    // SQLite gives the -wal and -shm files the database file's permissions.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
    }
    let new = !path.exists();
    if new {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io(path))?;
    }
    let conn = Connection::open(path)?;
    if new {
        // Before the first table: deleted pages can then be given back to the file
        // system after retention (`incremental_vacuum`) without rewriting the file.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL fsyncs the WAL on every commit: what makes an answered write survive a
    // power cut as well as kill -9. NORMAL is enough for the relaxed mode.
    let sync = match durability {
        Durability::Durable => "FULL",
        Durability::Fast => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    Ok(conn)
}

impl Store {
    /// Open (creating) the database, convert it if agent-hub-mcp wrote it, migrate
    /// it, reconcile the agent list, load the live state, and start the writer thread.
    pub(crate) fn open(
        path: &Path,
        opts: StoreOptions,
        agents: &[(String, String)],
        now: &str,
    ) -> Result<(Store, Snapshot), StoreError> {
        let mut conn = open_connection(path, opts.durability)?;
        super::convert::convert_if_reference(&mut conn, path, agents, now)?;
        migrate::run(&mut conn, now)?;
        load::sync_agents(&mut conn, agents, now)?;
        let snapshot = load::load_open_work(&conn, &Shards::All)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;

        let file = FileWatch::new(path)?;
        let engine = Box::new(SqliteEngine { conn, file });
        let reads = ReadSide::Sqlite(SqliteReaders::new(path));
        Ok((Store::start(engine, reads, opts, None)?, snapshot))
    }

    /// Start the writer thread on `engine`, reads going to `reads`; in cluster mode
    /// with the node's `ownership`, whose term the writer checks each op against.
    pub(crate) fn start(
        engine: Box<dyn Engine>,
        reads: ReadSide,
        opts: StoreOptions,
        ownership: Option<Arc<Ownership>>,
    ) -> Result<Store, StoreError> {
        let writer_ownership = ownership.clone();
        let term = ownership.as_ref().map_or(0, |o| o.term());
        let (tx, rx) = mpsc::channel();
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let events = Arc::new(crate::events::EventBus::default());
        let writer_events = events.clone();
        let gate = Arc::new(super::group::Gate::default());
        let writer_gate = gate.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                Writer {
                    engine,
                    rx,
                    progress: progress_tx,
                    max_ops: opts.max_ops,
                    window: opts.window,
                    health: Health::Ok,
                    min_generation: 0,
                    events: writer_events,
                    ownership: writer_ownership,
                    batcher: Batcher::new(writer_gate),
                }
                .run()
            })
            .map_err(|e| StoreError::Io {
                path: "store-writer thread".into(),
                source: e,
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Mutex::new((0, tx)),
                progress: progress_rx,
                id: {
                    static NEXT_STORE: AtomicU64 = AtomicU64::new(0);
                    NEXT_STORE.fetch_add(1, Ordering::Relaxed)
                },
                durability: opts.durability,
                thread: Mutex::new(Some(thread)),
                reads,
                latest_generation: AtomicU64::new(0),
                events,
                ownership,
                gate,
            }),
            generation: 0,
            term,
        })
    }

    /// Queue `op` for the writer. Never blocks on disk.
    pub(crate) fn enqueue(&self, op: Op) -> Ticket {
        let mut guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 += 1;
        let seq = guard.0;
        if guard
            .1
            .send(Msg::Op(seq, self.generation, self.term, op))
            .is_err()
        {
            // The writer is gone (shutdown or crash); waiters see `closed`.
            tracing::error!(seq, "store writer is not running; write dropped");
        }
        Ticket(seq)
    }

    /// In durable mode, wait until `ticket` is committed. In fast mode, return at once
    /// unless writes are refused now: then the write is refused too, as in durable
    /// mode (fast mode never acknowledges a write into a store known to be failing).
    pub(crate) async fn wait_durable(&self, ticket: Ticket) -> Result<(), StoreError> {
        if ticket == Ticket::NONE {
            return Ok(());
        }
        if self.inner.durability == Durability::Fast {
            return self.write_health();
        }
        self.wait_committed(ticket).await
    }

    /// Wait until `ticket` is committed, whatever the durability mode. A ticket that
    /// was failed (a storage fault) or dropped (its hub was replaced) is an error; one
    /// committed before its hub was replaced is not.
    pub(crate) async fn wait_committed(&self, ticket: Ticket) -> Result<(), StoreError> {
        self.wait_done(ticket, |p| {
            if p.lost(ticket.0) {
                Err(StoreError::WriterFailed)
            } else if p.stale.contains(ticket.0) {
                Err(StoreError::Replaced)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Wait until the writer is done with `ticket`, saved or not, then answer with
    /// `check` of its progress (read in place: every answer passes here, and the
    /// progress holds lists not worth cloning each time).
    async fn wait_done<F: FnOnce(&Progress) -> Result<(), StoreError>>(
        &self,
        ticket: Ticket,
        check: F,
    ) -> Result<(), StoreError> {
        let finished = |p: &Progress| p.done >= ticket.0 || p.closed;
        // Done with the ticket, or closed before it.
        let answer = |p: &Progress, check: F| {
            if p.done >= ticket.0 {
                check(p)
            } else {
                Err(StoreError::Closed)
            }
        };
        let Some(relay) = relay::local(self.inner.id, &self.inner.progress) else {
            let mut rx = self.inner.progress.clone();
            let p = rx
                .wait_for(finished)
                .await
                .map_err(|_| StoreError::Closed)?;
            return answer(&p, check);
        };
        loop {
            // Registered before the progress is read, so a change in between wakes it.
            let changed = relay.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let p = self.inner.progress.borrow();
                if finished(&p) {
                    return answer(&p, check);
                }
            }
            if relay.ended.get() {
                return Err(StoreError::Closed);
            }
            changed.await;
        }
    }

    /// Wait until everything queued so far is done with, saved or not: what an
    /// answer that wrote nothing itself waits for, so that it never reports a write
    /// the store might still lose. During a storage fault this still returns (reads
    /// go on); what was not saved is then dropped from memory by the hub's rebuild.
    pub(crate) async fn settled(&self) -> Result<(), StoreError> {
        // Not inside a logged call's group: its end waits for all (see `group`).
        if super::group::in_group() {
            return Ok(());
        }
        self.wait_done(self.barrier(), |p| {
            if self.generation < p.min_generation {
                Err(StoreError::Replaced)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// `Ok` while writes are being saved; the reason while they are refused.
    pub(crate) fn write_health(&self) -> Result<(), StoreError> {
        let p = self.inner.progress.borrow();
        if self.generation < p.min_generation {
            Err(StoreError::Replaced)
        } else if let Some(why) = &p.refusing {
            Err(StoreError::Refusing(why.clone()))
        } else if p.closed {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// The stream of committed audit events.
    pub(crate) fn events(&self) -> &Arc<crate::events::EventBus> {
        &self.inner.events
    }

    /// Changes of the writer's health, for the hub's supervisor.
    pub(crate) fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.progress.clone()
    }

    /// A handle of the next generation. Nothing changes until it is adopted.
    pub(crate) fn next_generation(&self) -> Store {
        let generation = self.inner.latest_generation.fetch_add(1, Ordering::SeqCst) + 1;
        Store {
            inner: self.inner.clone(),
            generation,
            term: self.inner.ownership.as_ref().map_or(0, |o| o.term()),
        }
    }

    /// The epoch of every shard held, for lock fencing tokens (every shard at
    /// [`Epoch::SINGLE_NODE`](crate::domain::shard::Epoch::SINGLE_NODE) on SQLite).
    /// Read after this handle's term: if a shard changed epoch since, the term
    /// moved too and nothing this handle's hub computes is written.
    pub(crate) fn shard_epochs(&self) -> crate::domain::shard::ShardEpochs {
        match &self.inner.ownership {
            None => Default::default(),
            Some(o) => crate::domain::shard::ShardEpochs::from_held(&o.held()),
        }
    }

    /// The ownership term this handle writes under (0 on SQLite).
    pub(crate) fn term(&self) -> u64 {
        self.term
    }

    /// Ask the writer to probe now if it refuses writes (cluster mode: the node holds
    /// its shards again, and the probe's backoff may have grown while it stood by).
    pub(crate) fn nudge(&self) {
        let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = guard.1.send(Msg::Probe);
    }

    /// Make this handle's generation the oldest whose ops are written: ops queued
    /// after this call by older handles are dropped unsaved (their callers get
    /// [`StoreError::Replaced`]). If a probe found the storage fault cleared, writing
    /// resumes from here. Called by the hub's supervisor once it has rebuilt the
    /// actors from disk, so that no op computed from unsaved memory is ever written.
    pub(crate) fn adopt(&self) {
        let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1.send(Msg::Adopt(self.generation)).is_err() {
            tracing::error!("store writer is not running; generation not adopted");
        }
    }

    /// Run `f` on a read-only connection once everything queued before this call is
    /// committed, so that it sees every write already answered (in either mode). The
    /// query runs on tokio's blocking pool, never on an actor's or a worker's thread.
    /// Keep `f` to one short statement or transaction: a long reader holds back WAL
    /// checkpoints. Only the store's modules call it: the rest of the crate reads
    /// through [`super::reads::Reads`], which names each query.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.settled().await?;
        let ReadSide::Sqlite(sqlite) = &self.inner.reads else {
            return Err(StoreError::NotOnPostgres(
                "this works on the SQLite file; use PostgreSQL's own tools (pg_dump, VACUUM)",
            ));
        };
        let slot = sqlite
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let ReadSide::Sqlite(sqlite) = &inner.reads else {
                return Err(StoreError::Closed);
            };
            let conn = sqlite.take_reader()?;
            let out = f(&conn);
            sqlite.give_back(conn);
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Where this store's reads go.
    pub(super) fn read_side(&self) -> &ReadSide {
        &self.inner.reads
    }

    /// PostgreSQL's read pool (cluster mode); `None` on SQLite.
    fn pg_pool(&self) -> Option<&crate::store::pg::Pool> {
        match &self.inner.reads {
            ReadSide::Postgres(pool) => Some(pool),
            ReadSide::Sqlite(_) => None,
        }
    }

    /// Whether this store is PostgreSQL (cluster mode), not a SQLite file.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.inner.reads, ReadSide::Postgres(_))
    }

    /// Where a group waits before it opens (see [`super::group::Gate`]).
    pub(crate) fn group_gate(&self) -> &super::group::Gate {
        &self.inner.gate
    }

    /// Open a group of ops (see [`Op::Begin`]); close it with [`Store::end_group`].
    /// Past the [`Store::group_gate`] only (`group::before_write`).
    pub(crate) fn begin_group(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let group = NEXT.fetch_add(1, Ordering::Relaxed);
        self.enqueue(Op::Begin(group));
        group
    }

    /// Close `group`, logging a forwarded call's answer with it (PostgreSQL).
    pub(crate) fn end_group(&self, group: u64, logged: Option<super::op::LoggedReply>) -> Ticket {
        self.enqueue(Op::End { group, logged })
    }

    /// Spread placement: the deliveries other nodes left in the outbox for agents
    /// of `shards`, or for `agent` alone (see `actors::hub::outbox`); none on
    /// SQLite, whose one hub serves every agent.
    pub(crate) async fn outbox(
        &self,
        shards: &[crate::domain::shard::ShardId],
        agent: Option<&str>,
    ) -> Result<Vec<super::reads::postgres::mail::Outboxed>, StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok(Vec::new());
        };
        let client = pool.get().await.map_err(super::pg::PgError::from)?;
        Ok(super::reads::postgres::mail::outbox(&client, shards, agent).await?)
    }

    /// Spread placement: the unread messages and bytes of `agent`'s inbox as
    /// stored (see `reads::postgres::mail::inbox_size`); none on SQLite.
    pub(crate) async fn inbox_size(&self, agent: &str) -> Result<(u64, u64), StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok((0, 0));
        };
        let client = pool.get().await.map_err(super::pg::PgError::from)?;
        Ok(super::reads::postgres::mail::inbox_size(&client, agent).await?)
    }

    /// Spread placement: how many live locks `agent` holds in the shards other
    /// than `held` (this node's); 0 on SQLite.
    pub(crate) async fn locks_elsewhere(
        &self,
        agent: &str,
        held: &[crate::domain::shard::ShardId],
    ) -> Result<usize, StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok(0);
        };
        let client = pool.get().await.map_err(super::pg::PgError::from)?;
        Ok(super::reads::postgres::mail::locks_elsewhere(&client, agent, held).await?)
    }

    /// Spread placement: how many tasks are stored, in every shard (the
    /// `tasks` counter the writers keep); `None` on SQLite.
    pub(crate) async fn stored_task_count(&self) -> Result<Option<usize>, StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok(None);
        };
        let client = pool.get().await.map_err(super::pg::PgError::from)?;
        Ok(Some(
            super::reads::postgres::activation::count_tasks(&client).await?,
        ))
    }

    /// Spread placement: the deliveries written with their message and not yet
    /// made by the recipient's node (`delivery_outbox`); 0 on SQLite.
    pub(crate) async fn outbox_len(&self) -> Result<u64, StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok(0);
        };
        let client = pool.get().await.map_err(super::pg::PgError::from)?;
        Ok(super::reads::postgres::mail::outbox_len(&client).await?)
    }

    /// Spread placement: take one of `agent`'s units of `quota` for `item` (of
    /// the task of shard `shard`) in the cluster-wide count (see `pg::quota`);
    /// `None` on SQLite, whose one hub counts them all in memory.
    pub(crate) async fn take_quota(
        &self,
        quota: super::pg::quota::Quota,
        (agent, item): (&str, &str),
        shard: crate::domain::shard::ShardId,
        max: u32,
    ) -> Result<Option<super::pg::quota::Taken>, StoreError> {
        let Some(pool) = self.pg_pool() else {
            return Ok(None);
        };
        let mut client = pool.get().await.map_err(super::pg::PgError::from)?;
        let shard = i32::from(shard.0);
        let taken = super::pg::quota::take(&mut client, quota, (agent, item), shard, max).await?;
        Ok(Some(taken))
    }

    /// Give back the unit [`Store::take_quota`] took for `item`, whose item was
    /// not written.
    pub(crate) async fn give_back_quota(
        &self,
        quota: super::pg::quota::Quota,
        (agent, item): (&str, &str),
    ) -> Result<(), StoreError> {
        if let Some(pool) = self.pg_pool() {
            let client = pool.get().await.map_err(super::pg::PgError::from)?;
            super::pg::quota::give_back(&client, quota, (agent, item)).await?;
        }
        Ok(())
    }

    /// The answer logged under `key` (`request_log`); always none on SQLite,
    /// which serves no forwarded calls.
    pub(crate) async fn logged_reply(&self, key: &str) -> Result<Option<String>, StoreError> {
        match &self.inner.reads {
            ReadSide::Sqlite(_) => Ok(None),
            ReadSide::Postgres(pool) => Ok(super::pg::replies::lookup(pool, key).await?),
        }
    }

    /// Delete the logged answers past their time (PostgreSQL; a no-op on SQLite).
    pub(crate) async fn prune_replies(&self) -> Result<u64, StoreError> {
        match &self.inner.reads {
            ReadSide::Sqlite(_) => Ok(0),
            ReadSide::Postgres(pool) => Ok(super::pg::replies::prune(pool).await?),
        }
    }

    /// A ticket covering every op queued so far: waiting for it makes an answer that
    /// wrote nothing itself (say, "already sent") wait until what it reports is saved.
    pub(crate) fn barrier(&self) -> Ticket {
        Ticket(self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    /// Ops queued and not yet done by the writer, and the storage faults so far
    /// (for the metrics: one short lock of the queue, not on a hot path).
    pub(crate) fn queue_and_faults(&self) -> (u64, u64) {
        let next = self.barrier().0;
        let p = self.inner.progress.borrow();
        (next.saturating_sub(p.done), p.faults)
    }

    /// Highest sequence number the writer is done with (for tests and logs).
    pub(crate) fn committed(&self) -> u64 {
        self.inner.progress.borrow().done
    }

    /// Commit everything queued so far and stop the writer. Blocking; call once at
    /// the end of shutdown.
    pub(crate) fn shutdown(&self) {
        // Idle readers closed first, so that the writer's close can checkpoint the
        // whole WAL into the database file.
        if let ReadSide::Sqlite(sqlite) = &self.inner.reads {
            sqlite
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        {
            let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
            let _ = guard.1.send(Msg::Shutdown);
        }
        let handle = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("store writer panicked during shutdown");
            }
        }
    }
}

/// One queued op: its sequence number, its handle's generation, the op.
/// One queued op: its sequence number, its handle's generation and term, the op.
type Queued = (u64, u64, u64, Op);

/// What ended the collection of a batch, besides its size.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    /// Nothing: the batch is full, or nothing more was queued in time.
    None,
    /// Nothing arrived before the probe was due.
    Timeout,
    /// A new generation is adopted (after the ops of the batch).
    Adopt(u64),
    /// A probe is asked for now.
    Probe,
    /// Shutdown was requested, or every sender is gone.
    Stop,
}

/// Collect one batch: wait for the first message (at most `idle`, if given), then
/// take what is queued. Returns the ops (sequence, generation, op) and what ended it.
fn next_batch(
    rx: &mpsc::Receiver<Msg>,
    max_ops: usize,
    window: Duration,
    idle: Option<Duration>,
) -> (Vec<Queued>, Control) {
    let mut batch = Vec::new();
    let first = match idle {
        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        Some(d) => rx.recv_timeout(d),
    };
    match first {
        Ok(Msg::Op(seq, g, t, op)) => batch.push((seq, g, t, op)),
        Ok(Msg::Adopt(g)) => return (batch, Control::Adopt(g)),
        Ok(Msg::Probe) => return (batch, Control::Probe),
        Err(mpsc::RecvTimeoutError::Timeout) => return (batch, Control::Timeout),
        Ok(Msg::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            return (batch, Control::Stop)
        }
    }
    let deadline = Instant::now() + window;
    while batch.len() < max_ops {
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(mpsc::TryRecvError::Disconnected) => return (batch, Control::Stop),
            Err(mpsc::TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return (batch, Control::Stop),
                }
            }
        };
        match msg {
            Msg::Op(seq, g, t, op) => batch.push((seq, g, t, op)),
            Msg::Adopt(g) => return (batch, Control::Adopt(g)),
            Msg::Probe => return (batch, Control::Probe),
            Msg::Shutdown => return (batch, Control::Stop),
        }
    }
    (batch, Control::None)
}

/// Batches as [`next_batch`] collects them, cut only where no group is open (see
/// [`Op::Begin`]): the ops after the last such point wait for the next batch, so a
/// group's ops are committed together or not at all.
#[derive(Default)]
struct Batcher {
    /// Ops after the last cut: the next batch starts with them.
    carry: Vec<Queued>,
    /// Since when `carry` has waited for its group to close.
    since: Option<Instant>,
    /// Closed once ops were held back for [`DRAIN_AFTER`], open again at a cut
    /// that holds nothing back.
    gate: Arc<super::group::Gate>,
}

/// How long the writer holds ops back for open groups before it stops new ones
/// from opening until it can commit.
const DRAIN_AFTER: Duration = Duration::from_millis(2);

/// How long the writer waits for an open group to close before it commits what it
/// holds anyway (a group closes as soon as its call is answered: never, only if a
/// bug lost its end).
const GROUP_WAIT: Duration = Duration::from_secs(5);

impl Batcher {
    fn new(gate: Arc<super::group::Gate>) -> Batcher {
        Batcher {
            gate,
            ..Batcher::default()
        }
    }

    fn next(
        &mut self,
        rx: &mpsc::Receiver<Msg>,
        max_ops: usize,
        window: Duration,
        idle: Option<Duration>,
    ) -> (Vec<Queued>, Control) {
        let mut batch = std::mem::take(&mut self.carry);
        let waited = self.since.take();
        // Holding ops back: wait for more no longer than the group may stay open,
        // nor past the moment to close the gate.
        let idle = match waited {
            Some(t) => {
                let drain = if self.gate.is_closed() {
                    GROUP_WAIT
                } else {
                    DRAIN_AFTER
                };
                let left = drain.min(GROUP_WAIT).saturating_sub(t.elapsed());
                Some(idle.map_or(left, |i| i.min(left)))
            }
            None => idle,
        };
        // Held ops do not count against the batch size: the group they wait for
        // may be among the next `max_ops`.
        let (more, control) = next_batch(rx, max_ops, window, idle);
        batch.extend(more);
        // Shutdown, a new generation, a probe: everything goes now (a group split
        // there is written or dropped with the rest).
        if !matches!(control, Control::None | Control::Timeout) {
            self.gate.open();
            return (batch, control);
        }
        let cut = safe_cut(&batch);
        if cut == batch.len() {
            self.gate.open();
            return (batch, control);
        }
        if cut == 0 && waited.is_some_and(|t| t.elapsed() >= GROUP_WAIT) {
            tracing::error!(
                ops = batch.len(),
                "a group of writes stayed open for 5 s; committing what is queued"
            );
            self.gate.open();
            return (batch, control);
        }
        self.carry = batch.split_off(cut);
        let since = if cut == 0 {
            waited.unwrap_or_else(Instant::now)
        } else {
            Instant::now()
        };
        if since.elapsed() >= DRAIN_AFTER {
            self.gate.close();
        }
        self.since = Some(since);
        (batch, control)
    }
}

/// The length of the longest prefix of `batch` that leaves no group open.
fn safe_cut(batch: &[Queued]) -> usize {
    let mut open = std::collections::HashSet::new();
    let mut cut = 0;
    for (i, (_, _, _, op)) in batch.iter().enumerate() {
        match op {
            Op::Begin(g) => {
                open.insert(*g);
            }
            Op::End { group, .. } => {
                open.remove(group);
            }
            _ => {}
        }
        if open.is_empty() {
            cut = i + 1;
        }
    }
    cut
}

/// Apply and commit one batch. Returns the vacuum it asked for, if any (run by the
/// caller once the commit is published: `Some(true)` a full one).
pub(crate) fn commit_batch(conn: &mut Connection, ops: &[&Op]) -> rusqlite::Result<Option<bool>> {
    let tx = conn.transaction()?;
    apply::apply_batch(&tx, ops.iter().copied())?;
    tx.commit()?;
    Ok(ops
        .iter()
        .filter_map(|op| match op {
            Op::Vacuum { full } => Some(*full),
            _ => None,
        })
        .reduce(|a, b| a || b))
}

/// The single-node engine: the SQLite file, watched for deletion or replacement.
struct SqliteEngine {
    conn: Connection,
    file: FileWatch,
}

impl Engine for SqliteEngine {
    fn commit(&mut self, ops: &[&Op]) -> Result<Committed, String> {
        let vacuum = commit_batch(&mut self.conn, ops).map_err(|e| e.to_string())?;
        Ok(Committed { vacuum })
    }

    fn probe(&mut self) -> Result<(), String> {
        probe(&mut self.conn).map_err(|e| e.to_string())
    }

    fn vacuum(&mut self, full: bool) {
        vacuum(&self.conn, full)
    }

    fn lost(&self) -> Option<String> {
        self.file.changed()
    }

    fn rescue(&mut self) -> Option<PathBuf> {
        self.file.rescue(&self.conn)
    }
}

/// A write that proves the store takes writes again (a page through the WAL and an
/// fsync), without touching any data.
fn probe(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO hub_meta (name, value) VALUES ('write_probe', ?1)",
        [crate::domain::time::iso(chrono::Utc::now())],
    )?;
    tx.commit()
}

/// Free pages back to the file system. A failure loses nothing (the data is
/// committed): it is logged, and the file keeps its size.
fn vacuum(conn: &Connection, full: bool) {
    let started = Instant::now();
    let run = || -> rusqlite::Result<()> {
        if full {
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
            // VACUUM in WAL mode writes the new file through the WAL: empty it.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        } else {
            // One row per freed page: step through all of them.
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
        Ok(())
    };
    match run() {
        Ok(()) => tracing::info!(
            full,
            ms = started.elapsed().as_millis() as u64,
            "vacuum done"
        ),
        Err(e) => tracing::warn!(error = %e, full, "vacuum failed; the file keeps its size"),
    }
}

/// The database file's identity, compared before each batch: a file deleted or
/// replaced under the server must not "heal" into a new empty database.
struct FileWatch {
    path: PathBuf,
    id: (u64, u64),
}

impl FileWatch {
    fn new(path: &Path) -> Result<FileWatch, StoreError> {
        let id = Self::identity(path).map_err(|e| StoreError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok(FileWatch {
            path: path.to_path_buf(),
            id,
        })
    }

    fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok((m.dev(), m.ino()))
    }

    /// `None` while the path is still the file we opened; else what happened.
    fn changed(&self) -> Option<String> {
        match Self::identity(&self.path) {
            Ok(id) if id == self.id => None,
            Ok(_) => Some(format!(
                "{} was replaced by another file",
                self.path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{} was deleted", self.path.display()))
            }
            // Not readable now (a permission change, say): not proof of a new file.
            Err(_) => None,
        }
    }

    /// Save what the open connection still holds of the lost file: beside it, or in
    /// the temporary directory when its directory is gone too.
    fn rescue(&self, conn: &Connection) -> Option<PathBuf> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let name = format!(
            "{}.recovered-{stamp}",
            self.path.file_name()?.to_string_lossy()
        );
        let beside = self.path.with_file_name(&name);
        let candidates = [beside, std::env::temp_dir().join(&name)];
        for target in candidates {
            let to = target.display().to_string();
            match conn.execute("VACUUM INTO ?1", [&to]) {
                Ok(_) => return Some(target),
                Err(e) => tracing::warn!(error = %e, to, "could not save the database there"),
            }
        }
        None
    }
}

/// The writer thread's state.
struct Writer {
    /// The database: SQLite's file, or PostgreSQL (`pg::writer`).
    engine: Box<dyn Engine>,
    rx: mpsc::Receiver<Msg>,
    progress: watch::Sender<Progress>,
    max_ops: usize,
    window: Duration,
    health: Health,
    /// Ops of older generations are dropped.
    min_generation: u64,
    /// Where committed audit rows are published (`/operator/events`).
    events: Arc<crate::events::EventBus>,
    /// Cluster mode: the node's shards, whose term each op must still have.
    ownership: Option<Arc<Ownership>>,
    batcher: Batcher,
}

impl Writer {
    fn run(mut self) {
        let mut next_probe = Instant::now();
        loop {
            let idle = match self.health {
                Health::Faulted { .. } => {
                    Some(next_probe.saturating_duration_since(Instant::now()))
                }
                _ => None,
            };
            let (batch, control) = self.batcher.next(&self.rx, self.max_ops, self.window, idle);
            let was_ok = self.health == Health::Ok;
            self.write(batch);
            match self.health {
                // Faulted in this batch: the first probe after FIRST_BACKOFF.
                Health::Faulted { backoff } if was_ok => next_probe = Instant::now() + backoff,
                Health::Faulted { backoff } if Instant::now() >= next_probe => {
                    next_probe = Instant::now() + self.probe(backoff);
                }
                _ => {}
            }
            match control {
                Control::Adopt(g) => self.adopt(g),
                Control::Probe => {
                    if let Health::Faulted { .. } = self.health {
                        next_probe = Instant::now() + self.probe(FIRST_BACKOFF);
                    }
                }
                Control::Stop => break,
                Control::None | Control::Timeout => {}
            }
        }
        self.progress.send_modify(|p| p.closed = true);
    }

    /// Write one batch, or fail it: stale ops are dropped, and while writes are
    /// refused every other op is failed.
    fn write(&mut self, batch: Vec<Queued>) {
        let Some(last) = batch.last().map(|b| b.0) else {
            return;
        };
        let min = self.min_generation;
        let (live, stale): (Vec<&Queued>, Vec<&Queued>) =
            batch.iter().partition(|(_, g, _, _)| *g >= min);
        if !stale.is_empty() {
            self.progress.send_modify(|p| {
                for (seq, _, _, _) in &stale {
                    p.stale.add(*seq, *seq);
                }
            });
        }
        // Cluster mode: ops of a hub loaded before the node last lost a shard fail,
        // unwritten (their hub is being replaced by one loaded from the store).
        let live: Vec<&Queued> = match self.ownership.as_ref().map(|o| o.term()) {
            None => live,
            Some(now) => {
                let (current, old): (Vec<&Queued>, Vec<&Queued>) =
                    live.into_iter().partition(|(_, _, t, _)| *t == now);
                if !old.is_empty() {
                    self.progress.send_modify(|p| {
                        for (seq, _, _, _) in &old {
                            p.fail(*seq, *seq);
                        }
                    });
                }
                current
            }
        };
        if self.health == Health::Ok && !live.is_empty() {
            if let Some(why) = self.engine.lost() {
                self.fatal(why);
            }
        }
        let Some(first) = live.first().map(|b| b.0) else {
            self.progress.send_modify(|p| p.done = last);
            return;
        };
        if self.health != Health::Ok {
            self.progress.send_modify(|p| {
                p.fail(first, last);
                p.done = last;
            });
            return;
        }
        let ops: Vec<&Op> = live.iter().map(|(_, _, _, op)| op).collect();
        // A failing commit is retried a few times (a transient SQLITE_BUSY from an
        // operator's sqlite3 shell, say) before the store counts as faulted.
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            match self.engine.commit(&ops) {
                Ok(Committed { vacuum }) => {
                    crate::metrics::get().commit(ops.len(), started.elapsed());
                    // Published first: readers and waiters go on; later ops
                    // wait for the vacuum, which runs on this thread.
                    self.progress.send_modify(|p| p.done = last);
                    // Committed: what the operator watches goes to the event stream.
                    for draft in ops.iter().filter_map(|op| crate::events::of_op(op)) {
                        self.events.publish(draft);
                    }
                    if let Some(full) = vacuum {
                        self.engine.vacuum(full);
                    }
                    return;
                }
                Err(e) if attempt < 5 => {
                    crate::metrics::get().commit_failed();
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "commit failed; retrying");
                    std::thread::sleep(Duration::from_millis(50 * attempt));
                }
                Err(e) => {
                    crate::metrics::get().commit_failed();
                    tracing::error!(error = %e, ops = ops.len(), "commit failed; refusing writes until a probe write succeeds");
                    self.health = Health::Faulted {
                        backoff: FIRST_BACKOFF,
                    };
                    self.progress.send_modify(|p| {
                        p.fail(first, last);
                        p.done = last;
                        p.faults += 1;
                        p.refusing = Some(format!("a commit failed: {e}"));
                    });
                    return;
                }
            }
        }
    }

    /// Try one write; returns the wait before the next probe if it failed.
    fn probe(&mut self, backoff: Duration) -> Duration {
        if let Some(why) = self.engine.lost() {
            self.fatal(why);
            return backoff;
        }
        match self.engine.probe() {
            Ok(()) => {
                tracing::warn!(
                    "storage takes writes again; rebuilding live state from disk before resuming"
                );
                self.health = Health::Healed;
                self.progress.send_modify(|p| {
                    p.healed += 1;
                    p.refusing = Some("recovering from a storage fault".into());
                });
                backoff
            }
            Err(e) => {
                let next = next_backoff(backoff);
                tracing::warn!(error = %e, retry_in_s = next.as_secs(), "storage still failing");
                self.health = Health::Faulted { backoff: next };
                next
            }
        }
    }

    fn adopt(&mut self, generation: u64) {
        self.min_generation = self.min_generation.max(generation);
        let resume = self.health == Health::Healed;
        if resume {
            self.health = Health::Ok;
            tracing::warn!(generation, "writes resumed");
        }
        let min = self.min_generation;
        self.progress.send_modify(|p| {
            p.min_generation = min;
            if resume {
                p.refusing = None;
            }
        });
    }

    /// The file is gone or replaced: save what the connection holds, refuse writes
    /// for good.
    fn fatal(&mut self, why: String) {
        let saved = self.engine.rescue();
        match &saved {
            Some(to) => {
                tracing::error!(%why, saved_to = %to.display(), "the database file changed under the server; writes are refused until restart")
            }
            None => {
                tracing::error!(%why, "the database file changed under the server and its contents could not be saved; writes are refused until restart")
            }
        }
        self.health = Health::Fatal;
        let reason = match saved {
            Some(to) => format!(
                "{why}; what the server held was saved to {}; restart it",
                to.display()
            ),
            None => format!("{why}; restart the server"),
        };
        self.progress.send_modify(|p| {
            p.fatal = true;
            p.refusing = Some(reason);
        });
    }
}

mod engine;
mod health;
mod relay;

pub(crate) use engine::{Committed, Engine};

#[cfg(test)]
mod tests;
