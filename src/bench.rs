//! Benchmark-only routes (cargo feature `bench`, never in the deployed worker): run a hot
//! path N times inside wasm, so `benches/run.mjs` can take the compute per operation as
//! the difference between a large N and N = 0, without the HTTP path.

use crate::api::NatsConfig;
use crate::domain::ServerDomain;
use crate::registration;
use crate::request_url::RequestUrl;
use kez_nats::callout::{self, AuthRequest};
use std::hint::black_box;
use worker::web_sys::Request;
use worker::{Date, Env, Response, Result};

/// `lookup_queries` is this isolate's count of D1 reads made by lookups (`/__bench/counters`).
pub async fn handle(
    req: Request,
    url: &RequestUrl<'_>,
    env: &Env,
    nats: Option<&NatsConfig>,
    lookup_queries: u32,
) -> Result<Response> {
    let n: u32 = url.query_pairs().find(|(k, _)| k == "n").and_then(|(_, v)| v.parse().ok()).unwrap_or(1);
    let body = worker::Request::from(req).bytes().await?;
    let now_ms = Date::now().as_millis() as i64;
    let mut ok = 0u32;
    match url.path() {
        "/__bench/register" => {
            let server =
                ServerDomain::parse(&env.var("SERVER_DOMAIN")?.to_string()).map_err(worker::Error::RustError)?;
            // What runs in wasm: every check but the Ed25519 equation (WebCrypto's).
            for _ in 0..n {
                let checked = registration::parse_envelope(black_box(&body))
                    .and_then(|e| registration::check(e, &server, now_ms));
                ok += u32::from(black_box(checked).is_ok());
            }
        }
        "/__bench/nats" => {
            let nats = nats.ok_or_else(|| worker::Error::RustError("NATS secrets not set".into()))?;
            let token = std::str::from_utf8(&body)?;
            for _ in 0..n {
                let request =
                    AuthRequest::verify(black_box(token)).map_err(|e| worker::Error::RustError(format!("{e:?}")))?;
                let key = request.client_key().map_err(|e| worker::Error::RustError(e.reason().into()))?;
                let answer = callout::allow(&request, "bench", &key, &nats.issuer, &nats.grant, now_ms / 1000);
                ok += u32::from(!black_box(answer).is_empty());
            }
        }
        "/__bench/memory" => {}
        "/__bench/counters" => return Response::ok(format!(r#"{{"lookup_queries":{lookup_queries}}}"#)),
        _ => return Response::error("unknown bench route", 404),
    }
    let memory_bytes = core::arch::wasm32::memory_size(0) * 65536;
    Response::ok(format!(r#"{{"n":{n},"ok":{ok},"wasm_memory_bytes":{memory_bytes}}}"#))
}
