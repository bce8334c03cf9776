//! The registry's endpoints: lookups (by handle, by key, WebFinger) and registration.

use super::cache::{self, CacheKey, CachedUser};
use super::config::{cache_settings, config, log_key, quarantine_days, rate_limits, CACHE_OFF};
use super::db::{self, LookupOutcome, UserKey};
use super::http::{
    body_bytes, error_response, internal, js_internal, lookup_not_found, now_ms, refusal_at, with_headers, Reply,
    RequestHead,
};
use super::promise;
use crate::api::{Config, Named, ReleasedView, UserRecord, UserView};
use crate::caching::{etag, none_match, Bookmark, CacheSettings};
use crate::domain::{Handle, PrimaryKey};
use crate::error::ApiError;
use crate::lifecycle::DAY_MS;
use crate::log::stored::LogKey;
use crate::registration::{self, MAX_BODY_BYTES};
use crate::request_url::RequestUrl;
use crate::routes::{route, Route};
use crate::timestamp::format_rfc3339_utc;
use crate::webfinger::{self, Subject};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Array};
use worker::web_sys::{Request, Response};
use worker::worker_sys::Context;
use worker::Env;

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = userInit)]
    fn user_init(cache_control: &JsValue, vary: &JsValue, etag: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = respondWith)]
    fn respond_with(body: &JsValue, init: &JsValue) -> Response;
    #[wasm_bindgen(js_name = withAge)]
    fn with_age(init: &JsValue, age: u32) -> JsValue;
    #[wasm_bindgen(js_name = register)]
    fn register_js(
        request: &Request,
        env: &Env,
        ctx: &Context,
        limits: bool,
        max_body: u32,
        check: &JsValue,
    ) -> js_sys::Promise;
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
        // A lookup checks only the handle's form (`parse_lookup`).
        let handle = |raw| Handle::parse_lookup(raw).map_err(|_| ApiError::InvalidHandle);
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

    /// The answer's key in the isolate cache. WebFinger shares the by-handle entry: it is
    /// built from the same user.
    pub fn isolate_key(&self) -> String {
        match &self.key {
            LookupKey::Handle(handle) => cache::by_handle_key(handle.as_str()),
            LookupKey::Primary(primary) => cache::by_key_key(primary),
        }
    }

    /// The answer's keys in both caches: `isolate` (`isolate_key`), and for the edge cache
    /// the URL of the path that answers it on `origin`. Made only once the isolate cache
    /// had no answer: a hit needs no copy of the origin.
    fn cache_key(&self, isolate: String, origin: &str) -> CacheKey {
        let path = match &self.key {
            LookupKey::Handle(_) => cache::BY_HANDLE_PATH,
            LookupKey::Primary(_) => cache::BY_KEY_PATH,
        };
        CacheKey { isolate, origin: origin.to_owned(), path }
    }

    /// The isolate cache's answer, served with no I/O at all, if it holds a fresh one.
    pub fn answer_from_isolate(
        &self,
        settings: &CacheSettings,
        isolate_key: &str,
        conditions: &Conditions,
        now_ms: i64,
    ) -> Option<Response> {
        if conditions.bookmark.is_some() {
            return None;
        }
        let (user, read_at) = cache::isolate_get(settings, isolate_key, now_ms)?;
        self.answer(settings, &user, Served::Cached { read_at_ms: read_at, now_ms }, conditions)
    }

    /// The edge cache's answer, else D1's (kept in both caches); with a bookmark, D1's
    /// through a session at that bookmark, kept nowhere. A promise of the response: the I/O
    /// runs in JS as one promise (`lookUp` in runtime.js), which calls back once with the
    /// request's `head` to make the response (`finish_lookup`). Wasm keeps nothing while the
    /// I/O runs, so a request the runtime cancels (its client gone) leaves nothing behind.
    pub fn answer_from_storage(
        &self,
        head: &JsValue,
        env: &Env,
        ctx: Context,
        settings: &'static CacheSettings,
        origin: &str,
        conditions: &Conditions,
    ) -> Result<JsValue, ApiError> {
        let caching = settings.server_caching() && conditions.bookmark.is_none();
        // WebFinger needs the view, which only a user read from D1 carries (cache.rs).
        let edge_url =
            (caching && self.webfinger.is_none()).then(|| self.cache_key(self.isolate_key(), origin).edge_url());
        let (statement, session) = db::lookup_statement(env, self.user_key(), conditions.bookmark.as_ref())?;
        let not_found = lookup_not_found(settings);
        Ok(FINISH_LOOKUP
            .with(|finish| {
                db::start_lookup(
                    head,
                    env,
                    ctx,
                    edge_url,
                    settings.ttl_ms(),
                    &statement,
                    session.as_ref(),
                    self.user_key().value(),
                    finish,
                    &not_found,
                )
            })
            .into())
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
        bookmark_after: Option<String>,
        outcome: LookupOutcome,
    ) -> Result<Response, ApiError> {
        let row = match outcome {
            LookupOutcome::FromEdge(hit) => {
                let now_ms = now_ms();
                let (user, read_at) =
                    cache::from_edge(settings, key, hit, now_ms).ok_or_else(|| internal("edge entry"))?;
                let served = Served::Cached { read_at_ms: read_at, now_ms };
                return self.answer(settings, &user, served, conditions).ok_or_else(|| internal("edge answer"));
            }
            LookupOutcome::FromD1(row) => row,
            LookupOutcome::Absent => {
                let body = ApiError::UserNotFound.to_json(None);
                return Ok(absent(settings, 404, body, conditions, bookmark_after));
            }
        };
        if row.released_at()?.is_some() {
            let body = ReleasedView::from_record(&row.record()?)
                .ok_or_else(|| internal("a release without its envelope"))?
                .to_json();
            return Ok(absent(settings, 410, body, conditions, bookmark_after));
        }
        let config = config(env)?;
        let served = match conditions.bookmark {
            Some(_) => Served::ThroughBookmark(bookmark_after),
            None => Served::Fresh { kept: caching },
        };
        if !caching && self.webfinger.is_some() {
            // Nothing is kept: the JRD alone is made, from the binding alone (a user body,
            // its envelope, its log proof and its ETag would go unused).
            let [handle, primary] = row.binding()?;
            let named = Named::read(&handle, &primary, config).map_err(ApiError::Internal)?;
            return Ok(self.answer_jrd(settings, &named.subject(), served, conditions));
        }
        let view = UserView::from_record(&row.record()?, config).map_err(ApiError::Internal)?;
        let user = Rc::new(CachedUser::new(view));
        if caching {
            with_headers(settings, |h| cache::keep(settings, ctx, key, &user, &h.positive, now_ms()));
        }
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
        if self.webfinger.is_some() {
            return Some(self.answer_jrd(settings, &user.view.as_ref()?.subject(), served, conditions));
        }
        let not_modified = conditions.if_none_match.as_deref().is_some_and(|inm| none_match(inm, &user.etag));
        // The common answer, a found user's body as it is cached: its headers are made once,
        // for every hit. (A user served once and dropped gets them in the reply's one call.)
        let served_again = matches!(served, Served::Cached { .. } | Served::Fresh { kept: true });
        if !not_modified && served_again {
            let age = match served {
                Served::Cached { read_at_ms, now_ms } => Some(((now_ms - read_at_ms).max(0) / 1000) as u32),
                _ => None,
            };
            return Some(with_headers(settings, |h| {
                let init = user.init.get_or_init(|| user_init(&h.positive, &h.bookmark, &user.js_etag));
                let Some(age) = age else {
                    return respond_with(&user.js_body, init);
                };
                // `Age` counts whole seconds: an answer served many times a second reuses its copy.
                let mut aged = user.aged.borrow_mut();
                if aged.as_ref().is_none_or(|(at, _)| *at != age) {
                    *aged = Some((age, with_age(init, age)));
                }
                respond_with(&user.js_body, &aged.as_ref().expect("set above").1)
            }));
        }
        Some(reply(settings, user.js_body.clone(), &user.js_etag, not_modified, false, served))
    }

    /// WebFinger's JRD for `subject`, made for this request (its `rel`s choose the links).
    fn answer_jrd(
        &self,
        settings: &CacheSettings,
        subject: &Subject<'_>,
        served: Served,
        conditions: &Conditions,
    ) -> Response {
        let (origin, rels) = self.webfinger.as_ref().expect("a WebFinger lookup");
        let body = webfinger::jrd(subject, origin, rels);
        let tag = etag(body.as_bytes());
        let not_modified = conditions.if_none_match.as_deref().is_some_and(|inm| none_match(inm, &tag));
        reply(settings, JsValue::from_str(&body), &JsValue::from_str(&tag), not_modified, true, served)
    }
}

