//! This process as a node of a PostgreSQL-backed hub (cluster.md §2): its
//! registration, the shard leases it holds, and the loop that keeps them.
//!
//! Two placements ([`Placement`]). **Standby** (the default): the node holding
//! all 1024 shards serves; any other node (each with its own id) stands by,
//! forwarding calls to it (`http::gateway`, through the [`Leader`] the loop
//! publishes), and takes every shard over once the active node's leases lapse
//! (it died, or stalled) or are released (a graceful stop, [`Node::hand_over`]).
//! **Spread**: each live node holds the shards rendezvous hashing gives it
//! (`domain::placement`), hands the others to their desired owner, and publishes
//! the shard map gateways route by (see `spread`).
//!
//! At start a node registers: a live node with the same id is refused, and the
//! registration of a previous process of this id that died without leaving is
//! waited out. Then [`Node::keep`] heartbeats, renews what it holds and takes
//! what is free or lapsed, every fifth of the lease ([`Timing`]; every
//! [`STANDBY_POLL`] while standing by, to take over soon after a lapse), and
//! publishes whether the node holds every shard ([`Node::active`]). A node that
//! has not renewed for two thirds of the lease drops every shard before its
//! leases can lapse in the database's clock, and stands by. On a graceful stop it
//! leaves, freeing the shards at once for a standby. On the operator's word
//! ([`Node::move_to`], `hubctl cluster move`) it hands them to a chosen node
//! instead, and stands by.

mod spread;

pub(crate) use spread::ShardMap;

use super::lease::{self, Member};
use super::ownership::Ownership;
use super::{PgError, Pool, ShardId};
pub(crate) use crate::config::Placement;
use crate::domain::shard::SHARD_COUNT;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A node's lease timings, all from how long a lease lasts without renewal
/// (`cluster_lease_ttl_secs`, in the database's clock): the time a `kill -9`
/// failover takes, against how long a stall (a pause, a slow database) a node
/// survives without losing its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub lease_ttl: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_ttl: Duration::from_secs(10),
        }
    }
}

impl Timing {
    /// How long a node's registration lasts without a heartbeat: a lease's.
    pub(crate) fn node_ttl(self) -> Duration {
        self.lease_ttl
    }

    /// How often leases are renewed and the node heartbeats: five times a lease,
    /// so that a renewal or two may fail without any lease lapsing.
    pub(crate) fn renew_every(self) -> Duration {
        self.lease_ttl / 5
    }

    /// Without a successful renewal for this long, the node stops writing: a
    /// third of the lease is left as margin for a renewal in flight and for
    /// clock drift (6.6 s of a 10 s lease).
    pub(crate) fn self_fence_after(self) -> Duration {
        self.lease_ttl * 66 / 100
    }
}

/// How often a standby looks for lapsed or released shards.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(500);
/// After giving its shards up to a node that holds more of them (see
/// [`yields_to`]), a node takes no free shard for this long, so that the other
/// takes them all (it looks every [`STANDBY_POLL`]).
pub(crate) const YIELD_PAUSE: Duration = Duration::from_secs(2);

