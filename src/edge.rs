//! The worker glue: reads the request, calls the pure code, writes the response.
//! Only this module touches `worker` types; it exists only on wasm32.

use crate::api::{parse_rate_limits, Config, Health, NatsConfig, NatsVars, UserRecord, UserView};
use crate::domain::{encode_lower_hex, Handle, HandleError, PrimaryKey};
use crate::error::{ApiError, STORAGE_RETRY_AFTER_SECONDS};
use crate::registration::{self, MAX_BODY_BYTES};
use crate::request_url::RequestUrl;
use crate::routes::{route, Route, READ_METHODS};
use crate::timestamp::format_rfc3339_utc;
use crate::webfinger;
use kez_nats::bridge_auth;
use kez_nats::callout::{self, AuthRequest, Denial};
use std::cell::OnceCell;
use std::sync::OnceLock;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{ReadableStreamDefaultReader, Request};
use worker::{console_error, console_log, event, js_sys, Context, D1PreparedStatement, Date, Env, Response};

const JSON: &str = "application/json";
const JRD: &str = "application/jrd+json";

type ApiResult = Result<Response, ApiError>;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Takes the runtime's request as it is: converting it to `worker::Request` reads its `cf`
/// object on every request, which cost more than our own handling of a lookup.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let method = req.method();
    let full_url = req.url();
    let url = RequestUrl::split(&full_url);
    #[cfg(feature = "bench")]
    if url.path().starts_with("/__bench/") {
        return crate::bench::handle(req, &url, &env, nats_config(&env).ok()).await;
    }
    let route = match route(&method, url.path()) {
        Ok(Route::Assets) => return env.assets("ASSETS")?.fetch_request(worker::Request::from(req)).await,
        Ok(route) => route,
        Err(error) => return Ok(error_response(&error)),
    };
    let mut response = handle(route, req, &url, &env).await.unwrap_or_else(|e| error_response(&e));
    if route.allows_any_origin() {
        response.headers_mut().set("access-control-allow-origin", "*")?;
    }
    Ok(response)
}

async fn handle(route: Route<'_>, req: Request, url: &RequestUrl<'_>, env: &Env) -> ApiResult {
    match route {
        Route::Healthz => {
            let config = config(env)?;
            json_response(200, JSON, to_json(&Health::new(config)))
        }
        Route::LookupHandle(raw) => {
            let config = config(env)?;
            let handle = Handle::parse_lookup(raw).map_err(|e| match e {
                HandleError::Invalid => ApiError::InvalidHandle,
                HandleError::Reserved => ApiError::UserNotFound,
            })?;
            let user = find_user(env, UserKey::Handle(&handle), config).await?.ok_or(ApiError::UserNotFound)?;
            json_response(200, JSON, user.to_json())
        }
        Route::LookupPrimary(raw) => {
            let config = config(env)?;
            let primary = PrimaryKey::lookup_path_segment(raw).ok_or(ApiError::InvalidPrimaryKey)?;
            let user = find_user(env, UserKey::Primary(&primary), config).await?.ok_or(ApiError::UserNotFound)?;
            json_response(200, JSON, user.to_json())
        }
        Route::Register => register(req, env).await,
        Route::WebFinger => {
            let config = config(env)?;
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
            let user = find_user(env, UserKey::Handle(&handle), config).await?.ok_or(ApiError::UserNotFound)?;
            json_response(200, JRD, webfinger::jrd(&user, url.origin(), &rels))
        }
        Route::NatsAuth => nats_auth(req, url, env).await,
        Route::Preflight => {
            let response = Response::empty().map_err(internal)?.with_status(204);
            let headers = response.headers();
            for (name, value) in [
                ("access-control-allow-methods", READ_METHODS),
                ("access-control-allow-headers", "*"),
                ("access-control-max-age", "86400"),
            ] {
                headers.set(name, value).map_err(internal)?;
            }
            Ok(response)
        }
        Route::Assets => unreachable!("assets are served before handle() is called"),
    }
}

