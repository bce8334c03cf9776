//! The log's Merkle tree, as RFC 9162 §2.1 defines it: leaf hashes `SHA-256(0x00 ‖ entry)`,
//! interior nodes `SHA-256(0x01 ‖ left ‖ right)`, the tree of `n` leaves split at the largest
//! power of two below `n`. Inclusion and consistency proofs are made from the leaf hashes and
//! checked with the algorithms of §2.1.3.2 and §2.1.4.2, which a client runs from the proof
//! alone.

use sha2::{Digest, Sha256};
use std::ops::Range;

pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(entry).finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// The largest power of two smaller than `n` (`n` > 1): where a tree of `n` leaves splits.
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[n]): the root of the tree over `leaves` (leaf hashes). The empty tree's root is the
/// hash of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `index` in the tree over `leaves`; `None` when the
/// index is not in the tree.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Option<Vec<Hash>> {
    Some(inclusion_ranges(index, leaves.len() as u64)?.into_iter().map(|r| root(&leaves[as_usize(r)])).collect())
}

/// The subtrees, as leaf ranges, whose roots make PATH(`index`, D[`size`]), leaf to root: the
/// proof's shape, whatever holds the hashes.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<Range<u64>>> {
    if index >= size {
        return None;
    }
    let mut path = Vec::new();
    collect_path(index, 0..size, &mut path);
    Some(path)
}

fn collect_path(m: u64, tree: Range<u64>, path: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if n <= 1 {
        return;
    }
    let mid = tree.start + split(n);
    if m < mid {
        collect_path(m, tree.start..mid, path);
        path.push(mid..tree.end);
    } else {
        collect_path(m, mid..tree.end, path);
        path.push(tree.start..mid);
    }
}

fn as_usize(r: Range<u64>) -> Range<usize> {
    r.start as usize..r.end as usize
}

/// Whether `proof` shows that `leaf` is leaf `index` of the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// PROOF(m, D[n]): the consistency proof from the tree of the first `old_size` leaves to the
/// tree over all of `leaves`; `None` unless 0 < `old_size` ≤ n.
pub fn consistency_proof(old_size: u64, leaves: &[Hash]) -> Option<Vec<Hash>> {
    Some(consistency_ranges(old_size, leaves.len() as u64)?.into_iter().map(|r| root(&leaves[as_usize(r)])).collect())
}

/// The subtrees, as leaf ranges, whose roots make PROOF(`old_size`, D[`new_size`]).
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Option<Vec<Range<u64>>> {
    if old_size == 0 || old_size > new_size {
        return None;
    }
    let mut proof = Vec::new();
    subproof(old_size, 0..new_size, true, &mut proof);
    Some(proof)
}

fn subproof(m: u64, tree: Range<u64>, whole: bool, proof: &mut Vec<Range<u64>>) {
    let n = tree.end - tree.start;
    if m == n {
        if !whole {
            proof.push(tree);
        }
        return;
    }
    let k = split(n);
    let mid = tree.start + k;
    if m <= k {
        subproof(m, tree.start..mid, whole, proof);
        proof.push(mid..tree.end);
    } else {
        subproof(m - k, mid..tree.end, false, proof);
        proof.push(tree.start..mid);
    }
}

/// Whether `proof` shows the tree of `old_size` leaves with `old_root` is a prefix of the tree
/// of `new_size` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut proof = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let Some((first, rest)) = proof.split_first() else { return false };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The leaves of the Certificate Transparency reference tests (RFC 6962's tree, which RFC
    /// 9162 keeps), and the roots published with them for each prefix.
    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    #[test]
    fn roots_match_the_reference_tree() {
        let hashes: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(l)).collect();
        for n in 1..=8 {
            assert_eq!(hex(&root(&hashes[..n])), ROOTS[n - 1], "{n} leaves");
        }
        assert_eq!(hex(&root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_other_does() {
        for n in 1..=40 {
            let tree = leaves(n);
            let r = root(&tree);
            for i in 0..n as u64 {
                let proof = inclusion_proof(i, &tree).unwrap();
                assert!(verify_inclusion(i, n as u64, &tree[i as usize], &proof, &r), "{i} of {n}");
                // Another leaf, index or root, or a longer path: refused. (A size with another
                // root is the checkpoint's to bind: it signs the two together.)
                assert!(!verify_inclusion(i, n as u64, &leaf_hash(b"other"), &proof, &r));
                if n > 1 {
                    assert!(!verify_inclusion((i + 1) % n as u64, n as u64, &tree[i as usize], &proof, &r));
                }
                assert!(!verify_inclusion(i, n as u64, &tree[i as usize], &proof, &leaf_hash(b"root")));
                let mut longer = proof.clone();
                longer.push(r);
                assert!(!verify_inclusion(i, n as u64, &tree[i as usize], &longer, &r));
            }
            assert_eq!(inclusion_proof(n as u64, &tree), None);
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_forked_tree_does_not() {
        for n in 1..=33 {
            let tree = leaves(n);
            let new_root = root(&tree);
            for m in 1..=n {
                let old_root = root(&tree[..m]);
                let proof = consistency_proof(m as u64, &tree).unwrap();
                assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof), "{m} -> {n}");
                // A tree whose first m leaves differ is not an extension of the old one.
                let mut forked = tree.clone();
                forked[m - 1] = leaf_hash(b"forked");
                let forked_root = root(&forked);
                let forked_proof = consistency_proof(m as u64, &forked).unwrap();
                assert!(
                    !verify_consistency(m as u64, n as u64, &old_root, &forked_root, &forked_proof),
                    "fork {m} -> {n}"
                );
            }
            assert_eq!(consistency_proof(0, &tree), None);
            assert_eq!(consistency_proof(n as u64 + 1, &tree), None);
        }
    }
}
