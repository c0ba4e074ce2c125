//! A sync step's writes in one transaction: the lease fence first, then the shipments the step
//! fetched, the run's counters and checkpoint, and the account's rate budgets. Each backend
//! family commits it its own way ([`super::hot`]): on a SQLite file in a savepoint of the
//! writer's group transaction, elsewhere in a transaction on the pool.

use std::sync::Arc;
use std::time::Duration;

use super::hot::HotPath;
use super::shipments::NewShipment;
use super::sync_runs::{StepDelta, StepOutcome, StepRecord};
use super::{Db, StoreResult};
use crate::domain::Timestamp;

/// What a step fetched. Shared, not copied, by each attempt to commit it: thousands of steps
/// queued for the writer hold their rows once.
#[derive(Clone, Debug)]
pub enum StepData {
    /// A list page's shipments: inserted where the shop does not have them yet.
    List(Arc<[NewShipment]>),
    /// Details, and the shipments whose detail the marketplace no longer has.
    Details {
        details: Arc<[NewShipment]>,
        gone: Arc<[String]>,
    },
}

/// A step to commit under `owner`'s lease on the shop.
#[derive(Debug)]
pub struct StepWrite {
    pub run_id: i64,
    pub shop_id: i64,
    pub user_id: i64,
    pub owner: String,
    /// How long the lease lasts from the commit's fence: a commit that waited for a connection
    /// or was tried again must not set a deadline counted from before its wait, which could
    /// end the lease at once and let another worker repeat the run's calls.
    pub lease: Duration,
    pub data: StepData,
    /// The step's counters; a list page's `shipments_stored` is filled in here.
    pub delta: StepDelta,
    /// The checkpoint after the step when every listed shipment was new, and when some were
    /// stored already (the next checkpoint depends on nothing else the transaction learns, so
    /// both are computed before it).
    pub checkpoint_all_new: String,
    pub checkpoint_reached_known: String,
    pub client_id: String,
    pub budgets: Vec<bol::BucketSnapshot>,
}

/// How a step's commit ended.
#[derive(Debug, PartialEq, Eq)]
pub struct StepCommit {
    pub outcome: StepOutcome,
    /// A list page of which some shipments were stored already.
    pub reached_known: bool,
}

impl StepWrite {
    /// The lease's end if the fence runs now: read at the fence, not when the step was built.
    pub(super) fn lease_until(&self) -> Timestamp {
        Timestamp::now() + self.lease
    }

    /// The run's bookkeeping of this step, with the counters and pending count it produced.
    pub(super) fn record<'a>(
        &'a self,
        delta: &'a StepDelta,
        pending: i64,
        reached_known: bool,
    ) -> StepRecord<'a> {
        StepRecord {
            run_id: self.run_id,
            delta,
            details_pending: pending,
            checkpoint: if reached_known {
                &self.checkpoint_reached_known
            } else {
                &self.checkpoint_all_new
            },
        }
    }
}

/// The step's answer when its lease was lost: nothing was written.
pub(super) const LEASE_LOST: StepCommit = StepCommit {
    outcome: StepOutcome::LeaseLost,
    reached_known: false,
};

/// Commits the step's data, counters, checkpoint and rate budgets if `owner` still holds the
/// shop and the run is still running; otherwise writes nothing.
pub async fn commit(db: &Db, step: StepWrite) -> StoreResult<StepCommit> {
    db.family.commit_step(db, step).await
}
