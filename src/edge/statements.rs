//! `POST /v1/rotate` and `POST /v1/release`: lifecycle statements (`lifecycle`), checked in
//! wasm, their signatures verified by WebCrypto and the statement applied with its log entry
//! in one transaction, all in one JS promise (`applyStatement` in runtime.js). The handle's
//! state decides in that transaction: a statement that does not follow it appends nothing.

use super::cache;
use super::config::{config, log_key, rate_limits};
use super::db::{self, Outcome};
use super::http::{body_bytes, error_response, internal, js_internal, now_ms};
use super::registry::{created, rate_limited};
use crate::caching::CacheSettings;
use crate::error::ApiError;
use crate::lifecycle::{self, Change, SignedStatement};
use crate::log::stored::LogKey;
use crate::registration::MAX_BODY_BYTES;
use crate::routes::Route;
use crate::timestamp::format_rfc3339_utc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Array};
use worker::web_sys::Request;
use worker::worker_sys::Context;
use worker::Env;

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = applyStatement)]
    fn apply_statement(
        request: &Request,
        env: &Env,
        ctx: &Context,
        limits: bool,
        max_body: u32,
        check: &JsValue,
    ) -> js_sys::Promise;
}

/// The steps `applyStatement` reports, as runtime.js numbers them.
const STEP_RATE_LIMITED: u32 = 0;
const STEP_BODY: u32 = 1;
const STEP_VERIFIED: u32 = 2;

/// Which statement an endpoint takes.
#[derive(Clone, Copy)]
pub enum Kind {
    Rotation,
    Release,
}

impl Kind {
    fn route(self) -> Route<'static> {
        match self {
            Kind::Rotation => Route::Rotate,
            Kind::Release => Route::Release,
        }
    }
}

/// `origin`: the request's, under which the data centre's cache holds the handle's answers.
pub fn apply(
    req: &Request,
    env: Env,
    ctx: &Context,
    settings: &'static CacheSettings,
    kind: Kind,
    origin: &str,
) -> Result<JsValue, ApiError> {
    let config = config(&env)?;
    let log_key = log_key(&env)?;
    let limits = rate_limits(&env)?;
    let origin = origin.to_owned();
    let check = {
        let env = env.clone();
        Closure::once_into_js(move |step: u32, read: JsValue| -> JsValue {
            let checked = match step {
                STEP_RATE_LIMITED => Err(rate_limited()),
                STEP_BODY => check_body(&env, log_key, &config.server, settings, kind, &origin, read),
                _ => Err(js_internal(read)),
            };
            checked.unwrap_or_else(|e| error_response(settings, &e, Some(kind.route())).into())
        })
    };
    Ok(apply_statement(req, &env, ctx, limits, MAX_BODY_BYTES as u32, &check).into())
}

/// Every check but the equations, on the body `applyStatement` read (null: too large). A
/// response when the request ends here, else `[proof, finish, forget]`: `forget`, when the
/// server caches, the data centre's cache URLs of the answers the statement would change.
fn check_body(
    env: &Env,
    log_key: &'static LogKey,
    server: &crate::domain::ServerDomain,
    settings: &'static CacheSettings,
    kind: Kind,
    origin: &str,
    body: JsValue,
) -> Result<JsValue, ApiError> {
    let body = body_bytes(body)?;
    let now_ms = now_ms();
    let signed: SignedStatement = match kind {
        Kind::Rotation => lifecycle::check_rotation(lifecycle::parse_rotation(&body)?, server, now_ms)?,
        Kind::Release => lifecycle::check_release(lifecycle::parse_release(&body)?, server, now_ms)?,
    };
    let write = signed
        .pending()
        .map(|statement| {
            let handle = statement.handle.to_string();
            match &statement.change {
                Change::Rotation { old, new } => db::change_write(
                    env,
                    log_key,
                    true,
                    &handle,
                    old,
                    new,
                    &statement.envelope_jcs,
                    statement.signed_at_ms,
                ),
                Change::Release { primary } => db::change_write(
                    env,
                    log_key,
                    false,
                    &handle,
                    primary,
                    &format_rfc3339_utc(now_ms),
                    &statement.envelope_jcs,
                    statement.signed_at_ms,
                ),
            }
        })
        .transpose()?;
    let proof = db::proof(signed.proofs(), signed.message(), write.as_ref());
    let forget = match signed.pending() {
        Some(statement) if settings.server_caching() => {
            let urls = cache::edge_urls(origin, &statement.handle.to_string(), statement.change.current_key());
            urls.iter().map(|url| JsValue::from_str(url)).collect::<Array>().into()
        }
        _ => JsValue::UNDEFINED,
    };
    let env = env.clone();
    let finish = Closure::once_into_js(move |step: u32, outcome: JsValue| -> JsValue {
        let concluded = match step {
            STEP_VERIFIED => conclude(signed, outcome, &env, settings),
            _ => Err(db::storage_js(outcome)),
        };
        concluded.unwrap_or_else(|e| error_response(settings, &e, Some(kind.route())).into())
    });
    Ok([proof, finish, forget].iter().collect::<Array>().into())
}

/// The response once the equations were checked and the write ran or was refused.
fn conclude(
    signed: SignedStatement,
    written: JsValue,
    env: &Env,
    settings: &CacheSettings,
) -> Result<JsValue, ApiError> {
    let written = db::Written::read(written)?;
    let statement = signed.conclude(&written.holds)?;
    match written.outcome {
        Some(Outcome::Written(Some(record))) => {
            cache::forget(settings, &statement.handle.to_string(), statement.change.current_key());
            created(&record, config(env)?, settings)
        }
        Some(Outcome::Refused(row)) => {
            let row = row.as_ref().map(|r| (r.primary_key.as_str(), r.released_at.is_some()));
            Err(lifecycle::refusal(&statement.change, row))
        }
        _ => Err(internal("a statement concluded without its row")),
    }
}
