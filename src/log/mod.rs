//! The transparency log's pure parts (issue 15, in progress): the RFC 9162 Merkle tree and its
//! proofs, C2SP tlog-tiles paths and contents, and C2SP checkpoints as signed notes. Nothing
//! here touches the worker; the serving and the sequencer come with the glue.

pub mod merkle;
pub mod note;
pub mod tiles;

#[cfg(test)]
mod vectors;
