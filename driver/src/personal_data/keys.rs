//! The keys of crypto-shredding: the application's master key, one data key
//! per subject, and a data key as the key store keeps it (wrapped by a
//! master key). AES-256-GCM from RustCrypto's `aes-gcm`, a fresh random
//! 96-bit nonce for every encryption, and associated data that binds each
//! ciphertext to where it belongs, so that it cannot be moved elsewhere.

use super::PersonalDataError;
use crate::ids::{EventId, TenantId};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The environment variable [`MasterKey::from_env`] reads.
pub const MASTER_KEY_ENV: &str = "FORGEERP_MASTER_KEY";

/// Bytes of a nonce (AES-GCM's standard 96 bits).
const NONCE_LEN: usize = 12;

/// The key that wraps every data key: 32 bytes the application supplies
/// from its configuration or environment, never stored in the database.
/// The database keeps only its [`id`](MasterKey::id), a fingerprint from
/// which the key cannot be found, to tell a wrong key from a damaged one.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
}

impl MasterKey {
    /// A master key of these 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"forgeerp master key id v1\0");
        hasher.update(bytes);
        let digest = hasher.finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
            id,
        }
    }

    /// A master key written as 32 bytes in base64 (44 characters, as
    /// `openssl rand -base64 32` prints them) or in hex (64 digits).
    pub fn parse(text: &str) -> Result<Self, PersonalDataError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
                (0..32)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits"))
                    .collect::<Vec<u8>>()
            } else {
                BASE64.decode(text).map_err(|_| {
                PersonalDataError::InvalidMasterKey(format!(
                    "a master key is 32 bytes in base64 or 64 hex digits; got {} characters that are neither",
                    text.len()
                ))
            })?
            },
        );
        let bytes: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            PersonalDataError::InvalidMasterKey(format!(
                "a master key is 32 bytes; this one is {} bytes",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The master key in [`MASTER_KEY_ENV`], or None when it is unset.
    pub fn from_env() -> Result<Option<Self>, PersonalDataError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) => Self::parse(&text)
                .map(Some)
                .map_err(|e| PersonalDataError::InvalidMasterKey(format!("{MASTER_KEY_ENV}: {e}"))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(PersonalDataError::InvalidMasterKey(
                format!("{MASTER_KEY_ENV} is not UTF-8"),
            )),
        }
    }

    /// A new random master key and its base64 text (to put in the
    /// configuration: it is shown once and never stored here).
    pub fn generate() -> (Self, String) {
        let bytes = Zeroizing::new(<[u8; 32]>::from(Aes256Gcm::generate_key(OsRng)));
        (Self::from_bytes(&bytes), BASE64.encode(bytes.as_slice()))
    }

    /// Its fingerprint: 16 hex digits, stored beside every data key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A new data key for `subject` of `tenant_id`, wrapped by this key.
    pub(crate) fn new_data_key(&self, tenant_id: TenantId, subject: &str) -> (DataKey, WrappedKey) {
        let bytes = Zeroizing::new(<[u8; 32]>::from(Aes256Gcm::generate_key(OsRng)));
        let wrapped = self.wrap(tenant_id, subject, &bytes);
        (DataKey::from_bytes(&bytes), wrapped)
    }

    /// `data_key` wrapped by this key, bound to its tenant and subject.
    fn wrap(&self, tenant_id: TenantId, subject: &str, data_key: &[u8; 32]) -> WrappedKey {
        WrappedKey {
            master_key_id: self.id.clone(),
            bytes: seal_bytes(&self.cipher, data_key, &wrap_aad(tenant_id, subject)),
        }
    }

    /// The data key in `wrapped`: [`PersonalDataError::WrongMasterKey`] when
    /// another master key wrapped it, [`PersonalDataError::Damaged`] when
    /// this one did but the bytes do not authenticate.
    pub(crate) fn unwrap_key(
        &self,
        tenant_id: TenantId,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<[u8; 32]>, PersonalDataError> {
        if wrapped.master_key_id != self.id {
            return Err(PersonalDataError::WrongMasterKey {
                stored: wrapped.master_key_id.clone(),
                configured: self.id.clone(),
            });
        }
        let damaged = || {
            PersonalDataError::Damaged(format!(
            "the data key of subject {subject:?} of tenant {tenant_id} does not open with master key {}",
            self.id
        ))
        };
        if wrapped.bytes.len() != NONCE_LEN + 32 + 16 {
            return Err(damaged());
        }
        let opened = open_bytes(&self.cipher, &wrapped.bytes, &wrap_aad(tenant_id, subject))
            .ok_or_else(damaged)?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&opened);
        Ok(key)
    }

    /// `wrapped` (by `self`) wrapped again by `to`.
    pub(crate) fn rewrap(
        &self,
        to: &MasterKey,
        tenant_id: TenantId,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, PersonalDataError> {
        let key = self.unwrap_key(tenant_id, subject, wrapped)?;
        Ok(to.wrap(tenant_id, subject, &key))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The associated data of a wrapped data key.
fn wrap_aad(tenant_id: TenantId, subject: &str) -> String {
    format!("forgeerp data key v1\0{}\0{subject}", tenant_id.as_uuid())
}

/// A data key as the key store keeps it: encrypted by a master key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The [`MasterKey::id`] of the master key that wrapped it.
    pub master_key_id: String,
    /// Nonce, ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// One subject's data key, unwrapped: it seals and opens that subject's
/// personal fields.
pub(crate) struct DataKey {
    cipher: Aes256Gcm,
}

/// The key of a sealed field's marker object.
pub const SEALED_KEY: &str = "forgeerp:sealed";

/// Where a sealed field belongs: its ciphertext opens only there.
pub(crate) struct FieldPlace<'a> {
    pub tenant_id: TenantId,
    pub subject: &'a str,
    pub event_id: EventId,
    /// The field's JSON pointer in the payload, as stored.
    pub pointer: &'a str,
}

impl FieldPlace<'_> {
    fn aad(&self) -> String {
        format!(
            "forgeerp field v1\0{}\0{}\0{}\0{}",
            self.tenant_id.as_uuid(),
            self.subject,
            self.event_id.0,
            self.pointer
        )
    }
}

