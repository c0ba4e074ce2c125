//! A sync step's writes in one transaction: the lease fence first, then the shipments the step
//! fetched, the run's counters and checkpoint; the account's rate budgets with them. On a
//! SQLite file the whole step is one call to [`super::writer`] (in a savepoint of a transaction
//! that steps of other shops may share); elsewhere it runs on the pool.

use super::shipments::{self, NewShipment};
use super::sync_runs::{self, StepDelta, StepOutcome, StepRecord};
use super::{Db, StoreResult, marketplace};

/// What a step fetched.
#[derive(Debug)]
pub enum StepData {
    /// A list page's shipments: inserted where the shop does not have them yet.
    List(Vec<NewShipment>),
    /// Details, and the shipments whose detail the marketplace no longer has.
    Details {
        details: Vec<NewShipment>,
        gone: Vec<String>,
    },
}

/// A step to commit under `owner`'s lease on the shop.
#[derive(Debug)]
pub struct StepWrite {
    pub run_id: i64,
    pub shop_id: i64,
    pub user_id: i64,
    pub owner: String,
    pub lease_until_ms: i64,
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
    fn record<'a>(
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

const LEASE_LOST: StepCommit = StepCommit {
    outcome: StepOutcome::LeaseLost,
    reached_known: false,
};

/// Commits the step's data, counters and checkpoint if `owner` still holds the shop and the
/// run is still running; saves the rate budgets after a commit (a failure to save them is
/// logged, not returned: the step's data matters more).
pub async fn commit(db: &Db, step: StepWrite) -> StoreResult<StepCommit> {
    if let Some(writer) = &db.writer {
        return writer.write(move |conn| commit_sqlite(conn, &step)).await;
    }
    let mut tx = db.pool.begin().await?;
    if !sync_runs::fence_in(db, &mut tx, step.shop_id, &step.owner, step.lease_until_ms).await? {
        tx.rollback().await?;
        return Ok(LEASE_LOST);
    }
    let mut delta = step.delta.clone();
    let reached_known = match &step.data {
        StepData::List(rows) => {
            let inserted =
                shipments::insert_new_in(db, &mut tx, step.user_id, step.shop_id, rows).await?;
            delta.shipments_stored = inserted as i64;
            (inserted as usize) < rows.len()
        }
        StepData::Details { details, gone } => {
            for id in gone {
                shipments::mark_detail_gone_in(db, &mut tx, step.user_id, step.shop_id, id).await?;
            }
            shipments::store_details_in(db, &mut tx, step.user_id, step.shop_id, details).await?;
            false
        }
    };
    let pending = shipments::count_pending_in(db, &mut tx, step.shop_id).await?;
    let record = step.record(&delta, pending, reached_known);
    let outcome = sync_runs::record_step_in(db, &mut tx, &record).await?;
    if outcome == StepOutcome::Committed {
        tx.commit().await?;
        if let Err(e) = marketplace::save_budgets(db, &step.client_id, &step.budgets).await {
            tracing::warn!(error = %e, "saving the rate budgets");
        }
    } else {
        tx.rollback().await?;
    }
    Ok(StepCommit {
        outcome,
        reached_known,
    })
}

/// [`commit`] in the writer's transaction: the same statements, the budgets inside it (one
/// commit instead of two; a statement that fails there leaves the rest of the transaction
/// intact). Also returns whether to keep the step's changes.
fn commit_sqlite(
    tx: &rusqlite::Connection,
    step: &StepWrite,
) -> rusqlite::Result<(StepCommit, bool)> {
    if !sync_runs::fence_sqlite(tx, step.shop_id, &step.owner, step.lease_until_ms)? {
        return Ok((LEASE_LOST, false));
    }
    let mut delta = step.delta.clone();
    let reached_known = match &step.data {
        StepData::List(rows) => {
            let inserted = shipments::insert_new_sqlite(tx, step.user_id, step.shop_id, rows)?;
            delta.shipments_stored = inserted as i64;
            (inserted as usize) < rows.len()
        }
        StepData::Details { details, gone } => {
            for id in gone {
                shipments::mark_detail_gone_sqlite(tx, step.user_id, step.shop_id, id)?;
            }
            shipments::store_details_sqlite(tx, step.user_id, step.shop_id, details)?;
            false
        }
    };
    let pending = shipments::count_pending_sqlite(tx, step.shop_id)?;
    let outcome = sync_runs::record_step_sqlite(tx, &step.record(&delta, pending, reached_known))?;
    let keep = outcome == StepOutcome::Committed;
    if keep && let Err(e) = marketplace::save_budgets_sqlite(tx, &step.client_id, &step.budgets) {
        tracing::warn!(error = %e, "saving the rate budgets");
    }
    let commit = StepCommit {
        outcome,
        reached_known,
    };
    Ok((commit, keep))
}
