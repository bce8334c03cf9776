//! kez-nats-bridge: runs beside nats-server, takes each auth callout on
//! `$SYS.REQ.USER.AUTH`, forwards it to the kez-chat worker over HTTP signed with the
//! bridge's key, and passes the worker's signed answer back unchanged.
//!
//! Whenever it cannot get a proper answer (bad request, a login that fails the checks that
//! need no registry, worker error, timeout) it replies with an empty body, which makes
//! nats-server refuse the client at once.

mod keygen;
mod log;

use async_nats::{Client, Message};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use kez_nats::bridge_auth;
use kez_nats::callout::AuthRequest;
use kez_nats::nkey::{self, KeyType};
use log::{error, info, warn};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;

const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// Set by nats-server when the callout is encrypted with an xkey.
const XKEY_HEADER: &str = "Nats-Server-Xkey";

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve auth callouts until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Generate the issuer account key and the bridge's keys, and print the nats.conf
    /// lines and worker secrets that go with them.
    Keygen(keygen::KeygenArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// NATS server to connect to.
    #[arg(long, env = "KEZ_BRIDGE_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// File holding the bridge's NATS user seed (SU...), listed in auth_callout.auth_users.
    #[arg(long, env = "KEZ_BRIDGE_NATS_SEED_FILE")]
    nats_seed_file: PathBuf,
    /// Base URL of the worker, e.g. https://kez.lat or http://127.0.0.1:8787.
    #[arg(long, env = "KEZ_BRIDGE_WORKER_URL")]
    worker_url: String,
    /// File holding the seed (SU...) the bridge signs its HTTP requests with; the worker
    /// knows its public key as NATS_BRIDGE_KEY.
    #[arg(long, env = "KEZ_BRIDGE_SIGNING_SEED_FILE")]
    signing_seed_file: PathBuf,
    /// HTTP timeout for one callout. Keep it below nats-server's authorization.timeout.
    #[arg(long, env = "KEZ_BRIDGE_TIMEOUT_MS", default_value_t = 4000)]
    timeout_ms: u64,
    /// Queue group, so that several bridges share the callouts.
    #[arg(long, env = "KEZ_BRIDGE_QUEUE_GROUP", default_value = "kez-nats-bridge")]
    queue_group: String,
    /// Callouts handled at once; the others wait (nats-server times them out if it takes too long).
    #[arg(long, env = "KEZ_BRIDGE_MAX_CONCURRENT", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_concurrent: u32,
}

struct Bridge {
    nats: Client,
    http: reqwest::Client,
    endpoint: String,
    /// The endpoint's path, which the bridge's signatures cover.
    path: String,
    signing_key: SigningKey,
}