async fn register(req: Request, env: &Env) -> ApiResult {
    let config = config(env)?;
    let limits = rate_limits(env)?;
    // Before reading anything: a client over its limit costs no parsing or verification.
    if limits {
        let address = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
        check_rate_limit(env, REGISTRATIONS_BY_ADDRESS, address).await?;
    }
    let body = read_body(&req).await?;
    let now_ms = Date::now().as_millis() as i64;
    let registration = registration::verify(registration::parse_envelope(&body)?, &config.server, now_ms);
    // Counted for every parsed envelope, verified or not: failed attempts count too. (Awaited
    // here, after the synchronous checks, rather than between parsing and verifying: holding
    // the parsed envelope across an await cost 12 KiB of upload.)
    let key = match &registration {
        Ok(r) => Some(r.primary.to_string()),
        // A body that is not an envelope names no key: only its address was counted.
        Err(_) => registration::parse_envelope(&body).ok().map(|e| e.payload.primary),
    };
    if let (true, Some(key)) = (limits, key) {
        check_rate_limit(env, REGISTRATIONS_BY_KEY, key).await?;
    }
    let registration = registration?;
    let record = UserRecord {
        handle: registration.handle.to_string(),
        primary_key: registration.primary.to_string(),
        registered_at: format_rfc3339_utc(now_ms),
        envelope: registration.envelope_jcs,
    };
    // No read-before-write: the UNIQUE constraints (handle, key, skeleton) decide races and
    // lookalikes, and a loser gets 409.
    let skeleton = registration.handle.skeleton();
    let inserted = prepared(env, |s| &s.insert)?
        .bind(&[
            record.handle.as_str().into(),
            record.primary_key.as_str().into(),
            record.registered_at.as_str().into(),
            record.envelope.as_str().into(),
            skeleton.as_str().into(),
        ])
        .map_err(internal)?
        .run()
        .await
        .map_err(storage);
    match inserted {
        Ok(_) => {}
        // SQLite names the newest index it checked first: the skeleton's, also when the very
        // handle (or key) is taken. The winner is already decided; only the code is chosen here.
        Err(ApiError::HandleConfusable) => return Err(skeleton_conflict(env, &skeleton, &record).await),
        Err(e) => return Err(e),
    }
    let user = UserView::from_record(&record, config).map_err(ApiError::Internal)?;
    json_response(201, JSON, user.to_json())
}

/// Rate limit bindings (`[[ratelimits]]` in wrangler.toml) for registrations, keyed by the
/// client's address (`CF-Connecting-IP`, set by Cloudflare) and by the registering key.
const REGISTRATIONS_BY_ADDRESS: &str = "REGISTRATIONS_BY_ADDRESS";
const REGISTRATIONS_BY_KEY: &str = "REGISTRATIONS_BY_KEY";
/// The bindings' period: a refused client is told to wait that long.
const RATE_LIMIT_PERIOD_SECONDS: u32 = 60;

static RATE_LIMITS: OnceLock<Result<bool, String>> = OnceLock::new();

fn rate_limits(env: &Env) -> Result<bool, ApiError> {
    RATE_LIMITS
        .get_or_init(|| parse_rate_limits(env.var("REGISTRATION_RATE_LIMITS").ok().map(|v| v.to_string()).as_deref()))
        .clone()
        .map_err(ApiError::Internal)
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
fn limit_promise(env: &Env, binding: &str, key: String) -> Result<js_sys::Promise, worker::wasm_bindgen::JsValue> {
    let limiter = js_sys::Reflect::get(env, &binding.into())?;
    let limit: js_sys::Function = js_sys::Reflect::get(&limiter, &"limit".into())?.dyn_into()?;
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"key".into(), &key.into())?;
    Ok(limit.call1(&limiter, &options)?.into())
}

