//! The log as the worker keeps it in D1 (migrations/0003_log.sql), in pure terms: the key
//! that signs its checkpoints, one step of hashing new entries into the tree, and the
//! inclusion proof a lookup carries, assembled from the row the lookup read.
//!
//! Entries are appended in the same transaction as the statement they log, so D1's primary
//! is the one writer that orders them. The tree is a function of the entries, and an
//! Ed25519 signature of a given text is deterministic: any isolate can hash the entries not
//! yet in the tree and sign the checkpoint, and two that race write the same nodes and the
//! same note for the same size (the state row only moves forward: of two steps, the longer
//! stands).

use super::merkle::{leaf_hash, Hash};
use super::note::{sign, verifier_key, Checkpoint};
use super::tree::{self, Node};
use crate::domain::ServerDomain;
use data_encoding::{BASE64, HEXUPPER};
use ed25519_dalek::SigningKey;
use serde::Serialize;

/// Entries hashed per step: bounds one step's reads and writes (a step writes about twice as
/// many nodes).
pub const ENTRIES_PER_STEP: u32 = 256;

/// The log's signing key (`LOG_SIGNING_SEED`, 64 hex digits) and the names it signs under.
pub struct LogKey {
    key: SigningKey,
    /// `<server domain>/log`: the checkpoint's origin line and the note's key name.
    pub origin: String,
    /// The verifier key clients pin (C2SP signed-note format), published in healthz.
    pub verifier_key: String,
}

impl LogKey {
    pub fn parse(seed_hex: &str, server: &ServerDomain) -> Result<LogKey, String> {
        let seed: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
            .decode(seed_hex.trim().as_bytes())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("LOG_SIGNING_SEED must be 64 hex digits (32 bytes)")?;
        let key = SigningKey::from_bytes(&seed);
        let origin = format!("{}/log", server.as_str());
        let verifier_key = verifier_key(&origin, &key.verifying_key());
        Ok(LogKey { key, origin, verifier_key })
    }

    /// The signed checkpoint of a tree of `size` with `root`.
    pub fn checkpoint(&self, size: u64, root: Hash) -> String {
        sign(&Checkpoint { origin: self.origin.clone(), size, root }.text(), &self.origin, &self.key)
    }
}

/// One step of hashing entries into the tree: what to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    pub size: u64,
    /// The new right edge, as stored: the hex of its hashes, largest subtree first.
    pub edge: String,
    /// `[[key, "HEX"], …]`: the nodes the step completed, for one `INSERT … json_each`.
    pub nodes_json: String,
    pub checkpoint: String,
}

/// Hashes `entries` (the next ones after `size`, in order) into the tree whose right edge is
/// stored as `edge`, and signs the new checkpoint. An edge that does not fit the size means the
/// stored state was edited: an error, nothing is written.
pub fn step(key: &LogKey, size: u64, edge: &str, entries: &[String]) -> Result<Step, String> {
    let edge = decode_hashes(edge).ok_or("log_state.edge is not hex of whole hashes")?;
    let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry.as_bytes())).collect();
    let grown = tree::grow(size, &edge, &leaves).ok_or("log_state.edge does not fit its size")?;
    let size = size + leaves.len() as u64;
    let nodes: Vec<String> =
        grown.nodes.iter().map(|(node, hash)| format!("[{},\"{}\"]", node.key(), HEXUPPER.encode(hash))).collect();
    Ok(Step {
        size,
        edge: grown.edge.iter().map(|hash| HEXUPPER.encode(hash)).collect(),
        nodes_json: format!("[{}]", nodes.join(",")),
        checkpoint: key.checkpoint(size, grown.root),
    })
}

/// What a lookup carries about the statement it shows: its index, the newest checkpoint, and
/// the statement's inclusion proof in that checkpoint (RFC 9162 audit path, base64 hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogView {
    pub index: u64,
    pub checkpoint: String,
    pub inclusion_proof: Vec<String>,
}

