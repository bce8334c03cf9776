//! The registry in D1, through the Sessions API (read replication):
//! - lookups read through one `first-unconstrained` session per isolate: the nearest
//!   replica answers, and the reads of one isolate never go back in time;
//! - a lookup that carries a bookmark opens a session at it, so it reads data at least as
//!   fresh as the write that returned the bookmark;
//! - a registration writes through a `first-primary` session and returns its bookmark;
//! - the NATS callout reads the primary: a login must see the registry as it is now.

use super::http::internal;
use crate::api::UserRecord;
use crate::caching::Bookmark;
use crate::domain::encode_lower_hex;
use crate::error::ApiError;
use std::cell::OnceCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Array, Error, Promise};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::D1PreparedStatement as RawStatement;
use worker::{D1Database, D1DatabaseSession, D1PreparedStatement, Env};

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = firstRow)]
    fn first_row(statement: &RawStatement, value: &str, columns: &Array) -> Promise;
    #[wasm_bindgen(js_name = lookUp)]
    fn look_up(
        edge_url: Option<String>,
        ttl_ms: f64,
        statement: &RawStatement,
        value: &str,
        columns: &Array,
        finish: &JsValue,
    ) -> Promise;
}

/// How `lookUp` (runtime.js) ended, as `finish` receives it.
pub enum LookupOutcome {
    /// The edge cache's `[body, etag, readAtMs]`.
    FromEdge(JsValue),
    /// D1's row (or none).
    FromD1(Option<UserRecord>),
}

impl LookupOutcome {
    /// `kind` and `outcome` as runtime.js passes them (`FROM_EDGE`, `FROM_D1`, `FAILED`).
    pub fn read(kind: u32, outcome: JsValue) -> Result<LookupOutcome, ApiError> {
        match kind {
            0 => Ok(LookupOutcome::FromEdge(outcome)),
            1 => {
                #[cfg(feature = "bench")]
                LOOKUP_QUERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(LookupOutcome::FromD1(row_values(outcome, RECORD_COLUMNS)?.map(user_record)))
            }
            _ => Err(storage_js(outcome)),
        }
    }
}

/// The columns of a registration row, in `UserRecord`'s order.
const RECORD_COLUMNS: [&str; 4] = ["handle", "primary_key", "registered_at", "envelope"];

const BY_HANDLE: &str = "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE handle = ?1";
const BY_KEY: &str = "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE primary_key = ?1";
const BY_SKELETON: &str = "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE skeleton = ?1";
const INSERT: &str =
    "INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton) VALUES (?1, ?2, ?3, ?4, ?5)";

/// How a user is looked up: by handle or by primary key (`ed25519:<hex>`).
#[derive(Clone, Copy)]
pub enum UserKey<'a> {
    Handle(&'a str),
    Primary(&'a str),
}

impl UserKey<'_> {
    fn sql(&self) -> &'static str {
        match self {
            UserKey::Handle(_) => BY_HANDLE,
            UserKey::Primary(_) => BY_KEY,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            UserKey::Handle(v) | UserKey::Primary(v) => v,
        }
    }
}

/// Statements prepared once per isolate and bound per request (binding returns a new
/// statement and leaves the prepared one reusable).
struct Statements {
    /// On the isolate's `first-unconstrained` session.
    replica_by_handle: D1PreparedStatement,
    replica_by_key: D1PreparedStatement,
    /// On the isolate's `first-primary` session, whose bookmark after a write is at least
    /// as new as that write (newer if another registration in the isolate wrote since).
    insert: D1PreparedStatement,
    writes: D1DatabaseSession,
    /// On the database itself: the primary.
    primary_by_key: D1PreparedStatement,
    primary_by_skeleton: D1PreparedStatement,
}

thread_local! {
    static STATEMENTS: OnceCell<Statements> = const { OnceCell::new() };
    /// `RECORD_COLUMNS` as a JS array, made once per isolate: every lookup passes it.
    static RECORD_COLUMN_NAMES: OnceCell<Array> = const { OnceCell::new() };
}

/// D1 reads made by lookups in this isolate, for the benchmark's count of queries per lookup.
#[cfg(feature = "bench")]
pub static LOOKUP_QUERIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn database(env: &Env) -> Result<D1Database, ApiError> {
    env.d1("DB").map_err(internal)
}

fn statement(env: &Env, pick: impl Fn(&Statements) -> &D1PreparedStatement) -> Result<D1PreparedStatement, ApiError> {
    STATEMENTS.with(|cell| {
        if cell.get().is_none() {
            let db = database(env)?;
            let replica = db.with_session(Some("first-unconstrained")).map_err(storage)?;
            let writes = db.with_session(Some("first-primary")).map_err(storage)?;
            let _ = cell.set(Statements {
                replica_by_handle: replica.prepare(BY_HANDLE),
                replica_by_key: replica.prepare(BY_KEY),
                insert: writes.prepare(INSERT),
                writes,
                primary_by_key: db.prepare(BY_KEY),
                primary_by_skeleton: db.prepare(BY_SKELETON),
            });
        }
        Ok(pick(cell.get().expect("set above")).clone())
    })
}

