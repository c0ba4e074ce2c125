//! `POST /token`: client-credentials tokens that look like bol's JWTs and expire on time.
//!
//! Tokens are self-validating (the signature part carries account, generation and expiry plus a
//! keyed hash), so checking one needs no shared table and no lock on the request path.

use crate::{
    clock, gateway, http,
    prng::mix,
    state::{IssuedToken, Shared, lock},
    stats::Group,
};
use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use base64::{
    Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD as B64,
};
use std::sync::{Arc, atomic::Ordering};

/// What a presented token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid(usize),
    /// Not issued by this sandbox, or garbled.
    Invalid,
    /// Issued before the last revocation.
    Revoked(usize),
    Expired {
        account_no: usize,
        expired_ms: u64,
        now_ms: u64,
        skew_ms: u64,
    },
}

const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}

fn mac(key: u64, account: u32, generation: u32, expires_ms: u64, nonce: u64) -> u64 {
    mix(mix(mix(key ^ (u64::from(account) << 32 | u64::from(generation))) ^ expires_ms) ^ nonce)
}

/// Real milliseconds a token lives: whole seconds, so `expires_in` is exact.
fn lifetime_ms(shared: &Shared) -> u64 {
    let real = shared
        .clock
        .real(std::time::Duration::from_secs(shared.token_lifetime));
    (real.as_secs_f64().ceil() as u64).max(1) * 1000
}

/// bol allows one second of clock skew; it shrinks with the time scale like everything else.
fn skew_ms(shared: &Shared) -> u64 {
    shared
        .clock
        .real(std::time::Duration::from_secs(1))
        .as_millis() as u64
}

pub(crate) fn verify(shared: &Shared, token: &str) -> Verdict {
    let Some((_, signature)) = token.rsplit_once('.') else {
        return Verdict::Invalid;
    };
    let mut raw = [0u8; 32];
    if !matches!(B64.decode_slice(signature, &mut raw), Ok(32)) {
        return Verdict::Invalid;
    }
    let word = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().unwrap_or_default());
    let (head, expires_ms, nonce, tag) = (word(0), word(8), word(16), word(24));
    let (account, generation) = ((head >> 32) as u32, head as u32);
    if tag != mac(shared.mac_key, account, generation, expires_ms, nonce)
        || account as usize >= shared.accounts.len()
    {
        return Verdict::Invalid;
    }
    let account_no = account as usize;
    if generation != shared.token_generation.load(Ordering::Acquire) {
        return Verdict::Revoked(account_no);
    }
    let now_ms = clock::wall_ms();
    let skew_ms = skew_ms(shared);
    if now_ms > expires_ms + skew_ms {
        return Verdict::Expired {
            account_no,
            expired_ms: expires_ms,
            now_ms,
            skew_ms,
        };
    }
    Verdict::Valid(account_no)
}

/// Mints a token for an account: (token, expires_in seconds, bookkeeping record).
fn issue(shared: &Shared, account_no: usize, n: u64) -> (String, u64, IssuedToken) {
    let account = &shared.accounts[account_no];
    let generation = shared.token_generation.load(Ordering::Acquire);
    let issued_ms = clock::wall_ms();
    let lifetime = lifetime_ms(shared);
    let expires_ms = issued_ms + lifetime;
    let nonce = mix(shared.seed ^ n ^ issued_ms);
    let claims = serde_json::json!({
        "iss": "https://login.bol.com",
        "sub": account.client_id,
        "azp": account.client_id,
        "clientname": format!("Simba sandbox {}", account.client_id),
        "scopes": "RETAILER",
        "iat": issued_ms / 1000,
        "exp": expires_ms / 1000,
        "aid": format!("CLNTC:{:016x} SLR:{}", mix(shared.seed ^ account_no as u64), 1_000_000 + account_no),
        "jti": format!("{nonce:016x}"),
    });
    let mut raw = [0u8; 32];
    raw[..8].copy_from_slice(&((account_no as u64) << 32 | u64::from(generation)).to_le_bytes());
    raw[8..16].copy_from_slice(&expires_ms.to_le_bytes());
    raw[16..24].copy_from_slice(&nonce.to_le_bytes());
    let tag = mac(
        shared.mac_key,
        account_no as u32,
        generation,
        expires_ms,
        nonce,
    );
    raw[24..].copy_from_slice(&tag.to_le_bytes());
    let token = format!(
        "{HEADER}.{}.{}",
        B64.encode(claims.to_string()),
        B64.encode(raw)
    );
    (
        token,
        lifetime / 1000,
        IssuedToken {
            issued_ms,
            expires_ms,
            generation,
        },
    )
}

