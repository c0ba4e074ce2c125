//! The queue without a broker: workers claim queued runs from `sync_runs` itself, so "run
//! created" and "job enqueued" are one commit. A run queued in this process wakes its workers
//! at once; the other processes find it when they next look.

use std::sync::Arc;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::engine::Engine;
use super::queue::{QueueFuture, RunQueue};
use crate::domain::Timestamp;
use crate::store::sync_runs;

/// Runs claimed from the database.
#[derive(Debug, Default)]
pub struct DatabaseQueue {
    wake: Notify,
}

impl RunQueue for DatabaseQueue {
    fn hand_over<'a>(&'a self, _engine: &'a Engine, _run_id: i64) -> QueueFuture<'a, ()> {
        self.wake.notify_waiters();
        Box::pin(std::future::ready(()))
    }

    fn serve(
        self: Arc<Self>,
        engine: Arc<Engine>,
        stop: watch::Receiver<bool>,
    ) -> QueueFuture<'static, ()> {
        Box::pin(async move { self.claim(engine, stop).await })
    }

    /// Nothing to recover: a queued run is claimable for as long as it stays queued.
    fn recover<'a>(&'a self, _engine: &'a Engine) -> QueueFuture<'a, anyhow::Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl DatabaseQueue {
    /// Claims and drives runs until `stop` turns true, looking whenever woken and every poll
    /// interval.
    async fn claim(&self, engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(engine.settings.max_concurrent_runs));
        let mut tasks = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(e) = claim_and_spawn(&engine, &permits, &mut tasks, &stop).await {
                tracing::warn!(error = format!("{e:#}"), "looking for queued sync runs");
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = stop.changed() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(engine.settings.poll_interval) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Starts a drive for each claimable run, as far as the free permits go.
async fn claim_and_spawn(
    engine: &Arc<Engine>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let free = permits.available_permits();
    if free == 0 {
        return Ok(());
    }
    let candidates = sync_runs::claimable(&engine.db, Timestamp::now(), (free * 2) as i64).await?;
    for candidate in candidates {
        if engine.drives(candidate.shop_id) {
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            break;
        };
        let engine = engine.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match engine.drive(candidate.run_id, stop, None).await {
                Ok(end) => tracing::debug!(run.id = candidate.run_id, ?end, "drive ended"),
                Err(e) => tracing::error!(
                    run.id = candidate.run_id,
                    error = format!("{e:#}"),
                    "sync run drive failed"
                ),
            }
        });
    }
    Ok(())
}
