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
use crate::log::stored::{self, LogColumns, LogKey, ENTRIES_PER_STEP};
use std::cell::OnceCell;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Array, Error, Promise, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{Context, D1PreparedStatement as RawStatement};
use worker::{D1Database, D1DatabaseSession, D1PreparedStatement, Env};

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = firstRow)]
    fn first_row(statement: &RawStatement, value: &str) -> Promise;
    #[wasm_bindgen(js_name = columnOf)]
    fn column_of(statement: &RawStatement, values: &Array, column: &str) -> Promise;
    /// D1 reads made by lookups in this isolate, for the benchmark's count of queries per
    /// lookup.
    #[cfg(feature = "bench")]
    #[wasm_bindgen(js_name = lookupReadCount)]
    pub fn lookup_read_count() -> u32;
    #[wasm_bindgen(js_name = lookUp)]
    #[allow(clippy::too_many_arguments)]
    fn look_up(
        head: &JsValue,
        env: &Env,
        ctx: Context,
        edge_url: Option<String>,
        ttl_ms: f64,
        statement: &RawStatement,
        session: &JsValue,
        value: &str,
        finish: &JsValue,
        not_found: &JsValue,
    ) -> Promise;
}

/// How `lookUp` (runtime.js) ended, as `finish` receives it.
pub enum LookupOutcome {
    /// The edge cache's `[body, etag, readAtMs]`.
    FromEdge(JsValue),
    /// D1's row.
    FromD1(LookupRow),
    /// No row, read through a client's bookmark (without one, runtime.js answers the lookups'
    /// 404 itself).
    Absent,
}

impl LookupOutcome {
    /// `kind` and `outcome` as runtime.js passes them (`FROM_EDGE`, `FROM_D1`, `FAILED`).
    pub fn read(kind: u32, outcome: JsValue) -> Result<LookupOutcome, ApiError> {
        match kind {
            0 => Ok(LookupOutcome::FromEdge(outcome)),
            1 => Ok(LookupRow::read(outcome)?.map_or(LookupOutcome::Absent, LookupOutcome::FromD1)),
            _ => Err(storage_js(outcome)),
        }
    }
}

/// The columns of a registration row, in `UserRecord`'s order. `firstRow` (runtime.js) reads
/// rows by position: these lists name, in order, what the statements select.
const RECORD_COLUMNS: [&str; 5] = ["handle", "primary_key", "registered_at", "envelope", "released_at"];
/// A lookup's columns: the row's, then the log's (`LogColumns`).
const LOOKUP_COLUMNS: [&str; 10] = [
    "handle",
    "primary_key",
    "registered_at",
    "envelope",
    "released_at",
    "log_index",
    "log_size",
    "log_checkpoint",
    "log_edge",
    "log_siblings",
];

/// A lookup in one query: the row, the log's state, and the stored nodes beside the path of
/// the row's statement (at each level, the subtree next to the one that holds it: the
/// complete ones among them and the tree's right edge make its inclusion proof). SQLite has
/// no XOR: `x + 1 - 2 * (x & 1)` is `x ^ 1`. Every log column is text ('' for none).
macro_rules! lookup_sql {
    ($where:literal) => {
        concat!(
            "WITH RECURSIVE levels(l) AS (VALUES (0) UNION ALL SELECT l + 1 FROM levels WHERE l < 47) ",
            "SELECT r.handle, r.primary_key, r.registered_at, r.envelope, coalesce(r.released_at, '') AS released_at, ",
            "coalesce(r.log_index || '', '') AS log_index, s.size || '' AS log_size, ",
            "coalesce(s.checkpoint, '') AS log_checkpoint, s.edge AS log_edge, ",
            "coalesce((SELECT group_concat(n.key || ':' || hex(n.hash), ',') FROM log_nodes n WHERE n.key IN ",
            "(SELECT (l << 56) | ((r.log_index >> l) + 1 - 2 * ((r.log_index >> l) & 1)) FROM levels)), '') ",
            "AS log_siblings FROM registrations r JOIN log_state s ON s.id = 1 WHERE ",
            $where
        )
    };
}

