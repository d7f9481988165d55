//! Ownership shards (shared/spec/cluster.md §2): every stored row belongs to one owner
//! (a task, an agent or a lock key) and carries that owner's shard, so that a node can
//! load exactly the shards it owns with one index scan. One node owns every shard
//! today; cluster mode moves shards between nodes through the same loading path.
//!
//! The hash is frozen: changing it (or [`SHARD_COUNT`]) is a data migration. Its name
//! is stored in the database (`hub_meta.shard_hash`) and checked at start-up. SHA-256
//! was chosen over SipHash because PostgreSQL computes it natively (`sha256()`), so a
//! cluster's migration can fill the column in SQL, and so can an operator's script.

use sha2::{Digest, Sha256};

/// Number of virtual shards, fixed forever.
pub(crate) const SHARD_COUNT: u16 = 1024;

/// The frozen hash, as recorded in `hub_meta`: the first 8 bytes of SHA-256 of the
/// owner's id (UTF-8), read big-endian, modulo [`SHARD_COUNT`].
pub(crate) const SHARD_HASH: &str = "sha256-be64-mod1024";

/// One virtual shard, `0..SHARD_COUNT`. Public through [`crate::pg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// An ownership epoch of one shard: it grows by one on every change of owner
/// (cluster.md §2). Single-node mode owns every shard at [`Epoch::SINGLE_NODE`]
/// forever. Public through [`crate::pg`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

impl Epoch {
    /// The constant epoch of a single node, which never changes owner.
    pub const SINGLE_NODE: Epoch = Epoch(0);
}

/// The epoch of every shard as a hub was loaded under: what lock fencing tokens
/// carry in their high bits. Single-node mode (the default) is
/// [`Epoch::SINGLE_NODE`] for every shard. A hub is replaced whenever its node loses
/// a shard (a new ownership term), so the epochs of a hub never change.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardEpochs(Option<std::sync::Arc<[Epoch]>>);

impl ShardEpochs {
    /// From the shards held and their epochs (a shard missing counts as
    /// [`Epoch::SINGLE_NODE`]: its ops are refused by the writer anyway).
    pub(crate) fn from_held(held: &[(ShardId, Epoch)]) -> ShardEpochs {
        let mut all = vec![Epoch::SINGLE_NODE; usize::from(SHARD_COUNT)];
        for (shard, epoch) in held {
            if let Some(slot) = all.get_mut(usize::from(shard.0)) {
                *slot = *epoch;
            }
        }
        ShardEpochs(Some(all.into()))
    }

    /// The epoch the shard of `owner` is held at.
    pub(crate) fn of(&self, owner: &str) -> Epoch {
        match &self.0 {
            None => Epoch::SINGLE_NODE,
            Some(all) => all
                .get(usize::from(shard_of(owner).0))
                .copied()
                .unwrap_or(Epoch::SINGLE_NODE),
        }
    }
}

/// The shard of an owner id: a task id, an agent id or a lock key.
pub(crate) fn shard_of(owner: &str) -> ShardId {
    let digest = Sha256::digest(owner.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    ShardId((u64::from_be_bytes(head) % u64::from(SHARD_COUNT)) as u16)
}

/// The shards a hub serves: every one (one node, or standby placement), or a
/// node's share (spread placement). Cheap to clone and to ask, once per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardSet(Option<std::sync::Arc<[bool]>>);

impl ShardSet {
    /// The set `shards` names (every shard listed is [`Shards::All`]: a spread
    /// node alone in its cluster serves as one node does).
    pub(crate) fn of(shards: &Shards) -> ShardSet {
        match shards {
            Shards::All => ShardSet(None),
            Shards::Some(list) if list.len() >= usize::from(SHARD_COUNT) => ShardSet(None),
            Shards::Some(list) => {
                let mut held = vec![false; usize::from(SHARD_COUNT)];
                for s in list {
                    if let Some(slot) = held.get_mut(usize::from(s.0)) {
                        *slot = true;
                    }
                }
                ShardSet(Some(held.into()))
            }
        }
    }

    /// Whether every shard is in it.
    pub(crate) fn is_all(&self) -> bool {
        self.0.is_none()
    }

    /// Whether `shard` is in it.
    pub(crate) fn contains(&self, shard: ShardId) -> bool {
        match &self.0 {
            None => true,
            Some(held) => held.get(usize::from(shard.0)).copied().unwrap_or(false),
        }
    }

    /// Whether the shard of `owner` (a task id, an agent id or a lock key) is in it.
    pub(crate) fn owns(&self, owner: &str) -> bool {
        self.is_all() || self.contains(shard_of(owner))
    }
}

/// Which shards to load: all of them (one node), or a node's share (cluster mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Shards {
    /// Every shard.
    #[default]
    All,
    /// These shards only (in shard order).
    Some(Vec<ShardId>),
}