thread_local! {
    /// `lookUp`'s call back, one per isolate: a closure made per lookup cost its creation,
    /// its registration for finalization and its release on every request.
    static FINISH_LOOKUP: JsValue =
        Closure::<dyn FnMut(JsValue, u32, JsValue, Env, Context, Option<String>) -> Response>::new(finish_lookup)
            .into_js_value();
}

/// A lookup request, parsed from its route, URL and conditional headers: by `fetch`, and by
/// `finish_lookup` again from the same request head.
pub fn parse_lookup(
    route: Route<'_>,
    url: &RequestUrl<'_>,
    if_none_match: Option<&str>,
    bookmark: Option<&str>,
    env: &Env,
) -> Result<(Lookup, Conditions), ApiError> {
    let config = config(env)?;
    Ok((Lookup::parse(route, url, config)?, Conditions::read(if_none_match, bookmark)?))
}

/// `lookUp`'s call back: the response once the lookup's I/O is done, made from the request
/// `head` parsed again (`RequestHead`), the outcome, and the session's newest bookmark after
/// a read through a client's bookmark. Not called when D1 has no row (runtime.js then
/// answers from `lookup_not_found`'s template).
fn finish_lookup(
    head: JsValue,
    kind: u32,
    outcome: JsValue,
    env: Env,
    ctx: Context,
    bookmark_after: Option<String>,
) -> Response {
    let settings = cache_settings(&env).unwrap_or(&CACHE_OFF);
    let head = RequestHead::from_js(head);
    let (method, full_url, if_none_match, bookmark) = head.parts();
    let url = RequestUrl::split(full_url);
    let settled = LookupOutcome::read(kind, outcome).and_then(|outcome| {
        let route = match route(method, url.path()) {
            Ok(route @ (Route::LookupHandle(_) | Route::LookupPrimary(_) | Route::WebFinger)) => route,
            _ => return Err(internal("a lookup's head that routes elsewhere")),
        };
        let (lookup, conditions) = parse_lookup(route, &url, if_none_match, bookmark, &env)?;
        let key = lookup.cache_key(lookup.isolate_key(), url.origin());
        let caching = settings.server_caching() && conditions.bookmark.is_none();
        lookup.settle(&env, &ctx, settings, &key, &conditions, caching, bookmark_after, outcome)
    });
    // Every lookup route answers errors alike.
    settled.unwrap_or_else(|e| error_response(settings, &e, Some(Route::WebFinger)))
}

