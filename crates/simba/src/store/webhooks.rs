//! Outbound webhooks: a seller's endpoints (the signing secret encrypted, as it must be
//! recovered to sign), the outbox a change writes in its own transaction, the events rendered
//! from it, and one delivery per event and subscribed endpoint with its attempts.
//!
//! Deliveries are claimed with a conditional `UPDATE` that stamps a claim token and pushes
//! `next_attempt_at_ms` past the attempt's longest duration: it works the same on SQLite,
//! PostgreSQL and MySQL, two processes never both claim a row (the second's `UPDATE` finds it
//! no longer due), and a process that dies mid-attempt leaves the delivery due again once
//! that lease has passed.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::Statement;
use super::keyset::{self, Keyset, Seek};
use super::{Backend, Db, StoreResult, maybe_seconds_at, seconds_at};
use crate::crypto::Cipher;
use crate::domain::Timestamp;
use crate::domain::webhook::{DeliveryStatus, EventSet, EventType, WebhookUrl};

/// The associated data that binds a ciphertext to the `secret_enc` column.
pub const SECRET_PURPOSE: &str = "webhook_endpoints.secret";

/// An endpoint as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    pub description: String,
    pub events: EventSet,
    pub active: bool,
    /// When the current run of failed attempts began; `None` after a success.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Every writable field, parsed.
#[derive(Debug, Clone)]
pub struct EndpointFields {
    pub url: WebhookUrl,
    pub events: EventSet,
    pub description: String,
    pub active: bool,
}

const ENDPOINT_COLUMNS: &str =
    "id, user_id, url, description, events, active, failing_since, created_at, updated_at";

fn decode_error(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint, sqlx::Error> {
    let events: String = row.try_get("events")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: EventSet::from_stored(&events).map_err(decode_error)?,
        active: row.try_get::<i64, _>("active")? != 0,
        failing_since: maybe_seconds_at(row, "failing_since")?,
        created_at: seconds_at(row, "created_at")?,
        updated_at: seconds_at(row, "updated_at")?,
    })
}

/// How many endpoints the seller has.
pub async fn count_endpoints(db: &Db, user_id: i64) -> StoreResult<i64> {
    Ok(db
        .query("SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ?")
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

/// Adds an endpoint with its (already generated) secret.
pub async fn create_endpoint(
    db: &Db,
    cipher: &Cipher,
    user_id: i64,
    fields: &EndpointFields,
    secret: &str,
) -> StoreResult<Endpoint> {
    let now = Timestamp::now();
    let sql = format!(
        "INSERT INTO webhook_endpoints (user_id, url, description, events, secret_enc, active, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(user_id)
        .bind(fields.url.as_str())
        .bind(fields.description.as_str())
        .bind(fields.events.stored())
        .bind(cipher.encrypt(SECRET_PURPOSE, secret))
        .bind(i16::from(fields.active))
        .bind(now.unix_seconds())
        .bind(now.unix_seconds());
    let id = db.insert(&db.pool, query).await?;
    Ok(Endpoint {
        id,
        user_id,
        url: fields.url.as_str().to_owned(),
        description: fields.description.clone(),
        events: fields.events.clone(),
        active: fields.active,
        failing_since: None,
        created_at: now,
        updated_at: now,
    })
}

/// The seller's endpoint, or `None` when it does not exist or belongs to someone else.
pub async fn get_endpoint(db: &Db, user_id: i64, id: i64) -> StoreResult<Option<Endpoint>> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND user_id = ?");
    let row = db
        .query(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(endpoint_from_row).transpose()?)
}

/// One page of the seller's endpoints, oldest first, and their total.
pub async fn list_endpoints(
    db: &Db,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Endpoint>, i64)> {
    keyset::read_numbered_page(
        db,
        ENDPOINT_COLUMNS,
        "webhook_endpoints WHERE user_id = ?",
        &[user_id],
        ENDPOINT_ORDER,
        limit,
        offset,
        endpoint_from_row,
    )
    .await
}

/// The order of the seller's endpoints, oldest first, as keyset columns.
const ENDPOINT_ORDER: Keyset = Keyset {
    key: None,
    id: "id",
    descending: false,
};

/// One keyset page of the seller's endpoints, oldest first, and whether more lie beyond it in
/// the seek's direction.
pub async fn walk_endpoints(
    db: &Db,
    user_id: i64,
    seek: &Seek,
) -> StoreResult<(Vec<Endpoint>, bool)> {
    let select = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = ?");
    keyset::read_page(
        db,
        &select,
        &[user_id],
        ENDPOINT_ORDER,
        seek,
        endpoint_from_row,
    )
    .await
}

/// Replaces the writable fields. Turning an endpoint back on clears its failing mark, so that
/// it is not disabled again by the failures that disabled it.
pub async fn update_endpoint(
    db: &Db,
    endpoint: &Endpoint,
    fields: &EndpointFields,
) -> StoreResult<Endpoint> {
    let now = Timestamp::now();
    let failing_since = if fields.active && !endpoint.active {
        None
    } else {
        endpoint.failing_since
    };
    db.query(
        "UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, active = ?, \
         failing_since = ?, updated_at = ? WHERE id = ? AND user_id = ?",
    )
    .bind(fields.url.as_str())
    .bind(fields.description.as_str())
    .bind(fields.events.stored())
    .bind(i16::from(fields.active))
    .bind(failing_since.map(Timestamp::unix_seconds))
    .bind(now.unix_seconds())
    .bind(endpoint.id)
    .bind(endpoint.user_id)
    .execute(&db.pool)
    .await?;
    Ok(Endpoint {
        url: fields.url.as_str().to_owned(),
        description: fields.description.clone(),
        events: fields.events.clone(),
        active: fields.active,
        failing_since,
        updated_at: now,
        ..endpoint.clone()
    })
}

/// Deletes the endpoint with its deliveries; `false` when it was not the seller's.
pub async fn delete_endpoint(db: &Db, user_id: i64, id: i64) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    db.query(
        "DELETE FROM webhook_deliveries WHERE endpoint_id IN \
         (SELECT id FROM webhook_endpoints WHERE id = ? AND user_id = ?)",
    )
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let deleted = db
        .query("DELETE FROM webhook_endpoints WHERE id = ? AND user_id = ?")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted == 1)
}

