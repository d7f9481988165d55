//! Members and shard leases (shared/spec/cluster.md §2), one statement each, every
//! time PostgreSQL's `now()` so that no node's clock matters. A node registers
//! once ([`register`]), heartbeats ([`heartbeat`]), takes free or lapsed shards
//! ([`acquire`]: the epoch grows by one), renews all it holds in one statement
//! ([`renew`]), gives shards back after draining them ([`release`]) or hands them
//! to a chosen node ([`transfer`]), and leaves on a graceful stop ([`leave`]). Correctness rests on the epoch, which the write
//! batches check ([`super::fence`]); lease times only decide availability.
//!
//! Lock order: the statements that wait for `shard_lease` row locks (renew,
//! release, a batch's fence) take them in shard order, so that a renewal and a
//! batch of the same node never deadlock; acquire never waits (`SKIP LOCKED`).

use super::{Epoch, PgError, ShardId};
use crate::domain::ids::random_hex;
use deadpool_postgres::GenericClient;
use std::time::Duration;

/// This process as a registered node. `incarnation` is random per registration:
/// it tells this process from a later one that took the same node id over after
/// this one's heartbeats lapsed, so a stalled process cannot act in its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    node_id: String,
    incarnation: String,
}

impl Member {
    /// The node id (`--node-id`).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// A duration as whole milliseconds for SQL (`$n::bigint * interval '1 ms'`);
/// `tokio-postgres` has no `interval` parameter type.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn shard_params(shards: &[ShardId]) -> Vec<i32> {
    shards.iter().map(|s| i32::from(s.0)).collect()
}

/// A stored shard number (the table's CHECK keeps it in range).
pub(super) fn shard_id(shard: i32) -> Result<ShardId, PgError> {
    u16::try_from(shard)
        .map(ShardId)
        .map_err(|_| PgError::Incompatible(format!("shard_lease holds shard {shard}")))
}

/// A `(shard, epoch)` row.
pub(super) fn shard_epoch(row: &tokio_postgres::Row) -> Result<(ShardId, Epoch), PgError> {
    Ok((shard_id(row.try_get(0)?)?, Epoch(row.try_get(1)?)))
}

/// `(shard, epoch)` rows, by shard (UPDATE ... RETURNING has no ORDER BY).
fn by_shard(rows: &[tokio_postgres::Row]) -> Result<Vec<(ShardId, Epoch)>, PgError> {
    let mut out = rows
        .iter()
        .map(shard_epoch)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    Ok(out)
}

/// Register `node_id` at `addr`, running with `placement` (`cluster_placement:`). Refused with
/// [`PgError::NodeIdInUse`] while another process with that id heartbeats (seen
/// within `node_ttl`); a dead one's row is taken over. Two processes registering
/// at once: the second waits on the row the first inserted and then finds it
/// live. Refused with [`PgError::PlacementMismatch`] while another live node runs
/// with the other placement.
pub async fn register(
    client: &impl GenericClient,
    node_id: &str,
    addr: &str,
    node_ttl: Duration,
    placement: &str,
) -> Result<Member, PgError> {
    let other = client
        .query_opt(
            "SELECT node_id, placement FROM nodes
              WHERE node_id <> $1 AND placement IS NOT NULL AND placement <> $2
                AND NOT draining AND seen_at >= now() - $3::bigint * interval '1 millisecond'
              ORDER BY node_id LIMIT 1",
            &[&node_id, &placement, &millis(node_ttl)],
        )
        .await?;
    if let Some(row) = other {
        return Err(PgError::PlacementMismatch {
            node: row.try_get(0)?,
            theirs: row.try_get(1)?,
            ours: placement.to_string(),
        });
    }
    let incarnation = random_hex(16);
    let row = client
        .query_opt(
            "INSERT INTO nodes (node_id, addr, incarnation, started_at, seen_at, placement)
             VALUES ($1, $2, $3, now(), now(), $5)
             ON CONFLICT (node_id) DO UPDATE
                SET addr = EXCLUDED.addr, incarnation = EXCLUDED.incarnation,
                    started_at = now(), seen_at = now(), draining = false,
                    placement = EXCLUDED.placement
              WHERE nodes.seen_at < now() - $4::bigint * interval '1 millisecond'
             RETURNING node_id",
            &[&node_id, &addr, &incarnation, &millis(node_ttl), &placement],
        )
        .await?;
    match row {
        Some(_) => Ok(Member {
            node_id: node_id.to_string(),
            incarnation,
        }),
        None => Err(PgError::NodeIdInUse(node_id.to_string())),
    }
}