/// A lookup's 404 (no such user) or 410 (a released handle, `body` its `ReleasedView`): cached
/// a few seconds; read through a client's bookmark, not cached at all, and with the session's
/// newest bookmark, as a found user's answer has (a writer's own fresh state must not stick).
fn absent(
    settings: &CacheSettings,
    status: u16,
    body: String,
    conditions: &Conditions,
    bookmark_after: Option<String>,
) -> Response {
    let through_bookmark = conditions.bookmark.is_some();
    with_headers(settings, |h| {
        Reply {
            status,
            body: body.as_str().into(),
            content_type: Some(&h.json),
            cache_control: if through_bookmark { &h.no_store } else { &h.negative },
            vary: Some(&h.bookmark),
            etag: None,
            age: None,
            any_origin: true,
            extra: bookmark_after.filter(|_| through_bookmark).map(|b| (&h.bookmark, JsValue::from(b))),
        }
        .send()
    })
}

/// A lookup's 200 (or 304, `not_modified`) with the headers where it was `served` from.
fn reply(
    settings: &CacheSettings,
    body: JsValue,
    etag: &JsValue,
    not_modified: bool,
    jrd: bool,
    served: Served,
) -> Response {
    with_headers(settings, |h| {
        let (cache_control, age, extra) = match served {
            Served::Fresh { .. } => (&h.positive, None, None),
            Served::Cached { read_at_ms, now_ms } => {
                (&h.positive, Some(((now_ms - read_at_ms).max(0) / 1000) as u32), None)
            }
            Served::ThroughBookmark(bookmark) => (&h.no_store, None, bookmark.map(|b| (&h.bookmark, JsValue::from(b)))),
        };
        Reply {
            status: if not_modified { 304 } else { 200 },
            body: if not_modified { JsValue::UNDEFINED } else { body },
            content_type: (!not_modified).then_some(if jrd { &h.jrd } else { &h.json }),
            cache_control,
            vary: Some(&h.bookmark),
            etag: Some(etag),
            age,
            any_origin: true,
            extra,
        }
        .send()
    })
}

