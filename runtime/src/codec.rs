//! Payload encryption: what the shop sends to Temporal (workflow inputs,
//! activity arguments and results, signals, updates, queries, failures'
//! messages) leaves every process AES-256-GCM encrypted, so the Temporal
//! server, its database and whoever opens its UI see ciphertext only.
//!
//! - [`KeyRing`]: named 256-bit keys; the first is the current one
//!   (encrypts), every listed one decrypts, so keys rotate without downtime
//!   (docs/security.md).
//! - [`EncryptionCodec`]: the SDK's `PayloadCodec` over a key ring. A
//!   payload it did not encrypt passes through untouched, so histories
//!   written before encryption still replay.
//! - [`data_converter`]: the converter every client, worker and replayer
//!   uses; with a key ring the failure converter moves failure messages and
//!   stack traces into (encrypted) encoded attributes.
//! - [`CodecSettings`]: where the key ring comes from
//!   (`ORDERSAGA_CODEC_KEYS` or the file `ORDERSAGA_CODEC_KEYS_FILE`).
//!
//! Format of an encrypted payload: metadata `encoding: binary/encrypted`
//! and `encryption-key-id: <id>`; data `nonce (12 bytes) || ciphertext ||
//! tag` of the original payload's protobuf encoding, with the key id as
//! associated data. The same format as Temporal's samples, so its codec
//! server protocol (`runtime::codec` is what `ordersaga-api` serves on
//! `/codec`) carries it unchanged.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use prost::Message as _;
use serde::Deserialize;
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, DefaultPayloadCodec, PayloadCodec,
    PayloadConversionError, PayloadConverter, SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

use crate::Secret;
use crate::settings::{self, SettingsError};

/// The `encoding` metadata of an encrypted payload (what the Temporal UI
/// shows for it without a codec server).
pub const ENCRYPTED_ENCODING: &str = "binary/encrypted";
/// The metadata key naming the key a payload was encrypted with.
pub const KEY_ID_METADATA: &str = "encryption-key-id";
/// Metadata key of every payload's encoding.
const ENCODING_METADATA: &str = "encoding";
/// Bytes of a key (AES-256).
const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce.
const NONCE_BYTES: usize = 12;

/// Why a key ring could not be loaded or a payload not be decrypted.
/// No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The key ring's text is not `id:base64key` entries.
    #[error("key ring entry {entry}: {problem}")]
    BadEntry {
        /// 1-based position of the entry.
        entry: usize,
        /// What is wrong with it (never its value).
        problem: &'static str,
    },
    /// No key listed.
    #[error("the key ring lists no key")]
    Empty,
    /// One key id listed twice.
    #[error("key id {0:?} is listed twice")]
    DuplicateId(String),
    /// The key ring file could not be read.
    #[error("cannot read the key ring file {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An encrypted payload names a key the ring does not hold.
    #[error("payload encrypted with key {0:?}, which the key ring does not hold")]
    UnknownKey(String),
    /// An encrypted payload without a key id.
    #[error("encrypted payload without its key id")]
    MissingKeyId,
    /// Authentication failed: wrong key, or the payload was altered.
    #[error("payload does not decrypt with key {0:?} (altered, or another key of that id)")]
    Decrypt(String),
    /// The decrypted bytes are not a payload.
    #[error("decrypted payload is not a protobuf Payload")]
    Malformed,
    /// The cipher refused to encrypt (cannot happen with valid keys).
    #[error("encryption failed")]
    Encrypt,
}

/// Named AES-256 keys: the first encrypts, any of them decrypts. Its
/// `Debug` shows the ids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// Parses `id:base64key` entries separated by commas, spaces or new
    /// lines (`#` starts a comment line); each key is 32 bytes of standard
    /// base64. The first entry is the current key.
    pub fn parse(text: &Secret) -> Result<Self, CodecError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        let entries = text
            .expose()
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split([',', ' ', '\t']))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let bad = |problem| CodecError::BadEntry {
                entry: i + 1,
                problem,
            };
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| bad("expected `id:base64key`"))?;
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad("the id must be letters, digits, `-`, `_` or `.`"));
            }
            let bytes = BASE64
                .decode(key)
                .map_err(|_| bad("the key is not standard base64"))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad("the key must be 32 bytes (AES-256)"));
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err(CodecError::DuplicateId(id.to_string()));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(CodecError::Empty);
        }
        Ok(Self { keys })
    }

    /// A fresh random key as a key ring entry `id:base64key` (what
    /// `scripts/dev` and a rotation add).
    pub fn generate_entry(id: &str) -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        format!("{id}:{}", BASE64.encode(key))
    }

    /// The key ids, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// The id of the key that encrypts.
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Encrypts a payload with the current key. A payload that is already
    /// encrypted is left as it is (never wrapped twice).
    pub fn encrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        if is_encrypted(&payload) {
            return Ok(payload);
        }
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let plain = payload.encode_to_vec();
        let sealed = cipher
            .encrypt(
                &nonce,
                AeadPayload {
                    msg: &plain,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| CodecError::Encrypt)?;
        let mut data = Vec::with_capacity(NONCE_BYTES + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        Ok(Payload {
            metadata: [
                (
                    ENCODING_METADATA.to_string(),
                    ENCRYPTED_ENCODING.as_bytes().to_vec(),
                ),
                (KEY_ID_METADATA.to_string(), id.as_bytes().to_vec()),
            ]
            .into(),
            data,
            external_payloads: Vec::new(),
        })
    }

    /// Decrypts a payload this codec encrypted, with the key it names; any
    /// other payload (written before encryption) passes through.
    pub fn decrypt(&self, payload: Payload) -> Result<Payload, CodecError> {
        if !is_encrypted(&payload) {
            return Ok(payload);
        }
        let id = payload
            .metadata
            .get(KEY_ID_METADATA)
            .and_then(|id| std::str::from_utf8(id).ok())
            .ok_or(CodecError::MissingKeyId)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .ok_or_else(|| CodecError::UnknownKey(id.to_string()))?;
        if payload.data.len() < NONCE_BYTES {
            return Err(CodecError::Decrypt(id.to_string()));
        }
        let (nonce, sealed) = payload.data.split_at(NONCE_BYTES);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                AeadPayload {
                    msg: sealed,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| CodecError::Decrypt(id.to_string()))?;
        Payload::decode(plain.as_slice()).map_err(|_| CodecError::Malformed)
    }
}

