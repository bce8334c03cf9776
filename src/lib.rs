//! kez-chat-server: the home server of the kez-chat end-to-end encrypted messenger,
//! as a Cloudflare Worker.
//!
//! Everything but `edge` is pure Rust with the clock passed in, compiled and unit-tested
//! natively; `edge` is the thin worker glue and exists only on wasm32.

pub mod api;
pub mod caching;
pub mod domain;
pub mod error;
pub mod lifecycle;
pub mod log;
pub mod registration;
pub mod request_url;
pub mod routes;
pub mod timestamp;
pub mod webfinger;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(test)]
mod fuzz;

#[cfg(all(target_arch = "wasm32", feature = "bench"))]
mod bench;
