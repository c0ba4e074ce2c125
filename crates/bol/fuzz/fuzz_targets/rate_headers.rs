//! Rate-limit headers: any values give waits of at most an hour, and a plain number of
//! seconds within that is honoured exactly.
//!
//! The input is header lines, `name: value`, separated by `\n`; lines that are not a valid
//! header are skipped, so the fuzzer can vary names, case, repeats and raw value bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

/// The longest wait the issue allows: an epoch or `u64::MAX` must not sleep a worker for years.
const MAX_WAIT: Duration = Duration::from_secs(3600);

fuzz_target!(|input: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in input.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    // A fixed clock (2025-11-21) keeps every run reproducible.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_740_000);
    let parsed = bol::parse::rate_headers(&headers, now);
    for (name, wait) in [
        ("x-ratelimit-reset", parsed.reset()),
        ("retry-after", parsed.retry_after()),
    ] {
        let Some(wait) = wait else { continue };
        assert!(wait <= MAX_WAIT, "{name} gives a wait of {wait:?}");
        let plain = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s <= MAX_WAIT.as_secs());
        if let Some(secs) = plain {
            assert_eq!(wait, Duration::from_secs(secs), "{name}: {secs}");
        }
    }
});
