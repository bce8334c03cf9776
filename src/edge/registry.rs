//! The registry's endpoints: lookups (by handle, by key, WebFinger) and registration.

use super::cache::{self, CacheKey, CachedUser};
use super::config::{config, rate_limits};
use super::db::{self, Inserted, LookupOutcome, UserKey};
use super::http::{error_response, internal, now_ms, read_body, with_headers, Reply};
use crate::api::{Config, UserRecord, UserView};
use crate::caching::{etag, none_match, Bookmark, CacheSettings};
use crate::domain::{Handle, HandleError, PrimaryKey};
use crate::error::ApiError;
use crate::registration;
use crate::request_url::RequestUrl;
use crate::routes::Route;
use crate::timestamp::format_rfc3339_utc;
use crate::webfinger;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Request, Response};
use worker::worker_sys::Context;
use worker::{console_error, js_sys, D1DatabaseSession, Env};

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = userHeaders)]
    fn user_headers(cache_control: &JsValue, vary: &JsValue, etag: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = respondWith)]
    fn respond_with(body: &JsValue, headers: &JsValue, age: Option<u32>) -> Response;
}

/// A lookup, parsed from its route: whom, and whether the answer is the user body or a
/// WebFinger JRD.
pub struct Lookup {
    key: LookupKey,
    /// `(origin, rels)` of a WebFinger request.
    webfinger: Option<(String, Vec<String>)>,
}

enum LookupKey {
    Handle(Handle),
    Primary(String),
}

/// What the request says about caching: its `If-None-Match` and its bookmark.
pub struct Conditions {
    pub if_none_match: Option<String>,
    pub bookmark: Option<Bookmark>,
}

impl Conditions {
    pub fn read(if_none_match: Option<&str>, bookmark: Option<&str>) -> Result<Conditions, ApiError> {
        let bookmark = match bookmark {
            Some(raw) => Some(Bookmark::parse(raw).ok_or(ApiError::InvalidBookmark)?),
            None => None,
        };
        Ok(Conditions { if_none_match: if_none_match.map(str::to_owned), bookmark })
    }
}

impl Lookup {
    pub fn parse(route: Route<'_>, url: &RequestUrl<'_>, config: &Config) -> Result<Lookup, ApiError> {
        let handle = |raw| {
            Handle::parse_lookup(raw).map_err(|e| match e {
                HandleError::Invalid => ApiError::InvalidHandle,
                HandleError::Reserved => ApiError::UserNotFound,
            })
        };
        Ok(match route {
            Route::LookupHandle(raw) => Lookup { key: LookupKey::Handle(handle(raw)?), webfinger: None },
            Route::LookupPrimary(raw) => Lookup {
                key: LookupKey::Primary(PrimaryKey::lookup_path_segment(raw).ok_or(ApiError::InvalidPrimaryKey)?),
                webfinger: None,
            },
            Route::WebFinger => {
                let mut resource = None;
                let mut rels = Vec::new();
                for (key, value) in url.query_pairs() {
                    match &*key {
                        "resource" if resource.is_none() => resource = Some(value.into_owned()),
                        "rel" => rels.push(value.into_owned()),
                        _ => {}
                    }
                }
                let handle = webfinger::resolve(resource.as_deref(), &config.server)?;
                Lookup { key: LookupKey::Handle(handle), webfinger: Some((url.origin().to_owned(), rels)) }
            }
            _ => unreachable!("only lookup routes are parsed as lookups"),
        })
    }

