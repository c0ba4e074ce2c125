//! Sync runs: one row per sync of a shop, with its live progress and call counters.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::{self, Statement, Value, When};
use super::keyset::{self, Keyset, Seek};
use super::param::Param;
use super::{Db, StoreError, StoreResult, maybe_seconds_at, seconds_at};
use crate::domain::webhook::EventType;
use crate::domain::{Mode, RunStatus, Timestamp, Trigger};

/// A run's progress as API.md shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub pages_fetched: i64,
    pub shipments_seen: i64,
    pub details_fetched: i64,
    pub shipments_stored: i64,
    pub details_pending: i64,
}

/// Marketplace calls a run made, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCalls {
    pub list: i64,
    pub detail: i64,
    pub token: i64,
    pub rate_limited: i64,
    pub errors: i64,
}

impl ApiCalls {
    pub fn total(&self) -> i64 {
        self.list + self.detail + self.token
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub shop_id: i64,
    pub mode: Mode,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub progress: Progress,
    pub api_calls: ApiCalls,
    pub error: Option<String>,
}

/// A stored word read back as its enum; a word no version of Simba wrote is a decode error.
fn decode<T>(
    row: &AnyRow,
    index: usize,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, sqlx::Error> {
    let word: String = row.try_get(index)?;
    parse(&word).map_err(|message| sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: message.into(),
    })
}

const COLUMNS: &str = "r.id, r.shop_id, r.mode, r.run_trigger, r.status, r.created_at, \
    r.started_at, r.finished_at, r.pages_fetched, r.shipments_seen, r.details_fetched, \
    r.shipments_stored, r.details_pending, r.calls_list, r.calls_detail, r.calls_token, \
    r.calls_rate_limited, r.calls_errors, r.error";

fn from_row(row: &AnyRow) -> Result<SyncRun, sqlx::Error> {
    Ok(SyncRun {
        id: row.try_get(0)?,
        shop_id: row.try_get(1)?,
        mode: decode(row, 2, Mode::parse)?,
        trigger: decode(row, 3, Trigger::parse)?,
        status: decode(row, 4, RunStatus::parse)?,
        created_at: seconds_at(row, 5)?,
        started_at: maybe_seconds_at(row, 6)?,
        finished_at: maybe_seconds_at(row, 7)?,
        progress: Progress {
            pages_fetched: row.try_get(8)?,
            shipments_seen: row.try_get(9)?,
            details_fetched: row.try_get(10)?,
            shipments_stored: row.try_get(11)?,
            details_pending: row.try_get(12)?,
        },
        api_calls: ApiCalls {
            list: row.try_get(13)?,
            detail: row.try_get(14)?,
            token: row.try_get(15)?,
            rate_limited: row.try_get(16)?,
            errors: row.try_get(17)?,
        },
        error: row.try_get(18)?,
    })
}

/// Why a run could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("run {0} is already queued or running for this shop")]
    Active(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a queued run and marks it as the shop's active run, atomically: of two requests
/// racing for one shop, exactly one wins and the other learns which run is active.
///
/// A batch: on a SQLite file it joins the writer's group. On sqlx's pool it waited for the
/// write lock behind the writer's groups, and the scheduler queues a run for every shop due
/// (about 11 a second at 10,000 shops).
pub async fn create_queued(
    db: &Db,
    shop_id: i64,
    mode: Mode,
    trigger: Trigger,
) -> Result<SyncRun, QueueError> {
    // The shop's active run may end between the refused claim and the read of it: the claim is
    // tried again then.
    for _ in 0..3 {
        let now = Timestamp::now();
        // The shop's row is locked before the run's INSERT, whose foreign key check takes a
        // shared lock on it: two requests that both held that lock and both wanted the row's
        // exclusive one deadlocked on MySQL. A run's id is never 0.
        let claim = Statement::new(
            "UPDATE shops SET active_run_id = 0 WHERE id = ? AND active_run_id IS NULL",
            vec![shop_id.into()],
        )
        .when(When::Required);
        let insert = Statement::new(
            "INSERT INTO sync_runs (shop_id, mode, run_trigger, status, created_at) \
             VALUES (?, ?, ?, 'queued', ?)",
            vec![
                shop_id.into(),
                mode.as_str().into(),
                trigger.as_str().into(),
                now.unix_seconds().into(),
            ],
        )
        .inserting();
        let activate = Statement::new(
            "UPDATE shops SET active_run_id = ?, last_run_at = ?, \
             next_sync_at = CASE WHEN next_sync_at IS NULL THEN NULL \
                                 ELSE ? + sync_interval_minutes * 60 END \
             WHERE id = ?",
            vec![
                Value::InsertedId,
                now.unix_seconds().into(),
                now.unix_seconds().into(),
                shop_id.into(),
            ],
        )
        .when(When::Required);
        if let Some(done) = batch::run(db, vec![claim, insert, activate]).await? {
            let id = done
                .inserted_id
                .ok_or(StoreError::Other(sqlx::Error::RowNotFound))?;
            return Ok(SyncRun {
                id,
                shop_id,
                mode,
                trigger,
                status: RunStatus::Queued,
                created_at: now,
                started_at: None,
                finished_at: None,
                progress: Progress::default(),
                api_calls: ApiCalls::default(),
                error: None,
            });
        }
        let active: Option<i64> = db
            .query("SELECT active_run_id FROM shops WHERE id = ?")
            .bind(shop_id)
            .fetch_one(&db.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StoreError::from)?;
        if let Some(active) = active {
            return Err(QueueError::Active(active));
        }
    }
    Err(QueueError::Active(0))
}

/// A page of one of the seller's shops' runs, newest first, and their total.
pub async fn list_for_shop(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<SyncRun>, i64)> {
    let from = "sync_runs r JOIN shops s ON s.id = r.shop_id WHERE r.shop_id = ? AND s.user_id = ?";
    let scope = [shop_id, user_id];
    keyset::read_numbered_page(db, COLUMNS, from, &scope, ORDER, limit, offset, from_row).await
}

/// The order of a shop's runs, newest first, as keyset columns.
const ORDER: Keyset = Keyset {
    key: None,
    id: "r.id",
    descending: true,
};

/// One keyset page of one of the seller's shops' runs, newest first, and whether more lie
/// beyond it in the seek's direction; another seller's shop has none.
pub async fn walk_for_shop(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    seek: &Seek,
) -> StoreResult<(Vec<SyncRun>, bool)> {
    let select = format!(
        "SELECT {COLUMNS} FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
         WHERE r.shop_id = ? AND s.user_id = ?"
    );
    keyset::read_page(db, &select, &[shop_id, user_id], ORDER, seek, from_row).await
}

/// A page of the runs of all the seller's shops, newest first, and their total.
pub async fn list_for_user(
    db: &Db,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<SyncRun>, i64)> {
    let from = "sync_runs r JOIN shops s ON s.id = r.shop_id WHERE s.user_id = ?";
    keyset::read_numbered_page(
        db,
        COLUMNS,
        from,
        &[user_id],
        ORDER,
        limit,
        offset,
        from_row,
    )
    .await
}

/// For each of the seller's shops whose runs have failed since its last success (or ever,
/// without one): when the first of those failures ended, as `(shop_id, when)`.
pub async fn failing_since(db: &Db, user_id: i64) -> StoreResult<Vec<(i64, Timestamp)>> {
    let rows = db
        .query(
            "SELECT r.shop_id, MIN(r.finished_at) FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
             WHERE s.user_id = ? AND r.status = 'failed' AND r.finished_at IS NOT NULL \
             AND r.id > COALESCE((SELECT MAX(ok.id) FROM sync_runs ok \
                                  WHERE ok.shop_id = r.shop_id AND ok.status = 'succeeded'), 0) \
             GROUP BY r.shop_id",
        )
        .bind(user_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, seconds_at(row, 1)?)))
        .collect()
}

