//! `POST /token` bodies: a token accepted can be sent and lives a sane time.
#![no_main]

mod common;

use bol::{CachedToken, ExposeSecret};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use time::OffsetDateTime;

/// The lifetimes the issue allows: a shorter one renews on every call (bol blocks clients that
/// fetch tokens too often), a longer one outlives any real token.
const LIFETIMES: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);

fuzz_target!(|body: &[u8]| {
    let Some(issued) = common::checked(body, bol::parse::token(body)) else {
        return;
    };
    let secret = issued.access_token.expose_secret();
    assert!(!secret.is_empty(), "empty access token accepted");
    // RFC 6750's token characters are all visible ASCII; anything else breaks the header.
    assert!(
        secret.bytes().all(|b| b.is_ascii_graphic()),
        "access token with characters a header cannot carry"
    );
    assert!(
        http::HeaderValue::from_str(&format!("Bearer {secret}")).is_ok(),
        "access token that cannot be sent"
    );
    assert!(
        LIFETIMES.contains(&issued.lifetime),
        "lifetime {:?}",
        issued.lifetime
    );
    // What the client does with it next must not overflow.
    let now = OffsetDateTime::now_utc();
    let cached = CachedToken::new(issued.access_token, now, issued.lifetime);
    assert!(cached.expires_at > now && cached.renew_at() <= cached.expires_at);
});
