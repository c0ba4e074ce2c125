//! The scheduler: queues automatic incremental runs for shops that are due. With many processes
//! exactly one schedules, the holder of a database lease, and another takes over within
//! [`LEADER_LEASE`] of its death.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::engine::{Engine, now_ms};
use super::queue::{QueueError, queue_run};
use crate::domain::Trigger;
use crate::store::{leases, sync_runs};

/// The lease that makes one process the scheduler.
const SCHEDULER_LEASE: &str = "scheduler";
/// How long a scheduler's lease lasts without renewal: the longest time without a scheduler
/// after the process holding it dies.
const LEADER_LEASE: Duration = Duration::from_secs(30);

impl Engine {
    /// Queues automatic runs for shops that are due, every schedule interval, while this
    /// process holds the scheduler lease; the leader also has the queue recover runs whose
    /// hand-over was lost.
    pub async fn run_scheduler(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_schedule: Option<tokio::time::Instant> = None;
        let tick = self.settings.schedule_interval.min(LEADER_LEASE / 3);
        loop {
            let leader = self.lead().await;
            crate::engine_metrics::scheduler_leader(leader);
            let due =
                last_schedule.is_none_or(|at| at.elapsed() >= self.settings.schedule_interval);
            if leader && due {
                last_schedule = Some(tokio::time::Instant::now());
                match self.schedule_due().await {
                    Ok(0) => {}
                    Ok(queued) => tracing::info!(runs = queued, "scheduled automatic syncs"),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "scheduling automatic syncs")
                    }
                }
            }
            if leader && let Err(e) = self.queue().recover(&self).await {
                tracing::warn!(error = format!("{e:#}"), "publishing runs again");
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() {
                    leases::release(&self.db, SCHEDULER_LEASE, &self.owner).await.ok();
                    return;
                },
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Takes or renews the scheduler lease; whether this process leads.
    async fn lead(&self) -> bool {
        let now = now_ms();
        leases::acquire(
            &self.db,
            SCHEDULER_LEASE,
            &self.owner,
            now,
            now + LEADER_LEASE.as_millis() as i64,
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "renewing the scheduler lease"))
        .unwrap_or(false)
    }

    /// Queues one run per due shop; returns how many were queued.
    pub async fn schedule_due(&self) -> anyhow::Result<usize> {
        let mut queued = 0;
        let now = crate::store::now();
        let due = sync_runs::due_for_schedule(&self.db, now).await?;
        self.report_due(&due, now).await;
        for shop_id in due {
            match queue_run(self, shop_id, None, Trigger::Schedule).await {
                Ok(_) => queued += 1,
                // Deleted since, or already syncing: nothing is due.
                Err(QueueError::NoShop(_) | QueueError::Active(_)) => {}
                Err(QueueError::Store(e)) => return Err(e.into()),
            }
        }
        Ok(queued)
    }
}

impl Engine {
    /// Sets the scheduler's gauges for a pass that found `due` shops at `now`. Measuring the
    /// lag never stands in the way of scheduling: when it fails, the lag keeps its last value.
    async fn report_due(&self, due: &[i64], now: i64) {
        let lag = sync_runs::earliest_due(&self.db, due)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "measuring the scheduler's lag"))
            .ok()
            .map(|earliest| earliest.map_or(0, |at| now - at));
        crate::engine_metrics::scheduler_pass(due.len(), lag);
    }
}
