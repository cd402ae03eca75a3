//! Codes at rest: an HMAC-SHA256 for lookups and audits, and a sealed copy (ChaCha20-Poly1305, bound
//! to the request id) kept only while a channel may still have to send it, so delivery resumes after a
//! restart. The store wipes the sealed copy as soon as the request's sending is over.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::ids::RequestId;

/// Bytes of key material: 32 for the HMAC key, 32 for the sealing key.
pub const KEY_MATERIAL_LEN: usize = 64;

/// Hashes and seals codes under the server key.
pub struct CodeVault {
    hmac_key: hmac::Key,
    seal_key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for CodeVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVault(***)")
    }
}

/// Why a vault could not be built or a code could not be sealed.
#[derive(Debug, thiserror::Error)]
#[error("code vault: {0}")]
pub struct VaultError(&'static str);

impl CodeVault {
    /// Builds a vault from 64 bytes of secret key material.
    pub fn new(material: &[u8; KEY_MATERIAL_LEN]) -> Result<Self, VaultError> {
        let (mac, seal) = material.split_at(32);
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, seal).map_err(|_| VaultError("bad key"))?;
        Ok(Self {
            hmac_key: hmac::Key::new(hmac::HMAC_SHA256, mac),
            seal_key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Fresh random key material from the OS.
    pub fn generate_material() -> Result<[u8; KEY_MATERIAL_LEN], VaultError> {
        let mut material = [0u8; KEY_MATERIAL_LEN];
        SystemRandom::new()
            .fill(&mut material)
            .map_err(|_| VaultError("no randomness"))?;
        Ok(material)
    }

    /// Lower-case hex HMAC-SHA256 of the code.
    pub fn hash(&self, code: &str) -> String {
        hex::encode(hmac::sign(&self.hmac_key, code.as_bytes()).as_ref())
    }

    /// Seals the code for `request`: nonce followed by ciphertext and tag.
    pub fn seal(&self, request: RequestId, code: &str) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| VaultError("no randomness"))?;
        let mut buffer = code.as_bytes().to_vec();
        self.seal_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(request.0.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| VaultError("seal failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buffer);
        Ok(sealed)
    }

    /// Opens a sealed code; `None` if it was sealed for another request or under another key.
    pub fn open(&self, request: RequestId, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .seal_key
            .open_in_place(nonce, Aad::from(request.0.as_bytes()), &mut buffer)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_is_bound_to_request() {
        let vault = CodeVault::new(&[7u8; KEY_MATERIAL_LEN]).unwrap();
        let id = RequestId::new_random();
        let sealed = vault.seal(id, "123456").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(vault.open(id, &sealed).as_deref(), Some("123456"));
        assert_eq!(vault.open(RequestId::new_random(), &sealed), None);
        let other = CodeVault::new(&[8u8; KEY_MATERIAL_LEN]).unwrap();
        assert_eq!(other.open(id, &sealed), None);
    }

    #[test]
    fn hash_is_keyed() {
        let a = CodeVault::new(&[1u8; KEY_MATERIAL_LEN]).unwrap();
        let b = CodeVault::new(&[2u8; KEY_MATERIAL_LEN]).unwrap();
        assert_eq!(a.hash("1234"), a.hash("1234"));
        assert_ne!(a.hash("1234"), b.hash("1234"));
        assert_eq!(a.hash("1234").len(), 64);
    }
}
