//! Error bodies (problem JSON, OAuth errors, HTML, anything): one short line, never a panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    common::assert_one_short_line(&bol::parse::error_message(body));
});