/// Whether `payload` is one of ours, encrypted.
pub fn is_encrypted(payload: &Payload) -> bool {
    payload
        .metadata
        .get(ENCODING_METADATA)
        .is_some_and(|e| e.as_slice() == ENCRYPTED_ENCODING.as_bytes())
}

/// The SDK's `PayloadCodec` over a [`KeyRing`].
#[derive(Debug, Clone)]
pub struct EncryptionCodec {
    ring: Arc<KeyRing>,
}

impl EncryptionCodec {
    /// A codec encrypting with `ring`'s current key.
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self { ring }
    }
}

fn conversion(e: CodecError) -> PayloadConversionError {
    PayloadConversionError::EncodingError(Box::new(e))
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        // AES-GCM of a few hundred bytes: cheaper than a task hop.
        let result = payloads
            .into_iter()
            .map(|p| self.ring.encrypt(p).map_err(conversion))
            .collect();
        async move { result }.boxed()
    }

    fn decode(
        &self,
        _: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let result = payloads
            .into_iter()
            .map(|p| self.ring.decrypt(p).map_err(conversion))
            .collect();
        async move { result }.boxed()
    }
}

/// The data converter of every Temporal client, worker and replayer: JSON
/// payloads, encrypted with `ring` if there is one. With a ring, failures'
/// messages and stack traces travel as encoded (so encrypted) attributes;
/// without one, everything is as the SDK's default (the benchmarks'
/// baseline).
pub fn data_converter(ring: Option<Arc<KeyRing>>) -> DataConverter {
    match ring {
        Some(ring) => DataConverter::new(
            PayloadConverter::default(),
            DefaultFailureConverter::new(true),
            EncryptionCodec::new(ring),
        ),
        None => DataConverter::new(
            PayloadConverter::default(),
            DefaultFailureConverter::default(),
            DefaultPayloadCodec,
        ),
    }
}

/// Where a process's key ring comes from: `ORDERSAGA_CODEC_KEYS` (the
/// entries themselves) or `ORDERSAGA_CODEC_KEYS_FILE` (a file of them);
/// neither: payloads go to Temporal in clear (a warning at start-up).
#[derive(Debug, Clone, Default)]
pub struct CodecSettings {
    /// The key ring's entries.
    pub keys: Option<Secret>,
    /// A file holding them (read at start-up).
    pub keys_file: Option<PathBuf>,
}

/// The variables naming the key ring, for processes that read nothing
/// else through the settings loader (the benchmark and chaos tools).
#[derive(Deserialize)]
struct CodecVars {
    codec_keys: Option<Secret>,
    codec_keys_file: Option<PathBuf>,
}

impl CodecSettings {
    /// This process's (`ORDERSAGA_CODEC_KEYS`, `ORDERSAGA_CODEC_KEYS_FILE`,
    /// or the same keys in the settings file), checked.
    pub fn load() -> Result<Self, SettingsError> {
        let vars: CodecVars = settings::load()?;
        let codec = Self {
            keys: vars.codec_keys,
            keys_file: vars.codec_keys_file,
        };
        codec.check()?;
        Ok(codec)
    }

    /// Refuses a key ring that does not load, naming the variable it came
    /// from (never a key).
    pub fn check(&self) -> Result<(), SettingsError> {
        self.key_ring()
            .map(|_| ())
            .map_err(|e| SettingsError::Invalid {
                name: if self.keys.is_some() {
                    "ORDERSAGA_CODEC_KEYS"
                } else {
                    "ORDERSAGA_CODEC_KEYS_FILE"
                }
                .to_string(),
                problem: e.to_string(),
            })
    }

