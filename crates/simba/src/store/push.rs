//! Push notifications: each shop's marketplace subscription as Simba keeps it, and the
//! notifications received and not yet acted on.
//!
//! A subscription row outlives its shop until the marketplace's subscription is deleted: the
//! shop's deletion copies the credentials into the row (`wanted` = 0) in its own transaction, so
//! the subscription manager can still make the call after the shop is gone.

use std::collections::BTreeSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::{self, Statement};
use super::{Db, StoreError, StoreResult, maybe_seconds_at};
use crate::domain::{FulfilmentMethod, Timestamp};

/// Where a shop's subscription stands, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// Being created at the marketplace (or created again after it vanished).
    Pending,
    /// The marketplace delivers notifications.
    Active,
    /// The marketplace disabled it after failed deliveries; the manager enables it again.
    Disabled,
}

impl PushStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Pending => "pending",
            PushStatus::Active => "active",
            PushStatus::Disabled => "disabled",
        }
    }

    fn parse(value: &str) -> PushStatus {
        match value {
            "active" => PushStatus::Active,
            "disabled" => PushStatus::Disabled,
            _ => PushStatus::Pending,
        }
    }
}

/// A shop's subscription row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub shop_id: i64,
    pub user_id: i64,
    /// The opaque last segment of the URL the marketplace posts to.
    pub hook_token: String,
    /// False once push was turned off or the shop deleted: the marketplace's subscription is
    /// to be deleted, then the row.
    pub wanted: bool,
    pub status: PushStatus,
    pub subscription_id: Option<String>,
    /// The marketplace process creating or changing the subscription, while it runs.
    pub process_id: Option<String>,
    /// The credentials, copied here when the shop is deleted.
    pub credentials: Option<(String, String)>,
    pub disabled_at: Option<Timestamp>,
    pub last_event_at: Option<Timestamp>,
    pub events_received: i64,
    pub events_rejected: i64,
    pub reconciled_at: Option<Timestamp>,
    /// The last reconciliation's findings, when one ran.
    pub reconciliation: Option<Reconciliation>,
}

/// What a reconciliation found: the marketplace's 3-month window against the local copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reconciliation {
    /// FBR, then FBB.
    pub methods: Vec<MethodCensus>,
    /// The counts differed beyond what the first pages explain: a full sync was queued to
    /// find and fetch the rest.
    pub full_sync_queued: bool,
}

/// One fulfilment method's side of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MethodCensus {
    pub method: FulfilmentMethod,
    /// Shipments the marketplace lists.
    pub marketplace: i64,
    /// Shipments stored locally over the same dates.
    pub local: i64,
    /// Shipments of the marketplace's first page not stored locally: queued for a detail
    /// fetch.
    pub missing_on_first_page: i64,
}

impl Reconciliation {
    /// Shipments the marketplace lists beyond the local copy, the first pages' included.
    pub fn gaps(&self) -> i64 {
        self.methods.iter().map(MethodCensus::gap).sum()
    }
}

impl MethodCensus {
    /// Shipments of this method the marketplace lists beyond the local copy.
    pub fn gap(&self) -> i64 {
        (self.marketplace - self.local).max(self.missing_on_first_page)
    }
}

const COLUMNS: &str = "shop_id, user_id, hook_token, wanted, status, subscription_id, \
    process_id, client_id, client_secret_enc, disabled_at, last_event_at, events_received, \
    events_rejected, reconciled_at, reconciliation";