const BY_HANDLE: &str = lookup_sql!("r.handle = ?1");
const BY_KEY: &str = lookup_sql!("r.primary_key = ?1");
const HANDLE_BY_KEY: &str = "SELECT handle FROM registrations WHERE primary_key = ?1 AND released_at IS NULL";
const BY_SKELETON: &str =
    "SELECT handle, primary_key, registered_at, envelope, coalesce(released_at, '') AS released_at \
     FROM registrations WHERE skeleton = ?1";
/// A registration's log entry, appended (the next index) unless the handle is held, was
/// given up by another key after the cutoff (?4, RFC 3339), or was given up by a release
/// signed after this registration or in the same millisecond (?5, Unix ms: a registration
/// replayed to take a handle back): then nothing is appended, and the insert after it fails
/// on the row that is there. Each statement that applies is signed strictly later than the
/// one in force, so none applies twice.
const APPEND_REGISTRATION: &str = "INSERT INTO log_entries (idx, entry) \
     SELECT coalesce((SELECT max(idx) FROM log_entries) + 1, 0), ?1 WHERE NOT EXISTS (SELECT 1 FROM registrations \
     WHERE handle = ?2 AND (released_at IS NULL OR coalesce(stated_at_ms, 0) >= ?5 \
     OR (primary_key <> ?3 AND released_at > ?4))) RETURNING idx";
/// Then, in the same batch and under the same condition: a released row the registration may
/// take (its own key's, or one out of quarantine) makes way (its statements stay in the log).
const CLEAR_RELEASED: &str = "DELETE FROM registrations \
     WHERE handle = ?1 AND released_at IS NOT NULL AND coalesce(stated_at_ms, 0) < ?4 \
     AND (primary_key = ?2 OR released_at <= ?3)";
/// Then the registration, pointing at its entry, signed at ?6 (Unix ms).
const INSERT: &str = "INSERT INTO registrations \
     (handle, primary_key, registered_at, envelope, skeleton, log_index, stated_at_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, (SELECT max(idx) FROM log_entries), ?6)";
/// A rotation's or release's entry, appended only if the handle is held by the key it names
/// and the statement in force was signed before it (?4, Unix ms).
const APPEND_CHANGE: &str = "INSERT INTO log_entries (idx, entry) \
     SELECT coalesce((SELECT max(idx) FROM log_entries) + 1, 0), ?1 WHERE EXISTS (SELECT 1 FROM registrations \
     WHERE handle = ?2 AND primary_key = ?3 AND released_at IS NULL AND coalesce(stated_at_ms, 0) < ?4) \
     RETURNING idx";
/// Then, under the same condition: the handle moves to the new key, its statement the envelope.
const ROTATE: &str = "UPDATE registrations \
     SET primary_key = ?3, envelope = ?4, log_index = (SELECT max(idx) FROM log_entries), stated_at_ms = ?5 \
     WHERE handle = ?1 AND primary_key = ?2 AND released_at IS NULL AND coalesce(stated_at_ms, 0) < ?5";
/// Or: the handle is given up, at ?3, its release the envelope.
const RELEASE: &str = "UPDATE registrations \
     SET released_at = ?3, envelope = ?4, log_index = (SELECT max(idx) FROM log_entries), stated_at_ms = ?5 \
     WHERE handle = ?1 AND primary_key = ?2 AND released_at IS NULL AND coalesce(stated_at_ms, 0) < ?5";
const LOG_STATE: &str = "SELECT size, edge FROM log_state WHERE id = 1";
/// Bound to `ENTRIES_PER_STEP`.
const LOG_NEXT_ENTRIES: &str =
    "SELECT entry FROM log_entries WHERE idx >= (SELECT size FROM log_state WHERE id = 1) ORDER BY idx LIMIT ?1";