    fn user_key(&self) -> UserKey<'_> {
        match &self.key {
            LookupKey::Handle(handle) => UserKey::Handle(handle.as_str()),
            LookupKey::Primary(primary) => UserKey::Primary(primary),
        }
    }

    /// The answer's key in the isolate cache and URL in the edge cache (the path that
    /// answers it, on this origin). WebFinger shares the by-handle entry: it is built from
    /// the same user.
    pub fn cache_key(&self, origin: &str) -> CacheKey {
        let (isolate_prefix, path, value) = match &self.key {
            LookupKey::Handle(handle) => ("u/", "/v1/u/", handle.as_str()),
            LookupKey::Primary(primary) => ("p/", "/v1/by-primary/", primary.as_str()),
        };
        CacheKey { isolate: [isolate_prefix, value].concat(), origin: origin.to_owned(), path }
    }

    /// The isolate cache's answer, served with no I/O at all, if it holds a fresh one.
    pub fn answer_from_isolate(
        &self,
        settings: &CacheSettings,
        key: &CacheKey,
        conditions: &Conditions,
        now_ms: i64,
    ) -> Option<Response> {
        if conditions.bookmark.is_some() {
            return None;
        }
        let (user, read_at) = cache::isolate_get(settings, &key.isolate, now_ms)?;
        self.answer(settings, &user, Served::Cached { read_at_ms: read_at, now_ms }, conditions)
    }

    /// The edge cache's answer, else D1's (kept in both caches); with a bookmark, D1's
    /// through a session at that bookmark, kept nowhere. A promise of the response: the I/O
    /// runs in JS as one promise (`lookUp` in runtime.js), which calls back once to make
    /// the response.
    pub fn answer_from_storage(
        self,
        env: Env,
        ctx: Context,
        settings: &'static CacheSettings,
        key: CacheKey,
        conditions: Conditions,
    ) -> Result<JsValue, ApiError> {
        let caching = settings.server_caching() && conditions.bookmark.is_none();
        // WebFinger needs the view, which only a user read from D1 carries (cache.rs).
        let edge_url = (caching && self.webfinger.is_none()).then(|| key.edge_url());
        let (statement, session) = db::lookup_statement(&env, self.user_key(), conditions.bookmark.as_ref())?;
        let value = self.user_key().value().to_owned();
        let finish = Closure::once_into_js(move |kind: u32, outcome: JsValue| -> Response {
            let settled = LookupOutcome::read(kind, outcome).and_then(|outcome| {
                self.settle(&env, &ctx, settings, &key, &conditions, caching, session.as_ref(), outcome)
            });
            // Every lookup route answers errors alike.
            settled.unwrap_or_else(|e| error_response(settings, &e, Some(Route::WebFinger)))
        });
        Ok(db::start_lookup(edge_url, settings.ttl_ms(), &statement, &value, &finish).into())
    }

    /// The response once the lookup's I/O is done.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        env: &Env,
        ctx: &Context,
        settings: &CacheSettings,
        key: &CacheKey,
        conditions: &Conditions,
        caching: bool,
        session: Option<&D1DatabaseSession>,
        outcome: LookupOutcome,
    ) -> Result<Response, ApiError> {
        let now_ms = now_ms();
        let record = match outcome {
            LookupOutcome::FromEdge(hit) => {
                let (user, read_at) =
                    cache::from_edge(settings, key, hit, now_ms).ok_or_else(|| internal("edge entry"))?;
                let served = Served::Cached { read_at_ms: read_at, now_ms };
                return self.answer(settings, &user, served, conditions).ok_or_else(|| internal("edge answer"));
            }
            LookupOutcome::FromD1(record) => record.ok_or(ApiError::UserNotFound)?,
        };
        let user = Rc::new(CachedUser::new(UserView::from_record(&record, config(env)?).map_err(ApiError::Internal)?));
        if caching {
            with_headers(settings, |h| cache::keep(settings, ctx, key, &user, &h.positive, now_ms));
        }
        let served = match session {
            Some(session) => Served::ThroughBookmark(db::latest_bookmark(session)),
            None => Served::Fresh,
        };
        self.answer(settings, &user, served, conditions).ok_or_else(|| internal("user without its view"))
    }

    /// The answer for `user`: the user body (by handle, by key) or the JRD (WebFinger); a
    /// body-less 304 when the client already holds it. `None` for WebFinger from a user
    /// without its view (taken from the edge cache): the caller reads D1 instead.
    fn answer(
        &self,
        settings: &CacheSettings,
        user: &CachedUser,
        served: Served,
        conditions: &Conditions,
    ) -> Option<Response> {
        let jrd = match &self.webfinger {
            Some((origin, rels)) => {
                let body = webfinger::jrd(user.view.as_ref()?, origin, rels);
                let tag = etag(body.as_bytes());
                Some((body, tag))
            }
            None => None,
        };
        let (body, tag, js_tag) = match &jrd {
            Some((body, tag)) => (JsValue::from_str(body), tag.as_str(), JsValue::from_str(tag)),
            None => (user.js_body.clone(), user.etag.as_str(), user.js_etag.clone()),
        };
        let not_modified = conditions.if_none_match.as_deref().is_some_and(|inm| none_match(inm, tag));
        Some(with_headers(settings, |h| {
            // The common answer, a found user's body as it is cached: its headers are made once.
            let plain_body = !not_modified && jrd.is_none() && !matches!(served, Served::ThroughBookmark(_));
            if plain_body {
                let headers = user.headers.get_or_init(|| user_headers(&h.positive, &h.bookmark, &user.js_etag));
                let age = match served {
                    Served::Cached { read_at_ms, now_ms } => Some(((now_ms - read_at_ms).max(0) / 1000) as u32),
                    _ => None,
                };
                return respond_with(&body, headers, age);
            }
            let (cache_control, age, extra) = match served {
                Served::Fresh => (&h.positive, None, None),
                Served::Cached { read_at_ms, now_ms } => {
                    (&h.positive, Some(((now_ms - read_at_ms).max(0) / 1000) as u32), None)
                }
                Served::ThroughBookmark(bookmark) => {
                    (&h.no_store, None, bookmark.map(|b| (&h.bookmark, JsValue::from(b))))
                }
            };
            Reply {
                status: if not_modified { 304 } else { 200 },
                body: if not_modified { JsValue::UNDEFINED } else { body },
                content_type: (!not_modified).then_some(if jrd.is_some() { &h.jrd } else { &h.json }),
                cache_control,
                vary: Some(&h.bookmark),
                etag: Some(&js_tag),
                age,
                any_origin: true,
                extra,
            }
            .send()
        }))
    }
}

