//! Verification of bol's push notification signatures.
//!
//! bol signs each notification's raw body with RSA PKCS#1 v1.5 over SHA-256 and says which of
//! its published keys did it in a header `signature` (some integrations read `X-BOL-Signature`):
//! `keyId=<id>, algorithm="rsa-sha256", signature=<base64>`. The keys come from
//! `GET /retailer/subscriptions/signature-keys` as base64 DER SubjectPublicKeyInfo. Several keys
//! may be live while bol rotates them, so a key is chosen by its id, and an unknown id is told
//! apart from a bad signature: the caller refetches the keys for the first, never for the second.
//!
//! RustCrypto's `rsa` does the arithmetic; this module only parses the header and picks the key.

use crate::subscriptions::SignatureKey;
use base64::{Engine, engine::general_purpose::STANDARD};
use rsa::{Pkcs1v15Sign, RsaPublicKey, pkcs8::DecodePublicKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The header names bol's signature is read from, lower case (header names match
/// case-insensitively).
pub const SIGNATURE_HEADERS: [&str; 2] = ["signature", "x-bol-signature"];

/// Longest header value read: a 4096-bit signature in base64 is under 700 characters.
const MAX_HEADER_LEN: usize = 2048;
/// Longest key id kept: ids are short; a long one is an attack on memory, not a key.
const MAX_KEY_ID_LEN: usize = 128;

/// Why a notification is not accepted as bol's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header at all.
    #[error("the notification is not signed")]
    Missing,
    /// A header that is not `keyId=..., algorithm="rsa-sha256", signature=<base64>`.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// Signed with a key id not among the known keys: refetch the keys, then try again.
    #[error("signed with an unknown key")]
    UnknownKey(String),
    /// The signature does not match the body under the named key.
    #[error("the signature does not match the body")]
    Forged,
}

/// A parsed signature header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The id of the key that signed.
    pub key_id: String,
    /// The raw signature bytes.
    pub signature: Vec<u8>,
}

impl SignatureHeader {
    /// Parses `keyId=<id>, algorithm="rsa-sha256", signature=<base64>`: parameters in any order,
    /// values quoted or not, names case-insensitive. Any algorithm but rsa-sha256 is refused, as
    /// is a header that names a parameter twice.
    pub fn parse(value: &str) -> Result<SignatureHeader, SignatureError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(SignatureError::Malformed("too long"));
        }
        let (mut key_id, mut algorithm, mut signature) = (None, None, None);
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, raw) = part
                .split_once('=')
                .ok_or(SignatureError::Malformed("a parameter without a value"))?;
            let raw = raw.trim();
            let value = raw
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(raw);
            let slot = match name.trim().to_ascii_lowercase().as_str() {
                "keyid" => &mut key_id,
                "algorithm" => &mut algorithm,
                "signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SignatureError::Malformed("a parameter given twice"));
            }
        }
        let key_id = key_id.ok_or(SignatureError::Malformed("no keyId"))?;
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            return Err(SignatureError::Malformed("keyId"));
        }
        // bol always names the algorithm; a header without one is not bol's.
        match algorithm {
            Some(a) if a.eq_ignore_ascii_case("rsa-sha256") => {}
            Some(_) => return Err(SignatureError::Malformed("algorithm is not rsa-sha256")),
            None => return Err(SignatureError::Malformed("no algorithm")),
        }
        let signature = STANDARD
            .decode(signature.ok_or(SignatureError::Malformed("no signature"))?)
            .map_err(|_| SignatureError::Malformed("signature is not base64"))?;
        if signature.is_empty() {
            return Err(SignatureError::Malformed("empty signature"));
        }
        Ok(SignatureHeader {
            key_id: key_id.to_owned(),
            signature,
        })
    }
}

/// bol's public signature keys by id.
#[derive(Clone, Debug, Default)]
pub struct PublicKeys {
    keys: HashMap<String, RsaPublicKey>,
}

impl PublicKeys {
    /// The RSA keys of a key set. Keys of another type or that do not decode are skipped (and
    /// logged): one bad key must not stop the others from verifying.
    pub fn from_keys(keys: &[SignatureKey]) -> PublicKeys {
        let keys = keys
            .iter()
            .filter_map(|key| {
                if !key.key_type.eq_ignore_ascii_case("RSA") {
                    tracing::warn!(
                        key.id = key.id,
                        key.r#type = key.key_type,
                        "signature key of an unknown type skipped"
                    );
                    return None;
                }
                let decoded = STANDARD
                    .decode(key.public_key.trim())
                    .ok()
                    .and_then(|der| RsaPublicKey::from_public_key_der(&der).ok());
                if decoded.is_none() {
                    tracing::warn!(
                        key.id = key.id,
                        "signature key that does not decode skipped"
                    );
                }
                Some((key.id.clone(), decoded?))
            })
            .collect();
        PublicKeys { keys }
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key of this id is known.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Checks a parsed header against `body`, the raw bytes as received.
    pub fn verify(&self, header: &SignatureHeader, body: &[u8]) -> Result<(), SignatureError> {
        let key = self
            .keys
            .get(&header.key_id)
            .ok_or_else(|| SignatureError::UnknownKey(header.key_id.clone()))?;
        let digest = Sha256::digest(body);
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &header.signature)
            .map_err(|_| SignatureError::Forged)
    }
}

