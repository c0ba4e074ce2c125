//! How a queued run reaches a worker, and the one way to queue a run.
//!
//! The engine knows runs only through [`RunQueue`]: the database queue ([`DatabaseQueue`],
//! workers claim runs from `sync_runs`) and RabbitMQ ([`AmqpQueue`]) implement it, and `app`
//! chooses one, so the engine never learns which carries its runs (crates.io's runner is as
//! ignorant of its jobs). [`queue_run`] is what the API, the dashboard, the scheduler, the CLI
//! and the demo call to start a run.
//!
//! [`DatabaseQueue`]: super::DatabaseQueue
//! [`AmqpQueue`]: super::AmqpQueue

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use super::engine::Engine;
use crate::domain::{Mode, Trigger};
use crate::store::StoreError;
use crate::store::shops;
use crate::store::sync_runs::{self, SyncRun};

/// A future a [`RunQueue`] returns: boxed, so that `app` can choose the queue at run time.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries queued runs to the workers that drive them.
pub trait RunQueue: std::fmt::Debug + Send + Sync {
    /// Hands a newly queued run to the workers. It never fails: a run whose hand-over is lost
    /// stays queued in the database, and [`RunQueue::recover`] or a worker's next look finds it.
    fn hand_over<'a>(&'a self, engine: &'a Engine, run_id: i64) -> QueueFuture<'a, ()>;

    /// Drives the runs this queue delivers until `stop` turns true; runs in flight stop at their
    /// next step boundary and release their shop, so another process resumes them at once.
    fn serve(
        self: Arc<Self>,
        engine: Arc<Engine>,
        stop: watch::Receiver<bool>,
    ) -> QueueFuture<'static, ()>;

    /// Hands over again the runs whose hand-over may have been lost; the scheduler calls it
    /// while it leads.
    fn recover<'a>(&'a self, engine: &'a Engine) -> QueueFuture<'a, anyhow::Result<()>>;
}

/// Why a run was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("there is no shop with id {0}")]
    NoShop(i64),
    #[error("run {0} is already queued or running for this shop")]
    Active(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a run of the shop in `mode` (the shop's own default when `None`) and hands it to the
/// workers. Callers check first that the shop is theirs to sync; the shop's default is read
/// even when `mode` is given, so that every caller learns the same way that a shop is gone.
pub async fn queue_run(
    engine: &Engine,
    shop_id: i64,
    mode: Option<Mode>,
    trigger: Trigger,
) -> Result<SyncRun, QueueError> {
    let default = shops::default_mode(&engine.db, shop_id)
        .await?
        .ok_or(QueueError::NoShop(shop_id))?;
    let mode = mode.unwrap_or(default);
    let run = sync_runs::create_queued(&engine.db, shop_id, mode, trigger)
        .await
        .map_err(|e| match e {
            sync_runs::QueueError::Active(active) => QueueError::Active(active),
            sync_runs::QueueError::Store(e) => QueueError::Store(e),
        })?;
    let stretch = engine.settings.push.poll_stretch;
    if stretch > 1 {
        crate::store::push::stretch_next_sync(&engine.db, shop_id, stretch).await?;
    }
    crate::engine_metrics::run_queued(trigger);
    engine.queued(run.id).await;
    tracing::info!(
        run.id = run.id,
        shop.id = shop_id,
        mode = mode.as_str(),
        trigger = trigger.as_str(),
        "sync run queued"
    );
    Ok(run)
}
