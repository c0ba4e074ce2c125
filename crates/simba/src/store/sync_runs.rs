//! Sync runs: one row per sync of a shop, with its live progress and call counters.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn parse(value: &str) -> Result<Mode, String> {
        match value {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            _ => Err("must be full or incremental".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Schedule,
    Cli,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub pages_fetched: i64,
    pub shipments_seen: i64,
    pub details_fetched: i64,
    pub shipments_stored: i64,
    pub details_pending: i64,
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub shop_id: i64,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub progress: Progress,
    pub api_calls: ApiCalls,
    pub error: Option<String>,
}

const COLUMNS: &str = "r.id, r.shop_id, r.mode, r.run_trigger, r.status, r.created_at, \
    r.started_at, r.finished_at, r.pages_fetched, r.shipments_seen, r.details_fetched, \
    r.shipments_stored, r.details_pending, r.calls_list, r.calls_detail, r.calls_token, \
    r.calls_rate_limited, r.calls_errors, r.error";

fn from_row(row: &AnyRow) -> Result<SyncRun, sqlx::Error> {
    Ok(SyncRun {
        id: row.try_get(0)?,
        shop_id: row.try_get(1)?,
        mode: row.try_get(2)?,
        trigger: row.try_get(3)?,
        status: row.try_get(4)?,
        created_at: row.try_get(5)?,
        started_at: row.try_get(6)?,
        finished_at: row.try_get(7)?,
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
pub async fn create_queued(
    db: &Db,
    shop_id: i64,
    mode: Mode,
    trigger: Trigger,
) -> Result<SyncRun, QueueError> {
    let now = super::now();
    let mut tx = db.pool.begin().await.map_err(StoreError::from)?;
    let sql = format!(
        "INSERT INTO sync_runs (shop_id, mode, run_trigger, status, created_at) \
         VALUES (?, ?, ?, 'queued', ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(shop_id)
        .bind(mode.as_str())
        .bind(trigger.as_str())
        .bind(now);
    let id = db.insert(&mut *tx, query).await?;
    let claimed = db
        .query("UPDATE shops SET active_run_id = ? WHERE id = ? AND active_run_id IS NULL")
        .bind(id)
        .bind(shop_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
    if claimed == 0 {
        let active: Option<i64> = db
            .query("SELECT active_run_id FROM shops WHERE id = ?")
            .bind(shop_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .try_get(0)
            .map_err(StoreError::from)?;
        tx.rollback().await.map_err(StoreError::from)?;
        return Err(QueueError::Active(active.unwrap_or_default()));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(SyncRun {
        id,
        shop_id,
        mode: mode.as_str().to_owned(),
        trigger: trigger.as_str().to_owned(),
        status: "queued".to_owned(),
        created_at: now,
        started_at: None,
        finished_at: None,
        progress: Progress::default(),
        api_calls: ApiCalls::default(),
        error: None,
    })
}

/// A page of one of the seller's shops' runs, newest first, and their total.
pub async fn list_for_shop(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<SyncRun>, i64)> {
    let count: i64 = db
        .query(
            "SELECT COUNT(*) FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
             WHERE r.shop_id = ? AND s.user_id = ?",
        )
        .bind(shop_id)
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM sync_runs r JOIN shops s ON s.id = r.shop_id \
         WHERE r.shop_id = ? AND s.user_id = ? ORDER BY r.id DESC LIMIT ? OFFSET ?"
    );
    let rows = db
        .query(&sql)
        .bind(shop_id)
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await?;
    let runs = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok((runs, count))
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