/// Mark this node alive. [`PgError::NodeReplaced`] if another process has taken
/// its id over: this one must stop serving.
/// Also says in the log when this node's clock is off the database's by more
/// than a third of what node-to-node calls allow (`http::gateway::node_auth`).
pub async fn heartbeat(client: &impl GenericClient, me: &Member) -> Result<(), PgError> {
    let asked = chrono::Utc::now().timestamp_millis();
    let row = client
        .query_opt(
            "UPDATE nodes SET seen_at = now() WHERE node_id = $1 AND incarnation = $2
             RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[&me.node_id, &me.incarnation],
        )
        .await?;
    let Some(row) = row else {
        return Err(PgError::NodeReplaced(me.node_id.clone()));
    };
    let theirs: i64 = row.try_get(0)?;
    // The database's clock read between `asked` and `answered`.
    let answered = chrono::Utc::now().timestamp_millis();
    let off = clock_off(asked, answered, theirs);
    let allowed = crate::http::gateway::node_auth::SKEW.as_millis() as i64;
    if off.abs() > allowed / 3 {
        static SAID: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new(60_000);
        if SAID.hit().is_some() {
            tracing::warn!(
                off_ms = off,
                "this node's clock is off the database's: node-to-node calls are refused past {} s apart; synchronize the clocks (NTP)",
                allowed / 1000
            );
        }
    }
    Ok(())
}

/// How far ahead of a clock read at `theirs` (between `asked` and `answered` on
/// ours) our clock is, in ms: 0 when within the round trip.
fn clock_off(asked: i64, answered: i64, theirs: i64) -> i64 {
    if theirs < asked {
        asked - theirs
    } else if theirs > answered {
        answered - theirs
    } else {
        0
    }
}

/// The nodes seen within `node_ttl` and not draining ([`drain`]), as (node id,
/// address), by id: the members that rendezvous hashing spreads the shards over,
/// and the possible targets of a move.
pub async fn live_nodes(
    client: &impl GenericClient,
    node_ttl: Duration,
) -> Result<Vec<(String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT node_id, addr FROM nodes
              WHERE seen_at >= now() - $1::bigint * interval '1 millisecond'
                AND NOT draining
              ORDER BY node_id",
            &[&millis(node_ttl)],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The shards pinned to a node (spread placement; `hubctl cluster move --shard`).
pub async fn pins(client: &impl GenericClient) -> Result<crate::domain::placement::Pins, PgError> {
    let rows = client
        .query("SELECT shard, node_id FROM shard_pins", &[])
        .await?;
    rows.iter()
        .map(|r| {
            let shard: i32 = r.try_get(0)?;
            Ok((ShardId(shard as u16), r.try_get(1)?))
        })
        .collect()
}

/// Pin `shards` to node `node_id` (its desired owner while it is a live member).
pub async fn pin(
    client: &impl GenericClient,
    shards: &[ShardId],
    node_id: &str,
) -> Result<(), PgError> {
    let shards: Vec<i32> = shards.iter().map(|s| i32::from(s.0)).collect();
    client
        .execute(
            "INSERT INTO shard_pins (shard, node_id)
             SELECT s, $2 FROM unnest($1::integer[]) AS s
             ON CONFLICT (shard) DO UPDATE SET node_id = EXCLUDED.node_id, pinned_at = now()",
            &[&shards, &node_id],
        )
        .await?;
    Ok(())
}

/// Unpin `shards` (every pinned shard with `None`): how many were pinned.
pub async fn unpin(
    client: &impl GenericClient,
    shards: Option<&[ShardId]>,
) -> Result<u64, PgError> {
    Ok(match shards {
        None => client.execute("DELETE FROM shard_pins", &[]).await?,
        Some(list) => {
            let list: Vec<i32> = list.iter().map(|s| i32::from(s.0)).collect();
            client
                .execute("DELETE FROM shard_pins WHERE shard = ANY($1)", &[&list])
                .await?
        }
    })
}

/// Take those of `shards` that are free or lapsed, for `ttl`; returns the shards
/// taken with their new epochs. A shard whose row another transaction has locked
/// (a takeover in progress, or the old owner's batch still checking its fence) is
/// skipped, not waited for: the caller tries again on its next round.
pub async fn acquire(
    client: &impl GenericClient,
    me: &Member,
    shards: &[ShardId],
    ttl: Duration,
) -> Result<Vec<(ShardId, Epoch)>, PgError> {
    let rows = client
        .query(
            "WITH free AS (
                SELECT shard FROM shard_lease
                 WHERE shard = ANY($3) AND (owner_node IS NULL OR expires_at < now())
                 ORDER BY shard
                   FOR UPDATE SKIP LOCKED)
             UPDATE shard_lease l
                SET owner_node = $1, owner_incarnation = $2, epoch = l.epoch + 1,
                    expires_at = now() + $4::bigint * interval '1 millisecond'
               FROM free
              WHERE l.shard = free.shard
                AND EXISTS (SELECT 1 FROM nodes WHERE node_id = $1 AND incarnation = $2)
             RETURNING l.shard, l.epoch",
            &[
                &me.node_id,
                &me.incarnation,
                &shard_params(shards),
                &millis(ttl),
            ],
        )
        .await?;
    by_shard(&rows)
}