/// A delivery as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_uid: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, ev.event_uid, ev.event_type, d.status, \
    d.attempts, d.last_status_code, d.last_error, d.next_attempt_at_ms, d.created_at, \
    d.delivered_at";

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, sqlx::Error> {
    let status: String = row.try_get(4)?;
    let status = DeliveryStatus::parse(&status).map_err(decode_error)?;
    let next: Option<i64> = row.try_get(8)?;
    Ok(Delivery {
        id: row.try_get(0)?,
        endpoint_id: row.try_get(1)?,
        event_uid: row.try_get(2)?,
        event_type: row.try_get(3)?,
        status,
        attempts: row.try_get(5)?,
        last_status_code: row.try_get(6)?,
        last_error: row.try_get(7)?,
        next_attempt_at: next
            .filter(|_| status == DeliveryStatus::Pending)
            .map(Timestamp::from_unix_millis),
        created_at: seconds_at(row, 9)?,
        delivered_at: maybe_seconds_at(row, 10)?,
    })
}

/// One page of an endpoint's deliveries, newest first, and their total; the caller has checked
/// that the endpoint is the seller's.
pub async fn list_deliveries(
    db: &Db,
    endpoint_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Delivery>, i64)> {
    let from = "webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id \
                WHERE d.endpoint_id = ?";
    keyset::read_numbered_page(
        db,
        DELIVERY_COLUMNS,
        from,
        &[endpoint_id],
        DELIVERY_ORDER,
        limit,
        offset,
        delivery_from_row,
    )
    .await
}

/// The order of an endpoint's deliveries, newest first, as keyset columns.
const DELIVERY_ORDER: Keyset = Keyset {
    key: None,
    id: "d.id",
    descending: true,
};

/// One keyset page of an endpoint's deliveries, newest first, and whether more lie beyond it
/// in the seek's direction. The caller has established that the endpoint is the seller's.
pub async fn walk_deliveries(
    db: &Db,
    endpoint_id: i64,
    seek: &Seek,
) -> StoreResult<(Vec<Delivery>, bool)> {
    let select = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
         JOIN webhook_events ev ON ev.id = d.event_id WHERE d.endpoint_id = ?"
    );
    keyset::read_page(
        db,
        &select,
        &[endpoint_id],
        DELIVERY_ORDER,
        seek,
        delivery_from_row,
    )
    .await
}

