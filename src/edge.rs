//! The worker glue: reads the request, calls the pure code, writes the response.
//! Only this module touches `worker` types; it exists only on wasm32.

use crate::api::{Config, Health, UserRecord, UserView};
use crate::domain::{encode_lower_hex, Handle, HandleError};
use crate::error::ApiError;
use crate::registration::{self, MAX_BODY_BYTES};
use crate::routes::{route, Route, READ_METHODS};
use crate::timestamp::format_rfc3339_utc;
use crate::webfinger;
use worker::{console_error, event, Context, Date, Env, Request, Response, Url};

const JSON: &str = "application/json";
const JRD: &str = "application/jrd+json";

type ApiResult = Result<Response, ApiError>;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    // The raw method: `Request::method()` maps unknown methods to GET.
    let method = req.inner().method();
    let url = req.url()?;
    let route = match route(&method, url.path()) {
        Ok(Route::Assets) => return env.assets("ASSETS")?.fetch_request(req).await,
        Ok(route) => route,
        Err(error) => return Ok(error_response(&error)),
    };
    let mut response = handle(route, req, &url, &env).await.unwrap_or_else(|e| error_response(&e));
    if route.allows_any_origin() {
        response.headers_mut().set("access-control-allow-origin", "*")?;
    }
    Ok(response)
}

async fn handle(route: Route<'_>, req: Request, url: &Url, env: &Env) -> ApiResult {
    match route {
        Route::Healthz => {
            let config = config(env)?;
            json_response(200, JSON, to_json(&Health::new(&config)))
        }
        Route::LookupHandle(raw) => {
            let config = config(env)?;
            let handle = Handle::parse_lookup(raw).map_err(|e| match e {
                HandleError::Invalid => ApiError::InvalidHandle,
                HandleError::Reserved => ApiError::UserNotFound,
            })?;
            let user = find_user(env, &handle, &config).await?.ok_or(ApiError::UserNotFound)?;
            json_response(200, JSON, to_json(&user))
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
            let user = find_user(env, &handle, &config).await?.ok_or(ApiError::UserNotFound)?;
            json_response(200, JRD, webfinger::jrd(&user, &url.origin().ascii_serialization(), &rels))
        }
        Route::NatsAuth => Err(ApiError::NotImplemented),
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

async fn register(mut req: Request, env: &Env) -> ApiResult {
    let config = config(env)?;
    let declared_length = req.headers().get("content-length").map_err(internal)?;
    if declared_length.and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::BodyTooLarge { limit: MAX_BODY_BYTES });
    }
    let body = req.bytes().await.map_err(internal)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge { limit: MAX_BODY_BYTES });
    }
    let now_ms = Date::now().as_millis() as i64;
    let registration = registration::verify(registration::parse_envelope(&body)?, &config.server, now_ms)?;
    let record = UserRecord {
        handle: registration.handle.to_string(),
        primary_key: registration.primary.to_string(),
        registered_at: format_rfc3339_utc(now_ms),
    };
    // No read-before-write: the UNIQUE constraints decide races, and a loser gets 409.
    db(env)?
        .prepare("INSERT INTO registrations (handle, primary_key, registered_at, envelope) VALUES (?1, ?2, ?3, ?4)")
        .bind(&[
            record.handle.as_str().into(),
            record.primary_key.as_str().into(),
            record.registered_at.as_str().into(),
            registration.envelope_jcs.as_str().into(),
        ])
        .map_err(internal)?
        .run()
        .await
        .map_err(|e| ApiError::from_insert_failure(&error_detail(&e)))?;
    let user = UserView::from_record(&record, &config).map_err(ApiError::Internal)?;
    json_response(201, JSON, to_json(&user))
}

async fn find_user(env: &Env, handle: &Handle, config: &Config) -> Result<Option<UserView>, ApiError> {
    let record: Option<UserRecord> = db(env)?
        .prepare("SELECT handle, primary_key, registered_at FROM registrations WHERE handle = ?1")
        .bind(&[handle.as_str().into()])
        .map_err(internal)?
        .first(None)
        .await
        .map_err(internal)?;
    record.map(|r| UserView::from_record(&r, config).map_err(ApiError::Internal)).transpose()
}

fn config(env: &Env) -> Result<Config, ApiError> {
    let var = |name: &str| env.var(name).map(|v| v.to_string()).map_err(|e| ApiError::Internal(format!("{name}: {e}")));
    Config::parse(&var("SERVER_DOMAIN")?, &var("SIG_SERVER_URL")?).map_err(ApiError::Internal)
}

fn db(env: &Env) -> Result<worker::D1Database, ApiError> {
    env.d1("DB").map_err(internal)
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
    let incident = match error {
        ApiError::Internal(detail) => {
            let incident = incident_reference();
            console_error!("internal error, incident {incident}: {detail}");
            Some(incident)
        }
        _ => None,
    };
    let body = error.to_json(incident.as_deref()).into_bytes();
    let mut builder = Response::builder().with_status(error.status());
    let mut headers = vec![("content-type", JSON)];
    if let ApiError::MethodNotAllowed { allow } = error {
        headers.push(("allow", allow));
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
