//! Responses and request bodies: every response is built by one call into JS
//! (`runtime.js`) with header values kept as JS strings per isolate.

use crate::caching::{CacheSettings, Freshness, BOOKMARK_HEADER};
use crate::domain::encode_lower_hex;
use crate::error::{ApiError, STORAGE_RETRY_AFTER_SECONDS};
use crate::registration::MAX_BODY_BYTES;
use crate::routes::Route;
use std::cell::OnceCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Request, Response};
use worker::{console_error, js_sys};

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn respond(
        status: u16,
        body: &JsValue,
        content_type: &JsValue,
        cache_control: &JsValue,
        vary: &JsValue,
        etag: &JsValue,
        age: Option<u32>,
        any_origin: bool,
        extra_name: &JsValue,
        extra_value: &JsValue,
    ) -> Response;
    #[wasm_bindgen(js_name = responseTemplate)]
    fn response_template(
        status: u16,
        body: &JsValue,
        content_type: &JsValue,
        cache_control: &JsValue,
        vary: &JsValue,
        any_origin: bool,
    ) -> JsValue;
    #[wasm_bindgen(js_name = fromTemplate)]
    fn from_template(template: &JsValue) -> Response;
    #[wasm_bindgen(js_name = readBody)]
    fn read_body_js(request: &Request, max: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &Request) -> JsValue;
}

/// What every request is read for: method, URL and the two caching headers, as the one
/// string `requestHead` (runtime.js) writes: kept as that JS string too, so that a lookup
/// hands it to JS (and JS back to `finish_lookup`) without making it again from wasm's copy.
pub struct RequestHead {
    js: JsValue,
    text: String,
}

impl RequestHead {
    pub fn read(req: &Request) -> RequestHead {
        RequestHead::from_js(request_head(req))
    }

    /// A head as `read` made it, handed back by JS (a lookup's `finish`).
    pub fn from_js(js: JsValue) -> RequestHead {
        let text = js.as_string().unwrap_or_default();
        RequestHead { js, text }
    }

    /// The head as the JS string it came from.
    pub fn js(&self) -> &JsValue {
        &self.js
    }

    /// `(method, url, if-none-match, x-kez-bookmark)`, as `requestHead` in runtime.js wrote them.
    pub fn parts(&self) -> (&str, &str, Option<&str>, Option<&str>) {
        let mut lines = self.text.splitn(4, '\n');
        let mut next = || lines.next().unwrap_or_default();
        let (method, url, if_none_match, bookmark) = (next(), next(), next(), next());
        (method, url, if_none_match.strip_prefix('+'), bookmark.strip_prefix('+'))
    }
}

/// The clock, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The constant header values, made into JS strings once per isolate.
pub struct HeaderValues {
    pub json: JsValue,
    pub jrd: JsValue,
    pub jwt: JsValue,
    pub positive: JsValue,
    pub negative: JsValue,
    pub no_store: JsValue,
    /// `x-kez-bookmark`: every lookup's `Vary` (an answer read through a bookmark
    /// differs), and the header that returns one.
    pub bookmark: JsValue,
}

thread_local! {
    static HEADER_VALUES: OnceCell<HeaderValues> = const { OnceCell::new() };
    /// The lookups' 404 as a `responseTemplate`: the most common error, the same every time.
    static LOOKUP_NOT_FOUND: OnceCell<JsValue> = const { OnceCell::new() };
}

/// Runs `f` with the isolate's header values, made from `settings` on first use.
pub fn with_headers<T>(settings: &CacheSettings, f: impl FnOnce(&HeaderValues) -> T) -> T {
    HEADER_VALUES.with(|cell| {
        f(cell.get_or_init(|| HeaderValues {
            json: "application/json".into(),
            jrd: "application/jrd+json".into(),
            jwt: "application/jwt".into(),
            positive: settings.cache_control(Freshness::Positive).into(),
            negative: settings.cache_control(Freshness::Negative).into(),
            no_store: settings.cache_control(Freshness::NoStore).into(),
            bookmark: BOOKMARK_HEADER.into(),
        }))
    })
}

/// One response: status, body, and the headers that vary between answers.
pub struct Reply<'a> {
    pub status: u16,
    /// A JS string, or `undefined` for no body (304, 204).
    pub body: JsValue,
    pub content_type: Option<&'a JsValue>,
    pub cache_control: &'a JsValue,
    pub vary: Option<&'a JsValue>,
    pub etag: Option<&'a JsValue>,
    pub age: Option<u32>,
    pub any_origin: bool,
    /// One more header (`x-kez-bookmark`, `allow`, `retry-after`, …).
    pub extra: Option<(&'a JsValue, JsValue)>,
}

impl Reply<'_> {
    /// The same response again and again from JS (`fromTemplate`), for a reply whose headers
    /// are all per-isolate values.
    fn template(self) -> JsValue {
        debug_assert!(self.etag.is_none() && self.age.is_none() && self.extra.is_none());
        let undefined = JsValue::UNDEFINED;
        response_template(
            self.status,
            &self.body,
            self.content_type.unwrap_or(&undefined),
            self.cache_control,
            self.vary.unwrap_or(&undefined),
            self.any_origin,
        )
    }

    pub fn send(self) -> Response {
        let undefined = JsValue::UNDEFINED;
        let (extra_name, extra_value) = match &self.extra {
            Some((name, value)) => (*name, value),
            None => (&undefined, &undefined),
        };
        respond(
            self.status,
            &self.body,
            self.content_type.unwrap_or(&undefined),
            self.cache_control,
            self.vary.unwrap_or(&undefined),
            self.etag.unwrap_or(&undefined),
            self.age,
            self.any_origin,
            extra_name,
            extra_value,
        )
    }
}

