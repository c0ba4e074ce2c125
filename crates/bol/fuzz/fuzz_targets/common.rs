//! Properties every body parser must keep, whatever the target.
#![allow(
    dead_code,
    reason = "each target compiles this module and uses only part of it"
)]

use bol::parse::Malformed;

/// The longest error message allowed: messages reach logs and the seller's run page. Stated
/// here rather than taken from the library, so that a loosened cap fails the fuzzing.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Checks what holds of any answer to `body` and returns the parsed value, if any.
pub fn checked<T>(body: &[u8], parsed: Result<T, Malformed>) -> Option<T> {
    if std::str::from_utf8(body).is_err() {
        assert!(parsed.is_err(), "a body that is not UTF-8 was accepted");
    }
    match parsed {
        Ok(value) => Some(value),
        Err(e) => {
            assert_one_short_line(&e.to_string());
            None
        }
    }
}

/// A message is one line of at most [`MAX_MESSAGE_CHARS`] characters.
pub fn assert_one_short_line(message: &str) {
    let chars = message.chars().count();
    assert!(chars <= MAX_MESSAGE_CHARS, "message of {chars} characters");
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}

/// A shipment id becomes a URL path segment and a `VARCHAR(64)` key: 1 to 64 ASCII letters,
/// digits, `-` or `_`, so never empty, `.`, `..` or anything holding a `/`.
pub fn assert_usable_shipment_id(id: &str) {
    assert!(
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "unusable shipment id {id:?}"
    );
}
