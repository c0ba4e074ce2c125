//! The server family's writes: a sync step's commit, and the shipments it stores, in one
//! transaction on the pool.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use crate::domain::Timestamp;
use crate::store::marketplace;
use crate::store::shipments::sql::{self, Changed, StoredRow};
use crate::store::shipments::{ItemKey, NewShipment};
use crate::store::steps::{LEASE_LOST, StepCommit, StepData, StepWrite};
use crate::store::sync_runs::{self, StepOutcome};
use crate::store::webhooks;
use crate::store::{Db, StoreResult, seconds_at};

/// Commits `step` if its lease and run hold; rolls it back otherwise.
pub(super) async fn commit_step(db: &Db, step: &StepWrite) -> StoreResult<StepCommit> {
    let _commit = crate::engine_metrics::CommitTimer::server();
    let mut tx = db.begin_write().await?;
    let fenced = db
        .query(sync_runs::FENCE)
        .bind(step.lease_until().unix_millis())
        .bind(step.lease_until().unix_millis())
        .bind(step.shop_id)
        .bind(step.owner.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if fenced != 1 {
        tx.rollback().await?;
        return Ok(LEASE_LOST);
    }
    let (inserted, reached_known) =
        write_data(db, &mut tx, step.user_id, step.shop_id, &step.data).await?;
    let mut delta = step.delta.clone();
    if let StepData::List(_) = step.data {
        delta.shipments_stored = inserted as i64;
    }
    let pending = db
        .query(sql::COUNT_PENDING)
        .bind(step.shop_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let record = step.record(&delta, pending, reached_known);
    let recorded = record
        .params()
        .into_iter()
        .fold(db.query(sync_runs::RECORD_STEP), |query, param| {
            param.bind(query)
        })
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if recorded != 1 {
        tx.rollback().await?;
        return Ok(StepCommit {
            outcome: StepOutcome::Cancelled,
            reached_known,
        });
    }
    marketplace::save_budgets_in(db, &mut tx, &step.client_id, &step.budgets).await?;
    tx.commit().await?;
    Ok(StepCommit {
        outcome: StepOutcome::Committed,
        reached_known,
    })
}

/// Stores what a step fetched; returns how many shipments were new, and whether a list page
/// reached shipments stored already.
pub(super) async fn write_data(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    shop_id: i64,
    data: &StepData,
) -> StoreResult<(u64, bool)> {
    let before: i64 = db
        .query(sql::LAST_CHANGE)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let written = match data {
        StepData::List(rows) => {
            let inserted = insert_new(db, conn, user_id, shop_id, rows).await?;
            (inserted, (inserted as usize) < rows.len())
        }
        StepData::Details { details, gone } => {
            for id in gone.iter() {
                mark_detail_gone(db, conn, user_id, shop_id, id).await?;
            }
            let inserted = store_details(db, conn, user_id, shop_id, details).await?;
            (inserted, false)
        }
    };
    db.query(webhooks::record_shipment_changes_sql(db.backend))
        .bind(Timestamp::now().unix_seconds())
        .bind(shop_id)
        .bind(before)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(written)
}

/// Inserts those of `shipments` the shop does not have yet, and keeps its counter in step.
async fn insert_new(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<u64> {
    let now = Timestamp::now();
    let known = stored_ids(db, conn, shop_id, shipments).await?;
    let fresh = sql::not_stored(shipments, &known);
    if fresh.is_empty() {
        return Ok(0);
    }
    let first_change = allocate_changes(db, conn, user_id, fresh.len()).await?;
    let mut new_items = Vec::with_capacity(fresh.len());
    let insert_sql = format!("{}{}", sql::INSERT_SHIPMENT, db.returning_id());
    for (change_seq, shipment) in (first_change..).zip(fresh) {
        let query = sql::insert_params(shop_id, user_id, shipment, now, change_seq)
            .into_iter()
            .fold(db.query(&insert_sql), |query, param| param.bind(query));
        let pk = db.insert(&mut *conn, query).await?;
        new_items.push((pk, shipment.item_keys.as_slice()));
    }
    insert_item_keys(db, conn, user_id, &new_items).await?;
    let inserted = new_items.len() as u64;
    db.query(sql::COUNT_STORED)
        .bind(inserted as i64)
        .bind(shop_id)
        .execute(&mut *conn)
        .await?;
    Ok(inserted)
}

/// The primary keys of those of `shipments` the shop has stored, by shipment id.
async fn stored_ids(
    db: &Db,
    conn: &mut AnyConnection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<HashMap<String, i64>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let sql = sql::stored_ids_sql(chunk.len());
        let mut query = db.query(&sql).bind(shop_id);
        for shipment in chunk {
            query = query.bind(shipment.shipment_id.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(found)
}

async fn insert_item_keys(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    shipments: &[(i64, &[ItemKey])],
) -> StoreResult<()> {
    let items = sql::flat_items(shipments);
    for chunk in items.chunks(sql::ROWS_PER_STATEMENT) {
        let sql = sql::insert_items_sql(chunk.len());
        sql::item_params(user_id, chunk)
            .fold(db.query(&sql), |query, param| param.bind(query))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Fills in stored shipments' details, setting only the indexed columns that changed
/// ([`Changed`]) and replacing only the items that did; a detail of a shipment not stored is
/// inserted. Returns how many were new.
async fn store_details(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    shop_id: i64,
    details: &[NewShipment],
) -> StoreResult<u64> {
    let stored = stored_rows(db, conn, shop_id, details).await?;
    let (found, missing): (Vec<&NewShipment>, Vec<&NewShipment>) = details
        .iter()
        .partition(|detail| stored.contains_key(&detail.shipment_id));
    let mut inserted = 0;
    if !missing.is_empty() {
        let missing: Vec<NewShipment> = missing.into_iter().cloned().collect();
        inserted = insert_new(db, conn, user_id, shop_id, &missing).await?;
    }
    if found.is_empty() {
        return Ok(inserted);
    }
    let now = Timestamp::now();
    let first_change = allocate_changes(db, conn, user_id, found.len()).await?;
    let mut replaced_items = Vec::with_capacity(found.len());
    for (change_seq, detail) in (first_change..).zip(found) {
        let row = &stored[&detail.shipment_id];
        let changed = Changed::of(row, detail);
        sql::detail_params(detail, changed, now, change_seq, row.id)
            .fold(db.query(changed.sql()), |query, param| param.bind(query))
            .execute(&mut *conn)
            .await?;
        replaced_items.push((row.id, detail.item_keys.as_slice()));
    }
    if replaced_items.is_empty() {
        return Ok(inserted);
    }
    let stored_items = item_keys(db, conn, &replaced_items).await?;
    sql::items_to_replace(&mut replaced_items, &stored_items);
    for chunk in replaced_items.chunks(sql::ROWS_PER_STATEMENT) {
        let sql = sql::delete_items_sql(chunk.len());
        let mut query = db.query(&sql);
        for (pk, _) in chunk {
            query = query.bind(*pk);
        }
        query.execute(&mut *conn).await?;
    }
    insert_item_keys(db, conn, user_id, &replaced_items).await?;
    Ok(inserted)
}

/// The stored items of `shipments` (by primary key), in the order they were stored.
async fn item_keys(
    db: &Db,
    conn: &mut AnyConnection,
    shipments: &[(i64, &[ItemKey])],
) -> StoreResult<HashMap<i64, Vec<ItemKey>>> {
    let mut found: HashMap<i64, Vec<ItemKey>> = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let sql = sql::item_keys_sql(chunk.len());
        let mut query = db.query(&sql);
        for (pk, _) in chunk {
            query = query.bind(*pk);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.entry(row.try_get(0)?).or_default().push(ItemKey {
                order_item_id: row.try_get(1)?,
                ean: row.try_get(2)?,
            });
        }
    }
    Ok(found)
}

/// The stored rows of those of `shipments` the shop has, by shipment id.
async fn stored_rows(
    db: &Db,
    conn: &mut AnyConnection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<HashMap<String, StoredRow>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let sql = sql::stored_rows_sql(chunk.len());
        let mut query = db.query(&sql).bind(shop_id);
        for shipment in chunk {
            query = query.bind(shipment.shipment_id.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let stored = StoredRow {
                id: row.try_get(1)?,
                shipment_date: seconds_at(&row, 2)?,
                shipment_reference: row.try_get(3)?,
                order_id: row.try_get(4)?,
                track_and_trace: row.try_get(5)?,
            };
            found.insert(row.try_get(0)?, stored);
        }
    }
    Ok(found)
}

/// Marks a shipment whose detail the marketplace no longer has, so it is not asked again.
async fn mark_detail_gone(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    shop_id: i64,
    shipment_id: &str,
) -> StoreResult<()> {
    let now = Timestamp::now();
    let change_seq = allocate_changes(db, conn, user_id, 1).await?;
    db.query(sql::MARK_DETAIL_GONE)
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(change_seq)
        .bind(shop_id)
        .bind(shipment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the next `count` numbers of the seller's change sequence; returns the first. The
/// seller's row stays locked until the transaction ends: see [`crate::store::shipments::changes`].
async fn allocate_changes(
    db: &Db,
    conn: &mut AnyConnection,
    user_id: i64,
    count: usize,
) -> StoreResult<i64> {
    db.query(sql::ALLOCATE_CHANGES)
        .bind(count as i64)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let last: i64 = db
        .query(sql::LAST_CHANGE)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(last - count as i64 + 1)
}
