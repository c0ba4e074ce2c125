//! The sync engine: drives sync runs against the marketplace within its limits, and the
//! scheduler that queues automatic incremental runs.
//!
//! The run row is the job's truth: `POST /shops/{id}/sync` inserts it (queued) and marks it as
//! the shop's active run in one transaction; a driver holds the shop's lease in the database and
//! commits every step with its checkpoint, so a run resumes wherever it continues. How runs
//! reach workers is the queue's business: without a broker, workers claim runs from
//! `sync_runs` itself (one commit makes "run created" and "job enqueued" the same fact); with
//! RabbitMQ ([`amqp`]), a message per run carries it to a worker with redelivery, and the
//! scheduler re-publishes runs whose message never got confirmed. A job library (apalis) would
//! keep a second copy of status, checkpoint and owner that needs its own transaction
//! coordination on three databases.

mod amqp;
mod convert;
mod engine;
pub mod foreground;

pub use amqp::AmqpQueue;
pub use engine::{Engine, EngineSettings, RunEnd};
