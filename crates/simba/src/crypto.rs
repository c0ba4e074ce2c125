//! Encryption at rest of shop secrets and cached marketplace tokens: XChaCha20-Poly1305 with a
//! key derived from `SECRET_KEY` by HKDF-SHA256. Random 192-bit nonces make reuse negligible.
//! Fingerprints (HMAC-SHA256 under a second derived key) name a value in an index without
//! storing it (a shop secret keying its marketplace tokens, a client address the login throttle
//! counts): equal values have equal fingerprints, and without `SECRET_KEY` a fingerprint cannot
//! be tested against guesses, as a plain hash of an IPv4 address or an e-mail address could.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;
/// Version byte in front of every ciphertext, so a future key or algorithm change can coexist.
const FORMAT_V1: u8 = 1;

/// Why a stored secret could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the stored value is not a Simba ciphertext")]
    Malformed,
    #[error("the stored value does not decrypt with this SECRET_KEY")]
    WrongKey,
}

/// Encrypts and decrypts small secrets. `purpose` binds a ciphertext to its use, so a value
/// copied from one column to another does not decrypt.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    fingerprint_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    pub fn new(secret_key: &SecretString) -> Cipher {
        let hkdf = Hkdf::<Sha256>::new(Some(b"simba"), secret_key.expose_secret().as_bytes());
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        hkdf.expand(b"simba encryption at rest v1", key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut fingerprint_key = zeroize::Zeroizing::new([0u8; 32]);
        hkdf.expand(b"simba fingerprint v1", fingerprint_key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Cipher {
            aead: XChaCha20Poly1305::new(key.as_ref().into()),
            fingerprint_key,
        }
    }

    /// A keyed fingerprint of `parts` for `purpose`: 64 hex digits. Each part is
    /// length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
    pub fn fingerprint(&self, purpose: &str, parts: &[&str]) -> String {
        self.mac(purpose, parts)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The HMAC-SHA256 of `parts` for `purpose`, as bytes: what [`Cipher::fingerprint`] spells
    /// in hex, for tokens that carry their own signature (the API's cursors).
    pub fn mac(&self, purpose: &str, parts: &[&str]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.fingerprint_key.as_ref())
            .expect("HMAC takes a key of any length");
        for part in std::iter::once(&purpose).chain(parts) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    pub fn encrypt(&self, purpose: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: purpose.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        STANDARD_NO_PAD.encode(out)
    }

    pub fn decrypt(&self, purpose: &str, stored: &str) -> Result<SecretString, CryptoError> {
        let bytes = STANDARD_NO_PAD
            .decode(stored)
            .map_err(|_| CryptoError::Malformed)?;
        let (version, rest) = bytes.split_first().ok_or(CryptoError::Malformed)?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let plaintext = self
            .aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::WrongKey)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Malformed)
    }
}

/// A new random `SECRET_KEY`: 256 bits, base64.
pub fn generate_secret_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    STANDARD_NO_PAD.encode(key)
}

/// Compares secrets in time independent of where they differ and of their lengths: their
/// digests are compared, every byte of them.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(key: &str) -> Cipher {
        Cipher::new(&SecretString::from(key.to_owned()))
    }

    #[test]
    fn a_secret_round_trips() {
        let c = cipher("k".repeat(32).as_str());
        let stored = c.encrypt("shop", "s3cret-ü");
        assert_eq!(
            c.decrypt("shop", &stored).unwrap().expose_secret(),
            "s3cret-ü"
        );
    }

    #[test]
    fn the_same_secret_encrypts_differently_each_time() {
        let c = cipher("k".repeat(32).as_str());
        assert_ne!(c.encrypt("shop", "x"), c.encrypt("shop", "x"));
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let c = cipher("k".repeat(32).as_str());
        let stored = c.encrypt("shop", "plain-secret-value");
        assert!(!stored.contains("plain-secret-value"));
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = cipher("a".repeat(32).as_str()).encrypt("shop", "x");
        assert!(matches!(
            cipher("b".repeat(32).as_str()).decrypt("shop", &stored),
            Err(CryptoError::WrongKey)
        ));
    }

    #[test]
    fn a_value_for_one_purpose_does_not_decrypt_for_another() {
        let c = cipher("k".repeat(32).as_str());
        let stored = c.encrypt("shop", "x");
        assert!(matches!(
            c.decrypt("token", &stored),
            Err(CryptoError::WrongKey)
        ));
    }

    #[test]
    fn garbage_is_reported_as_malformed() {
        let c = cipher("k".repeat(32).as_str());
        assert!(matches!(
            c.decrypt("shop", "!!"),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            c.decrypt("shop", "AQ"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn fingerprints_depend_on_the_key_the_purpose_and_every_part() {
        let c = cipher("k".repeat(32).as_str());
        let base = c.fingerprint("token", &["client", "secret"]);
        assert_eq!(base.len(), 64);
        assert_eq!(base, c.fingerprint("token", &["client", "secret"]));
        for other in [
            c.fingerprint("token", &["client", "secreT"]),
            c.fingerprint("token", &["clien", "tsecret"]),
            c.fingerprint("other", &["client", "secret"]),
            cipher("l".repeat(32).as_str()).fingerprint("token", &["client", "secret"]),
        ] {
            assert_ne!(base, other);
        }
        assert!(!base.contains("secret"));
    }

    #[test]
    fn secrets_are_the_same_only_when_equal() {
        assert!(same_secret("token-1", "token-1"));
        assert!(!same_secret("token-1", "token-2"));
        assert!(!same_secret("token-1", "token-1x"));
        assert!(!same_secret("", "token-1"));
    }

    #[test]
    fn generated_keys_are_long_and_distinct() {
        let (a, b) = (generate_secret_key(), generate_secret_key());
        assert!(a.len() >= 43);
        assert_ne!(a, b);
    }
}
