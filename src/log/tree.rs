//! The log's tree as it is stored: the hash of every complete subtree (a `Node`), written once
//! when its last leaf arrives and never changed. A root, a proof or a hash tile for any size
//! is then read from a handful of stored nodes, never recomputed from every leaf. The proofs'
//! shapes come from `merkle`, so there is one RFC 9162 implementation.

use super::merkle::{self, node_hash, Hash};
use super::tiles::{TILE_HEIGHT, TILE_WIDTH};
use sha2::{Digest, Sha256};
use std::ops::Range;

/// A complete subtree: the 2^`level` leaves from `index` · 2^`level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    pub level: u8,
    pub index: u64,
}

/// Bits of a storage key below the level: room for 2^56 leaves.
const LEVEL_SHIFT: u32 = 56;

impl Node {
    /// Its storage key: the level above the index, so one level's nodes sort in order and a
    /// tile is one range of keys.
    pub fn key(self) -> i64 {
        (i64::from(self.level) << LEVEL_SHIFT) | self.index as i64
    }

    pub fn from_key(key: i64) -> Option<Node> {
        let level = u8::try_from(key >> LEVEL_SHIFT).ok()?;
        Some(Node { level, index: (key as u64) & ((1 << LEVEL_SHIFT) - 1) })
    }

    fn leaves(self) -> Range<u64> {
        let start = self.index << self.level;
        start..start + (1 << self.level)
    }
}

/// The complete subtrees that make the RFC 9162 subtree over `range`, largest first: its
/// start is a multiple of a power of two at least its length, so they are its length's bits.
pub fn cover(range: Range<u64>) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let level = (63 - (range.end - start).leading_zeros()) as u8;
        nodes.push(Node { level, index: start >> level });
        start += 1 << level;
    }
    nodes
}

/// The root of a subtree from the hashes of its `cover`, in order: each later (smaller)
/// subtree is to the right of the ones before.
pub fn fold(hashes: &[Hash]) -> Hash {
    let mut hashes = hashes.iter().rev();
    let Some(last) = hashes.next() else { return Sha256::digest([]).into() };
    hashes.fold(*last, |right, left| node_hash(left, &right))
}

/// The nodes whose hashes give the root of the tree of `size` leaves (`fold` them).
pub fn root_nodes(size: u64) -> Vec<Node> {
    cover(0..size)
}

/// The proof of leaf `index` in the tree of `size` leaves, as the nodes to read: one list per
/// proof hash (`fold` each), leaf to root. `None` when the leaf is not in the tree.
pub fn inclusion_nodes(index: u64, size: u64) -> Option<Vec<Vec<Node>>> {
    Some(merkle::inclusion_ranges(index, size)?.into_iter().map(cover).collect())
}

/// The consistency proof from `old_size` to `new_size`, as the nodes to read (`fold` each).
pub fn consistency_nodes(old_size: u64, new_size: u64) -> Option<Vec<Vec<Node>>> {
    Some(merkle::consistency_ranges(old_size, new_size)?.into_iter().map(cover).collect())
}

/// What appending leaves to a tree gives: every node they complete (new, never stored
/// before), the new tree's right edge and its root.
#[derive(Debug, PartialEq, Eq)]
pub struct Grown {
    pub nodes: Vec<(Node, Hash)>,
    pub edge: Vec<Hash>,
    pub root: Hash,
}

/// Appends `leaves` (leaf hashes) to the tree of `size` leaves whose right edge is `edge`:
/// the hashes of `root_nodes(size)`, in order. `None` if `edge` does not fit `size`.
pub fn grow(size: u64, edge: &[Hash], leaves: &[Hash]) -> Option<Grown> {
    let levels = root_nodes(size);
    if levels.len() != edge.len() {
        return None;
    }
    // The right edge as a stack of (level, hash), largest subtree at the bottom.
    let mut stack: Vec<(u8, Hash)> = levels.iter().map(|n| n.level).zip(edge.iter().copied()).collect();
    let mut nodes = Vec::new();
    for (offset, leaf) in leaves.iter().enumerate() {
        let last = size + offset as u64;
        stack.push((0, *leaf));
        nodes.push((Node { level: 0, index: last }, *leaf));
        // Two subtrees of one level on top make the next level's node ending at this leaf.
        while let [.., (left_level, left), (right_level, right)] = stack[..] {
            if left_level != right_level {
                break;
            }
            let hash = node_hash(&left, &right);
            stack.truncate(stack.len() - 2);
            let level = left_level + 1;
            stack.push((level, hash));
            nodes.push((Node { level, index: last >> level }, hash));
        }
    }
    let edge: Vec<Hash> = stack.into_iter().map(|(_, hash)| hash).collect();
    Some(Grown { root: fold(&edge), edge, nodes })
}