/// True if `previous` was still valid with more than half its life left at `now_ms`.
fn is_wasted(previous: Option<IssuedToken>, generation: u32, now_ms: u64) -> bool {
    previous.is_some_and(|p| {
        p.generation == generation
            && p.expires_ms > now_ms
            && (p.expires_ms - now_ms) * 2 > p.expires_ms - p.issued_ms
    })
}

fn has_grant(text: &str) -> bool {
    text.split('&')
        .any(|pair| pair == "grant_type=client_credentials")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    http::response(status, http::JSON_UTF8, body)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &*shared;
    let arrival = gateway::arrive(shared).await;
    let bad_client = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        )
    };
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return gateway::unattributed(shared, arrival.n, bad_client());
    };
    let Some(account_no) = shared.account_by_client(&client_id) else {
        return gateway::unattributed(shared, arrival.n, bad_client());
    };
    if shared.accounts[account_no].secret != secret {
        gateway::count_unauthorized(shared, account_no, Group::Token);
        let mut r = bad_client();
        http::add_request_ids(r.headers_mut(), arrival.n, shared.seed);
        return r;
    }
    let mut call = match gateway::admit(shared, arrival, account_no, Group::Token) {
        Ok(call) => call,
        Err(r) => return r,
    };
    let in_body = std::str::from_utf8(&body).is_ok_and(has_grant);
    if !(in_body || query.as_deref().is_some_and(has_grant)) {
        let r = oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=client_credentials is supported",
        );
        return call.other(r);
    }
    let (token, expires_in, record) = issue(shared, account_no, call.n);
    let body = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "RETAILER",
    });
    let (response, clean) = call.ok(http::JSON_UTF8, body.to_string().into_bytes());
    if clean {
        let previous = lock(&call.account.last_token).replace(record);
        if is_wasted(previous, record.generation, record.issued_ms) {
            call.wasted();
        }
    }
    response
}

/// Invalidates every token issued so far.
pub(crate) fn revoke_all(shared: &Shared) {
    shared.token_generation.fetch_add(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SandboxConfig;

    #[test]
    fn issued_tokens_verify_and_tampered_ones_do_not() {
        let (shared, _events) = Shared::new(&SandboxConfig::default().with_accounts(2, 1, 1));
        let (token, expires_in, _) = issue(&shared, 1, 7);
        assert_eq!(expires_in, 299);
        assert_eq!(verify(&shared, &token), Verdict::Valid(1));
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(&shared, std::str::from_utf8(&tampered).unwrap()),
            Verdict::Invalid
        );
        assert_eq!(verify(&shared, "nonsense"), Verdict::Invalid);
        revoke_all(&shared);
        assert_eq!(verify(&shared, &token), Verdict::Revoked(1));
    }

    #[test]
    fn a_token_is_wasted_while_the_previous_has_more_than_half_its_life() {
        let p = Some(IssuedToken {
            issued_ms: 0,
            expires_ms: 1000,
            generation: 0,
        });
        assert!(is_wasted(p, 0, 499));
        assert!(!is_wasted(p, 0, 500));
        assert!(!is_wasted(p, 1, 100));
        assert!(!is_wasted(None, 0, 100));
    }

    #[test]
    fn grant_type_is_found_among_other_parameters() {
        assert!(has_grant("scope=x&grant_type=client_credentials"));
        assert!(!has_grant("grant_type=password"));
    }
}