/// Queues the delivery's event to its endpoint again, as a new delivery due now; `None` when
/// the delivery is not one of the seller's endpoint's.
pub async fn redeliver(
    db: &Db,
    user_id: i64,
    endpoint_id: i64,
    delivery_id: i64,
) -> StoreResult<Option<i64>> {
    let mut tx = db.begin_write().await?;
    let row = db
        .query(
            "SELECT d.event_id FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.id = ? AND d.endpoint_id = ? AND e.user_id = ?",
        )
        .bind(delivery_id)
        .bind(endpoint_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let event_id: i64 = row.try_get(0)?;
    let id = insert_delivery(db, &mut tx, endpoint_id, event_id, Timestamp::now()).await?;
    tx.commit().await?;
    Ok(Some(id))
}

async fn insert_delivery(
    db: &Db,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    endpoint_id: i64,
    event_id: i64,
    now: Timestamp,
) -> StoreResult<i64> {
    let sql = format!(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, status, attempts, \
         next_attempt_at_ms, created_at) VALUES (?, ?, 'pending', 0, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(endpoint_id)
        .bind(event_id)
        .bind(now.unix_millis())
        .bind(now.unix_seconds());
    db.insert(&mut **tx, query).await
}

/// An event ready to send: its id and the body every delivery of it posts.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub user_id: i64,
    pub uid: String,
    pub event_type: EventType,
    pub body: String,
    pub created_at: Timestamp,
}

/// Stores the event in `tx` with one delivery for each of `endpoint_ids`.
async fn insert_event(
    db: &Db,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &NewEvent,
    endpoint_ids: &[i64],
) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO webhook_events (user_id, event_uid, event_type, payload, created_at) \
         VALUES (?, ?, ?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(event.user_id)
        .bind(event.uid.as_str())
        .bind(event.event_type.as_str())
        .bind(event.body.as_str())
        .bind(event.created_at.unix_seconds());
    let event_id = db.insert(&mut **tx, query).await?;
    for endpoint_id in endpoint_ids {
        insert_delivery(db, tx, *endpoint_id, event_id, event.created_at).await?;
    }
    Ok(())
}

/// Queues an event for one endpoint alone (`webhook.test`).
pub async fn queue_for_endpoint(db: &Db, endpoint_id: i64, event: &NewEvent) -> StoreResult<()> {
    let mut tx = db.begin_write().await?;
    insert_event(db, &mut tx, event, &[endpoint_id]).await?;
    tx.commit().await?;
    Ok(())
}

/// The seller's active endpoints subscribed to `event_type`.
async fn subscribers(
    db: &Db,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    event_type: EventType,
) -> StoreResult<Vec<i64>> {
    let rows = db
        .query("SELECT id, events FROM webhook_endpoints WHERE user_id = ? AND active = 1")
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?;
    let mut ids = Vec::new();
    for row in &rows {
        let events: String = row.try_get(1)?;
        if EventSet::from_stored(&events)
            .map_err(decode_error)?
            .contains(event_type)
        {
            ids.push(row.try_get(0)?);
        }
    }
    Ok(ids)
}

/// The statement that records, in the batch of the change, that `event_type` happened to
/// `subject_id` (a run, a shop) of the shop's seller, if an active endpoint of theirs listens
/// to it: changes nobody listens to write nothing.
pub(crate) fn record(shop_id: i64, event_type: EventType, subject_id: i64) -> Statement {
    Statement::new(
        "INSERT INTO webhook_outbox (user_id, event_type, subject_id, created_at) \
         SELECT s.user_id, ?, ?, ? FROM shops s WHERE s.id = ? AND EXISTS \
         (SELECT 1 FROM webhook_endpoints e WHERE e.user_id = s.user_id AND e.active = 1 \
          AND e.events LIKE ?)",
        vec![
            event_type.as_str().into(),
            subject_id.into(),
            Timestamp::now().unix_seconds().into(),
            shop_id.into(),
            format!("%{}%", event_type.as_str()).into(),
        ],
    )
}

/// Records, in a sync step's transaction, the shop's shipments that took a change number above
/// the seller's number before the step (`changed_at, shop_id, before, user_id`), if an active
/// endpoint of the seller listens to `shipments.changed`. One row per shipment however often
/// it changes: its first change in a run (from the list) and its detail make one event entry.
pub(crate) fn record_shipment_changes_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Mysql => {
            "INSERT INTO webhook_shipment_changes (shipment_pk, shop_id, user_id, changed_at) \
             SELECT id, shop_id, user_id, ? FROM shipments WHERE shop_id = ? AND change_seq > ? \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.user_id = ? AND e.active = 1 \
             AND e.events LIKE '%shipments.changed%') \
             ON DUPLICATE KEY UPDATE changed_at = VALUES(changed_at)"
        }
        Backend::Sqlite | Backend::Postgres => {
            "INSERT INTO webhook_shipment_changes (shipment_pk, shop_id, user_id, changed_at) \
             SELECT id, shop_id, user_id, ? FROM shipments WHERE shop_id = ? AND change_seq > ? \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.user_id = ? AND e.active = 1 \
             AND e.events LIKE '%shipments.changed%') \
             ON CONFLICT (shipment_pk) DO UPDATE SET changed_at = excluded.changed_at"
        }
    }
}

