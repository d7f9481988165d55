//! Spread placement: the per-agent quotas that span tasks (migration 011,
//! `agent_quota`): `max_simultaneous_assignments` and `max_open_tasks_per_agent`
//! count items that may be at several nodes. Before a node writes such an item
//! (a claim, a new task) it takes a unit here, counting the agent's units under a
//! lock on the agent's row, so that two nodes never both take the last one. The
//! item's owner gives the unit back with the batch that ends the item
//! (`Op::QuotaFree`, under the item's fence). A unit whose item was not written
//! (its node died in between) stops counting after [`UNWRITTEN_FOR`]: a leak
//! tightens a quota that long at most, and never lets it be exceeded.

use super::PgError;
use deadpool_postgres::GenericClient;

/// What a unit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// A claimed or in-progress assignment (`max_simultaneous_assignments`).
    Active,
    /// A task the agent created that is neither completed nor closed
    /// (`max_open_tasks_per_agent`).
    Open,
}

impl Quota {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Quota::Active => "active",
            Quota::Open => "open",
        }
    }

    /// The condition that the unit's item is live, and the unit's agent's (`q`
    /// the unit's row).
    fn live(self) -> &'static str {
        match self {
            Quota::Active => {
                "EXISTS (SELECT 1 FROM assignments a WHERE a.id = q.item_id
                          AND a.agent_id = q.agent_id
                          AND a.status IN ('claimed', 'in_progress'))"
            }
            Quota::Open => {
                "EXISTS (SELECT 1 FROM root_tasks t WHERE t.id = q.item_id
                          AND t.dispatcher_agent_id = q.agent_id
                          AND t.status NOT IN ('completed', 'closed'))"
            }
        }
    }
}

/// How long a unit counts without its item being live: longer than a batch may
/// take to commit (`WRITE_TIMEOUT`).
pub(crate) const UNWRITTEN_FOR: std::time::Duration = std::time::Duration::from_secs(40);

/// The outcome of [`take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A new unit: give it back ([`give_back`]) if the item is not written.
    New,
    /// The item holds one already (a call repeated).
    Held,
    /// The agent has `max` units: none taken.
    Full,
}

/// Take one of `agent`'s units of `quota` for `item` (of the task whose shard is
/// `shard`), if fewer than `max` count.
pub(crate) async fn take(
    client: &mut deadpool_postgres::Client,
    quota: Quota,
    (agent, item): (&str, &str),
    shard: i32,
    max: u32,
) -> Result<Taken, PgError> {
    let tx = client.transaction().await?;
    // One take per agent at a time, whichever node asks.
    tx.query("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", &[&agent])
        .await?;
    let kind = quota.as_str();
    let held = tx
        .query_opt(
            "SELECT 1 FROM agent_quota WHERE kind = $1 AND item_id = $2 AND agent_id = $3",
            &[&kind, &item, &agent],
        )
        .await?;
    if held.is_some() {
        tx.commit().await?;
        return Ok(Taken::Held);
    }
    // Another agent's unit of the item: the item is that agent's while it is
    // live for it, or recent (this call is then refused anyway: nothing taken);
    // else it goes.
    let theirs = format!(
        "DELETE FROM agent_quota q WHERE q.kind = $1 AND q.item_id = $2 AND q.agent_id <> $3
            AND q.created_at < now() - $4::bigint * interval '1 millisecond'
            AND NOT {}",
        quota.live()
    );
    let window_ms = i64::try_from(UNWRITTEN_FOR.as_millis()).unwrap_or(i64::MAX);
    tx.execute(&theirs, &[&kind, &item, &agent, &window_ms])
        .await?;
    let other = tx
        .query_opt(
            "SELECT 1 FROM agent_quota WHERE kind = $1 AND item_id = $2",
            &[&kind, &item],
        )
        .await?;
    if other.is_some() {
        tx.commit().await?;
        return Ok(Taken::Held);
    }
    let window = i64::try_from(UNWRITTEN_FOR.as_millis()).unwrap_or(i64::MAX);
    // Units of items that ended or were never written go first (the table stays
    // as small as the live items).
    let dead = format!(
        "DELETE FROM agent_quota q WHERE q.kind = $1 AND q.agent_id = $2
            AND q.created_at < now() - $3::bigint * interval '1 millisecond'
            AND NOT {}",
        quota.live()
    );
    tx.execute(&dead, &[&kind, &agent, &window]).await?;
    let row = tx
        .query_one(
            "SELECT count(*) FROM agent_quota WHERE kind = $1 AND agent_id = $2",
            &[&kind, &agent],
        )
        .await?;
    let counted: i64 = row.try_get(0)?;
    if counted >= i64::from(max) {
        tx.commit().await?;
        return Ok(Taken::Full);
    }
    // Another agent's take of the same item (racing for one assignment) may have
    // committed since the look above: theirs stands, as if seen.
    let inserted = tx
        .execute(
            "INSERT INTO agent_quota (kind, item_id, agent_id, shard, created_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (kind, item_id) DO NOTHING",
            &[&kind, &item, &agent, &shard],
        )
        .await?;
    tx.commit().await?;
    Ok(if inserted == 1 {
        Taken::New
    } else {
        Taken::Held
    })
}

/// Units for the live items that have none: those written while one node served
/// every shard (standby placement, or a spread node alone), which counts in
/// memory. Run before a hub serving some shards is loaded; idempotent.
pub(crate) async fn backfill(client: &impl GenericClient) -> Result<u64, PgError> {
    let active = client
        .execute(
            "INSERT INTO agent_quota (kind, item_id, agent_id, shard, created_at)
             SELECT 'active', a.id, a.agent_id, a.shard, now() FROM assignments a
              WHERE a.status IN ('claimed', 'in_progress')
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    let open = client
        .execute(
            "INSERT INTO agent_quota (kind, item_id, agent_id, shard, created_at)
             SELECT 'open', t.id, t.dispatcher_agent_id, t.shard, now() FROM root_tasks t
              WHERE t.status NOT IN ('completed', 'closed')
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    Ok(active + open)
}

/// Give back the unit [`take`] took for `agent`'s `item` when the item was not
/// written.
pub(crate) async fn give_back(
    client: &impl GenericClient,
    quota: Quota,
    (agent, item): (&str, &str),
) -> Result<(), PgError> {
    client
        .execute(
            "DELETE FROM agent_quota WHERE kind = $1 AND item_id = $2 AND agent_id = $3",
            &[&quota.as_str(), &item, &agent],
        )
        .await?;
    Ok(())
}