/// Where an answer came from, which sets its `Cache-Control`, `Age` and bookmark.
enum Served {
    /// Read from D1 for this request.
    Fresh,
    /// From a cache, read from D1 at `read_at_ms`.
    Cached { read_at_ms: i64, now_ms: i64 },
    /// Read through the client's bookmark; the session's newest bookmark, if it gave one.
    ThroughBookmark(Option<String>),
}

/// Rate limit bindings (`[[ratelimits]]` in wrangler.toml) for registrations, keyed by the
/// client's address (`CF-Connecting-IP`, set by Cloudflare) and by the registering key.
const REGISTRATIONS_BY_ADDRESS: &str = "REGISTRATIONS_BY_ADDRESS";
const REGISTRATIONS_BY_KEY: &str = "REGISTRATIONS_BY_KEY";
/// The bindings' period: a refused client is told to wait that long.
const RATE_LIMIT_PERIOD_SECONDS: u32 = 60;

/// `POST /v1/register`: 201 with the user body and the write's bookmark (`x-kez-bookmark`).
pub async fn register(req: Request, env: &Env, settings: &CacheSettings) -> Result<Response, ApiError> {
    let config = config(env)?;
    let limits = rate_limits(env)?;
    // Before reading anything: a client over its limit costs no parsing or verification.
    if limits {
        let address = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
        check_rate_limit(env, REGISTRATIONS_BY_ADDRESS, address).await?;
    }
    let body = read_body(&req).await?;
    let now_ms = now_ms();
    let signed = registration::check(registration::parse_envelope(&body)?, &config.server, now_ms);
    // Counted for every parsed envelope, checked or not: failed attempts count too. (Awaited
    // here, after the synchronous checks, rather than between parsing and checking: holding
    // the parsed envelope across an await cost 12 KiB of upload.)
    let key = match &signed {
        Ok(signed) => Some(signed.primary().to_string()),
        // A body that is not an envelope names no key: only its address was counted.
        Err(_) => registration::parse_envelope(&body).ok().map(|e| e.payload.primary),
    };
    if let (true, Some(key)) = (limits, key) {
        check_rate_limit(env, REGISTRATIONS_BY_KEY, key).await?;
    }
    let signed = signed?;
    let pending = signed.pending().map(|(handle, envelope_jcs)| {
        let record = UserRecord {
            handle: handle.to_string(),
            primary_key: signed.primary().to_string(),
            registered_at: format_rfc3339_utc(now_ms),
            envelope: envelope_jcs.to_owned(),
        };
        (record, handle.skeleton())
    });
    let inserted = db::verify_and_insert(env, &signed, pending.as_ref().map(|(r, s)| (r, s.as_str()))).await?;
    // A failed equation, then the first failed later check, in the contract's order.
    signed.conclude(inserted.is_some())?;
    let record = pending.map(|(record, _)| record).ok_or_else(|| internal("checks passed without a record"))?;
    let bookmark = match inserted {
        Some(Inserted::Done { bookmark }) => bookmark,
        // The winner is already decided; only the code is chosen here.
        Some(Inserted::SkeletonTaken { holder: Ok(Some(holder)) }) => {
            return Err(ApiError::conflict_with(
                &holder.handle,
                &holder.primary_key,
                &record.handle,
                &record.primary_key,
            ))
        }
        Some(Inserted::SkeletonTaken { holder: Ok(None) }) => return Err(ApiError::HandleConfusable),
        Some(Inserted::SkeletonTaken { holder: Err(e) }) => return Err(e),
        None | Some(Inserted::Nothing) => return Err(internal("registration concluded without an insert")),
    };
    let user = UserView::from_record(&record, config).map_err(ApiError::Internal)?;
    Ok(with_headers(settings, |h| {
        Reply {
            status: 201,
            body: user.to_json().as_str().into(),
            content_type: Some(&h.json),
            cache_control: &h.no_store,
            vary: None,
            etag: None,
            age: None,
            any_origin: false,
            extra: bookmark.map(|b| (&h.bookmark, JsValue::from(b))),
        }
        .send()
    }))
}