impl DataKey {
    fn from_bytes(bytes: &[u8; 32]) -> Self {
        DataKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// The data key in `wrapped`, opened with `master`.
    pub(crate) fn unwrap(
        master: &MasterKey,
        tenant_id: TenantId,
        subject: &str,
        wrapped: &WrappedKey,
    ) -> Result<Self, PersonalDataError> {
        let bytes = master.unwrap_key(tenant_id, subject, wrapped)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// `value` sealed for `place`: the object
    /// `{"forgeerp:sealed": 1, "subject": …, "data": base64(nonce ‖ ciphertext ‖ tag)}`.
    pub(crate) fn seal(&self, value: &Value, place: &FieldPlace<'_>) -> Value {
        let plain = Zeroizing::new(serde_json::to_vec(value).expect("a JSON value serializes"));
        let bytes = seal_bytes(&self.cipher, &plain, &place.aad());
        serde_json::json!({ SEALED_KEY: 1, "subject": place.subject, "data": BASE64.encode(bytes) })
    }

    /// The value sealed in `data` for `place`, or None when it does not
    /// authenticate there (altered, or moved from elsewhere).
    pub(crate) fn open(&self, data: &str, place: &FieldPlace<'_>) -> Option<Value> {
        let bytes = BASE64.decode(data).ok()?;
        let plain = open_bytes(&self.cipher, &bytes, &place.aad())?;
        serde_json::from_slice(&plain).ok()
    }
}

/// `plain` encrypted under `cipher` with a fresh random nonce and bound to
/// `aad`, framed as nonce ‖ ciphertext ‖ tag.
fn seal_bytes(cipher: &Aes256Gcm, plain: &[u8], aad: &str) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encrypts what fits in memory");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    bytes
}

/// What [`seal_bytes`] framed in `bytes`, or None when they are too short
/// or do not authenticate under `cipher` and `aad`.
fn open_bytes(cipher: &Aes256Gcm, bytes: &[u8], aad: &str) -> Option<Zeroizing<Vec<u8>>> {
    if bytes.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: aad.as_bytes(),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_key_parses_from_base64_and_hex_alike() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let from_hex = MasterKey::parse(hex).unwrap();
        let from_base64 = MasterKey::parse(&BASE64.encode(&bytes)).unwrap();
        assert_eq!(from_hex.id(), from_base64.id());
        assert_eq!(from_hex.id().len(), 16);
        let (generated, text) = MasterKey::generate();
        assert_eq!(MasterKey::parse(&text).unwrap().id(), generated.id());
        assert_ne!(generated.id(), from_hex.id());
    }

