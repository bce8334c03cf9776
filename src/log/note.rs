//! C2SP tlog-checkpoint and signed-note: the log's signed statement of its size and root.
//!
//! A checkpoint is the text `<origin>\n<size>\n<base64 root>\n`. Signed, it is followed by an
//! empty line and one line per signature, `— <key name> <base64(key ID ‖ signature)>`, where
//! the key ID is the first 4 bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)` and the
//! signature is Ed25519 over the text. The verifier key, `<name>+<hex key ID>+<base64(0x01 ‖
//! public key)>`, is what clients pin.

use super::merkle::Hash;
use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// A checkpoint's body: the log's origin, its size, its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(&self.root))
    }

    /// The body of a checkpoint text; `None` unless it is exactly origin, size, root (extension
    /// lines are not used by this log and refused).
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let body = text.strip_suffix('\n')?;
        let mut lines = body.split('\n');
        let (origin, size, root) = (lines.next()?, lines.next()?, lines.next()?);
        if lines.next().is_some() || origin.is_empty() {
            return None;
        }
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let root: Hash = BASE64.decode(root.as_bytes()).ok()?.try_into().ok()?;
        Some(Checkpoint { origin: origin.to_owned(), size: size.parse().ok()?, root })
    }
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name)
        .chain_update(b"\n")
        .chain_update([ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key of `name` and `key`, in the note format.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut encoded = vec![ED25519];
    encoded.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", HEXLOWER.encode(&key_id(name, key)), BASE64.encode(&encoded))
}

/// `text` (which ends in a newline) signed by `key` under `name`.
pub fn sign(text: &str, name: &str, key: &SigningKey) -> String {
    let mut signature = key_id(name, &key.verifying_key()).to_vec();
    signature.extend_from_slice(&key.sign(text.as_bytes()).to_bytes());
    format!("{text}\n— {name} {}\n", BASE64.encode(&signature))
}

/// The text of `note` if it carries a valid signature by `name`'s `key` (other signatures are
/// ignored); `None` otherwise.
pub fn open<'a>(note: &'a str, name: &str, key: &VerifyingKey) -> Option<&'a str> {
    let split = note.rfind("\n\n")? + 1;
    let (text, signatures) = (&note[..split], &note[split + 1..]);
    let id = key_id(name, key);
    for line in signatures.strip_suffix('\n')?.split('\n') {
        let rest = line.strip_prefix("— ")?;
        let (signer, encoded) = rest.rsplit_once(' ')?;
        let Ok(bytes) = BASE64.decode(encoded.as_bytes()) else { continue };
        if signer != name || bytes.len() != 68 || bytes[..4] != id {
            continue;
        }
        let signature = Signature::from_bytes(bytes[4..].try_into().ok()?);
        if key.verify_strict(text.as_bytes(), &signature).is_ok() {
            return Some(text);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let checkpoint = Checkpoint { origin: "kez.example/log".into(), size: 42, root: [7; 32] };
        let note = sign(&checkpoint.text(), "kez.example/log", &key(1));
        let text = open(&note, "kez.example/log", &key(1).verifying_key()).expect("signed by it");
        assert_eq!(Checkpoint::parse(text), Some(checkpoint));
        assert_eq!(open(&note, "kez.example/log", &key(2).verifying_key()), None, "another key");
        assert_eq!(open(&note, "other/log", &key(1).verifying_key()), None, "another name");
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(open(&tampered, "kez.example/log", &key(1).verifying_key()), None, "another text");
    }

    #[test]
    fn the_note_format_byte_for_byte() {
        let note =
            sign("example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "example.com/log", &key(3));
        let (text, signature) = note.split_once("\n\n").unwrap();
        assert_eq!(text, "example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let line = signature.strip_prefix("— example.com/log ").unwrap().strip_suffix('\n').unwrap();
        let bytes = BASE64.decode(line.as_bytes()).unwrap();
        assert_eq!(bytes.len(), 4 + 64);
        let vkey = verifier_key("example.com/log", &key(3).verifying_key());
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        assert_eq!(parts[0], "example.com/log");
        assert_eq!(HEXLOWER.decode(parts[1].as_bytes()).unwrap(), bytes[..4]);
        assert_eq!(BASE64.decode(parts[2].as_bytes()).unwrap()[1..], key(3).verifying_key().to_bytes());
    }

    #[test]
    fn checkpoint_bodies_are_strict() {
        let root = BASE64.encode(&[0u8; 32]);
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_some());
        for bad in [
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}\nextension\n"),
            "o\n1\nAAAA\n".to_owned(),
        ] {
            assert_eq!(Checkpoint::parse(&bad), None, "{bad:?}");
        }
    }
}