const LOG_INSERT_NODES: &str = "INSERT OR IGNORE INTO log_nodes (key, hash) \
     SELECT json_extract(value, '$[0]'), unhex(json_extract(value, '$[1]')) FROM json_each(?1)";
/// The state only moves forward: a step's state is a function of the entries under it, so
/// of two concurrent steps the longer one stands, whichever commits first (`advanceLog`).
const LOG_UPDATE: &str = "UPDATE log_state SET size = ?1, edge = ?2, checkpoint = ?3 WHERE id = 1 AND size < ?1";
const LOG_CHECKPOINT: &str = "SELECT coalesce(checkpoint, '') AS checkpoint FROM log_state WHERE id = 1";
/// A tile's hashes or entries, only if the signed tree has at least ?3 leaves (the smallest
/// tree that has the tile): nothing is served outside the signed tree.
const LOG_TILE: &str = "SELECT hex(hash) AS hash FROM log_nodes \
     WHERE key BETWEEN CAST(?1 AS INTEGER) AND CAST(?2 AS INTEGER) AND ?3 <= (SELECT size FROM log_state WHERE id = 1) \
     ORDER BY key";
const LOG_BUNDLE: &str = "SELECT entry FROM log_entries \
     WHERE idx BETWEEN ?1 AND ?2 AND ?3 <= (SELECT size FROM log_state WHERE id = 1) ORDER BY idx";

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
    append_registration: D1PreparedStatement,
    clear_released: D1PreparedStatement,
    insert: D1PreparedStatement,
    append_change: D1PreparedStatement,
    rotate: D1PreparedStatement,
    release: D1PreparedStatement,
    written_by_handle: D1PreparedStatement,
    log_state: D1PreparedStatement,
    log_next_entries: D1PreparedStatement,
    log_insert_nodes: D1PreparedStatement,
    log_update: D1PreparedStatement,
    writes: D1DatabaseSession,
    /// On the database itself: the primary.
    handle_by_key: D1PreparedStatement,
    /// On the replica session: what the log's endpoints serve.
    log_checkpoint: D1PreparedStatement,
    log_tile: D1PreparedStatement,
    log_bundle: D1PreparedStatement,
    /// On the primary: a tile the replica's tree does not reach yet.
    primary_log_tile: D1PreparedStatement,
    primary_log_bundle: D1PreparedStatement,
}

/// `(size, edge, entries)` to `[size, edge, nodesJson, checkpoint]`, or a thrown error.
type LogStep = dyn Fn(f64, String, Array) -> Result<Array, JsValue>;

thread_local! {
    static STATEMENTS: OnceCell<Statements> = const { OnceCell::new() };
    /// The log's step (`advanceLog` in runtime.js), made once per isolate: it is called any
    /// number of times, so it is never freed.
    static LOG_STEP: OnceCell<Closure<LogStep>> = const { OnceCell::new() };
}

fn database(env: &Env) -> Result<D1Database, ApiError> {
    env.d1("DB").map_err(internal)
}

fn statement(env: &Env, pick: impl Fn(&Statements) -> &D1PreparedStatement) -> Result<D1PreparedStatement, ApiError> {
    with_statements(env, |s| pick(s).clone())
}