/// A change waiting to become an event.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub user_id: i64,
    pub event_type: EventType,
    pub subject_id: i64,
    pub created_at: Timestamp,
}

/// Up to `limit` changes waiting to become events, oldest first.
pub async fn outbox(db: &Db, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
    let rows = db
        .query(
            "SELECT id, user_id, event_type, subject_id, created_at FROM webhook_outbox \
             ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|row| {
            let event_type: String = row.try_get(2)?;
            Ok(OutboxEntry {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                event_type: EventType::parse(&event_type).map_err(decode_error)?,
                subject_id: row.try_get(3)?,
                created_at: seconds_at(row, 4)?,
            })
        })
        .collect()
}

/// Turns an outbox entry into its event (`None`: its subject is gone, and it is dropped), in
/// one transaction that deletes the entry first: of two processes dispatching the same entry,
/// the second deletes nothing and writes nothing.
pub async fn dispatch(db: &Db, entry: &OutboxEntry, event: Option<&NewEvent>) -> StoreResult<()> {
    let mut tx = db.begin_write().await?;
    let taken = db
        .query("DELETE FROM webhook_outbox WHERE id = ?")
        .bind(entry.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if taken != 1 {
        tx.rollback().await?;
        return Ok(());
    }
    if let Some(event) = event {
        let endpoints = subscribers(db, &mut tx, entry.user_id, event.event_type).await?;
        if !endpoints.is_empty() {
            insert_event(db, &mut tx, event, &endpoints).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A shop with shipments changed since its last `shipments.changed` event.
#[derive(Debug, Clone, Copy)]
pub struct ChangedShop {
    pub shop_id: i64,
    pub user_id: i64,
    pub pending: i64,
    /// Of those, the ones with their detail stored: a shipment still waiting for its detail
    /// will change again within the run.
    pub settled: i64,
    /// The newest change: a partial batch goes once the shop has been quiet for a while.
    pub last_changed_at: Timestamp,
    /// Whether the shop has a run queued or running, which will bring more changes.
    pub syncing: bool,
}

/// The shops with changed shipments waiting for an event.
pub async fn changed_shops(db: &Db) -> StoreResult<Vec<ChangedShop>> {
    let rows = db
        .query(
            "SELECT c.shop_id, c.user_id, COUNT(*), \
             COUNT(sh.detail_synced_at), MAX(c.changed_at), \
             MAX(CASE WHEN s.active_run_id IS NULL THEN 0 ELSE 1 END) \
             FROM webhook_shipment_changes c JOIN shops s ON s.id = c.shop_id \
             JOIN shipments sh ON sh.id = c.shipment_pk \
             GROUP BY c.shop_id, c.user_id",
        )
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ChangedShop {
                shop_id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                pending: row.try_get(2)?,
                settled: row.try_get(3)?,
                last_changed_at: seconds_at(row, 4)?,
                syncing: row.try_get::<i64, _>(5)? != 0,
            })
        })
        .collect()
}

/// Up to `limit` of the shop's changed shipments (their row ids), oldest first; with
/// `settled_only`, only those with their detail stored.
pub async fn changed_shipments(
    db: &Db,
    shop_id: i64,
    limit: i64,
    settled_only: bool,
) -> StoreResult<Vec<i64>> {
    let sql = format!(
        "SELECT c.shipment_pk FROM webhook_shipment_changes c \
         JOIN shipments sh ON sh.id = c.shipment_pk WHERE c.shop_id = ?{} \
         ORDER BY c.shipment_pk LIMIT ?",
        if settled_only {
            " AND sh.detail_synced_at IS NOT NULL"
        } else {
            ""
        }
    );
    let rows = db
        .query(&sql)
        .bind(shop_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Takes changed shipments out of the pending set, in a transaction that
/// [`record_shipments_event`] ends with their event; `None` (and nothing written) when another
/// process took some already.
pub async fn take_shipment_changes(
    db: &Db,
    shipment_pks: &[i64],
) -> StoreResult<Option<sqlx::Transaction<'static, sqlx::Any>>> {
    let mut tx = db.begin_write().await?;
    let sql = format!(
        "DELETE FROM webhook_shipment_changes WHERE shipment_pk IN ({})",
        vec!["?"; shipment_pks.len()].join(", ")
    );
    let mut query = db.query(&sql);
    for pk in shipment_pks {
        query = query.bind(*pk);
    }
    if query.execute(&mut *tx).await?.rows_affected() != shipment_pks.len() as u64 {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}

/// Records the event of the shipments [`take_shipment_changes`] took, in its transaction, and
/// commits.
pub async fn record_shipments_event(
    db: &Db,
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    event: &NewEvent,
) -> StoreResult<()> {
    let endpoints = subscribers(db, &mut tx, event.user_id, event.event_type).await?;
    if !endpoints.is_empty() {
        insert_event(db, &mut tx, event, &endpoints).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A delivery claimed for one attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub secret_enc: String,
    pub event_uid: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub claim_token: String,
}

/// A delivery that is due, and its endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub id: i64,
    pub endpoint_id: i64,
}

/// Up to `limit` deliveries due at `now` to active endpoints other than `busy`, the longest due
/// first.
pub async fn due(db: &Db, now: Timestamp, busy: &[i64], limit: i64) -> StoreResult<Vec<Due>> {
    let excluded = if busy.is_empty() {
        String::new()
    } else {
        format!(
            " AND d.endpoint_id NOT IN ({})",
            vec!["?"; busy.len()].join(", ")
        )
    };
    let sql = format!(
        "SELECT d.id, d.endpoint_id FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.status = 'pending' AND d.next_attempt_at_ms <= ? AND e.active = 1{excluded} \
         ORDER BY d.next_attempt_at_ms LIMIT ?"
    );
    let mut query = db.query(&sql).bind(now.unix_millis());
    for id in busy {
        query = query.bind(*id);
    }
    let rows = query.bind(limit).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                id: r.try_get(0)?,
                endpoint_id: r.try_get(1)?,
            })
        })
        .collect()
}

