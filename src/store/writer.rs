//! The writer thread and the [`Store`] handle. `hubctl serve` opens the store
//! ([`Store::open`]); every actor holds a clone of the handle and enqueues [`Op`]s.
//!
//! Group commit: the thread blocks for the first op, then keeps taking whatever is
//! already queued (and, if `window` > 0, whatever arrives within `window`) up to
//! `max_ops`, applies them in ONE transaction, commits, and publishes the highest
//! committed sequence number on a `watch` channel. While one commit is being fsync'd,
//! new ops pile up in the channel and share the next commit, so throughput grows with
//! concurrency instead of paying one fsync per call.

use super::{apply, load, migrate, Op, Snapshot, StoreError};
use crate::config::Durability;
use crate::domain::shard::Shards;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
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

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    committed: u64,
    /// A commit failed for good: the first sequence number that was lost. Nothing
    /// from there on is applied, so no later write can be reported saved.
    failed_from: Option<u64>,
    /// The writer has exited.
    closed: bool,
}

// Shutdown is sent once; boxing every op to shrink it would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Op(u64, Op),
    /// Commit everything before this, then exit.
    Shutdown,
}

/// Cheap-to-clone handle held by every actor.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The next sequence number and the sending end of the writer's FIFO channel,
    /// under one lock so that sequence order equals channel order (the writer
    /// publishes "committed up to N" and that is only true if nothing below N is
    /// still behind it in the queue).
    tx: Mutex<(u64, mpsc::Sender<Msg>)>,
    /// Published by the writer after each commit; cloned by each waiter.
    progress: watch::Receiver<Progress>,
    durability: Durability,
    /// The writer thread, joined by [`Store::shutdown`].
    thread: Mutex<Option<JoinHandle<()>>>,
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