/// How a node waits for the calls it serves to end (the HTTP layer's admission).
pub(crate) type Drain =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// This node: its registration and the shards it holds.
pub(crate) struct Node {
    pool: Pool,
    /// For the gateway's look-ups (a round's task, say): never the lease loop's
    /// connections, which a burst of reads must not hold up.
    reads: Pool,
    timing: Timing,
    placement: Placement,
    /// Spread placement: each shard's owner as last read (gateways route by it).
    owners: watch::Sender<Arc<ShardMap>>,
    /// Spread placement: the shards the hub in the slot was loaded with.
    loaded: std::sync::Mutex<Vec<ShardId>>,
    /// Spread placement: the live members the last round placed the shards over.
    members: std::sync::Mutex<Vec<String>>,
    /// Spread placement: the shards pinned to a node, as last read.
    pins: std::sync::Mutex<crate::domain::placement::Pins>,
    /// Waits for the calls this node serves (set once the server runs).
    drain: std::sync::OnceLock<Drain>,
    member: Member,
    /// The MCP URL other nodes reach this one at (registered as `nodes.addr`).
    addr: String,
    owned: Arc<Ownership>,
    /// Whether every shard is held, and the ownership term (published by
    /// [`Node::keep`]).
    role: watch::Sender<Role>,
    /// The term of the hub serving now (`u64::MAX`: none): the slot's guard
    /// refuses calls once the ownership term is another one.
    served: AtomicU64,
    /// The node that serves as last seen (itself while active): where a standby
    /// forwards calls (`http::gateway`).
    leader: watch::Sender<Option<Leader>>,
    /// Set by [`Node::leave`]: the loop stops.
    left: std::sync::atomic::AtomicBool,
    /// Set by [`Node::hand_over`]: calls are refused (gateways send them on), and
    /// no shard is taken again; the loop goes on finding the leader.
    retiring: std::sync::atomic::AtomicBool,
    /// Set while [`Node::move_to`] drains the calls in flight: new calls are
    /// refused (gateways send them on, and find the new owner).
    moving: std::sync::atomic::AtomicBool,
    /// One move at a time.
    moves: tokio::sync::Mutex<()>,
    /// Held by each renewal round and by a move's transfer, so that a round never
    /// takes back, from what it read before the transfer, shards that were moved.
    round: tokio::sync::Mutex<()>,
    /// When the last renewal round that succeeded started, in milliseconds since
    /// `epoch` (0: never).
    renewed: AtomicU64,
    /// When this node last gave its shards up to another, as `renewed` (0: never).
    yielded: AtomicU64,
    epoch: Instant,
}

/// Whether a node holding some shards (`owners`: each node's count of shards
/// under a live lease) gives them up: when another node holds more, or as many
/// and has a smaller id. Two nodes whose acquisitions ran side by side split the
/// free shards between them (each takes those the other has not locked yet), and
/// neither would ever hold them all: exactly one of them yields.
/// Returns the node to yield to: the one holding most (the smallest id of those).
pub(crate) fn yields_to<'a>(me: &str, owners: &'a [(String, i64)]) -> Option<&'a str> {
    let mine = owners.iter().find(|o| o.0 == me).map_or(0, |o| o.1);
    let (id, most) = owners
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
    (id != me && (*most > mine || (*most == mine && id.as_str() < me))).then_some(id.as_str())
}

fn all_shards() -> Vec<ShardId> {
    (0..SHARD_COUNT).map(ShardId).collect()
}

