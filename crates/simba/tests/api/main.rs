//! Integration tests: each spawns the real app on a random port with a fresh database, on
//! SQLite always and on PostgreSQL / MariaDB when their URLs are set.

mod helpers;

mod accounts;
mod changes;
mod conditional;
mod cursor;
mod dashboard;
mod data_protection;
mod errors;
mod http_limits;
mod isolation;
mod login_throttle;
mod marketplace_tokens;
mod metrics;
mod ops;
mod push;
mod secrets;
mod security_headers;
mod sessions;
mod shipments;
mod shops;
mod spans;
mod startup;
mod sync;
mod sync_runs;
mod webhooks;