impl Inner {
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

fn open_connection(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
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
    /// Open (creating) the database, migrate it, reconcile the agent list, load the
    /// live state, and start the writer thread.
    pub(crate) fn open(
        path: &Path,
        opts: StoreOptions,
        agents: &[(String, String)],
        now: &str,
    ) -> Result<(Store, Snapshot), StoreError> {
        let mut conn = open_connection(path, opts.durability)?;
        migrate::run(&mut conn, now)?;
        load::sync_agents(&mut conn, agents, now)?;
        let snapshot = load::load_open_work(&conn, &Shards::All)?;

        let (tx, rx) = mpsc::channel();
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, progress_tx, opts.max_ops, opts.window))
            .map_err(|e| StoreError::Io {
                path: "store-writer thread".into(),
                source: e,
            })?;
        let store = Store {
            inner: Arc::new(Inner {
                tx: Mutex::new((0, tx)),
                progress: progress_rx,
                durability: opts.durability,
                thread: Mutex::new(Some(thread)),
                path: path.to_path_buf(),
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            }),
        };
        Ok((store, snapshot))
    }

    /// Queue `op` for the writer. Never blocks on disk.
    pub(crate) fn enqueue(&self, op: Op) -> Ticket {
        let mut guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 += 1;
        let seq = guard.0;
        if guard.1.send(Msg::Op(seq, op)).is_err() {
            // The writer is gone (shutdown or crash); waiters see `closed`.
            tracing::error!(seq, "store writer is not running; write dropped");
        }
        Ticket(seq)
    }

    /// In durable mode, wait until `ticket` is committed. In fast mode, return at once.
    pub(crate) async fn wait_durable(&self, ticket: Ticket) -> Result<(), StoreError> {
        if ticket == Ticket::NONE {
            return Ok(());
        }
        if self.inner.durability == Durability::Fast {
            return Ok(());
        }
        self.wait_committed(ticket).await
    }

    /// Wait until `ticket` is committed, whatever the durability mode.
    pub(crate) async fn wait_committed(&self, ticket: Ticket) -> Result<(), StoreError> {
        let mut rx = self.inner.progress.clone();
        let lost = |p: &Progress| p.failed_from.is_some_and(|f| ticket.0 >= f);
        let p = *rx
            .wait_for(|p| lost(p) || p.committed >= ticket.0 || p.closed)
            .await
            .map_err(|_| StoreError::Closed)?;
        if lost(&p) {
            Err(StoreError::WriterFailed)
        } else if p.committed >= ticket.0 {
            Ok(())
        } else {
            Err(StoreError::Closed)
        }
    }

    /// Run `f` on a read-only connection once everything queued before this call is
    /// committed, so that it sees every write already answered (in either mode). The
    /// query runs on tokio's blocking pool, never on an actor's or a worker's thread.
    /// Keep `f` to one short statement or transaction: a long reader holds back WAL
    /// checkpoints.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.wait_committed(self.barrier()).await?;
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let conn = inner.take_reader()?;
            let out = f(&conn);
            inner.give_back(conn);
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// One task with everything under it, as committed (after every write queued
    /// before this call): how a task that is not live enters its actor again.
    /// `None` if no such task is stored.
    pub(crate) async fn load_task(
        &self,
        id: &str,
    ) -> Result<Option<crate::domain::workflow::TaskState>, StoreError> {
        use super::load_tasks::{load_tasks, Scope};
        let id = id.to_string();
        let mut found = self.read(move |c| load_tasks(c, Scope::Task(&id))).await?;
        Ok(found.pop())
    }

    /// One active agent with its unread deliveries, as committed; `None` if it is not
    /// an active agent. See [`load::load_agent`].
    #[cfg_attr(not(test), allow(dead_code))] // used by reload (operations) and cluster mode
    pub(crate) async fn load_agent(
        &self,
        id: &str,
    ) -> Result<Option<(super::AgentRow, super::MailState)>, StoreError> {
        let id = id.to_string();
        self.read(move |c| load::load_agent(c, &id)).await
    }

    /// A ticket covering every op queued so far: waiting for it makes an answer that
    /// wrote nothing itself (say, "already sent") wait until what it reports is saved.
    pub(crate) fn barrier(&self) -> Ticket {
        Ticket(self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    /// Highest committed sequence number (for tests and status).
    pub(crate) fn committed(&self) -> u64 {
        self.inner.progress.borrow().committed
    }

    /// Commit everything queued so far and stop the writer. Blocking; call once at
    /// the end of shutdown.
    pub(crate) fn shutdown(&self) {
        // Idle readers closed first, so that the writer's close can checkpoint the
        // whole WAL into the database file.
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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

/// Collect one batch: block for the first message, then take what is queued.
/// Returns the ops and whether a shutdown was requested (or every sender is gone).
fn next_batch(
    rx: &mpsc::Receiver<Msg>,
    max_ops: usize,
    window: Duration,
) -> (Vec<(u64, Op)>, bool) {
    let mut batch = Vec::new();
    match rx.recv() {
        Ok(Msg::Op(seq, op)) => batch.push((seq, op)),
        Ok(Msg::Shutdown) | Err(_) => return (batch, true),
    }
    let deadline = Instant::now() + window;
    while batch.len() < max_ops {
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(mpsc::TryRecvError::Disconnected) => return (batch, true),
            Err(mpsc::TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return (batch, true),
                }
            }
        };
        match msg {
            Msg::Op(seq, op) => batch.push((seq, op)),
            Msg::Shutdown => return (batch, true),
        }
    }
    (batch, false)
}

/// Apply and commit one batch. Returns the vacuum it asked for, if any (run by the
/// caller once the commit is published: `Some(true)` a full one).
fn commit_batch(conn: &mut Connection, batch: &[(u64, Op)]) -> rusqlite::Result<Option<bool>> {
    let tx = conn.transaction()?;
    apply::apply_batch(&tx, batch.iter().map(|(_, op)| op))?;
    tx.commit()?;
    Ok(batch
        .iter()
        .filter_map(|(_, op)| match op {
            Op::Vacuum { full } => Some(*full),
            _ => None,
        })
        .reduce(|a, b| a || b))
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

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Msg>,
    progress: watch::Sender<Progress>,
    max_ops: usize,
    window: Duration,
) {
    let mut failed = false;
    loop {
        let (batch, stop) = next_batch(&rx, max_ops, window);
        if failed {
            // Keep draining so that senders never block, but apply nothing: a later
            // commit would otherwise report lost writes as saved.
            if stop {
                break;
            }
            continue;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (batch.first(), batch.last()) {
            // A failing commit is retried a few times (a transient SQLITE_BUSY from an
            // operator's sqlite3 shell, say); after that the store is marked failed so
            // that no further write is acknowledged as durable.
            let mut attempt = 0;
            loop {
                match commit_batch(&mut conn, &batch) {
                    Ok(vacuum_due) => {
                        // Published first: readers and waiters go on; later ops
                        // wait for the vacuum, which runs on this thread.
                        progress.send_modify(|p| p.committed = last);
                        if let Some(full) = vacuum_due {
                            vacuum(&conn, full);
                        }
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "commit failed; retrying");
                        std::thread::sleep(Duration::from_millis(50 * attempt));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, ops = batch.len(), "commit failed; no further write will be saved until restart");
                        progress.send_modify(|p| p.failed_from = Some(first));
                        failed = true;
                        break;
                    }
                }
            }
        }
        if stop {
            break;
        }
    }
    progress.send_modify(|p| p.closed = true);
}

#[cfg(test)]
mod tests;
