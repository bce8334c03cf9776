//! The transparency log's pure parts: the RFC 9162 Merkle tree and its proofs, the tree as it
//! is stored (every complete subtree's hash), C2SP tlog-tiles paths and contents, C2SP
//! checkpoints as signed notes, and the log as the worker keeps it in D1. Nothing here
//! touches the worker.

pub mod merkle;
pub mod note;
pub mod stored;
pub mod tiles;
pub mod tree;

#[cfg(test)]
mod vectors;