/// Extend every lease this node holds that has not lapsed, by `ttl` from now;
/// returns what it still holds, by shard. A shard missing from the answer, or
/// held under another epoch than the node believes, is lost: its actors must go.
/// A lapsed lease is not revived: the shard must be acquired again (a new epoch).
pub async fn renew(
    client: &impl GenericClient,
    me: &Member,
    ttl: Duration,
) -> Result<Vec<(ShardId, Epoch)>, PgError> {
    let rows = client
        .query(
            "WITH held AS (
                SELECT shard FROM shard_lease
                 WHERE owner_node = $1 AND owner_incarnation = $2 AND expires_at > now()
                   AND EXISTS (SELECT 1 FROM nodes WHERE node_id = $1 AND incarnation = $2)
                 ORDER BY shard
                   FOR NO KEY UPDATE)
             UPDATE shard_lease l
                SET expires_at = now() + $3::bigint * interval '1 millisecond'
               FROM held
              WHERE l.shard = held.shard
             RETURNING l.shard, l.epoch",
            &[&me.node_id, &me.incarnation, &millis(ttl)],
        )
        .await?;
    by_shard(&rows)
}

/// The node that serves: the one holding every shard under a lease that has not
/// lapsed, with the MCP URL it registered; `None` while no node holds them all
/// (a takeover under way, or no node left).
pub async fn leader(client: &impl GenericClient) -> Result<Option<(String, String)>, PgError> {
    let row = client
        .query_opt(
            "SELECT l.owner_node, n.addr FROM shard_lease l
               JOIN nodes n ON n.node_id = l.owner_node
              WHERE l.expires_at > now()
              GROUP BY l.owner_node, n.addr
             HAVING count(*) = $1",
            &[&i64::from(crate::domain::shard::SHARD_COUNT)],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// How many shards each node holds under a lease that has not lapsed, by node id.
pub async fn holders(client: &impl GenericClient) -> Result<Vec<(String, i64)>, PgError> {
    let rows = client
        .query(
            "SELECT owner_node, count(*) FROM shard_lease
              WHERE owner_node IS NOT NULL AND expires_at > now()
              GROUP BY owner_node ORDER BY owner_node",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Give shards back (graceful hand-off, once their actors are drained and the
/// writer has flushed): each only if still held under the given epoch. The epoch
/// stays; the next acquire bumps it. Returns the shards released.
pub async fn release(
    client: &impl GenericClient,
    me: &Member,
    held: &[(ShardId, Epoch)],
) -> Result<Vec<ShardId>, PgError> {
    let shards: Vec<ShardId> = held.iter().map(|h| h.0).collect();
    let epochs: Vec<i64> = held.iter().map(|h| h.1 .0).collect();
    let rows = client
        .query(
            "WITH mine AS (
                SELECT l.shard FROM shard_lease l
                  JOIN unnest($2::integer[], $3::bigint[]) AS r(shard, epoch)
                    ON l.shard = r.shard AND l.epoch = r.epoch
                 WHERE l.owner_node = $1
                 ORDER BY l.shard
                   FOR NO KEY UPDATE OF l)
             UPDATE shard_lease l
                SET owner_node = NULL, owner_incarnation = NULL, expires_at = NULL
               FROM mine WHERE l.shard = mine.shard
             RETURNING l.shard",
            &[&me.node_id, &shard_params(&shards), &epochs],
        )
        .await?;
    let mut released = rows
        .iter()
        .map(|r| shard_id(r.try_get(0)?))
        .collect::<Result<Vec<_>, _>>()?;
    released.sort();
    Ok(released)
}

/// Hand shards over to another node (`hubctl cluster move`), once this node has
/// drained them: each held under the given epoch passes to `to` at the next epoch,
/// leased for `ttl` from now, in one statement. `to` must be live (seen within
/// `node_ttl`); its lease loop finds the shards among those it renews (the grant
/// names its incarnation) and serves once it holds them all. Unlike a release,
/// nobody else can take them meanwhile. Like a release, the statement waits for
/// this node's batches still checking their fence, so none commits after the move.
/// Returns the shards moved with their new epochs (none if `to` is not live).
pub async fn transfer(
    client: &impl GenericClient,
    me: &Member,
    held: &[(ShardId, Epoch)],
    to: &str,
    ttl: Duration,
    node_ttl: Duration,
) -> Result<Vec<(ShardId, Epoch)>, PgError> {
    let shards: Vec<ShardId> = held.iter().map(|h| h.0).collect();
    let epochs: Vec<i64> = held.iter().map(|h| h.1 .0).collect();
    let rows = client
        .query(
            "WITH target AS (
                SELECT node_id, incarnation FROM nodes
                 WHERE node_id = $4 AND node_id <> $1 AND NOT draining
                   AND seen_at >= now() - $6::bigint * interval '1 millisecond'),
             mine AS (
                SELECT l.shard FROM shard_lease l
                  JOIN unnest($2::integer[], $3::bigint[]) AS r(shard, epoch)
                    ON l.shard = r.shard AND l.epoch = r.epoch
                 WHERE l.owner_node = $1 AND l.owner_incarnation = $7
                   AND l.expires_at > now() AND EXISTS (SELECT 1 FROM target)
                 ORDER BY l.shard
                   FOR NO KEY UPDATE OF l)
             UPDATE shard_lease l
                SET owner_node = t.node_id, owner_incarnation = t.incarnation,
                    epoch = l.epoch + 1,
                    expires_at = now() + $5::bigint * interval '1 millisecond'
               FROM mine, target t WHERE l.shard = mine.shard
             RETURNING l.shard, l.epoch",
            &[
                &me.node_id,
                &shard_params(&shards),
                &epochs,
                &to,
                &millis(ttl),
                &millis(node_ttl),
                &me.incarnation,
            ],
        )
        .await?;
    by_shard(&rows)
}

/// Mark this node as handing its shards over (a graceful stop): from now on it
/// is no member for placement and no target of a move ([`live_nodes`]).
pub async fn drain(client: &impl GenericClient, me: &Member) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE nodes SET draining = true WHERE node_id = $1 AND incarnation = $2",
            &[&me.node_id, &me.incarnation],
        )
        .await?;
    Ok(())
}

