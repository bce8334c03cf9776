//! `kez-nats-bridge keygen`: makes the three keys a deployment needs and writes where each
//! one goes to a setup file readable by its owner only (it holds the issuer seed, for
//! `.dev.vars`); the terminal gets only public keys and file names.

use kez_nats::nkey::{self, KeyType};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Folder for the seed files (created if missing).
    #[arg(long, default_value = "nats-keys")]
    out_dir: PathBuf,
    /// Target account for chat clients (the worker's NATS_ACCOUNT).
    #[arg(long, default_value = "KEZ")]
    account: String,
}

struct Key {
    seed: String,
    public: String,
}

fn generate(key_type: KeyType) -> Result<Key, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("random: {e}"))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    Ok(Key { seed: nkey::encode_seed(key_type, &seed), public: nkey::encode_public(key_type, public.as_bytes()) })
}

/// Writes a file readable by its owner only; never overwrites one.
fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e} (keygen never overwrites a key)", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: KeygenArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let issuer = generate(KeyType::Account)?;
    let bridge_nats = generate(KeyType::User)?;
    let bridge_http = generate(KeyType::User)?;
    let dir = &args.out_dir;
    for (name, key) in
        [("issuer.seed", &issuer), ("bridge-nats.seed", &bridge_nats), ("bridge-http.seed", &bridge_http)]
    {
        write_secret(&dir.join(name), &format!("{}\n", key.seed))?;
    }
    let d = dir.display();
    let account = &args.account;
    let setup = format!(
        r#"# Written by kez-nats-bridge keygen, mode 0600: the .dev.vars lines below hold the
# issuer seed. The seeds are in {d}/issuer.seed, {d}/bridge-nats.seed and {d}/bridge-http.seed.

# ---- nats.conf -------------------------------------------------------------
listen: 127.0.0.1:4222
websocket {{
  listen: "127.0.0.1:8443"
  no_tls: true          # put TLS in front of it (a reverse proxy) in production
}}
accounts {{
  AUTH: {{ users: [ {{ nkey: {bridge_nats} }} ] }}   # the bridge
  {account}: {{}}                                       # chat clients land here
}}
authorization {{
  timeout: 5            # seconds; the bridge's HTTP timeout (4 s) stays below it
  auth_callout {{
    issuer: {issuer_pub}
    account: AUTH
    auth_users: [ {bridge_nats} ]
  }}
}}

# ---- worker secrets (Cloudflare) -------------------------------------------
wrangler secret put NATS_ISSUER_SEED < {d}/issuer.seed
echo {bridge_http_pub} | wrangler secret put NATS_BRIDGE_KEY

# ---- or, for wrangler dev, these lines in .dev.vars --------------------------
NATS_ISSUER_SEED={issuer_seed}
NATS_BRIDGE_KEY={bridge_http_pub}

# ---- the bridge ------------------------------------------------------------
kez-nats-bridge run --nats-url nats://127.0.0.1:4222 --nats-seed-file {d}/bridge-nats.seed \
  --worker-url http://127.0.0.1:8787 --signing-seed-file {d}/bridge-http.seed
"#,
        bridge_nats = bridge_nats.public,
        issuer_pub = issuer.public,
        issuer_seed = issuer.seed,
        bridge_http_pub = bridge_http.public,
    );
    write_secret(&dir.join("setup.txt"), &setup)?;
    println!(
        "Wrote {d}/issuer.seed, {d}/bridge-nats.seed, {d}/bridge-http.seed and {d}/setup.txt (mode 0600).\n\
         {d}/setup.txt holds nats.conf, the worker's secrets and the bridge command.\n\
         issuer (nats.conf auth_callout.issuer): {}\n\
         bridge NATS user (auth_users): {}\n\
         bridge HTTP key (the worker's NATS_BRIDGE_KEY): {}",
        issuer.public, bridge_nats.public, bridge_http.public
    );
    Ok(())
}
