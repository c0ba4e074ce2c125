//! Standard Webhooks signatures: `whsec_<base64 key>` secrets, and
//! `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` over each delivery, so that a
//! receiver can verify Simba's deliveries with any of the specification's libraries. Written
//! with `hmac` and `sha2` (already in the tree for other uses) rather than the
//! `standardwebhooks` crate, whose verifier side Simba does not need; the specification's
//! published test vector below keeps the two in step.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Random bytes in a new secret: the specification asks for 24 to 64.
const KEY_BYTES: usize = 32;

/// A fresh endpoint secret.
pub fn new_secret() -> SecretString {
    let key: [u8; KEY_BYTES] = rand::random();
    SecretString::from(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The HMAC key in a `whsec_` secret; `None` when it is not one.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    (!key.is_empty()).then_some(key)
}

/// The `webhook-signature` header's value for one delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    /// The test vector of the specification's reference libraries
    /// (github.com/standard-webhooks/standard-webhooks, `libraries/*` tests).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_random_whsec_keys_of_32_bytes() {
        let secret = new_secret();
        assert!(secret.expose_secret().starts_with("whsec_"));
        assert_eq!(decode_secret(secret.expose_secret()).unwrap().len(), 32);
        assert_ne!(secret.expose_secret(), new_secret().expose_secret());
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(decode_secret("whsec_!!!").is_none());
    }
}
