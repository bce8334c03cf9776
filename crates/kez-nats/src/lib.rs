//! NATS auth callout for kez-chat, shared by the worker (which decides) and the bridge
//! (which forwards). Pure code: no I/O, no clock (times are passed in), so it compiles
//! to wasm32 for the worker and is unit-tested natively.

pub mod bridge_auth;
pub mod callout;
pub mod jwt;
pub mod nkey;

#[cfg(test)]
mod fuzz;
