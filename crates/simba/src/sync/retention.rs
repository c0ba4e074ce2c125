//! The retention job's loop: erases buyers' personal data past each seller's retention setting
//! ([`crate::services::data_protection::retention_pass`]). It runs in the process that runs
//! the scheduler, under a lease of its own so that one process erases at a time (two would only
//! find each other's work done: erasure is idempotent) and a long pass never delays the
//! scheduling of syncs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::engine::Engine;
use crate::domain::Timestamp;
use crate::services::data_protection;
use crate::store::leases;

const RETENTION_LEASE: &str = "retention";
/// How often the leader looks for sellers due: a changed setting takes effect within this.
const PASS_INTERVAL: Duration = Duration::from_secs(30);
/// Longer than any pass's batch: the lease is renewed between passes.
const LEASE: Duration = Duration::from_secs(300);

impl Engine {
    /// Runs a retention pass every [`PASS_INTERVAL`] while this process holds the lease.
    pub async fn run_retention(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let now = Timestamp::now();
            let leader = leases::acquire(&self.db, RETENTION_LEASE, &self.owner, now, now + LEASE)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "renewing the retention lease"))
                .unwrap_or(false);
            if leader && let Err(e) = data_protection::retention_pass(&self.db, now).await {
                tracing::warn!(error = %e, "running the retention job");
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() {
                    leases::release(&self.db, RETENTION_LEASE, &self.owner).await.ok();
                    return;
                },
                () = tokio::time::sleep(PASS_INTERVAL) => {}
            }
        }
    }
}