/// A JSON (or other `content_type`) body that is never cached.
pub fn uncached(
    settings: &CacheSettings,
    status: u16,
    body: JsValue,
    any_origin: bool,
    content_type: impl Fn(&HeaderValues) -> &JsValue,
) -> Response {
    with_headers(settings, |h| {
        Reply {
            status,
            body,
            content_type: Some(content_type(h)),
            cache_control: &h.no_store,
            vary: None,
            etag: None,
            age: None,
            any_origin,
            extra: None,
        }
        .send()
    })
}

/// The error's JSON body with its status; a 5xx is logged with an incident reference that
/// the client also sees, and its details never leave the log. `route` is the route it
/// answers, if the request got that far: it decides CORS and caching (`Route::error_freshness`).
pub fn error_response(settings: &CacheSettings, error: &ApiError, route: Option<Route<'_>>) -> Response {
    if *error == ApiError::UserNotFound && route.is_some_and(|r| r.is_lookup()) {
        return from_template(&lookup_not_found(settings));
    }
    error_reply(settings, error, route, None, |reply| reply.send())
}

/// A write's refusal with the bookmark of the state that refused it (`x-kez-bookmark`): a
/// lookup through it sees what the write lost to, on a replica that has not caught up too.
pub fn refusal_at(settings: &CacheSettings, error: &ApiError, route: Route<'_>, bookmark: Option<String>) -> Response {
    error_reply(settings, error, Some(route), bookmark, |reply| reply.send())
}

/// The lookups' 404 (every lookup route answers it alike), made once per isolate as a
/// template `lookUp` in runtime.js answers from when D1 has no row.
pub fn lookup_not_found(settings: &CacheSettings) -> JsValue {
    LOOKUP_NOT_FOUND.with(|cell| {
        cell.get_or_init(|| {
            error_reply(settings, &ApiError::UserNotFound, Some(Route::WebFinger), None, |reply| reply.template())
        })
        .clone()
    })
}

/// The `Reply` of `error_response`, handed to `make`; with `bookmark` (`refusal_at`).
fn error_reply<T>(
    settings: &CacheSettings,
    error: &ApiError,
    route: Option<Route<'_>>,
    bookmark: Option<String>,
    make: impl FnOnce(Reply<'_>) -> T,
) -> T {
    let incident = error.log_detail().map(|detail| {
        let incident = incident_reference();
        console_error!("{}, incident {incident}: {detail}", error.code());
        incident
    });
    let body: JsValue = error.to_json(incident.as_deref()).as_str().into();
    let lookup = route.is_some_and(|r| r.is_lookup());
    let freshness = route.map_or(Freshness::NoStore, |r| r.error_freshness(error));
    let extra = match error {
        ApiError::MethodNotAllowed { allow } => Some(("allow", allow.to_string())),
        ApiError::Unauthorized => Some(("www-authenticate", "KezBridge".to_owned())),
        ApiError::StorageUnavailable(_) => Some(("retry-after", STORAGE_RETRY_AFTER_SECONDS.to_string())),
        ApiError::RateLimited { retry_after } => Some(("retry-after", retry_after.to_string())),
        _ => bookmark.map(|bookmark| (BOOKMARK_HEADER, bookmark)),
    };
    let extra_name = extra.as_ref().map(|(name, _)| JsValue::from_str(name));
    with_headers(settings, |h| {
        make(Reply {
            status: error.status(),
            body,
            content_type: Some(&h.json),
            cache_control: if freshness == Freshness::Negative { &h.negative } else { &h.no_store },
            vary: lookup.then_some(&h.bookmark),
            etag: None,
            age: None,
            any_origin: route.is_some_and(|r| r.allows_any_origin()),
            extra: extra_name.as_ref().zip(extra.map(|(_, value)| JsValue::from(value))),
        })
    })
}

fn incident_reference() -> String {
    let mut bytes = [0u8; 6];
    match getrandom::fill(&mut bytes) {
        Ok(()) => encode_lower_hex(&bytes),
        Err(_) => format!("t{}", now_ms()),
    }
}

/// Reads a body of at most `MAX_BODY_BYTES` (`readBody` in runtime.js): a larger one is
/// refused by its declared length before reading, or, without one (chunked), as soon as the
/// chunks read so far pass the cap.
pub async fn read_body(req: &Request) -> Result<Vec<u8>, ApiError> {
    body_bytes(JsFuture::from(read_body_js(req, MAX_BODY_BYTES as u32)).await.map_err(js_internal)?)
}

pub fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

pub fn js_internal(error: JsValue) -> ApiError {
    ApiError::Internal(format!("{error:?}"))
}

/// A statement's body as `readBody` (runtime.js) read it: null when it was larger than
/// `MAX_BODY_BYTES`.
pub fn body_bytes(body: JsValue) -> Result<Vec<u8>, ApiError> {
    if body.is_null() {
        return Err(ApiError::BodyTooLarge { limit: MAX_BODY_BYTES });
    }
    Ok(body.dyn_into::<js_sys::Uint8Array>().map_err(js_internal)?.to_vec())
}