/// The log columns of a lookup's row: the statement's index (empty when it has none), the
/// tree's size, checkpoint and edge, and `key:HEX` pairs of stored nodes beside the
/// statement's path (its siblings in the complete tree), comma-separated.
pub struct LogColumns<'a> {
    pub index: &'a str,
    pub size: &'a str,
    pub checkpoint: &'a str,
    pub edge: &'a str,
    pub siblings: &'a str,
}

impl LogColumns<'_> {
    /// The lookup's `log`: `None` while the statement is not yet in a signed checkpoint (its
    /// entry is written; the next step signs it). Nodes missing or malformed mean the store
    /// was edited: an error, never a wrong proof.
    pub fn view(&self) -> Result<Option<LogView>, String> {
        if self.index.is_empty() {
            return Ok(None);
        }
        let index: u64 = self.index.parse().map_err(|_| format!("log index \"{}\"", self.index))?;
        let size: u64 = self.size.parse().map_err(|_| format!("log size \"{}\"", self.size))?;
        if index >= size {
            return Ok(None);
        }
        // The proof's hashes are the statement's complete siblings and the tree's right edge.
        let edge = decode_hashes(self.edge).ok_or("log edge is not hex of whole hashes")?;
        let edge_nodes = tree::root_nodes(size);
        if edge.len() != edge_nodes.len() {
            return Err("log edge does not fit its size".into());
        }
        // At most two hashes a level: a list is enough.
        let mut known: Vec<(Node, Hash)> = edge_nodes.into_iter().zip(edge).collect();
        for pair in self.siblings.split(',').filter(|pair| !pair.is_empty()) {
            let (key, hex) = pair.split_once(':').ok_or("log sibling without a key")?;
            let node = key.parse().ok().and_then(Node::from_key).ok_or("log sibling key")?;
            let hash = decode_hashes(hex).filter(|h| h.len() == 1).ok_or("log sibling hash")?[0];
            if tree::is_complete_in(node, size) {
                known.push((node, hash));
            }
        }
        let ranges = tree::inclusion_nodes(index, size).expect("index < size");
        let mut inclusion_proof = Vec::with_capacity(ranges.len());
        for nodes in ranges {
            let hashes: Option<Vec<Hash>> =
                nodes.iter().map(|node| known.iter().find(|(n, _)| n == node).map(|(_, hash)| *hash)).collect();
            let hashes = hashes.ok_or_else(|| format!("log node missing for leaf {index} of {size}"))?;
            inclusion_proof.push(BASE64.encode(&tree::fold(&hashes)));
        }
        Ok(Some(LogView { index, checkpoint: self.checkpoint.to_owned(), inclusion_proof }))
    }
}