impl Node {
    /// Register as `node_id` (reachable at `addr`), waiting out the registration
    /// of a dead previous process of this id. Holds no shard yet: [`Node::keep`]
    /// takes them.
    pub(crate) async fn join(
        pool: Pool,
        reads: Pool,
        node_id: &str,
        addr: &str,
        timing: Timing,
        placement: Placement,
    ) -> Result<Node, PgError> {
        let started = Instant::now();
        let patience = timing.node_ttl() + Duration::from_secs(2);
        let mut told = false;
        let member = loop {
            let client = pool.get().await?;
            match lease::register(
                &client,
                node_id,
                addr,
                timing.node_ttl(),
                placement.as_str(),
            )
            .await
            {
                Ok(m) => break m,
                Err(PgError::NodeIdInUse(_)) if started.elapsed() < patience => {
                    if !told {
                        tracing::warn!(node_id, wait_s = patience.as_secs(), "node id registered by a live or recently stopped process; waiting for its registration to lapse");
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Node {
            pool,
            reads,
            timing,
            placement,
            owners: watch::channel(Arc::new(ShardMap::default())).0,
            loaded: std::sync::Mutex::new(Vec::new()),
            members: std::sync::Mutex::new(Vec::new()),
            pins: std::sync::Mutex::default(),
            drain: std::sync::OnceLock::new(),
            member,
            addr: addr.to_string(),
            owned: Arc::new(Ownership::default()),
            role: watch::channel(Role::default()).0,
            leader: watch::channel(None).0,
            served: AtomicU64::new(u64::MAX),
            left: std::sync::atomic::AtomicBool::new(false),
            retiring: std::sync::atomic::AtomicBool::new(false),
            moving: std::sync::atomic::AtomicBool::new(false),
            moves: tokio::sync::Mutex::new(()),
            round: tokio::sync::Mutex::new(()),
            renewed: AtomicU64::new(0),
            yielded: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Whether the leases may have lapsed: no renewal round succeeded for
    /// [`Timing::self_fence_after`]. Checked on every call, not only by [`Node::keep`]:
    /// a process stopped (SIGSTOP, a VM paused) wakes up with its loop behind, and
    /// must not answer from memory before the loop has found its shards gone.
    pub(crate) fn lapsed(&self) -> bool {
        let at = self.renewed.load(Ordering::Acquire);
        at == 0
            || self.epoch.elapsed().as_millis() as u64
                >= at + self.timing.self_fence_after().as_millis() as u64
    }

    /// Why the hub in the slot must not answer now, if it must not: the leases
    /// may have lapsed ([`Node::lapsed`]), a shard is not held, or one was lost
    /// since that hub was loaded (another node may have written it meanwhile).
    /// Asked on every call (the hub slot's guard), so that no call is answered from
    /// memory between a loss and the supervisor's demotion.
    pub(crate) fn objection(&self) -> Option<String> {
        if self.retiring.load(Ordering::Acquire) {
            return Some("it is stopping and hands its shards over".into());
        }
        if self.moving.load(Ordering::Acquire) {
            return Some("it hands its shards over to another node".into());
        }
        if self.lapsed() {
            return Some("its shard leases were not renewed in time".into());
        }
        match self.placement {
            Placement::Standby if self.owned.count() < usize::from(SHARD_COUNT) => {
                return Some("it does not hold every shard".into());
            }
            Placement::Spread if self.owned.count() == 0 => {
                return Some("it holds no shard".into());
            }
            _ => {}
        }
        if self.owned.term() != self.served.load(Ordering::Acquire) {
            return Some("it lost shards since it loaded its state; reloading".into());
        }
        None
    }

    /// [`Node::objection`] as the hub slot's guard.
    pub(crate) fn guard(self: Arc<Node>) -> crate::http::state::Guard {
        Box::new(move || self.objection())
    }

    /// The hub now in the slot was loaded under ownership term `term`, with
    /// `shards`.
    pub(crate) fn serving(&self, term: u64, shards: Vec<ShardId>) {
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = shards;
        self.served.store(term, Ordering::Release);
    }

    /// The shards a hub loaded now must hold: every shard (standby placement, which
    /// serves only then) or those held (spread placement).
    pub(crate) fn shards_to_load(&self) -> crate::domain::shard::Shards {
        match self.placement {
            Placement::Standby => crate::domain::shard::Shards::All,
            Placement::Spread => crate::domain::shard::Shards::Some(
                self.owned.held().into_iter().map(|(s, _)| s).collect(),
            ),
        }
    }

    /// How the shards are placed.
    pub(crate) fn placement(&self) -> Placement {
        self.placement
    }

    /// How to wait for the calls this node serves, before it hands shards over
    /// or reloads (set once, when the server runs).
    pub(crate) fn set_drain(&self, drain: Drain) {
        let _ = self.drain.set(drain);
    }

    /// Whether this node holds every shard, and the ownership term.
    pub(crate) fn role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Publish the role.
    fn publish(&self) {
        let held = self.owned.count();
        let now = Role {
            active: match self.placement {
                Placement::Standby => held == usize::from(SHARD_COUNT),
                Placement::Spread => held > 0,
            },
            term: self.owned.term(),
        };
        crate::metrics::get().cluster_shards(held, now.active);
        self.role
            .send_if_modified(|r| std::mem::replace(r, now) != now);
    }

    /// The node that serves, as last seen (see [`Leader`]).
    pub(crate) fn leader(&self) -> watch::Receiver<Option<Leader>> {
        self.leader.subscribe()
    }

    /// The node that serves, as last seen, when it is another one (this node
    /// forwards to it).
    pub(crate) fn forwards_to(&self) -> Option<Leader> {
        self.leader
            .borrow()
            .clone()
            .filter(|l| l.node_id != self.member.node_id())
    }

    /// This node's id.
    pub(crate) fn id(&self) -> &str {
        self.member.node_id()
    }

    /// Its lease timings (`cluster_lease_ttl_secs`).
    pub(crate) fn timing(&self) -> Timing {
        self.timing
    }

    /// This node's MCP URL, as registered (`nodes.addr`).
    pub(crate) fn url(&self) -> &str {
        &self.addr
    }

    /// Look up the node that serves (ourselves when we hold every shard).
    async fn find_leader(&self) -> Result<(), PgError> {
        let found = if self.owned.count() == usize::from(SHARD_COUNT) {
            Some(Leader {
                node_id: self.member.node_id().to_string(),
                url: self.addr.clone(),
            })
        } else {
            let client = self.pool.get().await?;
            lease::leader(&client)
                .await?
                .map(|(node_id, url)| Leader { node_id, url })
        };
        self.leader
            .send_if_modified(|l| std::mem::replace(l, found.clone()) != found);
        Ok(())
    }

    /// A pool for reads that may come in bursts (the gateway's look-ups).
    pub(crate) fn reads(&self) -> &Pool {
        &self.reads
    }

    /// Whether this node serves `shard` now (spread placement): it may answer,
    /// and its hub was loaded with it.
    pub(crate) fn serves_shard(&self, shard: ShardId) -> bool {
        self.objection().is_none()
            && self
                .loaded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .binary_search(&shard)
                .is_ok()
    }

    /// The node's connection pool (the agent registry reads and writes through it).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The registration, for the writer's `batch_log` and probe.
    pub(crate) fn member(&self) -> &Member {
        &self.member
    }

    /// The shards held, shared with the writer.
    pub(crate) fn ownership(&self) -> Arc<Ownership> {
        self.owned.clone()
    }

    /// Milliseconds since `epoch`.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Take every free or lapsed shard not held (none for [`YIELD_PAUSE`] after
    /// yielding).
    async fn acquire_missing(&self) -> Result<(), PgError> {
        if self.retiring.load(Ordering::Acquire) {
            return Ok(());
        }
        let yielded = self.yielded.load(Ordering::Acquire);
        if yielded != 0 && self.now_ms() < yielded + YIELD_PAUSE.as_millis() as u64 {
            return Ok(());
        }
        let missing: Vec<ShardId> = all_shards()
            .into_iter()
            .filter(|s| self.owned.epoch(*s).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let ttl = self.timing.lease_ttl;
        for (shard, epoch) in lease::acquire(&client, &self.member, &missing, ttl).await? {
            self.owned.hold(shard, epoch);
        }
        Ok(())
    }

    /// One round: heartbeat, renew what is held (a shard not renewed is lost),
    /// take what is missing.
    async fn renew_once(&self) -> Result<(), PgError> {
        let _round = self.round.lock().await;
        let client = self.pool.get().await?;
        lease::heartbeat(&client, &self.member).await?;
        let renewed = lease::renew(&client, &self.member, self.timing.lease_ttl).await?;
        drop(client);
        let kept: std::collections::HashMap<ShardId, super::Epoch> =
            renewed.iter().copied().collect();
        for (shard, epoch) in self.owned.held() {
            if kept.get(&shard) != Some(&epoch) {
                tracing::error!(
                    shard = shard.0,
                    "lease lost; writes stop until it is held again"
                );
                self.owned.lose(shard);
            }
        }
        // Before taking anything back: the loss is seen even if the shards are
        // held again at the end of this round.
        self.publish();
        // Renewed at an unchanged epoch: nobody else held it meanwhile, so it is
        // held again after a self-fence (whose writes failed; the hub reloads).
        // At a new epoch: another node moved it here (`lease::transfer`).
        // Not while handing over: `renewed` may predate the release.
        if !self.retiring.load(Ordering::Acquire) {
            for (shard, epoch) in renewed {
                self.owned.hold(shard, epoch);
            }
        } else {
            // Moved here while this node stops: given back at once, for another
            // node to take (a release under a stale epoch does nothing).
            let stray: Vec<(ShardId, super::Epoch)> = renewed
                .into_iter()
                .filter(|(shard, epoch)| self.owned.epoch(*shard) != Some(*epoch))
                .collect();
            if !stray.is_empty() {
                let client = self.pool.get().await?;
                let given = lease::release(&client, &self.member, &stray).await?;
                if !given.is_empty() {
                    tracing::warn!(
                        shards = given.len(),
                        "shards moved to this stopping node: given back"
                    );
                }
            }
        }
        match self.placement {
            Placement::Standby => {
                self.acquire_missing().await?;
                self.settle_split().await?;
                self.find_leader().await
            }
            Placement::Spread => {
                self.acquire_desired().await?;
                self.find_owners().await
            }
        }
    }

    /// Holding some shards but not all after acquiring: if another node holds
    /// more (see [`yields_to`]), give ours back for it to take.
    async fn settle_split(&self) -> Result<(), PgError> {
        let held = self.owned.held();
        if held.is_empty() || held.len() == usize::from(SHARD_COUNT) {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let owners = lease::holders(&client).await?;
        let Some(winner) = yields_to(self.member.node_id(), &owners) else {
            return Ok(());
        };
        tracing::warn!(
            held = held.len(),
            to = winner,
            "the shards are split with another node holding more: giving ours up for it to serve"
        );
        self.yielded.store(self.now_ms().max(1), Ordering::Release);
        for shard in lease::release(&client, &self.member, &held).await? {
            self.owned.lose(shard);
        }
        Ok(())
    }

    /// Keep the leases until the process ends (spawned by `serve`).
    pub(crate) async fn keep(self: Arc<Node>) {
        let mut last_ok = Instant::now();
        let mut standing_by = false;
        loop {
            if self.left.load(Ordering::Acquire) {
                return;
            }
            // Measured from before the request: the database's expiry is later.
            let attempt = Instant::now();
            let renew_every = self.timing.renew_every();
            match tokio::time::timeout(renew_every * 2, self.renew_once()).await {
                Ok(Ok(())) => {
                    last_ok = attempt;
                    let at = attempt.saturating_duration_since(self.epoch).as_millis() as u64;
                    // At least 1: 0 means never.
                    self.renewed.store(at.max(1), Ordering::Release);
                }
                Ok(Err(PgError::NodeReplaced(id))) => {
                    tracing::error!(node_id = %id, "another process took this node id over; this one stops serving for good: restart it");
                    self.owned.lose_all();
                    self.publish();
                    return;
                }
                Ok(Err(e)) => {
                    crate::metrics::get().cluster_renew_failed();
                    tracing::warn!(error = %e, "lease renewal failed")
                }
                Err(_) => {
                    crate::metrics::get().cluster_renew_failed();
                    tracing::warn!("lease renewal timed out")
                }
            }
            if last_ok.elapsed() >= self.timing.self_fence_after() && self.owned.count() > 0 {
                tracing::error!(
                    since_ms = last_ok.elapsed().as_millis() as u64,
                    "leases not renewed in time: this node stops serving until it holds its shards again"
                );
                self.owned.lose_all();
            }
            self.publish();
            if self.placement == Placement::Spread {
                // Only after a round that succeeded: it read the members.
                if last_ok == attempt {
                    self.rebalance().await;
                }
                tokio::time::sleep(STANDBY_POLL).await;
                continue;
            }
            let held = self.owned.count();
            let active = held == usize::from(SHARD_COUNT);
            if !active && !standing_by {
                tracing::warn!(held, "standing by: another node holds shards; taking them over once their leases lapse or are released");
            } else if active && standing_by {
                tracing::warn!("holding every shard: serving");
            }
            standing_by = !active;
            tokio::time::sleep(if active { renew_every } else { STANDBY_POLL }).await;
        }
    }

    /// The members and the shard map, from the database (`hubctl cluster`).
    pub(crate) async fn describe(&self) -> Result<ClusterView, PgError> {
        let client = self.pool.get().await?;
        let members = client
            .query(
                "SELECT n.node_id, n.addr, hub_iso(n.started_at), hub_iso(n.seen_at),
                        n.seen_at >= now() - $1::bigint * interval '1 millisecond',
                        (SELECT count(*) FROM shard_lease l
                          WHERE l.owner_node = n.node_id AND l.expires_at > now())
                   FROM nodes n ORDER BY n.node_id COLLATE \"C\"",
                &[&(self.timing.node_ttl().as_millis() as i64)],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(MemberView {
                    node_id: r.try_get(0)?,
                    addr: r.try_get(1)?,
                    started_at: r.try_get(2)?,
                    seen_at: r.try_get(3)?,
                    live: r.try_get(4)?,
                    shards: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        let shards = client
            .query(
                "SELECT owner_node, expires_at > now() AS held, count(*), min(epoch), max(epoch),
                        hub_iso(max(expires_at))
                   FROM shard_lease GROUP BY 1, 2 ORDER BY owner_node COLLATE \"C\", held",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                let owner: Option<String> = r.try_get(0)?;
                let held: Option<bool> = r.try_get(1)?;
                Ok(ShardGroup {
                    owner,
                    state: match held {
                        Some(true) => "held",
                        Some(false) => "lapsed",
                        None => "free",
                    },
                    shards: r.try_get(2)?,
                    epochs: (r.try_get(3)?, r.try_get(4)?),
                    expires_at: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, PgError>>()?;
        let pins = lease::pins(&client)
            .await?
            .into_iter()
            .map(|(shard, node_id)| PinView {
                shard: shard.0,
                node_id,
            })
            .collect();
        let held = self.owned.count();
        Ok(ClusterView {
            node_id: self.member.node_id().to_string(),
            role: if self.placement == Placement::Spread && held > 0 && !self.lapsed() {
                "serving"
            } else if held == usize::from(SHARD_COUNT) && !self.lapsed() {
                "active"
            } else {
                "standby"
            },
            shards_held: held,
            forwards_to: self.forwards_to(),
            members,
            shards,
            pins,
        })
    }

    /// The first step of a graceful stop: refuse new calls at once (the slot's
    /// guard; a gateway in front sends them to the next leader), wait until the
    /// calls in flight are answered (`idle`: their writes are committed, since
    /// answers wait for their commit), then release every shard so that a standby
    /// takes over at once, and never take one again. The node stays registered and
    /// keeps finding the leader, so that it forwards what still reaches it until
    /// the server stops; [`Node::leave`] ends that.
    pub(crate) async fn hand_over(&self, idle: impl std::future::Future<Output = ()>) {
        self.retiring.store(true, Ordering::Release);
        if self.placement == Placement::Spread {
            self.mark_draining().await;
        }
        idle.await;
        if self.placement == Placement::Spread {
            // Each shard straight to its next owner; what could not move is released.
            self.give_to_successors().await;
        }
        let held = self.owned.held();
        if held.is_empty() {
            self.publish();
            return;
        }
        let released = async {
            let client = self.pool.get().await?;
            lease::release(&client, &self.member, &held).await
        };
        match tokio::time::timeout(Duration::from_secs(5), released).await {
            Ok(Ok(shards)) => {
                for shard in shards {
                    self.owned.lose(shard);
                }
                tracing::info!(shards = held.len(), "shards handed over");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the shards; they lapse by themselves")
            }
            Err(_) => tracing::warn!("releasing the shards timed out; they lapse by themselves"),
        }
        self.publish();
    }

    /// Hand every shard to the live node `to` (`hubctl cluster move`), as a
    /// graceful stop would but to a chosen node and without stopping: refuse new
    /// calls (a gateway in front sends them on), wait until those in flight are
    /// answered (`idle`), then move the leases to `to` at the next epoch in one
    /// statement, so that no other node can take them meanwhile. This node then
    /// stands by (its hub is taken out of the slot) and forwards to `to` once it
    /// serves. Returns how many shards moved, and where `to` is reached. Run it to
    /// its end (a task of its own): dropped halfway, the node would go on refusing
    /// calls.
    pub(crate) async fn move_to(
        &self,
        to: &str,
        idle: impl std::future::Future<Output = ()>,
    ) -> Result<(usize, Leader), MoveError> {
        let Ok(_one) = self.moves.try_lock() else {
            return Err(MoveError::Busy);
        };
        if let Some(why) = self.objection() {
            return Err(MoveError::NotServing(why));
        }
        // Before anything is refused: a mistyped id costs no call. (A connection
        // of the lease loop's pool is not held while the calls drain.)
        let live = async {
            let client = self.pool.get().await?;
            lease::live_nodes(&client, self.timing.node_ttl()).await
        }
        .await
        .map_err(MoveError::Refused)?;
        let not_live = || MoveError::NotLive {
            to: to.to_string(),
            live: live
                .iter()
                .map(|(id, _)| id.as_str())
                .filter(|id| *id != self.id())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let Some(url) = live
            .iter()
            .find(|(id, _)| id == to && id != self.id())
            .map(|(_, url)| url.clone())
        else {
            return Err(not_live());
        };
        self.moving.store(true, Ordering::Release);
        idle.await;
        let moved = self.transfer_to(to, None).await;
        if matches!(moved, Err(MoveError::Db(_) | MoveError::TimedOut)) {
            // The move may have committed after all (a connection lost during
            // COMMIT): answer nothing from memory until the next renewal round
            // says what is held (the hub is loaded again if it still is).
            self.owned.lose_all();
        }
        self.moving.store(false, Ordering::Release);
        self.publish();
        let (moved, held) = moved?;
        if moved == 0 {
            return Err(MoveError::Nothing);
        }
        if moved < held {
            tracing::warn!(to, moved, held, "only some shards moved (this node's leases changed meanwhile); the node holding fewer gives them up");
        }
        // Calls this node's gateway holds go to `to` at once, not at the loop's
        // next round.
        if let Err(e) = self.find_leader().await {
            tracing::warn!(error = %e, "could not look the new leader up; the lease loop will");
        }
        crate::metrics::get().cluster_moved();
        tracing::warn!(
            to,
            shards = moved,
            "shards moved to another node: standing by"
        );
        let to = Leader {
            node_id: to.to_string(),
            url,
        };
        Ok((moved, to))
    }

    /// The transfer of [`Node::move_to`], under the renewal lock: bounded by a
    /// renewal period in PostgreSQL (`statement_timeout`, so that a refusal is
    /// known to have moved nothing: [`MoveError::Refused`]) and here (twice that),
    /// so that the renewal rounds it holds back never fall behind the lease.
    /// Moves every shard held, or those of `only`. Returns how many shards moved,
    /// of how many held.
    async fn transfer_to(
        &self,
        to: &str,
        only: Option<&[ShardId]>,
    ) -> Result<(usize, usize), MoveError> {
        let window = self.timing.renew_every();
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| MoveError::Refused(e.into()))?;
        let _round = self.round.lock().await;
        let mut held = self.owned.held();
        if let Some(only) = only {
            held.retain(|(s, _)| only.contains(s));
        }
        let run = async {
            let refused = |e: tokio_postgres::Error| MoveError::Refused(e.into());
            let tx = client.transaction().await.map_err(refused)?;
            tx.batch_execute(&format!(
                "SET LOCAL statement_timeout = {}",
                window.as_millis()
            ))
            .await
            .map_err(refused)?;
            let ttl = self.timing.lease_ttl;
            let moved = lease::transfer(&tx, &self.member, &held, to, ttl, self.timing.node_ttl())
                .await
                .map_err(MoveError::Refused)?;
            // Only here may a failure hide a move that was stored.
            tx.commit().await.map_err(|e| MoveError::Db(e.into()))?;
            Ok::<_, MoveError>(moved)
        };
        let moved = tokio::time::timeout(window * 2, run)
            .await
            .map_err(|_| MoveError::TimedOut)??;
        for (shard, _) in &moved {
            self.owned.lose(*shard);
        }
        Ok((moved.len(), held.len()))
    }

    /// Leave the cluster: the registration is deleted and every shard freed, so
    /// that a restart (or another node) takes them at once.
    pub(crate) async fn leave(&self) -> Result<(), PgError> {
        self.left.store(true, Ordering::Release);
        self.owned.lose_all();
        self.publish();
        let client = self.pool.get().await?;
        lease::leave(&client, &self.member).await?;
        Ok(())
    }
}

/// How long a node handing its shards over (stopping, or moved) waits for its
/// calls in flight (a parked wait may last longer: it is cut).
pub(crate) const HAND_OVER_WAIT: Duration = Duration::from_secs(5);

/// Why `hubctl cluster move` moved nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MoveError {
    #[error("this node does not serve ({0}): ask the node that serves")]
    NotServing(String),
    #[error("a move of this node's shards is under way")]
    Busy,
    #[error("{to} is not another live node of the cluster (live: {live})")]
    NotLive { to: String, live: String },
    #[error("nothing moved: the target is no longer live, or this node's leases changed meanwhile; see hubctl cluster")]
    Nothing,
    /// Nothing moved (refused before COMMIT, or a connection not had).
    #[error("the cluster's tables: {0}; nothing moved")]
    Refused(PgError),
    /// Its outcome may be unknown (a connection lost during COMMIT): fencing
    /// keeps this node from writing the shards if they did move, and its next
    /// renewal round finds out.
    #[error("the cluster's tables: {0}; see hubctl cluster for where the shards are")]
    Db(#[from] PgError),
    #[error("the move did not finish in time; the shards may have moved: see hubctl cluster")]
    TimedOut,
}

/// What `hubctl cluster` shows.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ClusterView {
    /// The node answering.
    pub node_id: String,
    /// `active` (holds every shard, serves) or `standby`.
    pub role: &'static str,
    pub shards_held: usize,
    /// The node this one forwards calls to (standing by, it knows who serves).
    pub forwards_to: Option<Leader>,
    pub members: Vec<MemberView>,
    /// Shards grouped by owner and lease state.
    pub shards: Vec<ShardGroup>,
    /// Spread placement: shards pinned to a node (`hubctl cluster move --shard`).
    pub pins: Vec<PinView>,
}

/// A shard pinned to a node.
#[derive(Debug, serde::Serialize)]
pub(crate) struct PinView {
    pub shard: u16,
    pub node_id: String,
}

/// One row of `nodes`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct MemberView {
    pub node_id: String,
    pub addr: String,
    pub started_at: String,
    pub seen_at: String,
    /// Heartbeat within the node TTL.
    pub live: bool,
    /// Shards it holds (unexpired leases).
    pub shards: i64,
}

/// Shards with one owner and lease state (`held`, `lapsed` or `free`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct ShardGroup {
    pub owner: Option<String>,
    pub state: &'static str,
    pub shards: i64,
    /// Lowest and highest epoch among them.
    pub epochs: (i64, i64),
    /// The latest lease expiry among them (none when free).
    pub expires_at: Option<String>,
}

/// The node that serves, as a standby forwards to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Leader {
    pub node_id: String,
    /// Its MCP URL as it registered it (`nodes.addr`).
    pub url: String,
}

/// What a node publishes after each renewal round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Role {
    /// Every shard is held: the node may serve.
    pub active: bool,
    /// The ownership term (see `Ownership`): a hub loaded under an older one must
    /// be replaced.
    pub term: u64,
}

#[cfg(test)]
mod tests {
    use super::{yields_to, Timing};
    use std::time::Duration;

    #[test]
    fn timings_follow_the_lease() {
        let t = Timing::default();
        assert_eq!(t.lease_ttl, Duration::from_secs(10));
        assert_eq!(t.renew_every(), Duration::from_secs(2));
        assert_eq!(t.self_fence_after(), Duration::from_millis(6_600));
        let short = Timing {
            lease_ttl: Duration::from_secs(3),
        };
        assert_eq!(short.renew_every(), Duration::from_millis(600));
        assert_eq!(short.self_fence_after(), Duration::from_millis(1_980));
        // A renewal round times out (twice its period) before the node fences.
        assert!(short.renew_every() * 2 < short.self_fence_after());
    }

    fn owners(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn exactly_one_side_of_a_split_yields() {
        let split = owners(&[("n1", 636), ("n2", 388)]);
        assert_eq!(yields_to("n2", &split), Some("n1"));
        assert_eq!(yields_to("n1", &split), None);
        // A tie: the larger id yields.
        let tie = owners(&[("n1", 512), ("n2", 512)]);
        assert_eq!(yields_to("n2", &tie), Some("n1"));
        assert_eq!(yields_to("n1", &tie), None);
        // Three ways: all but the largest holder yield.
        let three = owners(&[("a", 300), ("b", 424), ("c", 300)]);
        assert_eq!(yields_to("a", &three), Some("b"));
        assert_eq!(yields_to("c", &three), Some("b"));
        assert_eq!(yields_to("b", &three), None);
        // Alone (the others' leases lapsed, or a takeover still under way).
        assert_eq!(yields_to("n2", &owners(&[("n2", 1000)])), None);
        assert_eq!(yields_to("n2", &owners(&[])), None);
    }
}