/// The worker URL's scheme and host allow it: `https://` anywhere, plain `http://` only to
/// this machine (the callouts would otherwise cross a network in the clear).
fn check_worker_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("--worker-url {url:?}: use https:// (or http:// to this machine)"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    if matches!(host.as_str(), "localhost" | "[::1]")
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    {
        Ok(())
    } else {
        Err(format!("--worker-url {url:?}: plain http:// only to this machine (localhost, 127.x, [::1]); use https://"))
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Keygen(args) => keygen::run(args),
    };
    if let Err(message) = result {
        error("fatal", json!({ "error": message }));
        std::process::exit(1);
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    check_worker_url(&args.worker_url)?;
    // reqwest is built without a default TLS provider: use ring, as async-nats does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats_seed = read_secret(&args.nats_seed_file)?;
    nkey::decode_seed(KeyType::User, &nats_seed)
        .map_err(|e| format!("{}: not a user seed: {e:?}", args.nats_seed_file.display()))?;
    let signing_seed = read_secret(&args.signing_seed_file)?;
    let signing_key = SigningKey::from_bytes(
        &nkey::decode_seed(KeyType::User, &signing_seed)
            .map_err(|e| format!("{}: not a user seed: {e:?}", args.signing_seed_file.display()))?,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .user_agent(concat!("kez-nats-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let nats = async_nats::ConnectOptions::with_nkey(nats_seed)
        .name("kez-nats-bridge")
        .retry_on_initial_connect()
        .connect(&args.nats_url)
        .await
        .map_err(|e| format!("connecting to {}: {e}", args.nats_url))?;
    let mut callouts = nats
        .queue_subscribe(AUTH_SUBJECT, args.queue_group.clone())
        .await
        .map_err(|e| format!("subscribing to {AUTH_SUBJECT}: {e}"))?;
    nats.flush().await.map_err(|e| format!("flushing the subscription: {e}"))?;
    let endpoint = format!("{}/internal/nats/auth", args.worker_url.trim_end_matches('/'));
    let path = reqwest::Url::parse(&endpoint).map_err(|e| format!("--worker-url: {e}"))?.path().to_owned();
    let bridge = Arc::new(Bridge { endpoint, path, nats, http, signing_key });
    let permits = Arc::new(tokio::sync::Semaphore::new(args.max_concurrent as usize));
    info(
        "ready",
        json!({
            "nats_url": args.nats_url,
            "server_id": bridge.nats.server_info().server_id,
            "worker": bridge.endpoint,
            "queue_group": args.queue_group,
            "timeout_ms": args.timeout_ms,
            "max_concurrent": args.max_concurrent,
        }),
    );

    let mut in_flight = JoinSet::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        tokio::select! {
            message = callouts.next() => match message {
                Some(message) => {
                    // At most max_concurrent at once: the next callout waits for a permit
                    // here, so a flood of connections cannot spawn unbounded tasks.
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                    let bridge = Arc::clone(&bridge);
                    in_flight.spawn(async move {
                        bridge.handle(message).await;
                        drop(permit);
                    });
                }
                None => return Err("the NATS subscription ended".into()),
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info("shutting down", json!({ "in_flight": in_flight.len() }));
    let _ = callouts.unsubscribe().await;
    let drained = tokio::time::timeout(Duration::from_millis(args.timeout_ms + 1000), async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    let _ = bridge.nats.flush().await;
    info("stopped", json!({ "drained": drained.is_ok() }));
    Ok(())
}

impl Bridge {
    async fn handle(&self, message: Message) {
        let started = Instant::now();
        let Some(reply) = message.reply.clone() else {
            warn("callout without a reply subject, ignored", json!({}));
            return;
        };
        let answer = match self.answer(&message).await {
            Ok(answer) => {
                info("answered", json!({ "elapsed_ms": elapsed_ms(started) }));
                answer
            }
            Err(reason) => {
                warn("refused (empty reply)", json!({ "reason": reason, "elapsed_ms": elapsed_ms(started) }));
                bytes::Bytes::new()
            }
        };
        if let Err(e) = self.nats.publish(reply, answer).await {
            error("could not reply", json!({ "error": e.to_string() }));
        }
    }

    /// The worker's signed answer, or why there is none.
    async fn answer(&self, message: &Message) -> Result<bytes::Bytes, String> {
        if message.headers.as_ref().and_then(|h| h.get(XKEY_HEADER)).is_some() {
            return Err(
                "encrypted callouts (xkey) are not supported: remove `xkey` from auth_callout in nats.conf".into()
            );
        }
        let token = std::str::from_utf8(&message.payload).map_err(|_| "request is not UTF-8".to_string())?;
        let request = AuthRequest::verify(token).map_err(|e| format!("request JWT: {e:?}"))?;
        let server_id = self.nats.server_info().server_id;
        if request.server_id() != server_id {
            return Err(format!(
                "request signed by {} instead of the connected server {server_id}",
                request.server_id()
            ));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs() as i64;
        // What needs no registry is checked here, as the worker would: a flood of forged or
        // stale logins then costs no round trip to the worker, and real logins do not queue
        // behind it for the permits.
        request.check_fresh(now).and_then(|()| request.client_key()).map_err(|denial| denial.reason().to_string())?;
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/jwt")
            .header(bridge_auth::TIME_HEADER, now.to_string())
            .header(
                bridge_auth::SIGNATURE_HEADER,
                bridge_auth::sign(
                    &self.signing_key,
                    bridge_auth::Target { method: "POST", path: &self.path },
                    now,
                    token.as_bytes(),
                ),
            )
            .body(token.to_owned())
            .send()
            .await
            .map_err(|e| format!("worker request: {e}"))?;
        let status = response.status();
        let is_jwt =
            response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/jwt"));
        let body = response.bytes().await.map_err(|e| format!("worker response: {e}"))?;
        if !status.is_success() || !is_jwt {
            return Err(format!("worker answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
        Ok(body)
    }
}

fn elapsed_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn read_secret(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::check_worker_url;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://kez.lat",
            "http://127.0.0.1:8787",
            "http://localhost:8787/",
            "http://[::1]:8787",
            "http://127.8.9.1",
        ] {
            assert_eq!(check_worker_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://kez.lat",
            "http://10.0.0.2:8787",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "ftp://x",
            "kez.lat",
        ] {
            assert!(check_worker_url(bad).is_err(), "{bad}");
        }
    }
}