/// Claims those of `ids` still due for this process until `now + lease`, and returns them.
pub async fn claim(
    db: &Db,
    ids: &[i64],
    now: Timestamp,
    lease: Duration,
) -> StoreResult<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let token = format!("{:032x}", rand::random::<u128>());
    let sql = format!(
        "UPDATE webhook_deliveries SET claim_token = ?, next_attempt_at_ms = ? \
         WHERE status = 'pending' AND next_attempt_at_ms <= ? AND id IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let mut query = db
        .query(&sql)
        .bind(token.as_str())
        .bind((now + lease).unix_millis())
        .bind(now.unix_millis());
    for id in ids {
        query = query.bind(*id);
    }
    if query.execute(&db.pool).await?.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    // By id first: the token has no index, the primary key does.
    let sql = format!(
        "SELECT d.id, d.endpoint_id, e.url, e.secret_enc, ev.event_uid, ev.payload, \
         d.attempts FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         JOIN webhook_events ev ON ev.id = d.event_id WHERE d.id IN ({}) AND d.claim_token = ?",
        vec!["?"; ids.len()].join(", ")
    );
    let mut query = db.query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.bind(token.as_str()).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                endpoint_id: r.try_get(1)?,
                url: r.try_get(2)?,
                secret_enc: r.try_get(3)?,
                event_uid: r.try_get(4)?,
                body: r.try_get(5)?,
                attempts: r.try_get(6)?,
                claim_token: token.clone(),
            })
        })
        .collect()
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status_code: u16,
    },
    /// Failed; tried again at `retry_at`, or never (`None`) when the schedule is spent.
    Failed {
        status_code: Option<u16>,
        error: String,
        retry_at: Option<Timestamp>,
    },
}