thread_local! {
    /// Bridge signatures accepted in the last two minutes, so each is accepted once. Per
    /// isolate: a replay that reaches another isolate within the 60 s window is not caught
    /// (it can only repeat the same callout, whose answer nats-server ties to one connection).
    static BRIDGE_REPLAYS: std::cell::RefCell<bridge_auth::ReplayGuard> = std::cell::RefCell::new(bridge_auth::ReplayGuard::default());
}

/// The NATS auth callout, called by the bridge with nats-server's request JWT as the body.
/// Answers 200 `application/jwt` with a signed allow or deny for every verifiable request
/// from an allowed server.
async fn nats_auth(req: Request, url: &RequestUrl<'_>, env: &Env) -> ApiResult {
    let nats = nats_config(env)?;
    let body = read_body(&req).await?;
    let now = (Date::now().as_millis() / 1000) as i64;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let method = req.method();
    let target = bridge_auth::Target { method: &method, path: url.path() };
    BRIDGE_REPLAYS
        .with(|replays| {
            bridge_auth::verify(
                &nats.bridge_key,
                target,
                header(bridge_auth::TIME_HEADER).as_deref(),
                header(bridge_auth::SIGNATURE_HEADER).as_deref(),
                &body,
                now,
                &mut replays.borrow_mut(),
            )
        })
        .map_err(|_| ApiError::Unauthorized)?;
    let token = std::str::from_utf8(&body).map_err(|_| ApiError::InvalidAuthorizationRequest("not UTF-8".into()))?;
    let request = AuthRequest::verify(token)?;
    if !request.from_allowed_server(&nats.servers) {
        console_log!("nats callout: refused, server {} is not in NATS_SERVER_KEYS", request.server_id());
        return Err(ApiError::UnknownNatsServer);
    }
    let decision = match request.check_fresh(now).and_then(|()| request.client_key()) {
        Ok(key) => match find_handle_by_key(env, &key).await? {
            Some(handle) => Ok((handle, key)),
            None => Err(Denial::KeyNotRegistered),
        },
        Err(denial) => Err(denial),
    };
    let answer = match decision {
        Ok((handle, key)) => {
            console_log!("nats callout: allow {handle} ({})", request.user_nkey());
            callout::allow(&request, &handle, &key, &nats.issuer, &nats.grant, now)
        }
        Err(denial) => {
            console_log!("nats callout: deny {} ({})", denial.reason(), request.user_nkey());
            callout::deny(&request, denial, &nats.issuer, now)
        }
    };
    json_response(200, "application/jwt", answer)
}

/// Which 409 a registration that lost on its skeleton gets: `handle_taken` or
/// `key_already_registered` when the registration holding that skeleton has this very handle
/// or key, `handle_confusable` when it only looks alike.
async fn skeleton_conflict(env: &Env, skeleton: &str, ours: &UserRecord) -> ApiError {
    let holder: Result<Option<UserRecord>, ApiError> =
        match prepared(env, |s| &s.user_by_skeleton).and_then(|s| s.bind(&[skeleton.into()]).map_err(internal)) {
            Ok(statement) => statement.first(None).await.map_err(storage),
            Err(e) => Err(e),
        };
    match holder {
        Ok(Some(holder)) => {
            ApiError::conflict_with(&holder.handle, &holder.primary_key, &ours.handle, &ours.primary_key)
        }
        Ok(None) => ApiError::HandleConfusable,
        Err(e) => e,
    }
}

async fn find_handle_by_key(env: &Env, key: &[u8; 32]) -> Result<Option<String>, ApiError> {
    let primary = format!("ed25519:{}", encode_lower_hex(key));
    prepared(env, |s| &s.user_by_key)?
        .bind(&[primary.into()])
        .map_err(internal)?
        .first(Some("handle"))
        .await
        .map_err(storage)
}

