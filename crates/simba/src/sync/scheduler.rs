//! The scheduler: queues automatic incremental runs for shops that are due. With many processes
//! exactly one schedules, the holder of a database lease, and another takes over within
//! [`LEADER_LEASE`] of its death.
//!
//! Each shop carries when its next automatic sync is due (`next_sync_at`, indexed): a pass reads
//! the shops due now and nothing else, so it costs what is due, not what exists. 10,000 shops
//! every 15 minutes are about 11 due a second. Due times stay spread: a run sets the next one an
//! interval after it starts, a new shop (or one whose automatic sync is turned on) gets a random
//! point of the next minute, and shops overdue by more than [`OVERDUE_GRACE`] (the scheduler
//! was down, or every process was) move to a point of their next interval fixed by their id
//! instead of all starting at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::engine::Engine;
use super::queue::{QueueError, queue_run};
use crate::domain::Timestamp;
use crate::domain::Trigger;
use crate::store::{leases, sync_runs};

/// The lease that makes one process the scheduler.
const SCHEDULER_LEASE: &str = "scheduler";
/// How long a scheduler's lease lasts without renewal: the longest time without a scheduler
/// after the process holding it dies.
const LEADER_LEASE: Duration = Duration::from_secs(30);
/// How late a due shop may be and still be queued at once: later than this, the scheduler was
/// not running, and the shops it missed are spread over their interval.
const OVERDUE_GRACE: Duration = Duration::from_secs(60);
/// The most runs one pass queues; the rest are queued by the next pass.
const PASS_LIMIT: i64 = 1_000;

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
        let now = Timestamp::now();
        leases::acquire(
            &self.db,
            SCHEDULER_LEASE,
            &self.owner,
            now,
            now + LEADER_LEASE,
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "renewing the scheduler lease"))
        .unwrap_or(false)
    }

    /// Queues one run per due shop; returns how many were queued.
    pub async fn schedule_due(&self) -> anyhow::Result<usize> {
        let now = Timestamp::now();
        let spread = sync_runs::spread_overdue(&self.db, now, now - OVERDUE_GRACE).await?;
        crate::engine_metrics::scheduler_spread(spread);
        if spread > 0 {
            tracing::info!(
                shops = spread,
                "spread overdue automatic syncs over their interval"
            );
        }
        let mut queued = 0;
        let due = sync_runs::due_for_schedule(&self.db, now, PASS_LIMIT).await?;
        // The most overdue first: its lag is the pass's.
        let lag = due.first().map(|first| now.since(first.since));
        crate::engine_metrics::scheduler_pass(due.len(), lag.unwrap_or_default());
        for due in due {
            match queue_run(self, due.shop_id, None, Trigger::Schedule).await {
                Ok(_) => queued += 1,
                // Deleted since, or already syncing: nothing is due.
                Err(QueueError::NoShop(_) | QueueError::Active(_)) => {}
                Err(QueueError::Store(e)) => return Err(e.into()),
            }
        }
        Ok(queued)
    }
}
