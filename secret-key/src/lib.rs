//! Encryption at rest of secrets Skyport must read back (the control plane's custom TLS
//! private keys, a broker node's rule resource passwords and tokens): AES-256-GCM under
//! an operator's secret key.
//!
//! The key is given (base64 of 32 bytes: the control plane's `--secret-key` /
//! `SKYPORT_SECRET_KEY`, a broker node's `SKYPORT_BROKER_SECRET_KEY`), else read from
//! `DATA_DIR/secret-key`, generated on first start (mode 0600). Every replica must use
//! the same key; losing it makes the stored secrets unreadable.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
pub use secrecy::{ExposeSecret, SecretString};

/// Prefix of sealed values, naming the scheme so it can change later.
const SCHEME: &str = "aes256gcm:";
/// AES-GCM nonce length in bytes.
const NONCE_LEN: usize = 12;

/// A data-encryption key.
pub struct SecretKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

/// A sealed value could not be opened: wrong key, or tampered with.
#[derive(Debug, thiserror::Error)]
#[error("cannot decrypt a stored secret: the secret key differs from the one it was sealed with, or the value is corrupt")]
pub struct OpenError;

impl SecretKey {
    /// Parses base64 (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| anyhow::anyhow!("the secret key is not base64"))?;
        anyhow::ensure!(
            bytes.len() == 32,
            "the secret key must be 32 bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`), got {}",
            bytes.len()
        );
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// The given key, or the one in `DATA_DIR/secret-key`, generated on first use.
    pub fn given_or_from_dir(
        given: Option<&SecretString>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        if let Some(given) = given {
            return Self::from_base64(given.expose_secret()).context("the given secret key");
        }
        let path = data_dir.join("secret-key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            if !existing.trim().is_empty() {
                return Self::from_base64(&existing)
                    .with_context(|| format!("reading {}", path.display()));
            }
        }
        let generated = STANDARD.encode(Aes256Gcm::generate_key(OsRng));
        write_private(&path, format!("{generated}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated the secret key for encryption at rest");
        Self::from_base64(&generated)
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the owning deployment's id, so a
    /// sealed value cannot be moved to another row).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SCHEME}{}", STANDARD.encode(out))
    }

    /// Whether `text` looks like what [`SecretKey::seal`] produces.
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// Decrypts what [`SecretKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, OpenError> {
        let bytes = sealed
            .strip_prefix(SCHEME)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(OpenError)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| OpenError)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let sealed = key().seal(b"-----BEGIN PRIVATE KEY-----", "d1");
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            key().open(&sealed, "d1").unwrap().expose_secret(),
            "-----BEGIN PRIVATE KEY-----"
        );
        assert!(key().open(&sealed, "d2").is_err());
        let other = SecretKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed, "d1").is_err());
        assert_ne!(
            key().seal(b"x", "d1"),
            key().seal(b"x", "d1"),
            "fresh nonces"
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(SecretKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(format!("{:?}", key()).contains("redacted"));
    }

    #[test]
    fn the_generated_key_is_kept_private_and_reused() {
        let dir = tempfile_dir();
        let a = SecretKey::given_or_from_dir(None, &dir).unwrap();
        let sealed = a.seal(b"k", "c");
        let b = SecretKey::given_or_from_dir(None, &dir).unwrap();
        assert_eq!(b.open(&sealed, "c").unwrap().expose_secret(), "k");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        tempfile::tempdir().unwrap().keep()
    }
}
