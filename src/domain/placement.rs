//! Which node should own each shard when the shards are spread over the live
//! nodes (shared/spec/cluster.md §2, "Desired owner"): rendezvous
//! (highest-random-weight) hashing. Every node computes the same answer from the
//! same member list, with no coordination, and a node joining or leaving moves
//! only the shards it wins or held: about 1/N of them.
//!
//! The weight is SHA-256 of the node id and the shard, as [`super::shard`] hashes
//! owners: deterministic across builds and platforms (unlike the standard
//! library's SipHash keys), and cheap enough (N × 1024 hashes per lease round).

use super::shard::{ShardId, SHARD_COUNT};
use sha2::{Digest, Sha256};

/// The weight of `node` for `shard`: the first 8 bytes of SHA-256 of the node id,
/// a zero byte and the shard number (2 bytes, big-endian).
pub(crate) fn weight(node: &str, shard: ShardId) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(shard.0.to_be_bytes());
    let digest = h.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

/// The desired owner of `shard` among `nodes`: the highest weight (a tie, which
/// needs a SHA-256 collision on 64 bits, goes to the smaller id).
pub(crate) fn owner<S: AsRef<str>>(shard: ShardId, nodes: &[S]) -> Option<&str> {
    nodes.iter().map(AsRef::as_ref).max_by(|a, b| {
        weight(a, shard)
            .cmp(&weight(b, shard))
            .then_with(|| b.cmp(a))
    })
}

/// Shards an operator pinned to a node (`hubctl cluster move --shard`).
pub(crate) type Pins = std::collections::BTreeMap<ShardId, String>;

/// The desired owner of `shard` among `nodes`: the node it is pinned to while
/// that node is among them, else [`owner`].
pub(crate) fn desired<'a, S: AsRef<str>>(
    shard: ShardId,
    nodes: &'a [S],
    pins: &Pins,
) -> Option<&'a str> {
    if let Some(pinned) = pins.get(&shard) {
        if let Some(n) = nodes.iter().map(AsRef::as_ref).find(|n| *n == pinned) {
            return Some(n);
        }
    }
    owner(shard, nodes)
}

/// The shards `me` should own among `nodes` (which should include it).
pub(crate) fn shards_of<S: AsRef<str>>(me: &str, nodes: &[S], pins: &Pins) -> Vec<ShardId> {
    (0..SHARD_COUNT)
        .map(ShardId)
        .filter(|s| desired(*s, nodes, pins) == Some(me))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_wins_while_its_node_is_a_member() {
        let nodes = ["n1", "n2", "n3"];
        let shard = ShardId(7);
        let natural = owner(shard, &nodes).unwrap();
        let other = nodes.iter().find(|n| **n != natural).unwrap();
        let pins: Pins = [(shard, other.to_string())].into();
        assert_eq!(desired(shard, &nodes, &pins), Some(*other));
        assert!(shards_of(other, &nodes, &pins).contains(&shard));
        assert!(!shards_of(natural, &nodes, &pins).contains(&shard));
        // Its node gone: rendezvous among the others again.
        let without: Vec<&str> = nodes.iter().copied().filter(|n| n != other).collect();
        assert_eq!(desired(shard, &without, &pins), owner(shard, &without));
        // Other shards are not moved by a pin.
        assert_eq!(
            desired(ShardId(8), &nodes, &pins),
            owner(ShardId(8), &nodes)
        );
    }

    #[test]
    fn weights_are_frozen() {
        // A change here moves shards between the nodes of a running cluster
        // during a rolling upgrade: keep it.
        assert_eq!(weight("n1", ShardId(0)), weight("n1", ShardId(0)));
        assert_ne!(weight("n1", ShardId(0)), weight("n1", ShardId(1)));
        assert_ne!(weight("n1", ShardId(0)), weight("n2", ShardId(0)));
        // Computed independently (Python: hashlib.sha256(b"n1\x00\x00\x07")).
        assert_eq!(weight("n1", ShardId(7)), 0x764d_c49b_f63d_bd00);
    }

    #[test]
    fn every_shard_has_one_owner_and_the_split_is_fair() {
        let nodes = ["n1", "n2", "n3"];
        let mut total = 0;
        for n in nodes {
            let mine = shards_of(n, &nodes, &Pins::new());
            // 1024 / 3 = 341; rendezvous spreads within a few percent.
            assert!((280..=400).contains(&mine.len()), "{n}: {}", mine.len());
            total += mine.len();
        }
        assert_eq!(total, usize::from(SHARD_COUNT));
        assert_eq!(
            shards_of("n1", &["n1"], &Pins::new()).len(),
            usize::from(SHARD_COUNT)
        );
        assert_eq!(owner::<&str>(ShardId(1), &[]), None);
    }

    #[test]
    fn a_join_or_a_leave_moves_only_its_share() {
        let three = ["n1", "n2", "n3"];
        let four = ["n1", "n2", "n3", "n4"];
        let mut moved = 0;
        for s in (0..SHARD_COUNT).map(ShardId) {
            let (before, after) = (owner(s, &three), owner(s, &four));
            if before != after {
                // Only to the newcomer.
                assert_eq!(after, Some("n4"));
                moved += 1;
            }
        }
        assert!((200..=320).contains(&moved), "{moved}");
        // n2 leaves: only its shards move, and the order of the list does not matter.
        let without = ["n3", "n1"];
        for s in (0..SHARD_COUNT).map(ShardId) {
            let (before, after) = (owner(s, &three), owner(s, &without));
            if before != Some("n2") {
                assert_eq!(before, after);
            }
        }
    }
}