/// The signature header of a request, given a way to read a header by lower-case name.
pub fn find_header<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<SignatureHeader, SignatureError> {
    let value = SIGNATURE_HEADERS
        .iter()
        .find_map(|name| get(name))
        .ok_or(SignatureError::Missing)?;
    SignatureHeader::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::{RsaPrivateKey, pkcs8::EncodePublicKey};

    fn key_pair(bits: usize) -> (RsaPrivateKey, String) {
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, bits).unwrap();
        let der = private.to_public_key().to_public_key_der().unwrap();
        (private, STANDARD.encode(der.as_bytes()))
    }

    fn sign(key: &RsaPrivateKey, body: &[u8]) -> String {
        let digest = Sha256::digest(body);
        STANDARD.encode(key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap())
    }

    fn header(key_id: &str, signature: &str) -> String {
        format!(r#"keyId={key_id}, algorithm="rsa-sha256", signature={signature}"#)
    }

    fn keys(list: &[(&str, &str)]) -> PublicKeys {
        PublicKeys::from_keys(
            &list
                .iter()
                .map(|(id, public_key)| SignatureKey {
                    id: (*id).to_owned(),
                    key_type: "RSA".to_owned(),
                    public_key: (*public_key).to_owned(),
                })
                .collect::<Vec<_>>(),
        )
    }

    const BODY: &[u8] = br#"{"retailerId":1,"timestamp":"2026-12-01T10:00:00Z","event":{"resource":"SHIPMENT","type":"UPDATE_TRANSPORT_EVENT","resourceId":"1389204715"}}"#;

    #[test]
    fn a_signature_by_a_published_key_verifies_and_nothing_else_does() {
        let (bol, bol_public) = key_pair(1024);
        let (forger, forger_public) = key_pair(1024);
        let known = keys(&[("k1", &bol_public), ("k0", &forger_public)]);
        let only_bol = keys(&[("k1", &bol_public)]);

        let good = SignatureHeader::parse(&header("k1", &sign(&bol, BODY))).unwrap();
        assert_eq!(known.verify(&good, BODY), Ok(()));

        // Another key's signature under bol's key id.
        let forged = SignatureHeader::parse(&header("k1", &sign(&forger, BODY))).unwrap();
        assert_eq!(only_bol.verify(&forged, BODY), Err(SignatureError::Forged));

        // bol's signature over another body.
        let mut changed = BODY.to_vec();
        let digit = changed.len() - 3;
        changed[digit] = b'6';
        assert_eq!(known.verify(&good, &changed), Err(SignatureError::Forged));

        // A key id nobody published.
        let stranger = SignatureHeader::parse(&header("k9", &sign(&bol, BODY))).unwrap();
        assert_eq!(
            known.verify(&stranger, BODY),
            Err(SignatureError::UnknownKey("k9".into()))
        );

        // bol's signature under the other key's id is not bol's.
        let swapped = SignatureHeader::parse(&header("k0", &sign(&bol, BODY))).unwrap();
        assert_eq!(known.verify(&swapped, BODY), Err(SignatureError::Forged));
    }

    #[test]
    fn malformed_headers_are_refused_before_any_key_is_used() {
        for (value, reason) in [
            ("", "no keyId"),
            ("keyId=k1", "no algorithm"),
            (r#"keyId=k1, algorithm="rsa-sha256""#, "no signature"),
            (
                r#"keyId=k1, algorithm="hmac-sha256", signature=AAAA"#,
                "algorithm is not rsa-sha256",
            ),
            (
                r#"keyId=k1, algorithm="rsa-sha256", signature=%%%"#,
                "signature is not base64",
            ),
            (
                r#"keyId=k1, keyId=k2, algorithm="rsa-sha256", signature=AAAA"#,
                "a parameter given twice",
            ),
            ("keyId", "a parameter without a value"),
            (
                r#"keyId="", algorithm="rsa-sha256", signature=AAAA"#,
                "keyId",
            ),
        ] {
            assert_eq!(
                SignatureHeader::parse(value),
                Err(SignatureError::Malformed(reason)),
                "{value}"
            );
        }
        let long = format!("keyId=k1, signature={}", "A".repeat(4000));
        assert_eq!(
            SignatureHeader::parse(&long),
            Err(SignatureError::Malformed("too long"))
        );
    }

    #[test]
    fn the_header_reads_in_any_order_quoted_or_not() {
        let parsed =
            SignatureHeader::parse(r#"Signature="AQID", ALGORITHM=RSA-SHA256, keyId="7""#).unwrap();
        assert_eq!(parsed.key_id, "7");
        assert_eq!(parsed.signature, vec![1, 2, 3]);
    }

    #[test]
    fn either_header_name_is_read_and_none_is_missing() {
        let value = r#"keyId=1, algorithm="rsa-sha256", signature=AQID"#;
        let bol_name = find_header(|name| (name == "x-bol-signature").then_some(value));
        assert_eq!(bol_name.unwrap().key_id, "1");
        assert_eq!(find_header(|_| None), Err(SignatureError::Missing));
    }

    #[test]
    fn keys_that_do_not_decode_are_skipped_not_fatal() {
        let (_, public) = key_pair(1024);
        let set = PublicKeys::from_keys(&[
            SignatureKey {
                id: "pkcs8-private-example".into(),
                key_type: "RSA".into(),
                public_key: "MIIEvAIBADANBgkqhkiG9w0BAQEFAASC".into(),
            },
            SignatureKey {
                id: "ec".into(),
                key_type: "EC".into(),
                public_key: public.clone(),
            },
            SignatureKey {
                id: "good".into(),
                key_type: "RSA".into(),
                public_key: public,
            },
        ]);
        assert!(set.contains("good"));
        assert!(!set.contains("ec"));
        assert!(!set.contains("pkcs8-private-example"));
    }
}
