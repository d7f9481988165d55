//! `request_log`: the answers of forwarded calls, written with the call's own ops
//! (an `Op::End` closing its group) and read back when a gateway repeats the call
//! (`mcp::replay`). Kept [`LOGGED_FOR`]; pruned by the serving node.

use super::{PgError, Pool};
use crate::store::op::LOGGED_FOR;

/// The answer logged under `key`, if any.
pub(crate) async fn lookup(pool: &Pool, key: &str) -> Result<Option<String>, PgError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT reply FROM request_log WHERE request_id = $1",
            &[&key],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Delete the answers older than [`LOGGED_FOR`]; returns how many went.
pub(crate) async fn prune(pool: &Pool) -> Result<u64, PgError> {
    let client = pool.get().await?;
    let secs = LOGGED_FOR.as_secs() as i64;
    Ok(client
        .execute(
            "DELETE FROM request_log WHERE created_at < now() - $1::bigint * interval '1 second'",
            &[&secs],
        )
        .await?)
}
