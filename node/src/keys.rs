//! Validator identity: ed25519 keys (commonware's), key files written by `fixpoint keygen`, and
//! public keys as they appear in the genesis file's validator set (0x-hex of the 32-byte key).

use std::io::Write as _;
use std::path::Path;

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::Signer;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not 0x + 64 hex digits, or not a valid ed25519 key.
    #[error("invalid ed25519 {what}: {reason}")]
    Invalid {
        /// Public or private key.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The key file cannot be read or written.
    #[error("{0}")]
    Io(String),
}

/// A key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyFile {
    /// 0x-hex public key (what goes into the genesis validator set).
    pub public_key: String,
    /// 0x-hex private key. Keep it secret.
    pub private_key: String,
}

fn hex32(what: &'static str, s: &str) -> Result<Vec<u8>, KeyError> {
    let bad = |reason: String| KeyError::Invalid { what, reason };
    let bytes = hex::decode(s.trim().trim_start_matches("0x")).map_err(|e| bad(e.to_string()))?;
    if bytes.len() != 32 {
        return Err(bad(format!("{} bytes, expected 32", bytes.len())));
    }
    Ok(bytes)
}

/// Parses a 0x-hex ed25519 public key.
pub fn parse_public_key(s: &str) -> Result<PublicKey, KeyError> {
    let bytes = hex32("public key", s)?;
    PublicKey::decode(bytes).map_err(|e| KeyError::Invalid { what: "public key", reason: e.to_string() })
}

/// Parses a 0x-hex ed25519 private key.
pub fn parse_private_key(s: &str) -> Result<PrivateKey, KeyError> {
    let bytes = hex32("private key", s)?;
    PrivateKey::decode(bytes).map_err(|e| KeyError::Invalid { what: "private key", reason: e.to_string() })
}

/// 0x-hex of a public key.
pub fn public_key_hex(k: &PublicKey) -> String {
    format!("0x{}", hex::encode(k.encode()))
}

/// A fresh key from the operating system's randomness.
pub fn generate() -> PrivateKey {
    loop {
        let seed: [u8; 32] = rand::random();
        if let Ok(k) = PrivateKey::decode(seed.to_vec()) {
            return k;
        }
    }
}

/// The key file of `key`.
pub fn key_file(key: &PrivateKey) -> KeyFile {
    KeyFile { public_key: public_key_hex(&key.public_key()), private_key: format!("0x{}", hex::encode(key.encode())) }
}

/// Writes `key` to a new file at `path` (owner-only permissions); never overwrites.
pub fn write_key_file(path: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    let io = |e: std::io::Error| KeyError::Io(format!("{}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    let text = serde_json::to_string_pretty(&key_file(key)).map_err(|e| KeyError::Io(e.to_string()))?;
    f.write_all((text + "\n").as_bytes()).map_err(io)
}

/// Reads a key file and checks its public key matches its private key.
pub fn read_key_file(path: &Path) -> Result<PrivateKey, KeyError> {
    let text = std::fs::read(path).map_err(|e| KeyError::Io(format!("{}: {e}", path.display())))?;
    let f: KeyFile = serde_json::from_slice(&text).map_err(|e| KeyError::Io(format!("{}: {e}", path.display())))?;
    let key = parse_private_key(&f.private_key)?;
    if public_key_hex(&key.public_key()) != f.public_key.to_lowercase() {
        return Err(KeyError::Invalid { what: "key file", reason: "public key does not match the private key".into() });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_files_and_hex() {
        let dir = std::env::temp_dir().join(format!("fixpoint-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let k = generate();
        let path = dir.join("v.json");
        write_key_file(&path, &k).unwrap();
        assert!(write_key_file(&path, &k).is_err(), "never overwrites a key");
        let back = read_key_file(&path).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        assert_eq!(parse_public_key(&public_key_hex(&k.public_key())).unwrap(), k.public_key());
        assert_ne!(generate().public_key(), k.public_key());
        assert!(parse_public_key("0x1234").is_err());
        assert!(parse_public_key("zz").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