/// Hex (either case) of whole 32-byte hashes.
fn decode_hashes(hex: &str) -> Option<Vec<Hash>> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).ok()?;
    if bytes.len() % 32 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(32).map(|chunk| chunk.try_into().expect("32 bytes")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::merkle::{inclusion_proof, root, verify_inclusion};
    use crate::log::note::open;
    use std::collections::HashMap;

    fn key() -> LogKey {
        LogKey::parse(&"07".repeat(32), &ServerDomain::parse("Chat.Example").unwrap()).unwrap()
    }

    fn entries(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| format!("{{\"entry\":{i}}}")).collect()
    }

    /// The nodes a D1 store would hold after `steps`, by key.
    fn apply(stored: &mut HashMap<i64, Hash>, step: &Step) {
        let nodes: Vec<(i64, String)> = serde_json::from_str(&step.nodes_json).unwrap();
        for (key, hex) in nodes {
            let hash = decode_hashes(&hex).unwrap()[0];
            assert!(stored.insert(key, hash).is_none());
        }
    }

    /// The siblings column as the lookup's SQL makes it: stored nodes (level, (index >> level) xor 1).
    fn siblings(stored: &HashMap<i64, Hash>, index: u64) -> String {
        (0..48u8)
            .map(|level| Node { level, index: (index >> level) ^ 1 }.key())
            .filter_map(|key| stored.get(&key).map(|hash| format!("{key}:{}", HEXUPPER.encode(hash))))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn steps_sign_the_reference_root_and_lookups_carry_proofs_that_verify() {
        let key = key();
        assert_eq!(key.origin, "chat.example/log");
        let all = entries(0..40);
        let leaves: Vec<Hash> = all.iter().map(|e| leaf_hash(e.as_bytes())).collect();
        let (mut stored, mut size, mut edge) = (HashMap::new(), 0u64, String::new());
        for batch in [1usize, 2, 3, 7, 11, 16] {
            let step = step(&key, size, &edge, &all[size as usize..size as usize + batch]).unwrap();
            apply(&mut stored, &step);
            (size, edge) = (step.size, step.edge.clone());
            let text = open(&step.checkpoint, &key.origin, &key.key.verifying_key()).expect("signed by the log key");
            let checkpoint = Checkpoint::parse(text).unwrap();
            assert_eq!((checkpoint.size, checkpoint.root), (size, root(&leaves[..size as usize])));
            for index in 0..size {
                let columns = LogColumns {
                    index: &index.to_string(),
                    size: &size.to_string(),
                    checkpoint: &step.checkpoint,
                    edge: &edge,
                    siblings: &siblings(&stored, index),
                };
                let view = columns.view().unwrap().unwrap();
                let proof: Vec<Hash> = view
                    .inclusion_proof
                    .iter()
                    .map(|b| BASE64.decode(b.as_bytes()).unwrap().try_into().unwrap())
                    .collect();
                assert_eq!(Some(proof.clone()), inclusion_proof(index, &leaves[..size as usize]));
                assert!(verify_inclusion(index, size, &leaves[index as usize], &proof, &checkpoint.root));
            }
        }
    }

    #[test]
    fn no_proof_until_signed_and_an_edited_store_is_an_error() {
        let key = key();
        let first = step(&key, 0, "", &entries(0..5)).unwrap();
        let columns = |index: &'static str, edge: String, siblings: String| (index, edge, siblings);
        let (mut stored, checkpoint) = (HashMap::new(), first.checkpoint.clone());
        apply(&mut stored, &first);
        let view = |(index, edge, siblings): (&str, String, String)| {
            LogColumns { index, size: "5", checkpoint: &checkpoint, edge: &edge, siblings: &siblings }.view()
        };
        assert_eq!(view(columns("", first.edge.clone(), String::new())), Ok(None), "no entry");
        assert_eq!(view(columns("5", first.edge.clone(), String::new())), Ok(None), "not yet signed");
        assert!(view(columns("0", first.edge.clone(), String::new())).is_err(), "siblings missing");
        assert!(view(columns("0", first.edge[..64].to_owned(), siblings(&stored, 0))).is_err(), "edge cut");
        assert!(view(columns("x", first.edge.clone(), String::new())).is_err());
        assert!(view(columns("0", first.edge.clone(), siblings(&stored, 0))).unwrap().is_some());
        assert!(step(&key, 5, &first.edge[..64], &entries(5..6)).is_err(), "edge does not fit");
        assert!(step(&key, 0, "zz", &[]).is_err());
    }

    #[test]
    fn the_key_is_64_hex_digits() {
        let server = ServerDomain::parse("chat.example").unwrap();
        for bad in ["", "07", &"07".repeat(33), &"zz".repeat(32)] {
            assert!(LogKey::parse(bad, &server).is_err(), "{bad}");
        }
        let key = key();
        assert!(key.verifier_key.starts_with("chat.example/log+"));
        assert_eq!(key.checkpoint(0, root(&[])), key.checkpoint(0, root(&[])), "deterministic");
    }
}