fn from_row(row: &AnyRow) -> Result<Subscription, sqlx::Error> {
    let client_id: Option<String> = row.try_get("client_id")?;
    let secret: Option<String> = row.try_get("client_secret_enc")?;
    Ok(Subscription {
        shop_id: row.try_get("shop_id")?,
        user_id: row.try_get("user_id")?,
        hook_token: row.try_get("hook_token")?,
        wanted: row.try_get::<i64, _>("wanted")? != 0,
        status: PushStatus::parse(&row.try_get::<String, _>("status")?),
        subscription_id: row.try_get("subscription_id")?,
        process_id: row.try_get("process_id")?,
        credentials: client_id.zip(secret),
        disabled_at: maybe_seconds_at(row, "disabled_at")?,
        last_event_at: maybe_seconds_at(row, "last_event_at")?,
        events_received: row.try_get("events_received")?,
        events_rejected: row.try_get("events_rejected")?,
        reconciled_at: maybe_seconds_at(row, "reconciled_at")?,
        // A finding this version cannot read is shown as none, not as an error.
        reconciliation: row
            .try_get::<Option<String>, _>("reconciliation")?
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

/// The subscription row of the seller's shop.
pub async fn for_shop(db: &Db, user_id: i64, shop_id: i64) -> StoreResult<Option<Subscription>> {
    let sql = format!("SELECT {COLUMNS} FROM push_subscriptions WHERE shop_id = ? AND user_id = ?");
    let row = db
        .query(&sql)
        .bind(shop_id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// The subscription rows of the seller's shops that want push, by shop.
pub async fn for_user(db: &Db, user_id: i64) -> StoreResult<Vec<Subscription>> {
    let sql = format!("SELECT {COLUMNS} FROM push_subscriptions WHERE user_id = ? AND wanted = 1");
    let rows = db.query(&sql).bind(user_id).fetch_all(&db.pool).await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// The subscription a hook URL names. The token is the only key: the marketplace's signature,
/// not the token, says who sent the notification.
pub async fn by_token(db: &Db, token: &str) -> StoreResult<Option<Subscription>> {
    let sql = format!("SELECT {COLUMNS} FROM push_subscriptions WHERE hook_token = ?");
    let row = db.query(&sql).bind(token).fetch_optional(&db.pool).await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// Turns push on or off for a shop: on creates the row (a new hook token) or wants it again;
/// off leaves the row for the manager to delete the subscription. Either way the manager looks
/// at it on its next pass.
pub async fn set_wanted(db: &Db, user_id: i64, shop_id: i64, wanted: bool) -> StoreResult<()> {
    let updated = db
        .query(
            "UPDATE push_subscriptions SET wanted = ?, next_check_at = 0 \
             WHERE shop_id = ? AND user_id = ?",
        )
        .bind(i16::from(wanted))
        .bind(shop_id)
        .bind(user_id)
        .execute(&db.pool)
        .await?
        .rows_affected();
    if updated > 0 || !wanted {
        return Ok(());
    }
    let token: String = rand::random::<[u8; 24]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let inserted = db
        .query(
            "INSERT INTO push_subscriptions (shop_id, user_id, hook_token, wanted, status, \
             next_check_at) VALUES (?, ?, ?, 1, 'pending', 0)",
        )
        .bind(shop_id)
        .bind(user_id)
        .bind(token)
        .execute(&db.pool)
        .await;
    match inserted.map_err(StoreError::from) {
        // Two writes at once: the other one made the row.
        Ok(_) | Err(StoreError::UniqueViolation) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Rows the manager should look at now, at most `limit`.
pub async fn due(db: &Db, now: Timestamp, limit: i64) -> StoreResult<Vec<Subscription>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM push_subscriptions WHERE next_check_at <= ? \
         ORDER BY next_check_at LIMIT ?"
    );
    let rows = db
        .query(&sql)
        .bind(now.unix_seconds())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// What the manager learnt about a subscription.
#[derive(Debug, Clone)]
pub struct Progress {
    pub status: PushStatus,
    pub subscription_id: Option<String>,
    pub process_id: Option<String>,
    pub disabled_at: Option<Timestamp>,
    pub next_check_at: Timestamp,
}

/// Records the manager's progress. It is kept even when push was turned off or on meanwhile
/// (`wanted` changed), since a subscription bol made must be known to be deleted; the next pass
/// then comes at once and starts from the new wish. A subscription active for the first time
/// gets its first reconciliation at `first_reconciliation`.
pub async fn record(
    db: &Db,
    row: &Subscription,
    progress: &Progress,
    first_reconciliation: Timestamp,
) -> StoreResult<()> {
    db.query(
        "UPDATE push_subscriptions SET status = ?, subscription_id = ?, process_id = ?, \
         disabled_at = ?, next_check_at = CASE WHEN wanted = ? THEN ? ELSE 0 END, \
         reconcile_at = CASE WHEN reconcile_at IS NULL AND ? = 1 THEN ? ELSE reconcile_at END \
         WHERE shop_id = ?",
    )
    .bind(progress.status.as_str())
    .bind(progress.subscription_id.as_deref())
    .bind(progress.process_id.as_deref())
    .bind(progress.disabled_at.map(Timestamp::unix_seconds))
    .bind(i16::from(row.wanted))
    .bind(progress.next_check_at.unix_seconds())
    .bind(i16::from(progress.status == PushStatus::Active))
    .bind(first_reconciliation.unix_seconds())
    .bind(row.shop_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Forgets a subscription deleted at the marketplace, unless push was wanted again meanwhile.
pub async fn remove(db: &Db, shop_id: i64) -> StoreResult<()> {
    db.query("DELETE FROM push_subscriptions WHERE shop_id = ? AND wanted = 0")
        .bind(shop_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Counts a notification refused (bad signature, stale, malformed).
pub async fn count_rejected(db: &Db, shop_id: i64) -> StoreResult<()> {
    db.query(
        "UPDATE push_subscriptions SET events_rejected = events_rejected + 1 WHERE shop_id = ?",
    )
    .bind(shop_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records a verified notification about `shipment_id`; false when the same body was recorded
/// before (a redelivery).
pub async fn record_event(
    db: &Db,
    shop_id: i64,
    shipment_id: &str,
    digest: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let inserted = db
        .query(
            "INSERT INTO push_events (shop_id, shipment_id, digest, received_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(shop_id)
        .bind(shipment_id)
        .bind(digest)
        .bind(now.unix_seconds())
        .execute(&mut *tx)
        .await;
    match inserted.map_err(StoreError::from) {
        Ok(_) => {}
        Err(StoreError::UniqueViolation) => return Ok(false),
        Err(e) => return Err(e),
    }
    db.query(
        "UPDATE push_subscriptions SET events_received = events_received + 1, \
         last_event_at = ? WHERE shop_id = ?",
    )
    .bind(now.unix_seconds())
    .bind(shop_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Shops with notifications waiting and no run driving them, at most `limit`: `(shop, seller)`.
pub async fn shops_with_events(db: &Db, limit: i64) -> StoreResult<Vec<(i64, i64)>> {
    let rows = db
        .query(
            "SELECT DISTINCT e.shop_id, s.user_id FROM push_events e \
             JOIN shops s ON s.id = e.shop_id WHERE e.done = 0 AND s.active_run_id IS NULL \
             LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// A shop's waiting notifications, oldest first: `(id, shipment id)`.
pub async fn events(db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<(i64, String)>> {
    let rows = db
        .query(
            "SELECT id, shipment_id FROM push_events WHERE shop_id = ? AND done = 0 \
             ORDER BY id LIMIT ?",
        )
        .bind(shop_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Marks the notifications acted on: the shop's, up to `last_id`.
pub async fn mark_done(db: &Db, shop_id: i64, last_id: i64) -> StoreResult<()> {
    db.query("UPDATE push_events SET done = 1 WHERE shop_id = ? AND id <= ? AND done = 0")
        .bind(shop_id)
        .bind(last_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Marks the notifications of `shipment_ids` acted on, up to `last_id`: after a pass that
/// could not fetch every shipment, the others are not fetched again.
pub async fn mark_shipments_done(
    db: &Db,
    shop_id: i64,
    last_id: i64,
    shipment_ids: &[String],
) -> StoreResult<()> {
    for chunk in shipment_ids.chunks(500) {
        let sql = format!(
            "UPDATE push_events SET done = 1 WHERE shop_id = ? AND id <= ? AND done = 0 \
             AND shipment_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = db.query(&sql).bind(shop_id).bind(last_id);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        query.execute(&db.pool).await?;
    }
    Ok(())
}

/// Those of the shop's `shipment_ids` whose buyer's personal data was erased: their detail is
/// never fetched again, as no sync fetches it either.
pub async fn erased_among(
    db: &Db,
    shop_id: i64,
    shipment_ids: &[String],
) -> StoreResult<BTreeSet<String>> {
    stored_among(
        db,
        shop_id,
        shipment_ids,
        "AND personal_data_erased_at IS NOT NULL",
    )
    .await
}

/// Those of the shop's `shipment_ids` it has stored that also meet `condition` (SQL starting
/// with `AND`, or empty).
async fn stored_among(
    db: &Db,
    shop_id: i64,
    shipment_ids: &[String],
    condition: &str,
) -> StoreResult<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for chunk in shipment_ids.chunks(500) {
        let sql = format!(
            "SELECT shipment_id FROM shipments WHERE shop_id = ? {condition} \
             AND shipment_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = db.query(&sql).bind(shop_id);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&db.pool).await? {
            found.insert(row.try_get(0)?);
        }
    }
    Ok(found)
}

/// Drops notifications acted on before `before`: a redelivery after that is fetched again,
/// which costs one call and changes nothing.
pub async fn purge(db: &Db, before: Timestamp) -> StoreResult<u64> {
    Ok(db
        .query("DELETE FROM push_events WHERE done = 1 AND received_at < ?")
        .bind(before.unix_seconds())
        .execute(&db.pool)
        .await?
        .rows_affected())
}

/// Puts a shop's next automatic sync `stretch` intervals after the run just queued, while its
/// push subscription is active: notifications bring new shipments, and polling is the safety
/// net for what they miss.
pub async fn stretch_next_sync(db: &Db, shop_id: i64, stretch: u32) -> StoreResult<()> {
    let stretch_next = Statement::new(
        "UPDATE shops SET next_sync_at = last_run_at + sync_interval_minutes * 60 * ? \
         WHERE id = ? AND next_sync_at IS NOT NULL AND last_run_at IS NOT NULL AND EXISTS \
         (SELECT 1 FROM push_subscriptions p WHERE p.shop_id = ? AND p.wanted = 1 \
          AND p.status = 'active')",
        vec![i64::from(stretch).into(), shop_id.into(), shop_id.into()],
    );
    batch::run(db, vec![stretch_next]).await?;
    Ok(())
}

/// Claims up to `limit` active subscriptions whose reconciliation is due and whose shop no run
/// drives and whose credentials were not refused: `(shop, seller)`. Each claim holds the
/// reconciliation for `hold` only: [`record_reconciliation`] moves it to its next turn, so one
/// that failed or was stopped is tried again after `hold`.
pub async fn claim_reconciliations(
    db: &Db,
    now: Timestamp,
    hold: std::time::Duration,
    limit: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    let rows = db
        .query(
            "SELECT p.shop_id, p.user_id, p.reconcile_at FROM push_subscriptions p \
             JOIN shops s ON s.id = p.shop_id WHERE p.wanted = 1 AND p.status = 'active' \
             AND p.reconcile_at <= ? AND s.active_run_id IS NULL \
             AND s.credentials_rejected_at IS NULL ORDER BY p.reconcile_at LIMIT ?",
        )
        .bind(now.unix_seconds())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let (shop_id, user_id, due): (i64, i64, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        // Another process may have claimed it since the read: only one update finds `due`.
        let won = db
            .query(
                "UPDATE push_subscriptions SET reconcile_at = ? \
                 WHERE shop_id = ? AND reconcile_at = ?",
            )
            .bind((now + hold).unix_seconds())
            .bind(shop_id)
            .bind(due)
            .execute(&db.pool)
            .await?
            .rows_affected()
            == 1;
        if won {
            claimed.push((shop_id, user_id));
        }
    }
    Ok(claimed)
}

/// Records a reconciliation's findings and when the next one is due.
pub async fn record_reconciliation(
    db: &Db,
    shop_id: i64,
    at: Timestamp,
    found: &Reconciliation,
    next: Timestamp,
) -> StoreResult<()> {
    let json = serde_json::to_string(found).expect("findings serialize");
    db.query(
        "UPDATE push_subscriptions SET reconciled_at = ?, reconciliation = ?, reconcile_at = ? \
         WHERE shop_id = ?",
    )
    .bind(at.unix_seconds())
    .bind(json)
    .bind(next.unix_seconds())
    .bind(shop_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The shop's shipments of `method` shipped at or after `since`, as stored.
pub async fn local_count(
    db: &Db,
    shop_id: i64,
    method: FulfilmentMethod,
    since: Timestamp,
) -> StoreResult<i64> {
    let row = db
        .query(
            "SELECT COUNT(*) FROM shipments \
             WHERE shop_id = ? AND fulfilment_method = ? AND shipment_date >= ?",
        )
        .bind(shop_id)
        .bind(method.as_str())
        .bind(since.unix_seconds())
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// Those of `shipment_ids` the shop has not stored.
pub async fn missing_among(
    db: &Db,
    shop_id: i64,
    shipment_ids: &[String],
) -> StoreResult<Vec<String>> {
    let stored = stored_among(db, shop_id, shipment_ids, "").await?;
    Ok(shipment_ids
        .iter()
        .filter(|id| !stored.contains(*id))
        .cloned()
        .collect())
}

/// Queues `shipment_ids` for the notification worker as if bol had notified them, without
/// counting them as notifications received: a reconciliation's repairs take the worker's path
/// (one detail fetch each, never of an erased shipment, never beside a run).
pub async fn queue_repairs(
    db: &Db,
    shop_id: i64,
    shipment_ids: &[String],
    now: Timestamp,
) -> StoreResult<()> {
    use sha2::{Digest, Sha256};
    for id in shipment_ids {
        let digest: String = Sha256::digest(format!("reconcile:{id}:{}", now.unix_millis()))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let inserted = db
            .query(
                "INSERT INTO push_events (shop_id, shipment_id, digest, received_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(shop_id)
            .bind(id.as_str())
            .bind(digest)
            .bind(now.unix_seconds())
            .execute(&db.pool)
            .await;
        match inserted.map_err(StoreError::from) {
            Ok(_) | Err(StoreError::UniqueViolation) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