/// The statement a lookup reads with: on the isolate's replica session, or, with a
/// bookmark, on a session of its own at that bookmark (returned, for its newest bookmark
/// once the query has run).
pub fn lookup_statement(
    env: &Env,
    key: UserKey<'_>,
    bookmark: Option<&Bookmark>,
) -> Result<(D1PreparedStatement, Option<D1DatabaseSession>), ApiError> {
    match bookmark {
        None => {
            let prepared = statement(env, |s| match key {
                UserKey::Handle(_) => &s.replica_by_handle,
                UserKey::Primary(_) => &s.replica_by_key,
            })?;
            Ok((prepared, None))
        }
        Some(bookmark) => {
            let session = database(env)?.with_session(Some(bookmark.as_str())).map_err(storage)?;
            Ok((session.prepare(key.sql()), Some(session)))
        }
    }
}

/// Starts a lookup's I/O (`lookUp` in runtime.js): the edge cache at `edge_url` if given
/// (answers younger than `ttl_ms`), else `statement` bound to `value`. `finish(kind,
/// outcome)` (see `LookupOutcome::read`) makes the response the promise resolves to.
pub fn start_lookup(
    edge_url: Option<String>,
    ttl_ms: i64,
    statement: &D1PreparedStatement,
    value: &str,
    finish: &JsValue,
) -> Promise {
    RECORD_COLUMN_NAMES.with(|columns| {
        let columns = columns.get_or_init(|| RECORD_COLUMNS.iter().map(|c| JsValue::from_str(c)).collect());
        look_up(edge_url, ttl_ms as f64, statement.inner(), value, columns, finish)
    })
}

/// A row `firstRow` read (null when there was none), as the strings of `columns`.
fn row_values<const N: usize>(row: JsValue, columns: [&str; N]) -> Result<Option<[String; N]>, ApiError> {
    if row.is_null() {
        return Ok(None);
    }
    let row: Array = row.dyn_into().map_err(|_| internal("a D1 row that is not an array"))?;
    let mut values = columns.map(|_| String::new());
    for (i, value) in values.iter_mut().enumerate() {
        *value = row.get(i as u32).as_string().ok_or_else(|| internal(format!("column {} is not text", columns[i])))?;
    }
    Ok(Some(values))
}

fn user_record([handle, primary_key, registered_at, envelope]: [String; 4]) -> UserRecord {
    UserRecord { handle, primary_key, registered_at, envelope }
}

/// The first row of `statement` bound to `value`, as the strings of `columns`.
async fn first_values<const N: usize>(
    statement: &D1PreparedStatement,
    value: &str,
    columns: [&str; N],
) -> Result<Option<[String; N]>, ApiError> {
    let names: Array = columns.iter().map(|c| JsValue::from_str(c)).collect();
    let row = JsFuture::from(first_row(statement.inner(), value, &names)).await.map_err(storage_js)?;
    row_values(row, columns)
}

pub fn latest_bookmark(session: &D1DatabaseSession) -> Option<String> {
    session.get_bookmark().ok().flatten()
}

/// The prepared insert, on the isolate's `first-primary` session, and the values of a
/// registration for it. No read before the write: the UNIQUE constraints (handle, key,
/// skeleton) decide races and lookalikes.
pub fn insert(env: &Env, record: &UserRecord, skeleton: &str) -> Result<(RawStatement, Array), ApiError> {
    let statement = statement(env, |s| &s.insert)?;
    let values = [&record.handle, &record.primary_key, &record.registered_at, &record.envelope, skeleton]
        .iter()
        .map(|v| JsValue::from_str(v))
        .collect();
    Ok((statement.inner().clone(), values))
}

/// The bookmark of the isolate's `first-primary` session: at least as new as its last write.
pub fn write_bookmark() -> Option<String> {
    STATEMENTS.with(|s| s.get().and_then(|s| latest_bookmark(&s.writes)))
}

/// The registration that holds `skeleton`, read from the primary, where an insert lost on it.
pub async fn skeleton_holder(env: &Env, skeleton: &str) -> Result<Option<UserRecord>, ApiError> {
    let row = first_values(&statement(env, |s| &s.primary_by_skeleton)?, skeleton, RECORD_COLUMNS).await?;
    Ok(row.map(user_record))
}

/// The handle registered for a key, read from the primary (the NATS callout).
pub async fn handle_of_key(env: &Env, key: &[u8; 32]) -> Result<Option<String>, ApiError> {
    let primary = format!("ed25519:{}", encode_lower_hex(key));
    let row = first_values(&statement(env, |s| &s.primary_by_key)?, &primary, ["handle"]).await?;
    Ok(row.map(|[handle]| handle))
}

/// A D1 failure from the `worker` crate, mapped as the JS error it holds.
fn storage(error: worker::Error) -> ApiError {
    match error {
        worker::Error::D1(d1) => storage_js(AsRef::<JsValue>::as_ref(&d1).clone()),
        other => ApiError::from_storage(&other.to_string()),
    }
}

/// A D1 failure as the JS error it rejected with, mapped once (`ApiError::from_storage`).
/// D1 puts the SQLite message (such as a UNIQUE violation) in the error's message and
/// sometimes in its cause: both are kept, so the one mapping sees it.
pub fn storage_js(error: JsValue) -> ApiError {
    let message = |e: &JsValue| e.dyn_ref::<Error>().map(|e| String::from(e.message()));
    let cause = error.dyn_ref::<Error>().map(|e| e.cause()).and_then(|c| message(&c)).unwrap_or_default();
    ApiError::from_storage(&format!("{} {cause}", message(&error).unwrap_or_else(|| format!("{error:?}"))))
}