/// One count against a limit; over it, 429 `rate_limited`. A binding that is missing or
/// fails is a configuration or platform fault: logged, and the request goes on (registration
/// must not depend on the limiter being up).
async fn check_rate_limit(env: &Env, binding: &str, key: String) -> Result<(), ApiError> {
    let outcome = match limit_promise(env, binding, key) {
        Ok(promise) => JsFuture::from(promise).await,
        Err(e) => Err(e),
    };
    match outcome.and_then(|o| js_sys::Reflect::get(&o, &"success".into())) {
        Ok(success) if success.is_truthy() => Ok(()),
        Ok(_) => Err(ApiError::RateLimited { retry_after: RATE_LIMIT_PERIOD_SECONDS }),
        Err(e) => {
            console_error!("rate limit {binding}: {e:?}");
            Ok(())
        }
    }
}

/// `env[binding].limit({ key })`, called directly: the `worker` crate's wrapper goes
/// through serde-wasm-bindgen for two fields.
fn limit_promise(env: &Env, binding: &str, key: String) -> Result<js_sys::Promise, JsValue> {
    let limiter = js_sys::Reflect::get(env, &binding.into())?;
    let limit: js_sys::Function = js_sys::Reflect::get(&limiter, &"limit".into())?.dyn_into()?;
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"key".into(), &key.into())?;
    Ok(limit.call1(&limiter, &options)?.into())
}
