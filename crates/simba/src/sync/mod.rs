//! The sync engine: drives sync runs against the marketplace within its limits, and the
//! scheduler that queues automatic incremental runs.
//!
//! The run row is the job's truth: [`queue_run`] inserts it (queued) and marks it as the shop's
//! active run in one transaction; a driver holds the shop's lease in the database and commits
//! every step with its checkpoint, so a run resumes wherever it continues. How runs reach
//! workers is the business of a [`RunQueue`]: without a broker, workers claim runs from
//! `sync_runs` itself ([`DatabaseQueue`]: one commit makes "run created" and "job enqueued" the
//! same fact); with RabbitMQ ([`AmqpQueue`]), a message per run carries it to a worker with
//! redelivery, and the scheduler re-publishes runs whose message never got confirmed. A job
//! library (apalis) would keep a second copy of status, checkpoint and owner that needs its own
//! transaction coordination on three databases.

mod amqp;
mod checkpoint;
mod claim;
mod convert;
mod drive;
mod engine;
pub mod foreground;
mod push;
mod queue;
mod reconcile;
mod retention;
mod scheduler;
mod step;

pub use amqp::AmqpQueue;
pub use claim::DatabaseQueue;
pub use engine::{Engine, RunEnd};
pub use push::PushKeys;
pub use queue::{QueueError, QueueFuture, RunQueue, queue_run};