/// A run whoever owns it, for the operator's CLI.
pub async fn get_unscoped(db: &Db, run_id: i64) -> StoreResult<Option<SyncRun>> {
    let sql = format!("SELECT {COLUMNS} FROM sync_runs r WHERE r.id = ?");
    let row = db.query(&sql).bind(run_id).fetch_optional(&db.pool).await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// One of the seller's runs.
pub async fn get(db: &Db, user_id: i64, run_id: i64) -> StoreResult<Option<SyncRun>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
         WHERE r.id = ? AND s.user_id = ?"
    );
    let row = db
        .query(&sql)
        .bind(run_id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// What one engine step adds to a run's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepDelta {
    pub pages_fetched: i64,
    pub shipments_seen: i64,
    pub shipments_stored: i64,
    pub details_fetched: i64,
    pub calls: ApiCalls,
}

/// A run waiting for a driver, and its shop.
#[derive(Debug, Clone)]
pub struct Claimable {
    pub run_id: i64,
    pub shop_id: i64,
}

/// Runs waiting for a driver: queued, or running under a lease that expired (its worker died).
pub async fn claimable(db: &Db, now: Timestamp, limit: i64) -> StoreResult<Vec<Claimable>> {
    let rows = db
        .query(
            "SELECT r.id, r.shop_id FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
             WHERE r.status IN ('queued', 'running') AND (s.lease_until IS NULL OR s.lease_until < ?) \
             ORDER BY r.id LIMIT ?",
        )
        .bind(now.unix_millis())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimable {
                run_id: r.try_get(0)?,
                shop_id: r.try_get(1)?,
            })
        })
        .collect()
}