    #[test]
    fn a_bad_master_key_says_what_is_wrong_with_it() {
        let short = MasterKey::parse(&BASE64.encode([7u8; 16])).unwrap_err();
        assert!(
            short.to_string().contains("this one is 16 bytes"),
            "{short}"
        );
        let neither = MasterKey::parse("not a key!").unwrap_err();
        assert!(
            neither.to_string().contains("base64 or 64 hex digits"),
            "{neither}"
        );
        // The key's text never appears in its Debug output.
        let (key, text) = MasterKey::generate();
        assert!(!format!("{key:?}").contains(&text));
    }

    #[test]
    fn a_data_key_opens_only_under_its_master_key_and_place() {
        let tenant = TenantId::random();
        let (master, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let (_, wrapped) = master.new_data_key(tenant, "customer-1");
        assert!(DataKey::unwrap(&master, tenant, "customer-1", &wrapped).is_ok());
        assert!(matches!(
            DataKey::unwrap(&other, tenant, "customer-1", &wrapped),
            Err(PersonalDataError::WrongMasterKey { .. })
        ));
        // Moved to another subject or tenant: it does not authenticate.
        assert!(matches!(
            DataKey::unwrap(&master, tenant, "customer-2", &wrapped),
            Err(PersonalDataError::Damaged(_))
        ));
        assert!(matches!(
            DataKey::unwrap(&master, TenantId::random(), "customer-1", &wrapped),
            Err(PersonalDataError::Damaged(_))
        ));
        let rewrapped = master
            .rewrap(&other, tenant, "customer-1", &wrapped)
            .unwrap();
        assert_eq!(rewrapped.master_key_id, other.id());
        assert!(DataKey::unwrap(&other, tenant, "customer-1", &rewrapped).is_ok());
    }

    #[test]
    fn a_sealed_field_opens_where_it_was_sealed_and_nowhere_else() {
        let tenant = TenantId::random();
        let (master, _) = MasterKey::generate();
        let (key, _) = master.new_data_key(tenant, "c-1");
        let event_id = EventId::random();
        let place = FieldPlace {
            tenant_id: tenant,
            subject: "c-1",
            event_id,
            pointer: "/name",
        };
        let value = serde_json::json!("Jane Doe");
        let sealed = key.seal(&value, &place);
        let data = sealed["data"].as_str().unwrap();
        assert!(!sealed.to_string().contains("Jane"));
        assert_eq!(key.open(data, &place), Some(value.clone()));
        // A fresh nonce each time.
        assert_ne!(key.seal(&value, &place)["data"], sealed["data"]);
        let elsewhere = FieldPlace {
            pointer: "/address",
            ..place
        };
        assert_eq!(key.open(data, &elsewhere), None);
        let other_event = FieldPlace {
            event_id: EventId::random(),
            pointer: "/name",
            ..elsewhere
        };
        assert_eq!(key.open(data, &other_event), None);
    }
}