/// Reads a body of at most `MAX_BODY_BYTES`: refused by its declared length before reading,
/// and, with or without a declared length (a chunked body has none), as soon as the chunks
/// read so far pass the cap; the rest is never read (the stream is cancelled).
async fn read_body(req: &Request) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::BodyTooLarge { limit: MAX_BODY_BYTES };
    let declared_length = req.headers().get("content-length").map_err(js_internal)?;
    if declared_length.and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    let Some(stream) = req.body() else { return Ok(Vec::new()) };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_internal)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into()).map_err(js_internal)?;
        if done.is_truthy() {
            return Ok(body);
        }
        let value: js_sys::Uint8Array =
            js_sys::Reflect::get(&chunk, &"value".into()).map_err(js_internal)?.unchecked_into();
        if body.len() + value.length() as usize > MAX_BODY_BYTES {
            // Nothing more is read; the runtime drops what the client still sends.
            let _ = reader.cancel();
            return Err(too_large);
        }
        body.extend_from_slice(&value.to_vec());
    }
}

/// How a user is looked up: by handle or by primary key (`ed25519:<hex>`).
enum UserKey<'a> {
    Handle(&'a Handle),
    Primary(&'a str),
}

async fn find_user(env: &Env, key: UserKey<'_>, config: &Config) -> Result<Option<UserView>, ApiError> {
    let (statement, value) = match key {
        UserKey::Handle(handle) => (prepared(env, |s| &s.user_by_handle)?, handle.as_str()),
        UserKey::Primary(primary) => (prepared(env, |s| &s.user_by_key)?, primary),
    };
    let record: Option<UserRecord> =
        statement.bind(&[value.into()]).map_err(internal)?.first(None).await.map_err(storage)?;
    record.map(|r| UserView::from_record(&r, config).map_err(ApiError::Internal)).transpose()
}

/// The configuration, read and checked once per isolate: vars and secrets cannot change
/// without a new deployment, and deriving the issuer's public key costs a scalar multiplication.
static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
static NATS_CONFIG: OnceLock<Result<Option<NatsConfig>, String>> = OnceLock::new();

fn config(env: &Env) -> Result<&'static Config, ApiError> {
    let var = |name: &str| env.var(name).map(|v| v.to_string()).map_err(|e| format!("{name}: {e}"));
    CONFIG
        .get_or_init(|| {
            // NOSTR_RELAYS may be left out: the app then has no relays until its user adds some.
            let relays = env.var("NOSTR_RELAYS").map(|v| v.to_string()).unwrap_or_default();
            Config::parse(&var("SERVER_DOMAIN")?, &var("SIG_SERVER_URL")?, &relays)
        })
        .as_ref()
        .map_err(|e| ApiError::Internal(e.clone()))
}

fn nats_config(env: &Env) -> Result<&'static NatsConfig, ApiError> {
    let config = NATS_CONFIG.get_or_init(|| {
        // Secrets, from `wrangler secret put` (or .dev.vars / --var locally).
        let secret = |name: &str| env.secret(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty());
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let (account, ttl) = (var("NATS_ACCOUNT"), var("NATS_USER_JWT_TTL_SECONDS"));
        let (servers, subs, payload, data) = (
            var("NATS_SERVER_KEYS"),
            var("NATS_USER_SUBS"),
            var("NATS_USER_PAYLOAD_BYTES"),
            var("NATS_USER_DATA_BYTES"),
        );
        NatsConfig::parse(
            secret("NATS_ISSUER_SEED").as_deref(),
            secret("NATS_BRIDGE_KEY").as_deref(),
            &NatsVars {
                account: account.as_deref().unwrap_or("KEZ"),
                ttl_seconds: ttl.as_deref().unwrap_or("3600"),
                server_keys: servers.as_deref(),
                subs: subs.as_deref(),
                payload_bytes: payload.as_deref(),
                data_bytes: data.as_deref(),
            },
        )
    });
    match config {
        Ok(Some(nats)) => Ok(nats),
        Ok(None) => {
            console_error!("nats callout called, but NATS_ISSUER_SEED and NATS_BRIDGE_KEY are not both set");
            Err(ApiError::NatsNotConfigured)
        }
        Err(e) => Err(ApiError::Internal(e.clone())),
    }
}