/// Active runs without a live driver whose message the broker has not confirmed since
/// `dispatched_before`, among runs created before `created_before`: the ones to publish again.
pub async fn undispatched(
    db: &Db,
    now: Timestamp,
    dispatched_before: Timestamp,
    created_before: Timestamp,
) -> StoreResult<Vec<i64>> {
    let rows = db
        .query(
            "SELECT r.id FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
             WHERE r.status IN ('queued', 'running') AND (s.lease_until IS NULL OR s.lease_until < ?) \
             AND (r.dispatched_at_ms IS NULL OR r.dispatched_at_ms < ?) AND r.created_at < ? \
             ORDER BY r.id",
        )
        .bind(now.unix_millis())
        .bind(dispatched_before.unix_millis())
        .bind(created_before.unix_seconds())
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Records that the broker confirmed a message for the run.
pub async fn mark_dispatched(db: &Db, run_id: i64, at: Timestamp) -> StoreResult<()> {
    db.query("UPDATE sync_runs SET dispatched_at_ms = ? WHERE id = ?")
        .bind(at.unix_millis())
        .bind(run_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Who holds the shop's lease, and until when.
pub async fn lease_holder(db: &Db, shop_id: i64) -> StoreResult<Option<(String, Timestamp)>> {
    let row = db
        .query("SELECT lease_owner, lease_until FROM shops WHERE id = ?")
        .bind(shop_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let owner: Option<String> = row.try_get(0)?;
    let until: Option<i64> = row.try_get(1)?;
    Ok(owner.zip(until.map(Timestamp::from_unix_millis)))
}

/// Takes the shop's lease for `owner` until `until` unless another owner holds a live one.
pub async fn lease(
    db: &Db,
    shop_id: i64,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<bool> {
    let take = Statement::new(
        "UPDATE shops SET lease_owner = ?, lease_until = ? \
         WHERE id = ? AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
        vec![
            owner.into(),
            until.unix_millis().into(),
            shop_id.into(),
            now.unix_millis().into(),
            owner.into(),
        ],
    );
    changed_one(db, take).await
}

/// Runs one statement as a batch; whether it changed exactly one row.
async fn changed_one(db: &Db, statement: Statement) -> StoreResult<bool> {
    let done = batch::run(db, vec![statement]).await?;
    Ok(done.is_some_and(|done| done.rows == [1]))
}

/// Extends the leases `owner` still holds on `shop_ids`, a few hundred shops per statement:
/// one process renews all the shops it drives at once, not one write per run. On PostgreSQL
/// and MySQL on the lease keeper's connection `keeper` (opened on first use, and again after a
/// failure); on SQLite in a batch, through the writer: one writer and no row locks to skip
/// there, and an in-memory database is only the pool's.
pub async fn renew_leases(
    db: &Db,
    keeper: &mut Option<sqlx::AnyConnection>,
    shop_ids: &[i64],
    owner: &str,
    until: Timestamp,
) -> StoreResult<()> {
    if db.backend == super::Backend::Sqlite {
        return renew_leases_in_batch(db, shop_ids, owner, until).await;
    }
    let keeper = match keeper {
        Some(conn) => conn,
        None => keeper.insert(db.dedicated_connection().await?),
    };
    renew_leases_on(db, keeper, shop_ids, owner, until).await
}

/// [`renew_leases`] on SQLite.
async fn renew_leases_in_batch(
    db: &Db,
    shop_ids: &[i64],
    owner: &str,
    until: Timestamp,
) -> StoreResult<()> {
    let batch = shop_ids
        .chunks(500)
        .map(|chunk| {
            let sql = format!(
                "UPDATE shops SET lease_until = ? WHERE lease_owner = ? AND id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let values = [until.unix_millis().into(), owner.into()]
                .into_iter()
                .chain(chunk.iter().map(|&id| id.into()))
                .collect();
            Statement::new(sql, values)
        })
        .collect();
    batch::run(db, batch).await?;
    Ok(())
}

/// [`renew_leases`] on PostgreSQL and MySQL, a transaction per chunk on `conn`.
///
/// A shop whose row a step's commit has locked is skipped (`SKIP LOCKED`): that commit renews
/// the lease itself (its fence), and waiting for it would hold every other shop's renewal
/// behind the slowest commit of the chunk. When one seller's many shops commit in turn behind
/// the seller's row (the change feed's lock), that wait was long enough for the leases to
/// lapse.
async fn renew_leases_on(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    shop_ids: &[i64],
    owner: &str,
    until: Timestamp,
) -> StoreResult<()> {
    use sqlx::Connection;
    for chunk in shop_ids.chunks(500) {
        let ids = vec!["?"; chunk.len()].join(", ");
        let mut tx = conn.begin().await?;
        let sql = format!(
            "SELECT id FROM shops WHERE lease_owner = ? AND id IN ({ids}) FOR UPDATE SKIP LOCKED"
        );
        let free: Vec<i64> = bind_ids(db.query(&sql).bind(owner), chunk)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if !free.is_empty() {
            let sql = format!(
                "UPDATE shops SET lease_until = ? WHERE id IN ({})",
                vec!["?"; free.len()].join(", ")
            );
            let query = db.query(&sql).bind(until.unix_millis());
            bind_ids(query, &free).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn bind_ids<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ids: &[i64],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    ids.iter().fold(query, |query, id| query.bind(*id))
}

/// Gives the shop up, if `owner` still holds it.
pub async fn release_lease(db: &Db, shop_id: i64, owner: &str) -> StoreResult<()> {
    let release = Statement::new(
        "UPDATE shops SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
        vec![shop_id.into(), owner.into()],
    );
    batch::run(db, vec![release]).await?;
    Ok(())
}

/// A run as the engine needs it: its mode, status and checkpoint.
#[derive(Debug, Clone)]
pub struct EngineRun {
    pub id: i64,
    pub shop_id: i64,
    pub user_id: i64,
    pub mode: Mode,
    pub status: RunStatus,
    pub checkpoint: Option<String>,
}

/// The run with what the engine needs to drive it, whoever owns it.
pub async fn engine_run(db: &Db, run_id: i64) -> StoreResult<Option<EngineRun>> {
    let row = db
        .query(
            "SELECT r.id, r.shop_id, s.user_id, r.mode, r.status, r.checkpoint \
             FROM sync_runs r JOIN shops s ON s.id = r.shop_id WHERE r.id = ?",
        )
        .bind(run_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok::<_, sqlx::Error>(EngineRun {
            id: r.try_get(0)?,
            shop_id: r.try_get(1)?,
            user_id: r.try_get(2)?,
            mode: decode(&r, 3, Mode::parse)?,
            status: decode(&r, 4, RunStatus::parse)?,
            checkpoint: r.try_get(5)?,
        })
    })
    .transpose()
    .map_err(Into::into)
}

/// Moves a queued run to running; `false` when it was cancelled meanwhile.
pub async fn mark_running(db: &Db, run_id: i64) -> StoreResult<bool> {
    let start = Statement::new(
        "UPDATE sync_runs SET status = 'running', started_at = COALESCE(started_at, ?) \
         WHERE id = ? AND status IN ('queued', 'running')",
        vec![Timestamp::now().unix_seconds().into(), run_id.into()],
    );
    changed_one(db, start).await
}

/// Whether a step's results may be committed.
#[derive(Debug, PartialEq, Eq)]
pub enum StepOutcome {
    Committed,
    /// Another worker holds the shop now; this one must stop without writing.
    LeaseLost,
    /// The run was cancelled; stop.
    Cancelled,
}

/// One step's bookkeeping, written with the data the step produced.
#[derive(Debug)]
pub struct StepRecord<'a> {
    pub run_id: i64,
    pub delta: &'a StepDelta,
    pub details_pending: i64,
    pub checkpoint: &'a str,
}

impl StepRecord<'_> {
    /// [`RECORD_STEP`]'s values.
    pub(super) fn params(&self) -> [Param<'_>; 12] {
        let delta = self.delta;
        let int = |n| Param::Int(Some(n));
        [
            int(delta.pages_fetched),
            int(delta.shipments_seen),
            int(delta.shipments_stored),
            int(delta.details_fetched),
            int(self.details_pending),
            int(delta.calls.list),
            int(delta.calls.detail),
            int(delta.calls.token),
            int(delta.calls.rate_limited),
            int(delta.calls.errors),
            Param::Text(Some(self.checkpoint)),
            int(self.run_id),
        ]
    }
}

/// The first statement of a step's transaction: extends the lease of its owner,
/// `lease_until, lease_until, shop_id, owner`, so the shop row is locked before the step's
/// inserts (MySQL takes a shared lock on it for their foreign-key checks; upgrading that lock
/// later would deadlock with a concurrent lease renewal). It never shortens the lease: the
/// lease keeper may have renewed it further meanwhile. No row updated: the lease was lost, and
/// the step must roll back.
pub(super) const FENCE: &str = "UPDATE shops SET lease_until = \
    CASE WHEN lease_until > ? THEN lease_until ELSE ? END WHERE id = ? AND lease_owner = ?";

/// Adds a step's counters and sets its pending count and checkpoint: the [`StepDelta`]'s
/// fields in order, `details_pending`, `checkpoint`, `run_id`.
/// No row updated: the run was cancelled, and the step must roll back.
pub(super) const RECORD_STEP: &str = "UPDATE sync_runs SET pages_fetched = pages_fetched + ?, \
    shipments_seen = shipments_seen + ?, shipments_stored = shipments_stored + ?, \
    details_fetched = details_fetched + ?, details_pending = ?, \
    calls_list = calls_list + ?, calls_detail = calls_detail + ?, \
    calls_token = calls_token + ?, calls_rate_limited = calls_rate_limited + ?, \
    calls_errors = calls_errors + ?, checkpoint = ? WHERE id = ? AND status = 'running'";

/// Ends a run: its final status and error, the calls of an unfinished step, and the shop's
/// active run cleared. A driver passes itself as `owner`: the run then ends only while it still
/// holds the shop, and the shop's lease is released with it. Without an owner (a cancel from
/// the API) the lease stays with the driver, which stops after its step in flight. Returns
/// whether the run was still queued or running.
pub async fn finish(
    db: &Db,
    run_id: i64,
    shop_id: i64,
    owner: Option<&str>,
    end: &RunFinish<'_>,
) -> StoreResult<bool> {
    let now = Timestamp::now();
    let mut batch = Vec::with_capacity(5);
    if let Some(owner) = owner {
        batch.push(
            Statement::new(
                "UPDATE shops SET lease_owner = NULL, lease_until = NULL \
                 WHERE id = ? AND lease_owner = ?",
                vec![shop_id.into(), owner.into()],
            )
            .when(When::Required),
        );
    }
    // The shop row before the run row, in every transaction that writes both (a step does the
    // same), so that a cancel and a step never wait for each other in opposite orders.
    let synced_at = (end.status == RunStatus::Succeeded).then_some(now.unix_seconds());
    batch.push(Statement::new(
        "UPDATE shops SET active_run_id = NULL, last_synced_at = COALESCE(?, last_synced_at) \
         WHERE id = ? AND active_run_id = ?",
        vec![synced_at.into(), shop_id.into(), run_id.into()],
    ));
    // A client that sees the run ended must see all it stored: see `shipments::Versions`.
    // After the shop row and before the run row, in a step's order.
    batch.push(Statement::new(
        super::shipments::sql::BUMP_SHOP_EPOCH,
        vec![shop_id.into()],
    ));
    let calls = end.calls;
    batch.push(Statement::new(
        "UPDATE sync_runs SET status = ?, error = ?, finished_at = ?, \
         calls_list = calls_list + ?, calls_detail = calls_detail + ?, calls_token = calls_token + ?, \
         calls_rate_limited = calls_rate_limited + ?, calls_errors = calls_errors + ? \
         WHERE id = ? AND status IN ('queued', 'running')",
        vec![
            end.status.as_str().into(),
            end.error.into(),
            now.unix_seconds().into(),
            calls.list.into(),
            calls.detail.into(),
            calls.token.into(),
            calls.rate_limited.into(),
            calls.errors.into(),
            run_id.into(),
        ],
    ));
    let ended_at = batch.len() - 1;
    let event = match end.status {
        RunStatus::Succeeded => Some(EventType::SyncRunSucceeded),
        RunStatus::Failed => Some(EventType::SyncRunFailed),
        _ => None,
    };
    if let Some(event) = event {
        batch.push(super::webhooks::record(shop_id, event, run_id).when(When::AfterChange));
    }
    let Some(done) = batch::run(db, batch).await? else {
        return Ok(false);
    };
    let ended = done.rows[ended_at] == 1;
    if ended {
        crate::engine_metrics::run_ended(end.status);
    }
    Ok(ended)
}

/// How a run ends: `succeeded`, `failed` or `cancelled`, the error sentence, and the calls
/// made since the last committed step.
#[derive(Debug)]
pub struct RunFinish<'a> {
    pub status: RunStatus,
    pub error: Option<&'a str>,
    pub calls: &'a ApiCalls,
}

/// What cancelling a run did.
#[derive(Debug)]
pub enum CancelOutcome {
    NotFound,
    /// The run had already ended with this status.
    AlreadyEnded(RunStatus),
    Cancelled(Box<SyncRun>),
}

/// Cancels one of the seller's runs if it is still queued or running.
pub async fn cancel(db: &Db, user_id: i64, run_id: i64) -> StoreResult<CancelOutcome> {
    let Some(run) = get(db, user_id, run_id).await? else {
        return Ok(CancelOutcome::NotFound);
    };
    let end = RunFinish {
        status: RunStatus::Cancelled,
        error: None,
        calls: &ApiCalls::default(),
    };
    if !finish(db, run.id, run.shop_id, None, &end).await? {
        return Ok(CancelOutcome::AlreadyEnded(run.status));
    }
    Ok(match get(db, user_id, run_id).await? {
        Some(run) => CancelOutcome::Cancelled(Box::new(run)),
        None => CancelOutcome::NotFound,
    })
}

/// Marks that the marketplace refused the shop's credentials, so the scheduler leaves it be.
/// The `shop.credentials_rejected` webhook event is recorded with the mark.
pub async fn mark_credentials_rejected(db: &Db, shop_id: i64) -> StoreResult<()> {
    let mark = Statement::new(
        "UPDATE shops SET credentials_rejected_at = ?, next_sync_at = NULL WHERE id = ?",
        vec![Timestamp::now().unix_seconds().into(), shop_id.into()],
    );
    let event = EventType::ShopCredentialsRejected;
    batch::run(
        db,
        vec![mark, super::webhooks::record(shop_id, event, shop_id)],
    )
    .await?;
    Ok(())
}

/// A shop whose automatic sync is due, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub shop_id: i64,
    pub since: Timestamp,
}

/// Up to `limit` shops whose automatic sync is due at `now`, the most overdue first: enabled,
/// idle, credentials not refused (those have no `next_sync_at`). Reads the due end of
/// `shops_next_sync` only, however many shops there are.
pub async fn due_for_schedule(db: &Db, now: Timestamp, limit: i64) -> StoreResult<Vec<Due>> {
    let rows = db
        .query(
            "SELECT id, next_sync_at FROM shops WHERE next_sync_at <= ? \
             AND active_run_id IS NULL ORDER BY next_sync_at LIMIT ?",
        )
        .bind(now.unix_seconds())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                shop_id: r.try_get(0)?,
                since: seconds_at(r, 1)?,
            })
        })
        .collect()
}

/// Moves every shop due before `overdue_before` to a point of its next interval from `now`,
/// fixed by its id: shops that fell due together while no scheduler ran (a restart, an outage)
/// start spread over their interval instead of at once. Returns how many moved.
pub async fn spread_overdue(
    db: &Db,
    now: Timestamp,
    overdue_before: Timestamp,
) -> StoreResult<u64> {
    // Knuth's multiplicative hash: consecutive ids land far apart in the interval.
    let spread = Statement::new(
        "UPDATE shops SET next_sync_at = ? + (id * 2654435761) % (sync_interval_minutes * 60) \
         WHERE next_sync_at < ?",
        vec![
            now.unix_seconds().into(),
            overdue_before.unix_seconds().into(),
        ],
    );
    let done = batch::run(db, vec![spread]).await?;
    Ok(done.map_or(0, |done| done.rows[0]))
}