/// Where an answer came from, which sets its `Cache-Control`, `Age` and bookmark.
enum Served {
    /// Read from D1 for this request; `kept` in the caches, to be served again.
    Fresh { kept: bool },
    /// From a cache, read from D1 at `read_at_ms`.
    Cached { read_at_ms: i64, now_ms: i64 },
    /// Read through the client's bookmark; the session's newest bookmark, if it gave one.
    ThroughBookmark(Option<String>),
}

/// The registration steps `register` (runtime.js) reports, as it numbers them.
const STEP_RATE_LIMITED: u32 = 0;
const STEP_BODY: u32 = 1;
const STEP_VERIFIED: u32 = 2;

/// The period of the rate limit bindings (`[[ratelimits]]` in wrangler.toml: registrations by
/// address and by key, rotations and releases by address, counted in runtime.js): a refused
/// client is told to wait that long.
const RATE_LIMIT_PERIOD_SECONDS: u32 = 60;

/// `POST /v1/register`: 201 with the user body and the write's bookmark (`x-kez-bookmark`).
/// Its I/O (the rate limits, the body, WebCrypto's Ed25519 equation, the write with its log
/// entry, the log's step, the read back) runs in JS as one promise, `register` in runtime.js, which calls back twice: `check` with the body,
/// then `finish` with the outcome. No Rust future: each await from wasm costs a task queue
/// and closures of its own.
pub fn register(req: &Request, env: Env, ctx: &Context, settings: &'static CacheSettings) -> Result<JsValue, ApiError> {
    let config = config(&env)?;
    let limits = rate_limits(&env)?;
    // No statement is accepted that the log cannot take.
    let log_key = log_key(&env)?;
    let quarantine_days = quarantine_days(&env)?;
    let respond = move |result: Result<JsValue, ApiError>| {
        result.unwrap_or_else(|e| error_response(settings, &e, Some(Route::Register)).into())
    };
    let check = {
        let env = env.clone();
        Closure::once_into_js(move |step: u32, read: JsValue| -> JsValue {
            respond(match step {
                STEP_RATE_LIMITED => Err(rate_limited()),
                STEP_BODY => check_body(&env, config, log_key, quarantine_days, settings, limits, read),
                _ => Err(js_internal(read)),
            })
        })
    };
    Ok(register_js(req, &env, ctx, limits, MAX_BODY_BYTES as u32, &check).into())
}

pub(super) fn rate_limited() -> ApiError {
    ApiError::RateLimited { retry_after: RATE_LIMIT_PERIOD_SECONDS }
}

/// What a registration that passed its checks is about to write: the record, its skeleton,
/// and the quarantine's cutoff (RFC 3339) it was written under.
struct Pending {
    record: UserRecord,
    skeleton: String,
    cutoff: String,
}