/// The owner of every shard under a lease that has not lapsed, with the MCP URL
/// it registered, by shard: where a gateway sends each call when the shards are
/// spread over several nodes.
pub async fn owners(
    client: &impl GenericClient,
) -> Result<Vec<(ShardId, String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT l.shard, l.owner_node, n.addr FROM shard_lease l
               JOIN nodes n ON n.node_id = l.owner_node
              WHERE l.expires_at > now()
              ORDER BY l.shard",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((shard_id(r.try_get(0)?)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Leave the cluster (graceful stop): release every shard still held and remove
/// the node's row, in one statement, so that the same id may start again at once.
/// Returns how many shards were released; nothing happens if the id was taken over.
pub async fn leave(client: &impl GenericClient, me: &Member) -> Result<u64, PgError> {
    let n = client
        .execute(
            "WITH gone AS (
                DELETE FROM nodes WHERE node_id = $1 AND incarnation = $2 RETURNING node_id)
             UPDATE shard_lease
                SET owner_node = NULL, owner_incarnation = NULL, expires_at = NULL
              WHERE owner_node IN (SELECT node_id FROM gone) AND owner_incarnation = $2",
            &[&me.node_id, &me.incarnation],
        )
        .await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::clock_off;

    #[test]
    fn a_clock_is_off_by_what_lies_outside_the_round_trip() {
        assert_eq!(clock_off(1_000, 1_010, 1_005), 0);
        // Ours is ahead: the database read 1 s before we asked.
        assert_eq!(clock_off(2_000, 2_010, 1_000), 1_000);
        // Ours is behind.
        assert_eq!(clock_off(1_000, 1_010, 3_010), -2_000);
    }
}
