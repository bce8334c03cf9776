//! The worker glue: reads the request, calls the pure code, writes the response. Only this
//! module touches `worker` types; it exists only on wasm32. One file per capability:
//! `registry` (lookups, registration), `statements` (rotation, release), `log` (the
//! transparency log's endpoints), `nats` (the
//! callout), `cache` (the two cache layers),
//! `db` (D1 and its sessions), `http` (responses, bodies), `config` (vars and secrets).

mod cache;
mod config;
mod db;
mod http;
mod log;
mod nats;
mod registry;
mod statements;

use crate::api::Health;
use crate::caching::CacheSettings;
use crate::error::ApiError;
use crate::request_url::RequestUrl;
use crate::routes::{route, Route, READ_METHODS};
use config::{cache_settings, config, CACHE_OFF};
use http::{error_response, now_ms, uncached, RequestHead};
use std::future::Future;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::future_to_promise;
use worker::web_sys::{Request, Response};
use worker::worker_sys::Context;
use worker::{event, js_sys, Env};

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    /// The CORS preflight of the public read endpoints.
    fn preflight(allow_methods: &str) -> Response;
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The fetch handler, exported under the name worker-build's shim calls. It takes the
/// runtime's request as it is (converting it to `worker::Request` reads its `cf` object on
/// every request), and answers without any future when it can: a lookup the isolate cache
/// holds, healthz, a preflight and every error found before I/O are a `Response`, the rest a
/// promise of one (the runtime takes either).
#[wasm_bindgen]
pub fn fetch(req: Request, env: Env, ctx: Context) -> JsValue {
    let head = RequestHead::read(&req);
    let (method, full_url, if_none_match, bookmark) = head.parts();
    let url = RequestUrl::split(full_url);
    #[cfg(feature = "bench")]
    if url.path().starts_with("/__bench/") {
        return bench(req, full_url.to_owned(), env);
    }
    let (settings, settings_error) = match cache_settings(&env) {
        Ok(settings) => (settings, None),
        Err(e) => (&CACHE_OFF, Some(e)),
    };
    let route = match route(method, url.path()) {
        Ok(Route::Assets) => return assets(req, &env, settings),
        Ok(route) => route,
        Err(error) => return error_response(settings, &error, None).into(),
    };
    let fail = |error: ApiError| JsValue::from(error_response(settings, &error, Some(route)));
    if let Some(error) = settings_error {
        return fail(error);
    }
    match route {
        Route::Healthz => match health_body(&env) {
            Ok(body) => uncached(settings, 200, body, true, |h| &h.json).into(),
            Err(e) => fail(e),
        },
        Route::LookupHandle(_) | Route::LookupPrimary(_) | Route::WebFinger => {
            let (lookup, conditions) = match registry::parse_lookup(route, &url, if_none_match, bookmark, &env) {
                Ok(parsed) => parsed,
                Err(e) => return fail(e),
            };
            // No key made and no clock read when there is no cache to ask.
            let cached = settings
                .server_caching()
                .then(|| lookup.answer_from_isolate(settings, &lookup.isolate_key(), &conditions, now_ms()));
            if let Some(response) = cached.flatten() {
                return response.into();
            }
            lookup.answer_from_storage(head.js(), &env, ctx, settings, url.origin(), &conditions).unwrap_or_else(fail)
        }
        Route::Register => registry::register(&req, env, &ctx, settings).unwrap_or_else(fail),
        Route::Rotate => {
            statements::apply(&req, env, &ctx, settings, statements::Kind::Rotation, url.origin()).unwrap_or_else(fail)
        }
        Route::Release => {
            statements::apply(&req, env, &ctx, settings, statements::Kind::Release, url.origin()).unwrap_or_else(fail)
        }
        Route::NatsAuth => {
            // The future outlives the request head it was read from.
            let full_url = full_url.to_owned();
            promise(async move {
                let url = RequestUrl::split(&full_url);
                nats::auth(req, &url, &env, settings)
                    .await
                    .unwrap_or_else(|e| error_response(settings, &e, Some(Route::NatsAuth)))
            })
        }
        Route::LogCheckpoint => log::checkpoint(env, settings),
        Route::LogTile(path) => log::tile(env, settings, path),
        Route::Preflight => preflight(READ_METHODS).into(),
        Route::Assets => unreachable!("assets are served above"),
    }
}

thread_local! {
    static HEALTH_BODY: std::cell::OnceCell<JsValue> = const { std::cell::OnceCell::new() };
}

/// The healthz body, made once per isolate: it only holds configuration.
fn health_body(env: &Env) -> Result<JsValue, ApiError> {
    let config = config(env)?;
    Ok(HEALTH_BODY.with(|cell| {
        let log = config::log_key_if_set(env);
        cell.get_or_init(|| serde_json::to_string(&Health::new(config, log)).expect("plain strings").as_str().into())
            .clone()
    }))
}

/// A promise of the response `future` makes, for the runtime.
pub(crate) fn promise(future: impl Future<Output = Response> + 'static) -> JsValue {
    future_to_promise(async move { Ok(future.await.into()) }).into()
}

/// The single-page app's static assets: the request goes to the `ASSETS` binding as it is.
fn assets(req: Request, env: &Env, settings: &CacheSettings) -> JsValue {
    let fetched = js_sys::Reflect::get(env, &"ASSETS".into())
        .and_then(|assets| Ok((js_sys::Reflect::get(&assets, &"fetch".into())?, assets)))
        .and_then(|(fetch, assets)| js_sys::Function::from(fetch).call1(&assets, &req));
    fetched.unwrap_or_else(|e| error_response(settings, &http::js_internal(e), None).into())
}

#[cfg(feature = "bench")]
fn bench(req: Request, full_url: String, env: Env) -> JsValue {
    promise(async move {
        let url = RequestUrl::split(&full_url);
        let nats = config::nats_config_if_set(&env);
        match crate::bench::handle(req, &url, &env, nats, db::lookup_read_count()).await {
            Ok(response) => response.into(),
            Err(e) => error_response(&CACHE_OFF, &ApiError::Internal(e.to_string()), None),
        }
    })
}
