//! The NATS auth callout, called by the bridge with nats-server's request JWT as the body.

use super::config::nats_config;
use super::db;
use super::http::{now_ms, read_body, uncached};
use crate::caching::CacheSettings;
use crate::error::ApiError;
use crate::request_url::RequestUrl;
use kez_nats::bridge_auth;
use kez_nats::callout::{self, AuthRequest, Denial};
use worker::web_sys::{Request, Response};
use worker::{console_log, Env};

thread_local! {
    /// Bridge signatures accepted in the last two minutes, so each is accepted once. Per
    /// isolate: a replay that reaches another isolate within the 60 s window is not caught
    /// (it can only repeat the same callout, whose answer nats-server ties to one connection).
    static BRIDGE_REPLAYS: std::cell::RefCell<bridge_auth::ReplayGuard> = std::cell::RefCell::new(bridge_auth::ReplayGuard::default());
}

/// Answers 200 `application/jwt` with a signed allow or deny for every verifiable request
/// from an allowed server.
pub async fn auth(
    req: Request,
    url: &RequestUrl<'_>,
    env: &Env,
    settings: &CacheSettings,
) -> Result<Response, ApiError> {
    let nats = nats_config(env)?;
    let body = read_body(&req).await?;
    let now = now_ms() / 1000;
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
        Ok(key) => match db::handle_of_key(env, &key).await? {
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
    Ok(uncached(settings, 200, answer.as_str().into(), false, |h| &h.jwt))
}