/// The nodes a hash tile holds: `width` hashes of tree level 8·`level` from `index`·256.
pub fn tile_nodes(level: u8, index: u64, width: u16) -> impl Iterator<Item = Node> {
    let tree_level = level * TILE_HEIGHT as u8;
    (0..u64::from(width)).map(move |i| Node { level: tree_level, index: index * TILE_WIDTH + i })
}

/// Whether a node is complete in the tree of `size` leaves (and so stored, and fixed).
pub fn is_complete_in(node: Node, size: u64) -> bool {
    node.leaves().end <= size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::merkle::{consistency_proof, inclusion_proof, leaf_hash, root};
    use crate::log::tiles::hash_tile;
    use std::collections::HashMap;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    /// A store grown in uneven batches, as appends arrive.
    /// The nodes written, and each size reached with its root.
    fn store(n: u64) -> (HashMap<Node, Hash>, Vec<(u64, Hash)>) {
        let all = leaves(n);
        let (mut stored, mut states) = (HashMap::new(), Vec::new());
        let (mut size, mut edge) = (0u64, Vec::new());
        let mut batch = 1;
        while size < n {
            let end = (size + batch).min(n);
            let grown = grow(size, &edge, &all[size as usize..end as usize]).unwrap();
            for (node, hash) in grown.nodes {
                assert!(stored.insert(node, hash).is_none(), "{node:?} written twice");
            }
            (size, edge) = (end, grown.edge);
            states.push((size, grown.root));
            batch = batch % 5 + 1;
        }
        (stored, states)
    }

    fn read(stored: &HashMap<Node, Hash>, nodes: &[Node]) -> Hash {
        fold(&nodes.iter().map(|n| stored[n]).collect::<Vec<_>>())
    }

    #[test]
    fn grown_roots_and_stored_proofs_match_the_reference_tree() {
        let n = 70;
        let all = leaves(n);
        let (stored, states) = store(n);
        for (size, grown_root) in &states {
            assert_eq!(*grown_root, root(&all[..*size as usize]), "size {size}");
        }
        // Every complete subtree is stored, and nothing else.
        let complete: usize = (0..8).map(|level| (n >> level) as usize).sum();
        assert_eq!(stored.len(), complete);
        for size in 1..=n {
            let tree = &all[..size as usize];
            assert_eq!(read(&stored, &root_nodes(size)), root(tree));
            for index in 0..size {
                let proof: Vec<Hash> =
                    inclusion_nodes(index, size).unwrap().iter().map(|nodes| read(&stored, nodes)).collect();
                assert_eq!(Some(proof), inclusion_proof(index, tree), "leaf {index} of {size}");
            }
            for old in 1..=size {
                let proof: Vec<Hash> =
                    consistency_nodes(old, size).unwrap().iter().map(|nodes| read(&stored, nodes)).collect();
                assert_eq!(Some(proof), consistency_proof(old, tree), "{old} to {size}");
            }
            // Only complete subtrees are ever asked for.
            for nodes in inclusion_nodes(0, size).unwrap().iter().chain(&consistency_nodes(1, size).unwrap()) {
                assert!(nodes.iter().all(|node| is_complete_in(*node, size)));
            }
        }
        assert_eq!(inclusion_nodes(n, n), None);
        assert_eq!(consistency_nodes(0, n), None);
    }

    #[test]
    fn the_empty_tree_grows_and_a_wrong_edge_is_refused() {
        assert_eq!(fold(&[]), root(&[]));
        let all = leaves(3);
        let grown = grow(0, &[], &all).unwrap();
        assert_eq!(grown.root, root(&all));
        assert_eq!(grow(3, &grown.edge[..1], &all), None);
        assert_eq!(grow(0, &[], &[]).unwrap().root, root(&[]));
    }

    #[test]
    fn stored_tiles_are_the_reference_tiles() {
        let n = 256 * 2 + 5;
        let all = leaves(n);
        let (stored, _) = store(n);
        for (level, index, width) in [(0u8, 0u64, 256u16), (0, 1, 256), (0, 2, 5), (1, 0, 2)] {
            let tile: Vec<u8> = tile_nodes(level, index, width).flat_map(|node| stored[&node]).collect();
            assert_eq!(Some(tile), hash_tile(level, index, width, &all), "tile {level}/{index}.p/{width}");
        }
    }

    #[test]
    fn keys_round_trip_and_sort_by_level_then_index() {
        let nodes = [Node { level: 0, index: 0 }, Node { level: 0, index: 5 }, Node { level: 8, index: 1 }];
        for node in nodes {
            assert_eq!(Node::from_key(node.key()), Some(node));
        }
        assert!(nodes.windows(2).all(|pair| pair[0].key() < pair[1].key()));
        assert_eq!(Node::from_key(-1), None);
    }
}
