//! `hubctl serve --store postgres://…`: connect, migrate, join as a node holding
//! every shard ([`Node::join`]), reconcile the agent list, load the live state,
//! and start the writer thread on PostgreSQL ([`PgEngine`]). The counterpart of
//! SQLite's `Store::open`.

use super::node::Node;
use super::writer::PgEngine;
use super::{config_from_url, migrate, pool, PoolOptions};
use crate::config::Durability;
use crate::domain::shard::Shards;
use crate::store::reads::postgres::activation;
use crate::store::writer::ReadSide;
use crate::store::{Snapshot, Store, StoreError, StoreOptions};
use std::sync::Arc;

/// A store on PostgreSQL and this node's membership.
pub(crate) struct Opened {
    pub store: Store,
    pub snapshot: Snapshot,
    pub node: Arc<Node>,
}

/// Open the store at `url` as node `node_id` (reachable at `addr`).
pub(crate) async fn open(
    url: &str,
    node_id: &str,
    addr: &str,
    opts: StoreOptions,
    agents: &[(String, String)],
    now: &str,
) -> Result<Opened, StoreError> {
    let config = config_from_url(url, &|k| std::env::var_os(k))?;
    let pool = pool(config.clone(), &PoolOptions::default())?;
    let version = migrate::run(&pool).await?;
    tracing::info!(version, "PostgreSQL schema ready");
    let node = Arc::new(Node::join(pool.clone(), node_id, addr).await?);
    let loaded = async {
        let mut client = pool.get().await.map_err(super::PgError::from)?;
        activation::sync_agents(&mut client, agents, now).await?;
        activation::load_open_work(&mut client, &Shards::All).await
    }
    .await;
    let snapshot = match loaded {
        Ok(s) => s,
        Err(e) => {
            let _ = node.leave().await;
            return Err(e.into());
        }
    };
    let engine = PgEngine::new(config, node.member().clone(), node.ownership())?;
    // Cluster mode stores every write before answering (cluster.md: an answered
    // write survives the loss of any node); `durability: fast` is for SQLite.
    if opts.durability == Durability::Fast {
        tracing::warn!("durability: fast is ignored with PostgreSQL: every write is stored before it is answered");
    }
    let opts = StoreOptions {
        durability: Durability::Durable,
        ..opts
    };
    let store = Store::start(Box::new(engine), ReadSide::Postgres(pool), opts)?;
    Ok(Opened {
        store,
        snapshot,
        node,
    })
}