fn with_statements<T>(env: &Env, f: impl FnOnce(&Statements) -> T) -> Result<T, ApiError> {
    STATEMENTS.with(|cell| {
        if cell.get().is_none() {
            let db = database(env)?;
            let replica = db.with_session(Some("first-unconstrained")).map_err(storage)?;
            let writes = db.with_session(Some("first-primary")).map_err(storage)?;
            let next_entries = writes.prepare(LOG_NEXT_ENTRIES).bind(&[ENTRIES_PER_STEP.into()]).map_err(storage)?;
            let _ = cell.set(Statements {
                replica_by_handle: replica.prepare(BY_HANDLE),
                replica_by_key: replica.prepare(BY_KEY),
                append_registration: writes.prepare(APPEND_REGISTRATION),
                clear_released: writes.prepare(CLEAR_RELEASED),
                insert: writes.prepare(INSERT),
                append_change: writes.prepare(APPEND_CHANGE),
                rotate: writes.prepare(ROTATE),
                release: writes.prepare(RELEASE),
                written_by_handle: writes.prepare(BY_HANDLE),
                log_state: writes.prepare(LOG_STATE),
                log_next_entries: next_entries,
                log_insert_nodes: writes.prepare(LOG_INSERT_NODES),
                log_update: writes.prepare(LOG_UPDATE),
                writes,
                handle_by_key: db.prepare(HANDLE_BY_KEY),
                log_checkpoint: replica.prepare(LOG_CHECKPOINT),
                log_tile: replica.prepare(LOG_TILE),
                log_bundle: replica.prepare(LOG_BUNDLE),
                primary_log_tile: db.prepare(LOG_TILE),
                primary_log_bundle: db.prepare(LOG_BUNDLE),
            });
        }
        Ok(f(cell.get().expect("set above")))
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
/// (answers younger than `ttl_ms`), else `statement` bound to `value`. `finish(head, kind,
/// outcome, env, ctx, bookmark)` (see `LookupOutcome::read`) makes the response the promise
/// resolves to from the request's `head`, but for no row: then the response is made from the
/// `not_found` template (`http::lookup_not_found`). `bookmark` is `session`'s newest after
/// the read (a read through a client's bookmark), else undefined.
#[allow(clippy::too_many_arguments)]
pub fn start_lookup(
    head: &JsValue,
    env: &Env,
    ctx: Context,
    edge_url: Option<String>,
    ttl_ms: i64,
    statement: &D1PreparedStatement,
    session: Option<&D1DatabaseSession>,
    value: &str,
    finish: &JsValue,
    not_found: &JsValue,
) -> Promise {
    let none = JsValue::UNDEFINED;
    let session = session.map_or(&none, AsRef::as_ref);
    look_up(head, env, ctx, edge_url, ttl_ms as f64, statement.inner(), session, value, finish, not_found)
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

fn user_record([handle, primary_key, registered_at, envelope, released_at]: [String; 5]) -> UserRecord {
    let released_at = Some(released_at).filter(|at| !at.is_empty());
    UserRecord { handle, primary_key, registered_at, envelope, released_at, log: None }
}

/// A lookup's row as `lookUp` read it (the values of `LOOKUP_COLUMNS`), each column brought
/// into wasm only when asked for: a WebFinger answer needs two of the ten.
pub struct LookupRow(Array);

impl LookupRow {
    /// `firstRow`'s result: null when there was no row.
    fn read(row: JsValue) -> Result<Option<LookupRow>, ApiError> {
        if row.is_null() {
            return Ok(None);
        }
        Ok(Some(LookupRow(row.dyn_into().map_err(|_| internal("a D1 row that is not an array"))?)))
    }

    fn text<const N: usize>(&self, columns: [usize; N]) -> Result<[String; N], ApiError> {
        let mut values = columns.map(|_| String::new());
        for (value, column) in values.iter_mut().zip(columns) {
            *value = self
                .0
                .get(column as u32)
                .as_string()
                .ok_or_else(|| internal(format!("column {} is not text", LOOKUP_COLUMNS[column])))?;
        }
        Ok(values)
    }

    /// When the handle was given up, if it was.
    pub fn released_at(&self) -> Result<Option<String>, ApiError> {
        let [released_at] = self.text([4])?;
        Ok(Some(released_at).filter(|at| !at.is_empty()))
    }

    /// The handle and the key the row binds.
    pub fn binding(&self) -> Result<[String; 2], ApiError> {
        self.text([0, 1])
    }

    /// The user the row shows, with the log's proof for its statement. Log columns that do
    /// not make a proof mean the store was edited: an internal error, never a wrong proof.
    pub fn record(&self) -> Result<UserRecord, ApiError> {
        let [handle, primary_key, registered_at, envelope, released_at, index, size, checkpoint, edge, siblings] =
            self.text(std::array::from_fn(|i| i))?;
        let log = LogColumns { index: &index, size: &size, checkpoint: &checkpoint, edge: &edge, siblings: &siblings }
            .view()
            .map_err(ApiError::Internal)?;
        let released_at = Some(released_at).filter(|at| !at.is_empty());
        Ok(UserRecord { handle, primary_key, registered_at, envelope, released_at, log })
    }
}

/// The first row of `statement` bound to `value`, as the strings of `columns` (what it
/// selects, in order).
async fn first_values<const N: usize>(
    statement: &D1PreparedStatement,
    value: &str,
    columns: [&str; N],
) -> Result<Option<[String; N]>, ApiError> {
    let row = JsFuture::from(first_row(statement.inner(), value)).await.map_err(storage_js)?;
    row_values(row, columns)
}

pub fn latest_bookmark(session: &D1DatabaseSession) -> Option<String> {
    session.get_bookmark().ok().flatten()
}

/// What `writeStatement` (runtime.js) needs to write a registration: on the isolate's
/// `first-primary` session, in one batch, its log entry (unless the handle is held, in
/// quarantine from another key: released after `cutoff`, or released by a statement signed
/// after it), the clearing of a released row it may take, its insert, and the read back by
/// handle; then the log's step, which reads the row again with its proof. No read
/// before the write: the UNIQUE constraints (handle, key, skeleton) decide races and lookalikes.
pub fn registration_write(
    env: &Env,
    key: &'static LogKey,
    record: &UserRecord,
    skeleton: &str,
    cutoff: &str,
    signed_at_ms: i64,
) -> Result<Array, ApiError> {
    let text = |v: &str| JsValue::from_str(v);
    let (handle, primary) = (text(&record.handle), text(&record.primary_key));
    let cutoff = text(cutoff);
    let signed_at = JsValue::from(signed_at_ms as f64);
    with_statements(env, |s| {
        let statements = [
            s.append_registration.clone().bind(&[
                text(&record.envelope),
                handle.clone(),
                primary.clone(),
                cutoff.clone(),
                signed_at.clone(),
            ]),
            s.clear_released.clone().bind(&[handle.clone(), primary.clone(), cutoff, signed_at.clone()]),
            s.insert.clone().bind(&[
                handle,
                primary,
                text(&record.registered_at),
                text(&record.envelope),
                text(skeleton),
                signed_at,
            ]),
        ];
        write(s, key, statements, &record.handle)
    })?
}

/// What `writeStatement` needs to apply a rotation or release of `handle` from `current` key,
/// signed at `signed_at_ms`: its entry appended only if the handle is held by that key under a
/// statement not signed later, and `change` bound to `(handle, current, value, envelope,
/// signed_at_ms)` (`value`: the new key, or the time of release).
#[allow(clippy::too_many_arguments)]
pub fn change_write(
    env: &Env,
    key: &'static LogKey,
    rotation: bool,
    handle: &str,
    current: &str,
    value: &str,
    envelope: &str,
    signed_at_ms: i64,
) -> Result<Array, ApiError> {
    let text = |v: &str| JsValue::from_str(v);
    let signed_at = JsValue::from(signed_at_ms as f64);
    with_statements(env, |s| {
        let change = if rotation { &s.rotate } else { &s.release };
        let statements = [
            s.append_change.clone().bind(&[text(envelope), text(handle), text(current), signed_at.clone()]),
            change.clone().bind(&[text(handle), text(current), text(value), text(envelope), signed_at]),
        ];
        write(s, key, statements, handle)
    })?
}

/// `settle`'s `proof` (runtime.js): each `(key, signature)` to verify over `message`, and the
/// write to make if they all hold (none when a later check failed).
pub fn proof(pairs: impl IntoIterator<Item = ([u8; 32], [u8; 64])>, message: &[u8], write: Option<&Array>) -> JsValue {
    let pairs: Array = pairs
        .into_iter()
        .map(|(key, sig)| -> JsValue {
            [Uint8Array::from(&key[..]), Uint8Array::from(&sig[..])].iter().collect::<Array>().into()
        })
        .collect();
    let proof: Array = [JsValue::from(pairs), Uint8Array::from(message).into()].iter().collect();
    if let Some(write) = write {
        proof.push(write);
    }
    proof.into()
}

/// What `settle` (runtime.js) resolved to: each equation's result, and the write's outcome (none
/// when nothing was to be written, or an equation failed).
pub struct Written {
    pub holds: Vec<bool>,
    pub outcome: Option<Outcome>,
}

pub enum Outcome {
    /// The statement applied; the handle's row read back (after the log's step, with its
    /// proof; else as the write left it).
    Written(Option<UserRecord>),
    /// The handle's state did not allow it (nothing was written); its row as the write's
    /// transaction found it.
    Refused(Option<UserRecord>),
}

impl Written {
    pub fn read(value: JsValue) -> Result<Written, ApiError> {
        let value: Array = value.dyn_into().map_err(|_| internal("settle's result"))?;
        let holds: Array = value.get(0).dyn_into().map_err(|_| internal("settle's equations"))?;
        let holds = holds.iter().map(|h| h.as_bool() == Some(true)).collect();
        let outcome = value.get(1);
        let outcome = if outcome.is_undefined() {
            None
        } else {
            let outcome: Array = outcome.dyn_into().map_err(|_| internal("settle's outcome"))?;
            let row = LookupRow::read(outcome.get(1))?.map(|row| row.record()).transpose()?;
            Some(if outcome.get(0).as_f64() == Some(1.0) { Outcome::Written(row) } else { Outcome::Refused(row) })
        };
        Ok(Written { holds, outcome })
    }
}

/// `[session, statements, log, readBack, handle]` for `writeStatement`.
fn write(
    s: &Statements,
    key: &'static LogKey,
    statements: impl IntoIterator<Item = worker::Result<D1PreparedStatement>>,
    handle: &str,
) -> Result<Array, ApiError> {
    let statements: Vec<JsValue> = statements
        .into_iter()
        .map(|bound| bound.map(|statement| JsValue::from(statement.inner().clone())))
        .collect::<worker::Result<_>>()
        .map_err(storage)?;
    let statements: Array = statements.iter().collect();
    let log: Array = [
        s.log_state.inner().into(),
        s.log_next_entries.inner().into(),
        s.log_insert_nodes.inner().into(),
        s.log_update.inner().into(),
        log_step(key),
    ]
    .iter()
    .collect();
    Ok([
        s.writes.as_ref().clone(),
        statements.into(),
        log.into(),
        s.written_by_handle.inner().into(),
        JsValue::from_str(handle),
    ]
    .iter()
    .collect())
}

/// The log's step for `advanceLog`: `(size, edge, entries)` to `[size, edge, nodesJson,
/// checkpoint]` (`log::stored::step`); a stored state that does not fit throws.
fn log_step(key: &'static LogKey) -> JsValue {
    LOG_STEP.with(|cell| {
        cell.get_or_init(|| {
            Closure::new(move |size: f64, edge: String, entries: Array| {
                let entries: Vec<String> = entries.iter().filter_map(|e| e.as_string()).collect();
                let step =
                    stored::step(key, size as u64, &edge, &entries).map_err(|e| JsValue::from(Error::new(&e)))?;
                Ok([JsValue::from(step.size as f64), step.edge.into(), step.nodes_json.into(), step.checkpoint.into()]
                    .iter()
                    .collect())
            })
        })
        .as_ref()
        .clone()
    })
}

/// The bookmark of the isolate's `first-primary` session: at least as new as its last write.
pub fn write_bookmark() -> Option<String> {
    STATEMENTS.with(|s| s.get().and_then(|s| latest_bookmark(&s.writes)))
}

/// The registration that holds `skeleton`, read from the primary, where an insert lost on it,
/// through a session of its own: its bookmark covers the holder, so a lookup through it sees
/// what refused the insert (a failed write gives its session no bookmark).
pub async fn skeleton_holder(env: &Env, skeleton: &str) -> Result<(Option<UserRecord>, Option<String>), ApiError> {
    let session = database(env)?.with_session(Some("first-primary")).map_err(storage)?;
    let row = first_values(&session.prepare(BY_SKELETON), skeleton, RECORD_COLUMNS).await?;
    Ok((row.map(user_record), latest_bookmark(&session)))
}

/// The handle registered for a key, read from the primary (the NATS callout).
pub async fn handle_of_key(env: &Env, key: &[u8; 32]) -> Result<Option<String>, ApiError> {
    let primary = format!("ed25519:{}", encode_lower_hex(key));
    let row = first_values(&statement(env, |s| &s.handle_by_key)?, &primary, ["handle"]).await?;
    Ok(row.map(|[handle]| handle))
}

/// The log's newest signed checkpoint, from the replica; `None` before the first step.
pub async fn log_checkpoint(env: &Env) -> Result<Option<String>, ApiError> {
    let notes = column(&statement(env, |s| &s.log_checkpoint)?, &[], "checkpoint").await?;
    Ok(notes.into_iter().next().filter(|note| !note.is_empty()))
}

/// Where the log's tiles are read: the isolate's replica, or the primary, for a tile of a
/// tree the replica has not caught up with (a client can hold a newer checkpoint than the
/// replica: a write's 201, a read through a bookmark).
#[derive(Clone, Copy)]
pub enum LogSource {
    Replica,
    Primary,
}

/// The stored node hashes (hex) with keys from `first` to `last`, in order, if the signed tree
/// has at least `min_size` leaves (else none). The keys pass as text: above level 0 they are
/// beyond what a JS number holds exactly.
pub async fn log_hashes(
    env: &Env,
    from: LogSource,
    first: i64,
    last: i64,
    min_size: u64,
) -> Result<Vec<String>, ApiError> {
    let bounds = [JsValue::from(first.to_string()), JsValue::from(last.to_string()), JsValue::from(min_size as f64)];
    let statement = statement(env, |s| match from {
        LogSource::Replica => &s.log_tile,
        LogSource::Primary => &s.primary_log_tile,
    })?;
    column(&statement, &bounds, "hash").await
}

/// The log entries from `first` to `last`, in order, if the signed tree has at least
/// `min_size` leaves (else none).
pub async fn log_entries(
    env: &Env,
    from: LogSource,
    first: u64,
    last: u64,
    min_size: u64,
) -> Result<Vec<String>, ApiError> {
    let bounds = [JsValue::from(first as f64), JsValue::from(last as f64), JsValue::from(min_size as f64)];
    let statement = statement(env, |s| match from {
        LogSource::Replica => &s.log_bundle,
        LogSource::Primary => &s.primary_log_bundle,
    })?;
    column(&statement, &bounds, "entry").await
}

/// The text values of `name` in every row of `statement` bound to `values`.
async fn column(statement: &D1PreparedStatement, values: &[JsValue], name: &str) -> Result<Vec<String>, ApiError> {
    let values: Array = values.iter().collect();
    let column = JsFuture::from(column_of(statement.inner(), &values, name)).await.map_err(storage_js)?;
    let column: Array = column.dyn_into().map_err(|_| internal("D1 rows that are not an array"))?;
    column.iter().map(|value| value.as_string().ok_or_else(|| internal(format!("column {name} is not text")))).collect()
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
