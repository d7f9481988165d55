//! `hubctl serve --store postgres://…`: connect, migrate, register as a node
//! ([`Node::join`]), and start the writer thread on PostgreSQL ([`PgEngine`]). The
//! counterpart of SQLite's `Store::open`, without the load: a node loads the live
//! state once it holds every shard ([`activate`]), which a standby may do much
//! later.

use super::node::Node;
use super::writer::PgEngine;
use super::{config_from_url, migrate, pool, PoolOptions};
use crate::config::Durability;
use crate::domain::shard::Shards;
use crate::store::writer::ReadSide;
use crate::store::{Reads, Snapshot, Store, StoreError, StoreOptions};
use std::sync::Arc;

/// A store on PostgreSQL and this node's membership.
pub(crate) struct Opened {
    pub store: Store,
    pub node: Arc<Node>,
}

/// Open the store at `url` as node `node_id` (reachable at `addr`), holding
/// leases with `timing`.
pub(crate) async fn open(
    url: &str,
    node_id: &str,
    addr: &str,
    timing: super::node::Timing,
    placement: super::node::Placement,
    opts: StoreOptions,
) -> Result<Opened, StoreError> {
    let config = config_from_url(url, &|k| std::env::var_os(k))?;
    let pool = pool(config.clone(), &PoolOptions::default())?;
    let version = migrate::run(&pool).await?;
    tracing::info!(version, "PostgreSQL schema ready");

    // The lease loop has connections of its own: a burst of reads must never make
    // a renewal wait, or a healthy node would fence itself.
    let leases = PoolOptions {
        max_size: 2,
        ..PoolOptions::default()
    };
    let node = Node::join(
        super::pool(config.clone(), &leases)?,
        pool.clone(),
        node_id,
        addr,
        timing,
        placement,
    );
    let node = Arc::new(node.await?);
    let spread = placement == super::node::Placement::Spread;
    let engine = PgEngine::new(config, node.member().clone(), node.ownership(), spread)?;
    // Cluster mode stores every write before answering (cluster.md: an answered
    // write survives the loss of any node); `durability: fast` is for SQLite.
    if opts.durability == Durability::Fast {
        tracing::warn!("durability: fast is ignored with PostgreSQL: every write is stored before it is answered");
    }
    let opts = StoreOptions {
        durability: Durability::Durable,
        ..opts
    };
    let store = Store::start(
        Box::new(engine),
        ReadSide::Postgres(pool),
        opts,
        Some(node.ownership()),
    )?;
    Ok(Opened { store, node })
}

/// A node's first activation, once it holds every shard (or, spread, some):
/// the live state of `shards`, on a handle of the current ownership term (see
/// `Ownership`). The hub is built on the handle returned. Its agents are the
/// table's (the registry, which every node follows: see `http::reload`), not this
/// node's `agents.env`.
pub(crate) async fn activate(
    store: &Store,
    shards: &Shards,
) -> Result<(Store, Snapshot), StoreError> {
    let handle = store.next_generation();
    handle.adopt();
    let snapshot = handle.load(shards).await?;
    Ok((handle, snapshot))
}
