//! The two cache layers of positive lookups: this isolate's `IsolateCache` in front of the
//! data centre's cache (Cache API, `caches.default`). Both hold an answer only while it is
//! younger than the TTL counted from its D1 read (`crate::caching`).

use crate::api::UserView;
use crate::caching::{etag, CacheSettings, IsolateCache, ISOLATE_CACHE_BYTES};
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use worker::js_sys::{Array, JsString};
use worker::worker_sys::Context;

#[wasm_bindgen(module = "/src/edge/runtime.js")]
extern "C" {
    #[wasm_bindgen(js_name = edgeKeep)]
    fn edge_keep(ctx: &Context, url: &str, body: &JsValue, etag: &JsValue, read_at_ms: f64, cache_control: &JsValue);
}

/// A found user, ready to serve: the lookup body and its ETag (as JS strings, so serving
/// converts nothing), and the view WebFinger builds from, when it was read from D1 here.
pub struct CachedUser {
    pub view: Option<UserView>,
    pub js_body: JsValue,
    pub etag: String,
    pub js_etag: JsValue,
    /// The response init of its 200 (`{ headers }`, a JS `Headers`), made on first use.
    pub init: OnceCell<JsValue>,
    /// The same with the `Age` it was last served with, and that age.
    pub aged: RefCell<Option<(u32, JsValue)>>,
    /// About what it holds in memory (body, view and tag).
    bytes: usize,
}

impl CachedUser {
    pub fn new(view: UserView) -> CachedUser {
        let body = view.to_json();
        let tag = etag(body.as_bytes());
        CachedUser {
            init: OnceCell::new(),
            aged: RefCell::new(None),
            js_body: body.as_str().into(),
            js_etag: tag.as_str().into(),
            bytes: 3 * body.len(),
            view: Some(view),
            etag: tag,
        }
    }
}

/// Where a lookup's answer is kept: its key in this isolate, and, in the edge cache, the URL
/// of `path` on `origin` followed by the key's value (made only when the edge is asked).
pub struct CacheKey {
    pub isolate: String,
    pub origin: String,
    pub path: &'static str,
}

impl CacheKey {
    pub fn edge_url(&self) -> String {
        let value = self.isolate.split_once('/').map_or("", |(_, value)| value);
        [self.origin.as_str(), self.path, value].concat()
    }
}

thread_local! {
    static ISOLATE: RefCell<Option<IsolateCache<Rc<CachedUser>>>> = const { RefCell::new(None) };
}

fn with_isolate<T>(settings: &CacheSettings, f: impl FnOnce(&mut IsolateCache<Rc<CachedUser>>) -> T) -> T {
    ISOLATE.with(|cell| {
        let mut cache = cell.borrow_mut();
        f(cache
            .get_or_insert_with(|| IsolateCache::new(settings.isolate_entries, ISOLATE_CACHE_BYTES, settings.ttl_ms())))
    })
}

/// The isolate's answer and when it was read, if it holds a fresh one.
/// (With no entries or a TTL of 0 it keeps nothing, so it never answers.)
pub fn isolate_get(settings: &CacheSettings, key: &str, now_ms: i64) -> Option<(Rc<CachedUser>, i64)> {
    with_isolate(settings, |cache| cache.get(key, now_ms))
}

/// The paths that answer a lookup by handle and by key; a cache key's value follows them.
pub const BY_HANDLE_PATH: &str = "/v1/u/";
pub const BY_KEY_PATH: &str = "/v1/by-primary/";

/// The isolate cache's keys of the answers by handle and by key.
pub fn by_handle_key(handle: &str) -> String {
    ["u/", handle].concat()
}
pub fn by_key_key(primary: &str) -> String {
    ["p/", primary].concat()
}

/// Drops this isolate's answers for a handle and its former key, once a statement changed
/// them (other isolates keep theirs until their TTL; the data centre's are deleted by
/// `applyStatement`, at `edge_urls`).
pub fn forget(settings: &CacheSettings, handle: &str, key: &str) {
    with_isolate(settings, |cache| {
        cache.remove(&by_handle_key(handle));
        cache.remove(&by_key_key(key));
    });
}

/// The data centre's cache URLs, on `origin`, of the answers for `handle` and for `key`.
pub fn edge_urls(origin: &str, handle: &str, key: &str) -> [String; 2] {
    [[origin, BY_HANDLE_PATH, handle].concat(), [origin, BY_KEY_PATH, key].concat()]
}

fn isolate_put(settings: &CacheSettings, key: &str, user: &Rc<CachedUser>, read_at_ms: i64, now_ms: i64) {
    with_isolate(settings, |cache| cache.insert(key, Rc::clone(user), user.bytes, read_at_ms, now_ms));
}

/// The data centre's answer (`[body, etag, readAtMs]`, fresh: runtime.js's `lookUp` asked
/// with the TTL), kept in this isolate too with its original read time. It is served as it
/// is: only a user read from D1 carries the view WebFinger needs, so WebFinger does not ask
/// the edge.
pub fn from_edge(settings: &CacheSettings, key: &CacheKey, hit: JsValue, now_ms: i64) -> Option<(Rc<CachedUser>, i64)> {
    let hit: Array = hit.dyn_into().ok()?;
    let read_at_ms = hit.get(2).as_f64()? as i64;
    let js_body = hit.get(0);
    let bytes = 2 * js_body.dyn_ref::<JsString>()?.length() as usize;
    let user = Rc::new(CachedUser {
        view: None,
        etag: hit.get(1).as_string()?,
        js_etag: hit.get(1),
        js_body,
        bytes,
        init: OnceCell::new(),
        aged: RefCell::new(None),
    });
    isolate_put(settings, &key.isolate, &user, read_at_ms, now_ms);
    Some((user, read_at_ms))
}

/// Keeps a user just read from D1 in both layers (the edge after the response is sent).
pub fn keep(
    settings: &CacheSettings,
    ctx: &Context,
    key: &CacheKey,
    user: &Rc<CachedUser>,
    cache_control: &JsValue,
    now_ms: i64,
) {
    isolate_put(settings, &key.isolate, user, now_ms, now_ms);
    edge_keep(ctx, &key.edge_url(), &user.js_body, &user.js_etag, now_ms as f64, cache_control);
}