/// The registry's statements, prepared once per isolate and bound per request
/// (binding returns a new statement and leaves the prepared one reusable).
struct Statements {
    user_by_handle: D1PreparedStatement,
    user_by_key: D1PreparedStatement,
    user_by_skeleton: D1PreparedStatement,
    insert: D1PreparedStatement,
}

thread_local! {
    static STATEMENTS: OnceCell<Statements> = const { OnceCell::new() };
}

fn prepared(env: &Env, pick: impl Fn(&Statements) -> &D1PreparedStatement) -> Result<D1PreparedStatement, ApiError> {
    STATEMENTS.with(|cell| {
        if cell.get().is_none() {
            let db = env.d1("DB").map_err(internal)?;
            let _ = cell.set(Statements {
                user_by_handle: db.prepare(
                    "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE handle = ?1",
                ),
                user_by_key: db.prepare(
                    "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE primary_key = ?1",
                ),
                user_by_skeleton: db.prepare(
                    "SELECT handle, primary_key, registered_at, envelope FROM registrations WHERE skeleton = ?1",
                ),
                insert: db.prepare(
                    "INSERT INTO registrations (handle, primary_key, registered_at, envelope, skeleton) VALUES (?1, ?2, ?3, ?4, ?5)",
                ),
            });
        }
        Ok(pick(cell.get().expect("set above")).clone())
    })
}

fn json_response(status: u16, content_type: &str, body: String) -> ApiResult {
    Response::builder()
        .with_status(status)
        .with_header("content-type", content_type)
        .map(|builder| builder.fixed(body.into_bytes()))
        .map_err(internal)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("API bodies are plain structs of strings")
}

/// The error's JSON body with its status; a 5xx is logged with an incident reference
/// that the client also sees, and its details never leave the log.
fn error_response(error: &ApiError) -> Response {
    let incident = error.log_detail().map(|detail| {
        let incident = incident_reference();
        console_error!("{}, incident {incident}: {detail}", error.code());
        incident
    });
    let body = error.to_json(incident.as_deref()).into_bytes();
    let mut builder = Response::builder().with_status(error.status());
    let retry_after = STORAGE_RETRY_AFTER_SECONDS.to_string();
    let rate_retry_after = match error {
        ApiError::RateLimited { retry_after } => retry_after.to_string(),
        _ => String::new(),
    };
    let mut headers = vec![("content-type", JSON)];
    match error {
        ApiError::MethodNotAllowed { allow } => headers.push(("allow", allow)),
        ApiError::Unauthorized => headers.push(("www-authenticate", "KezBridge")),
        ApiError::StorageUnavailable(_) => headers.push(("retry-after", &retry_after)),
        ApiError::RateLimited { .. } => headers.push(("retry-after", &rate_retry_after)),
        _ => {}
    }
    for (name, value) in headers {
        builder = match builder.with_header(name, value) {
            Ok(builder) => builder,
            Err(e) => unreachable!("static header {name}: {e}"),
        };
    }
    builder.fixed(body)
}

fn incident_reference() -> String {
    let mut bytes = [0u8; 6];
    match getrandom::fill(&mut bytes) {
        Ok(()) => encode_lower_hex(&bytes),
        Err(_) => format!("t{}", Date::now().as_millis()),
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

fn js_internal(error: worker::wasm_bindgen::JsValue) -> ApiError {
    ApiError::Internal(format!("{error:?}"))
}

/// A D1 failure, mapped once (`ApiError::from_storage`).
fn storage(error: worker::Error) -> ApiError {
    ApiError::from_storage(&error_detail(&error))
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