impl Shards {
    /// The shards, in order.
    pub(crate) fn to_vec(&self) -> Vec<ShardId> {
        match self {
            Shards::All => (0..SHARD_COUNT).map(ShardId).collect(),
            Shards::Some(list) => list.clone(),
        }
    }

    /// A condition on a `shard` column and its one parameter (a JSON array of shard
    /// numbers, read with `json_each`), or `None` when every shard is wanted (so the
    /// single-node queries stay what they were).
    pub(crate) fn condition(&self, column: &str) -> Option<(String, String)> {
        match self {
            Shards::All => None,
            Shards::Some(list) => {
                let nums: Vec<u16> = list.iter().map(|s| s.0).collect();
                Some((
                    format!("{column} IN (SELECT value FROM json_each(?))"),
                    serde_json::to_string(&nums).unwrap_or_else(|_| "[]".into()),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frozen values: if this test fails, the hash changed, and every stored row's
    /// shard would be wrong. Do not update the expected numbers; restore the hash.
    #[test]
    fn hash_is_frozen() {
        // sha256("") = e3b0c44298fc1c14...
        assert_eq!(
            shard_of("").0 as u64,
            0xe3b0_c442_98fc_1c14 % u64::from(SHARD_COUNT)
        );
        // Computed independently (Python hashlib), as a PostgreSQL migration would.
        assert_eq!(shard_of("agent-1"), ShardId(172));
        assert_eq!(shard_of("task-42"), ShardId(508));
        assert_eq!(shard_of("branch:main"), ShardId(275));
    }

    #[test]
    fn spreads_over_shards() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            seen.insert(shard_of(&format!("agent-{i}")));
        }
        // 10k owners over 1024 shards: every shard is hit with near certainty.
        assert!(seen.len() > 1000, "{}", seen.len());
    }

    #[test]
    fn sets() {
        let all = ShardSet::of(&Shards::All);
        assert!(all.is_all() && all.contains(ShardId(5)) && all.owns("anyone"));
        let some = ShardSet::of(&Shards::Some(vec![shard_of("agent-1"), ShardId(3)]));
        assert!(!some.is_all());
        assert!(some.owns("agent-1") && some.contains(ShardId(3)));
        assert!(!some.owns("task-42") && !some.contains(ShardId(4)));
        assert!(!some.contains(ShardId(SHARD_COUNT)));
        assert!(!ShardSet::of(&Shards::Some(vec![])).owns("agent-1"));
        // Every shard listed: served as by one node.
        assert!(ShardSet::of(&Shards::Some(Shards::All.to_vec())).is_all());
    }

    #[test]
    fn conditions() {
        assert_eq!(Shards::All.condition("shard"), None);
        let (sql, param) = Shards::Some(vec![ShardId(3), ShardId(7)])
            .condition("shard")
            .unwrap();
        assert_eq!(sql, "shard IN (SELECT value FROM json_each(?))");
        assert_eq!(param, "[3,7]");
    }
}
