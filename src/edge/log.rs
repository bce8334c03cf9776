//! The transparency log's read endpoints, from the isolate's replica session:
//! `/log/checkpoint` (the newest signed checkpoint) and C2SP tlog-tiles under `/log/tile/`.
//! What they serve is written by registrations (db.rs, `advanceLog` in runtime.js).

use super::config::log_key;
use super::db::{self, LogSource};
use super::http::{error_response, internal, Reply};
use super::promise;
use crate::caching::CacheSettings;
use crate::error::ApiError;
use crate::log::merkle::root;
use crate::log::tiles::{entry_bundle, Tile, TILE_WIDTH};
use crate::log::tree;
use crate::routes::Route;
use wasm_bindgen::JsValue;
use worker::js_sys::Uint8Array;
use worker::web_sys::Response;
use worker::Env;

/// `GET /log/checkpoint`: the signed note, never cached without revalidation (clients want
/// the newest). The empty log's checkpoint is signed here, the first step stores one.
pub fn checkpoint(env: Env, settings: &'static CacheSettings) -> JsValue {
    promise(async move {
        let note = async {
            match db::log_checkpoint(&env).await? {
                Some(note) => Ok(note),
                None => Ok(log_key(&env)?.checkpoint(0, root(&[]))),
            }
        };
        match note.await {
            Ok(note) => reply(JsValue::from(note), "text/plain; charset=utf-8", "no-cache"),
            Err(e) => error_response(settings, &e, Some(Route::LogCheckpoint)),
        }
    })
}

/// `GET /log/tile/…`: a hash tile or an entry bundle of the tree the newest checkpoint signs
/// or of an older one (a partial tile of any width up to the tree's there: `Tile::min_tree_size`),
/// in one query on the replica, and one more on the primary if the replica has no such tile.
pub fn tile(env: Env, settings: &'static CacheSettings, path: &str) -> JsValue {
    let tile = Tile::parse(path);
    promise(async move {
        let body = match tile {
            Some(tile) => match read_tile(&env, LogSource::Replica, tile).await {
                // The replica may not have caught up with a tree a client was shown.
                Err(ApiError::TileNotFound) => read_tile(&env, LogSource::Primary, tile).await,
                read => read,
            }
            .map(|body| (tile, body)),
            None => Err(ApiError::TileNotFound),
        };
        match body {
            Ok((tile, body)) => {
                reply(Uint8Array::from(body.as_slice()).into(), "application/octet-stream", tile.cache_control())
            }
            // Every tile's errors are answered alike, whatever its path.
            Err(e) => error_response(settings, &e, Some(Route::LogTile(""))),
        }
    })
}

async fn read_tile(env: &Env, from: LogSource, tile: Tile) -> Result<Vec<u8>, ApiError> {
    let min_size = tile.min_tree_size().ok_or(ApiError::TileNotFound)?;
    match tile {
        Tile::Hashes { level, index, width } => {
            let nodes: Vec<tree::Node> = tree::tile_nodes(level, index, width).collect();
            let (first, last) = (nodes[0].key(), nodes[nodes.len() - 1].key());
            let hashes = db::log_hashes(env, from, first, last, min_size).await?;
            if hashes.len() != nodes.len() {
                return Err(ApiError::TileNotFound);
            }
            data_encoding::HEXUPPER
                .decode(hashes.concat().as_bytes())
                .ok()
                .filter(|tile| tile.len() == hashes.len() * 32)
                .ok_or_else(|| internal("a log node that is not 32 bytes"))
        }
        Tile::Entries { index, width } => {
            let first = index * TILE_WIDTH;
            let entries = db::log_entries(env, from, first, first + u64::from(width) - 1, min_size).await?;
            if entries.len() != usize::from(width) {
                return Err(ApiError::TileNotFound);
            }
            entry_bundle(entries.iter().map(|entry| entry.as_bytes()))
                .ok_or_else(|| internal("a log entry longer than a bundle can hold"))
        }
    }
}

fn reply(body: JsValue, content_type: &str, cache_control: &str) -> Response {
    Reply {
        status: 200,
        body,
        content_type: Some(&content_type.into()),
        cache_control: &cache_control.into(),
        vary: None,
        etag: None,
        age: None,
        any_origin: true,
        extra: None,
    }
    .send()
}
