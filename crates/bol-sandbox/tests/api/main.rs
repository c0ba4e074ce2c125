//! Integration tests: a real sandbox on port 0, driven over HTTP with reqwest.

mod auth;
mod conformance;
mod faults;
mod helpers;
mod limits;
mod pagination;
mod push;
mod stats;
