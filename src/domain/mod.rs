//! Domain types. Each has a `parse` that is the only way to build one, so a value
//! of the type is proof that the rules were checked.

mod fqhn;
mod handle;
mod primary_key;
mod server_domain;

pub use fqhn::{Fqhn, FqhnError};
pub use handle::{skeleton, Handle, HandleError};
pub(crate) use primary_key::is_small_order_encoding;
#[cfg(test)]
pub(crate) use primary_key::SMALL_ORDER_Y;
pub use primary_key::{decode_lower_hex, encode_lower_hex, ClaimedKey, PrimaryKey, PrimaryKeyError};
pub use server_domain::ServerDomain;
