//! API tokens: 256 random bits shown once, stored only as their SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new token key, as given to the seller.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored: a fast hash is enough because the key itself has 256 bits of entropy.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// The key of `Token <key>` or `Bearer <key>`; the scheme is case-insensitive.
pub fn key_from_header(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_differ() {
        let a = generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, generate());
    }

    #[test]
    fn the_hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn both_schemes_are_accepted() {
        assert_eq!(key_from_header("Token abc"), Some("abc"));
        assert_eq!(key_from_header("bearer abc"), Some("abc"));
        assert_eq!(key_from_header("Basic abc"), None);
        assert_eq!(key_from_header("Token "), None);
        assert_eq!(key_from_header("Token"), None);
    }
}