/// Every check of a registration but the signature's equation, on the body `register` read
/// (null: too large). A response when the request ends here, else `[limitKey, proof, finish]`
/// for `register`'s second step (`limitKey` undefined when nothing is to be written).
#[allow(clippy::too_many_arguments)]
fn check_body(
    env: &Env,
    config: &'static Config,
    log_key: &'static LogKey,
    quarantine_days: u32,
    settings: &'static CacheSettings,
    limits: bool,
    body: JsValue,
) -> Result<JsValue, ApiError> {
    let body = body_bytes(body)?;
    let now_ms = now_ms();
    let signed = registration::check(registration::parse_envelope(&body)?, &config.server, now_ms)?;
    let pending = signed
        .pending()
        .map(|(handle, envelope_jcs, signed_at_ms)| {
            let record = UserRecord {
                handle: handle.to_string(),
                primary_key: signed.primary().to_string(),
                registered_at: format_rfc3339_utc(now_ms),
                envelope: envelope_jcs.to_owned(),
                released_at: None,
                log: None,
            };
            let skeleton = handle.skeleton();
            let cutoff = format_rfc3339_utc(now_ms - i64::from(quarantine_days) * DAY_MS);
            db::registration_write(env, log_key, &record, &skeleton, &cutoff, signed_at_ms)
                .map(|write| (Pending { record, skeleton, cutoff }, write))
        })
        .transpose()?;
    // Counted only for a registration about to be written (its signature holding, `settle`
    // in runtime.js): anyone can name a key, and every registered key is public.
    let limit_key = (limits && pending.is_some()).then(|| signed.primary().to_string());
    let write = pending.as_ref().map(|(_, write)| write);
    let proof = db::proof([(*signed.key_bytes(), signed.signature_bytes())], signed.message(), write);
    let pending = pending.map(|(pending, _)| pending);
    let env = env.clone();
    let finish = Closure::once_into_js(move |step: u32, outcome: JsValue| -> JsValue {
        let concluded = match step {
            STEP_RATE_LIMITED => Err(rate_limited()),
            STEP_VERIFIED => conclude(signed, pending, outcome, config, settings),
            _ => match (db::storage_js(outcome), pending) {
                // SQLite names the newest index it checked first: the skeleton's, also when
                // the very handle (or key) is taken. The code comes from the holder, read from
                // the primary, where the insert lost; the refusal carries that read's bookmark,
                // so a client whose earlier try went through (its answer lost) finds its handle.
                (
                    conflict @ (ApiError::HandleConfusable | ApiError::HandleTaken | ApiError::KeyAlreadyRegistered),
                    Some(Pending { record, skeleton, cutoff }),
                ) => {
                    return promise(async move {
                        let (error, bookmark) = match db::skeleton_holder(&env, &skeleton).await {
                            // The key has a handle: that stands, whoever holds this one.
                            Ok((_, bookmark)) if conflict == ApiError::KeyAlreadyRegistered => (conflict, bookmark),
                            Ok((Some(holder), bookmark)) => (
                                registration::lost_to(
                                    &holder,
                                    &record.handle,
                                    &record.primary_key,
                                    &cutoff,
                                    quarantine_days,
                                ),
                                bookmark,
                            ),
                            Ok((None, bookmark)) => (conflict, bookmark),
                            Err(e) => (e, None),
                        };
                        refusal_at(settings, &error, Route::Register, bookmark)
                    });
                }
                (error, _) => Err(error),
            },
        };
        concluded.unwrap_or_else(|e| error_response(settings, &e, Some(Route::Register)).into())
    });
    Ok([JsValue::from(limit_key), proof, finish].iter().collect::<Array>().into())
}

/// The response once the equation was checked and the write ran (`settle`'s `[holds, outcome]`,
/// runtime.js): the stored user's row, read back with the write (and after the log's step,
/// with its proof).
fn conclude(
    signed: registration::Signed,
    pending: Option<Pending>,
    written: JsValue,
    config: &Config,
    settings: &CacheSettings,
) -> Result<JsValue, ApiError> {
    let written = db::Written::read(written)?;
    // A failed equation, then the first failed later check, in the contract's order.
    signed.conclude(written.holds == [true])?;
    pending.ok_or_else(|| internal("checks passed without a record"))?;
    let record = match written.outcome {
        Some(db::Outcome::Written(Some(record))) => record,
        _ => return Err(internal("a registration concluded without its row")),
    };
    created(&record, config, settings)
}

/// A 201 with the handle as stored, its log proof included (a released one as lookups show
/// it), and the write's bookmark.
pub(super) fn created(record: &UserRecord, config: &Config, settings: &CacheSettings) -> Result<JsValue, ApiError> {
    let body = match &record.released_at {
        Some(_) => {
            ReleasedView::from_record(record).ok_or_else(|| internal("a release without its envelope"))?.to_json()
        }
        None => UserView::from_record(record, config).map_err(ApiError::Internal)?.to_json(),
    };
    Ok(with_headers(settings, |h| {
        Reply {
            status: 201,
            body: body.as_str().into(),
            content_type: Some(&h.json),
            cache_control: &h.no_store,
            vary: None,
            etag: None,
            age: None,
            any_origin: false,
            extra: db::write_bookmark().map(|b| (&h.bookmark, JsValue::from(b))),
        }
        .send()
    })
    .into())
}
