//! Secrets: `Secret` keeps a value out of Debug output and logs; `Keyring` seals the secrets the database must hold.
//!
//! The database keeps two kinds of secret it cannot hash: LRS passwords (sent to the LRS)
//! and per-LRS pseudonym keys (which undo pseudonymisation). Both are sealed with
//! XChaCha20-Poly1305 under a key kept outside the database: a key file (by default
//! `<data-dir>/secrets.key`, created 0600 on first use; `secrets_key_file` puts it
//! elsewhere) or the `UWLR_SECRETS_KEY` environment variable. A copy of the database
//! (a backup, a stolen file) without the key reveals neither.
//!
//! A key file holds one key per line (base64 of 32 bytes; `#` comments allowed). The first
//! key seals; every key opens. Rotation: put a new key on the first line, keep the old one
//! below it, restart, run `uwlr-gateway secrets rotate` (reseals everything under the first
//! key), then drop the old line.
//!
//! A sealed value is text: `sealed:v1:<key id>:<base64 of nonce and ciphertext>`. The key id
//! (8 hex digits of the key's SHA-256) says which key opens it; the associated data binds
//! the value to its place (table, column and row name), so a sealed value copied to another
//! row does not open.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A secret that never shows in Debug output or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A secret as the database holds it: sealed, or in clear in a database from before sealing.
/// Opaque bytes; only a `Keyring` reveals them.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sealed(Vec<u8>);

impl Sealed {
    pub(crate) fn new(stored: Vec<u8>) -> Sealed {
        Sealed(stored)
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(***)")
    }
}

/// What marks a sealed value (and its format version).
const SEALED_PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Why a key could not be loaded or a value not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secrets key file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the secrets key file {path}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: line {line} is not a base64 key of 32 bytes")]
    BadKey { origin: String, line: usize },
    #[error("{origin} holds no key")]
    NoKey { origin: String },
    #[error(
        "{place} was sealed with key {key_id}, which the secrets key does not hold (was the key file replaced without keeping the old key?)"
    )]
    UnknownKey { place: String, key_id: String },
    #[error("{place} does not open with its key: the value was changed or moved")]
    Tampered { place: String },
    #[error("{place} is not a sealed value")]
    Malformed { place: String },
}

/// Where the keys come from, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// `UWLR_SECRETS_KEY` / `secrets_key`: keys separated by commas or white space.
    Inline(Secret),
    /// `secrets_key_file`: must exist.
    File(PathBuf),
    /// Neither set: `<data-dir>/secrets.key`, created on first use.
    DataDirDefault(PathBuf),
}

/// The keys that seal and open stored secrets; the first one seals.
pub struct Keyring {
    keys: Vec<(String, XChaCha20Poly1305)>,
    origin: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("origin", &self.origin)
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The default key file of a data dir.
pub(crate) fn default_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets.key")
}

fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

impl Keyring {
    /// Loads the keys; with `create` a missing default key file gets a fresh key (mode 0600).
    pub(crate) fn load(source: &KeySource, create: bool) -> Result<Keyring, SecretError> {
        match source {
            KeySource::Inline(text) => Keyring::parse(text.expose(), "UWLR_SECRETS_KEY"),
            KeySource::File(path) => Keyring::read(path),
            KeySource::DataDirDefault(path) => {
                if create && !path.exists() {
                    Keyring::create_file(path)?;
                }
                Keyring::read(path)
            }
        }
    }

