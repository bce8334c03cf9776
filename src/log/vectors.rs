//! `tests/vectors/log.json`: a small log made by this code (entries, hash tiles, entry bundles,
//! signed checkpoints, inclusion and consistency proofs), which `tests/vectors/check_log.py`
//! checks from the RFC and C2SP texts alone. Regenerate with `KEZ_WRITE_VECTORS=1 cargo test
//! log::vectors` after a deliberate change.

use super::merkle::{consistency_proof, inclusion_proof, leaf_hash, root, Hash};
use super::note::{sign, verifier_key, Checkpoint};
use super::tiles::{entry_bundle, hash_tile, Tile};
use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const VECTORS: &str = include_str!("../../tests/vectors/log.json");
const ORIGIN: &str = "example.org/log";
const SIZE: u64 = 300;
const OLD_SIZE: u64 = 7;

fn entries() -> Vec<Vec<u8>> {
    (0..SIZE).map(|i| format!("{{\"entry\":{i},\"pad\":\"{}\"}}", "x".repeat((i % 7) as usize)).into_bytes()).collect()
}

fn made() -> Value {
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let entries = entries();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let b64 = |hashes: Vec<Hash>| hashes.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>();
    let checkpoint = |size: u64| {
        let body = Checkpoint { origin: ORIGIN.into(), size, root: root(&leaves[..size as usize]) };
        sign(&body.text(), ORIGIN, &key)
    };
    let tiles = [
        Tile::Hashes { level: 0, index: 0, width: 256 },
        Tile::Hashes { level: 0, index: 1, width: 44 },
        Tile::Hashes { level: 1, index: 0, width: 1 },
        Tile::Entries { index: 0, width: 256 },
        Tile::Entries { index: 1, width: 44 },
    ];
    let tile_bytes = |tile: &Tile| match *tile {
        Tile::Hashes { level, index, width } => hash_tile(level, index, width, &leaves).expect("in the tree"),
        Tile::Entries { index, width } => {
            let start = (index * 256) as usize;
            entry_bundle(entries[start..start + usize::from(width)].iter().map(Vec::as_slice)).expect("short entries")
        }
    };
    let inclusion: Vec<Value> = [0u64, 1, 6, 255, 256, 299]
        .iter()
        .map(|&i| json!({ "index": i, "size": SIZE, "proof": b64(inclusion_proof(i, &leaves).expect("in the tree")) }))
        .collect();
    let tiles: Vec<Value> =
        tiles.iter().map(|t| json!({ "path": t.path(), "hex": HEXLOWER.encode(&tile_bytes(t)) })).collect();
    let checkpoints = json!({ OLD_SIZE.to_string(): checkpoint(OLD_SIZE), SIZE.to_string(): checkpoint(SIZE) });
    json!({
        "origin": ORIGIN,
        "verifier_key": verifier_key(ORIGIN, &key.verifying_key()),
        "entries_hex": entries.iter().map(|e| HEXLOWER.encode(e)).collect::<Vec<_>>(),
        "checkpoints": checkpoints,
        "inclusion": inclusion,
        "consistency": { "from": OLD_SIZE, "to": SIZE, "proof": b64(consistency_proof(OLD_SIZE, &leaves).expect("a prefix")) },
        "tiles": tiles,
    })
}

#[test]
fn the_committed_vectors_are_what_this_code_makes() {
    let made = made();
    if std::env::var_os("KEZ_WRITE_VECTORS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/log.json");
        std::fs::write(path, serde_json::to_string_pretty(&made).unwrap() + "\n").unwrap();
        return;
    }
    assert_eq!(made, serde_json::from_str::<Value>(VECTORS).expect("log.json is JSON"));
}
