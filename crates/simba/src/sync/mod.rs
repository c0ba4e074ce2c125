//! The sync engine: drives sync runs against the marketplace within its limits, and the
//! scheduler that queues automatic incremental runs.
//!
//! The run row is the job: `POST /shops/{id}/sync` inserts it (queued) and marks it as the
//! shop's active run in one transaction, and workers claim runs from `sync_runs` under a
//! per-shop lease. A separate queue (apalis) would hold a second copy of what the run row
//! already records — status, checkpoint, owner — and need its own transaction coordination on
//! three databases; one table keeps "run created" and "job enqueued" a single commit and lets a
//! restarted process resume from the checkpoint.

mod amqp;
mod convert;
mod engine;
pub mod foreground;

pub use amqp::AmqpQueue;
pub use engine::{Engine, EngineSettings, RunEnd};