/// An endpoint that has failed every attempt for this long is turned off.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// Records an attempt's outcome on the delivery (if this claim still holds it) and on its
/// endpoint: a success clears the endpoint's failing mark; a failure starts it, and turns the
/// endpoint off once it has failed for [`DISABLE_AFTER`].
pub async fn record_attempt(db: &Db, claimed: &Claimed, outcome: &Outcome) -> StoreResult<()> {
    let now = Timestamp::now();
    let mut tx = db.begin_write().await?;
    let (status, code, error, next, delivered_at) = match outcome {
        Outcome::Delivered { status_code } => (
            DeliveryStatus::Delivered,
            Some(*status_code),
            None,
            None,
            Some(now.unix_seconds()),
        ),
        Outcome::Failed {
            status_code,
            error,
            retry_at,
        } => (
            if retry_at.is_some() {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Failed
            },
            *status_code,
            Some(error.as_str()),
            retry_at.map(Timestamp::unix_millis),
            None,
        ),
    };
    let updated = db
        .query(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, \
             last_status_code = ?, last_error = ?, next_attempt_at_ms = ?, delivered_at = ?, \
             claim_token = NULL WHERE id = ? AND claim_token = ?",
        )
        .bind(status.as_str())
        .bind(code.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(delivered_at)
        .bind(claimed.id)
        .bind(claimed.claim_token.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if updated == 1 {
        let endpoint = match outcome {
            Outcome::Delivered { .. } => db
                .query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?")
                .bind(claimed.endpoint_id),
            Outcome::Failed { .. } => db
                .query(
                    "UPDATE webhook_endpoints SET \
                     active = CASE WHEN failing_since <= ? THEN 0 ELSE active END, \
                     failing_since = COALESCE(failing_since, ?) WHERE id = ?",
                )
                .bind((now - DISABLE_AFTER).unix_seconds())
                .bind(now.unix_seconds())
                .bind(claimed.endpoint_id),
        };
        endpoint.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deliveries waiting for an attempt, for the metrics' gauge.
pub async fn pending_count(db: &Db) -> StoreResult<i64> {
    Ok(db
        .query("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

/// Deletes up to `batch` ended deliveries (delivered or failed) created before `before`, then
/// up to `batch` events older than that with no delivery left; returns how many rows went.
/// Pending deliveries stay, whatever their age: they are still being retried.
pub async fn prune_log(db: &Db, before: Timestamp, batch: i64) -> StoreResult<u64> {
    let ended: Vec<i64> = db
        .query(
            "SELECT id FROM webhook_deliveries WHERE created_at < ? \
             AND status IN ('delivered', 'failed') ORDER BY created_at LIMIT ?",
        )
        .bind(before.unix_seconds())
        .bind(batch)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut pruned = delete_by_id(db, "webhook_deliveries", &ended).await?;
    let orphans: Vec<i64> = db
        .query(
            "SELECT e.id FROM webhook_events e WHERE e.created_at < ? AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id) \
             ORDER BY e.created_at LIMIT ?",
        )
        .bind(before.unix_seconds())
        .bind(batch)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    pruned += delete_by_id(db, "webhook_events", &orphans).await?;
    Ok(pruned)
}

async fn delete_by_id(db: &Db, table: &str, ids: &[i64]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM {table} WHERE id IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let query = ids.iter().fold(db.query(&sql), |query, id| query.bind(*id));
    Ok(query.execute(&db.pool).await?.rows_affected())
}
