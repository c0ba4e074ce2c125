//! Integration tests of the client against the in-process bol sandbox; one binary so the suite
//! links once.

mod connections;
mod crawl;
mod faults;
mod helpers;
mod limits;
mod metrics;
mod push;
mod tokens;
mod window_edges;