    /// Takes the key ring as given (tests, tools).
    pub fn with_keys(keys: impl Into<String>) -> Self {
        Self {
            keys: Some(Secret::new(keys)),
            keys_file: None,
        }
    }

    /// The key ring, `None` if none is configured. Both set: the variable
    /// wins.
    pub fn key_ring(&self) -> Result<Option<Arc<KeyRing>>, CodecError> {
        let text = match (&self.keys, &self.keys_file) {
            (Some(keys), _) => keys.clone(),
            (None, Some(path)) => {
                Secret::new(
                    std::fs::read_to_string(path).map_err(|source| CodecError::File {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            (None, None) => return Ok(None),
        };
        KeyRing::parse(&text).map(|ring| Some(Arc::new(ring)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const OLD: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const NEW: &str = "k2:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    fn json(text: &str) -> Payload {
        Payload {
            metadata: HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]),
            data: text.as_bytes().to_vec(),
            external_payloads: Vec::new(),
        }
    }

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(&Secret::new(text)).unwrap()
    }

    #[test]
    fn encrypts_with_the_current_key_and_round_trips() {
        let ring = ring(&format!("{OLD},{NEW}"));
        let plain = json(r#"{"customer_email":"alice@example.com"}"#);
        let sealed = ring.encrypt(plain.clone()).unwrap();
        assert!(is_encrypted(&sealed));
        assert_eq!(sealed.metadata[KEY_ID_METADATA], b"k1");
        assert!(!String::from_utf8_lossy(&sealed.data).contains("alice"));
        assert_eq!(ring.decrypt(sealed.clone()).unwrap(), plain);
        // Encrypting twice wraps nothing twice; nonces differ per payload.
        assert_eq!(ring.encrypt(sealed.clone()).unwrap(), sealed);
        assert_ne!(ring.encrypt(plain).unwrap().data, sealed.data);
    }

    #[test]
    fn rotation_decrypts_old_payloads_and_encrypts_with_the_new_key() {
        let before = ring(OLD);
        let written_before = before.encrypt(json("1")).unwrap();
        let after = ring(&format!(
            "{NEW}\n# kept until old histories are gone\n{OLD}"
        ));
        assert_eq!(after.current_id(), "k2");
        assert_eq!(after.decrypt(written_before).unwrap(), json("1"));
        let written_after = after.encrypt(json("2")).unwrap();
        assert_eq!(written_after.metadata[KEY_ID_METADATA], b"k2");
        assert!(matches!(
            before.decrypt(written_after),
            Err(CodecError::UnknownKey(id)) if id == "k2"
        ));
    }

    #[test]
    fn plain_payloads_pass_through() {
        let ring = ring(OLD);
        assert_eq!(ring.decrypt(json("42")).unwrap(), json("42"));
    }

    #[test]
    fn an_altered_payload_or_another_key_of_the_same_id_is_refused() {
        let ring1 = ring(OLD);
        let mut sealed = ring1.encrypt(json("42")).unwrap();
        let other = ring(&format!("k1:{}", NEW.split_once(':').unwrap().1));
        assert!(matches!(
            other.decrypt(sealed.clone()),
            Err(CodecError::Decrypt(_))
        ));
        let last = sealed.data.len() - 1;
        sealed.data[last] ^= 1;
        assert!(matches!(ring1.decrypt(sealed), Err(CodecError::Decrypt(_))));
    }

    #[test]
    fn bad_key_rings_are_refused_without_showing_a_key() {
        for (text, expected) in [
            ("", "lists no key"),
            ("k1", "entry 1: expected `id:base64key`"),
            ("k1:short", "entry 1: the key is not standard base64"),
            ("k1:AAAA", "entry 1: the key must be 32 bytes"),
            ("k 1:AAAA", "entry 1: expected"),
            (&format!("{OLD},{OLD}"), "listed twice"),
        ] {
            let err = KeyRing::parse(&Secret::new(text)).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("AAEC"), "{err}");
        }
        let printed = format!("{:?}", ring(OLD));
        assert_eq!(printed, r#"KeyRing { ids: ["k1"] }"#);
    }

    #[test]
    fn generated_entries_parse() {
        let entry = KeyRing::generate_entry("dev-1");
        let ring = ring(&entry);
        assert_eq!(ring.current_id(), "dev-1");
    }

    #[test]
    fn settings_read_the_variable_before_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, format!("# ring\n{NEW}\n")).unwrap();
        let from_file = CodecSettings {
            keys: None,
            keys_file: Some(file.clone()),
        };
        assert_eq!(from_file.key_ring().unwrap().unwrap().current_id(), "k2");
        let both = CodecSettings {
            keys: Some(Secret::new(OLD)),
            keys_file: Some(file),
        };
        assert_eq!(both.key_ring().unwrap().unwrap().current_id(), "k1");
        assert!(CodecSettings::default().key_ring().unwrap().is_none());
        let missing = CodecSettings {
            keys: None,
            keys_file: Some(dir.path().join("nope")),
        };
        assert!(matches!(missing.key_ring(), Err(CodecError::File { .. })));
    }
}