    fn read(path: &Path) -> Result<Keyring, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Keyring::parse(&text, &path.display().to_string())
    }

    /// Writes a new key file with one fresh key, readable by its owner only; fails if it exists.
    /// Written under a temporary name and renamed, so a crash or a full disk never leaves a
    /// key file without a key (which `load` would then refuse at every start).
    pub(crate) fn create_file(path: &Path) -> Result<(), SecretError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let create = |source| SecretError::Create {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            return Err(create(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the key file exists already",
            )));
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let text = format!(
            "# uwlr-gateway secrets key: seals LRS passwords and pseudonym keys in xapi.sqlite.\n\
             # Keep a copy apart from the database backups; without it those secrets are lost.\n{}\n",
            Keyring::new_key_text()
        );
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&partial, path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(create(source));
        }
        Ok(())
    }

    /// A fresh random key in the key file's notation.
    pub fn new_key_text() -> String {
        let mut key = [0u8; KEY_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// Keys separated by newlines, commas or spaces; `#` starts a comment line.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Keyring, SecretError> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for word in line.split([',', ' ', '\t']).filter(|word| !word.is_empty()) {
                let bad = || SecretError::BadKey {
                    origin: origin.to_string(),
                    line: number + 1,
                };
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(word)
                    .map_err(|_| bad())?;
                if bytes.len() != KEY_BYTES {
                    return Err(bad());
                }
                let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| bad())?;
                keys.push((key_id(&bytes), cipher));
            }
        }
        if keys.is_empty() {
            return Err(SecretError::NoKey {
                origin: origin.to_string(),
            });
        }
        Ok(Keyring {
            keys,
            origin: origin.to_string(),
        })
    }

    /// Where the keys came from (a file path or the environment variable), for messages.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether a stored value is sealed (older databases hold secrets in clear).
    pub(crate) fn is_sealed(stored: &[u8]) -> bool {
        stored.starts_with(SEALED_PREFIX.as_bytes())
    }

    /// Whether a stored value is sealed under the key that seals now.
    pub(crate) fn is_current(&self, stored: &[u8]) -> bool {
        std::str::from_utf8(stored)
            .ok()
            .and_then(|text| text.strip_prefix(SEALED_PREFIX))
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.keys[0].0)
    }

    /// Seals `plaintext` for `place` (e.g. `xapi_subscriptions.password/lrs-name`).
    pub(crate) fn seal(&self, place: &str, plaintext: &[u8]) -> String {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: place.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message below 256 GiB");
        let mut packed = nonce.to_vec();
        packed.extend_from_slice(&ciphertext);
        format!(
            "{SEALED_PREFIX}{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(packed)
        )
    }

    /// Opens a sealed value of `place`.
    pub(crate) fn open(&self, place: &str, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
        let malformed = || SecretError::Malformed {
            place: place.to_string(),
        };
        let text = std::str::from_utf8(stored).map_err(|_| malformed())?;
        let (id, packed) = text
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(malformed)?;
        let cipher = self
            .keys
            .iter()
            .find(|(key_id, _)| key_id == id)
            .map(|(_, cipher)| cipher)
            .ok_or_else(|| SecretError::UnknownKey {
                place: place.to_string(),
                key_id: id.to_string(),
            })?;
        let packed = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .map_err(|_| malformed())?;
        if packed.len() < NONCE_BYTES {
            return Err(malformed());
        }
        let (nonce, ciphertext) = packed.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered {
                place: place.to_string(),
            })
    }

    /// A stored value opened: sealed values are opened, clear ones (older databases) taken as they are.
    pub(crate) fn reveal(&self, place: &str, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
        if Keyring::is_sealed(stored) {
            self.open(place, stored)
        } else {
            Ok(stored.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> Keyring {
        Keyring::parse(&keys.join("\n"), "test").unwrap()
    }

    #[test]
    fn sealed_values_open_in_their_place_only() {
        let key = Keyring::new_key_text();
        let keyring = ring(&[&key]);
        let sealed = keyring.seal("t.c/a", b"hunter2");
        assert!(Keyring::is_sealed(sealed.as_bytes()));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            keyring.open("t.c/a", sealed.as_bytes()).unwrap(),
            b"hunter2"
        );
        assert!(matches!(
            keyring.open("t.c/b", sealed.as_bytes()),
            Err(SecretError::Tampered { .. })
        ));
        // Two seals of one value differ (fresh nonce), so equal secrets cannot be spotted.
        assert_ne!(sealed, keyring.seal("t.c/a", b"hunter2"));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_reseals_under_the_first_key() {
        let old_key = Keyring::new_key_text();
        let new_key = Keyring::new_key_text();
        let old = ring(&[&old_key]);
        let sealed_old = old.seal("p", b"secret");
        let rotated = ring(&[&new_key, &old_key]);
        assert!(!rotated.is_current(sealed_old.as_bytes()));
        assert_eq!(rotated.open("p", sealed_old.as_bytes()).unwrap(), b"secret");
        let resealed = rotated.seal("p", b"secret");
        assert!(rotated.is_current(resealed.as_bytes()));
        let new_only = ring(&[&new_key]);
        assert!(matches!(
            new_only.open("p", sealed_old.as_bytes()),
            Err(SecretError::UnknownKey { .. })
        ));
        assert_eq!(new_only.open("p", resealed.as_bytes()).unwrap(), b"secret");
    }

    #[test]
    fn bad_key_text_is_refused_with_its_line() {
        assert!(matches!(
            Keyring::parse("# only a comment\n", "f"),
            Err(SecretError::NoKey { .. })
        ));
        assert!(matches!(
            Keyring::parse("# c\nc2hvcnQ=\n", "f"),
            Err(SecretError::BadKey { line: 2, .. })
        ));
        let two = format!("{},{}", Keyring::new_key_text(), Keyring::new_key_text());
        assert_eq!(Keyring::parse(&two, "env").unwrap().keys.len(), 2);
    }

    #[test]
    fn clear_values_of_older_databases_are_revealed_as_they_are() {
        let keyring = ring(&[&Keyring::new_key_text()]);
        assert_eq!(keyring.reveal("p", b"plain").unwrap(), b"plain");
    }

    #[test]
    fn a_created_key_file_is_private_and_loads() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = default_key_file(dir.path());
        let keyring = Keyring::load(&KeySource::DataDirDefault(path.clone()), true).unwrap();
        assert_eq!(keyring.keys.len(), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(Keyring::load(&KeySource::File(dir.path().join("missing")), true).is_err());
    }
}
