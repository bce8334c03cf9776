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

    fn value(&self) -> &str {
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

/// A lookup: through the isolate's replica session, or, with a bookmark, through a session
/// of its own at that bookmark, whose newest bookmark is returned with the row.
pub async fn find_user(
    env: &Env,
    key: UserKey<'_>,
    bookmark: Option<&Bookmark>,
) -> Result<(Option<UserRecord>, Option<String>), ApiError> {
    #[cfg(feature = "bench")]
    LOOKUP_QUERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match bookmark {
        None => {
            let prepared = statement(env, |s| match key {
                UserKey::Handle(_) => &s.replica_by_handle,
                UserKey::Primary(_) => &s.replica_by_key,
            })?;
            Ok((first(prepared, key.value()).await?, None))
        }
        Some(bookmark) => {
            let session = database(env)?.with_session(Some(bookmark.as_str())).map_err(storage)?;
            let record = first(session.prepare(key.sql()), key.value()).await?;
            Ok((record, latest_bookmark(&session)))
        }
    }
}

/// The first row of `statement` bound to `value`, as the strings of `columns`.
async fn first_values<const N: usize>(
    statement: &D1PreparedStatement,
    value: &str,
    columns: [&str; N],
) -> Result<Option<[String; N]>, ApiError> {
    let names: Array = columns.iter().map(|c| JsValue::from_str(c)).collect();
    let row = JsFuture::from(first_row(statement.inner(), value, &names)).await.map_err(storage_js)?;
    if row.is_null() {
        return Ok(None);
    }
    let row: Array = row.unchecked_into();
    let mut values = columns.map(|_| String::new());
    for (i, value) in values.iter_mut().enumerate() {
        *value = row.get(i as u32).as_string().ok_or_else(|| internal(format!("column {} is not text", columns[i])))?;
    }
    Ok(Some(values))
}

async fn first(statement: D1PreparedStatement, value: &str) -> Result<Option<UserRecord>, ApiError> {
    Ok(first_values(&statement, value, RECORD_COLUMNS).await?.map(|[handle, primary_key, registered_at, envelope]| {
        UserRecord { handle, primary_key, registered_at, envelope }
    }))
}

fn latest_bookmark(session: &D1DatabaseSession) -> Option<String> {
    session.get_bookmark().ok().flatten()
}

/// The outcome of an insert: the bookmark of the write, or the registration that holds the
/// skeleton when the insert lost on it (`None` if it could not be read).
pub enum Inserted {
    Done { bookmark: Option<String> },
    SkeletonTaken { holder: Result<Option<UserRecord>, ApiError> },
}

/// Inserts a registration through the isolate's `first-primary` session. No read before the
/// write: the UNIQUE constraints (handle, key, skeleton) decide races and lookalikes.
pub async fn insert(env: &Env, record: &UserRecord, skeleton: &str) -> Result<Inserted, ApiError> {
    let inserted = statement(env, |s| &s.insert)?
        .bind(&[
            record.handle.as_str().into(),
            record.primary_key.as_str().into(),
            record.registered_at.as_str().into(),
            record.envelope.as_str().into(),
            skeleton.into(),
        ])
        .map_err(internal)?
        .run()
        .await
        .map_err(storage);
    match inserted {
        Ok(_) => Ok(Inserted::Done { bookmark: STATEMENTS.with(|s| s.get().and_then(|s| latest_bookmark(&s.writes))) }),
        // SQLite names the newest index it checked first: the skeleton's, also when the very
        // handle (or key) is taken. The caller picks the code from the holder, read from the
        // primary, where the insert lost.
        Err(ApiError::HandleConfusable) => {
            Ok(Inserted::SkeletonTaken { holder: first(statement(env, |s| &s.primary_by_skeleton)?, skeleton).await })
        }
        Err(e) => Err(e),
    }
}

/// The handle registered for a key, read from the primary (the NATS callout).
pub async fn handle_of_key(env: &Env, key: &[u8; 32]) -> Result<Option<String>, ApiError> {
    let primary = format!("ed25519:{}", encode_lower_hex(key));
    let row = first_values(&statement(env, |s| &s.primary_by_key)?, &primary, ["handle"]).await?;
    Ok(row.map(|[handle]| handle))
}

/// A D1 failure, mapped once (`ApiError::from_storage`).
pub fn storage(error: worker::Error) -> ApiError {
    ApiError::from_storage(&error_detail(&error))
}

/// A D1 failure as the JS error it rejected with.
fn storage_js(error: JsValue) -> ApiError {
    let message = |e: &JsValue| e.dyn_ref::<Error>().map(|e| String::from(e.message()));
    let cause = error.dyn_ref::<Error>().map(|e| e.cause()).and_then(|c| message(&c)).unwrap_or_default();
    ApiError::from_storage(&format!("{} {cause}", message(&error).unwrap_or_else(|| format!("{error:?}"))))
}

/// D1 puts the SQLite message (such as a UNIQUE violation) in the error's message and
/// sometimes in its cause: keep both, so the one mapping in `ApiError` sees it.
fn error_detail(error: &worker::Error) -> String {
    match error {
        worker::Error::D1(d1) => {
            let js: &worker::js_sys::Error = d1.as_ref();
            format!("{} {}", String::from(js.message()), d1.cause())
        }
        other => other.to_string(),
    }
}
