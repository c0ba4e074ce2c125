//! The SQLite family's writes: a sync step's commit, and the shipments it stores, on the
//! writer's connection inside its group transaction ([`super::writer`]).

use std::collections::HashMap;

use rusqlite::Connection;

use crate::domain::Timestamp;
use crate::store::Backend;
use crate::store::marketplace;
use crate::store::shipments::sql::{self, Changed, StoredRow};
use crate::store::shipments::{ItemKey, NewShipment};
use crate::store::steps::{LEASE_LOST, StepCommit, StepData, StepWrite};
use crate::store::sync_runs::{self, StepOutcome};
use crate::store::webhooks;

/// Commits `step` if its lease and run hold; returns its commit and whether to keep its
/// changes (the writer rolls its savepoint back otherwise).
pub(super) fn commit_step(
    conn: &Connection,
    step: &StepWrite,
) -> rusqlite::Result<(StepCommit, bool)> {
    let until = step.lease_until().unix_millis();
    let fenced = conn.prepare_cached(sync_runs::FENCE)?.execute((
        until,
        until,
        step.shop_id,
        &step.owner,
    ))?;
    if fenced != 1 {
        return Ok((LEASE_LOST, false));
    }
    let (inserted, reached_known) = write_data(conn, step.user_id, step.shop_id, &step.data)?;
    let mut delta = step.delta.clone();
    if let StepData::List(_) = step.data {
        delta.shipments_stored = inserted as i64;
    }
    let pending = conn
        .prepare_cached(sql::COUNT_PENDING)?
        .query_row([step.shop_id], |row| row.get(0))?;
    let record = step.record(&delta, pending, reached_known);
    let recorded = conn
        .prepare_cached(sync_runs::RECORD_STEP)?
        .execute(rusqlite::params_from_iter(record.params()))?;
    let outcome = if recorded == 1 {
        StepOutcome::Committed
    } else {
        StepOutcome::Cancelled
    };
    let keep = outcome == StepOutcome::Committed;
    if keep {
        let snapshot = marketplace::budgets_snapshot(&step.budgets);
        conn.prepare_cached(marketplace::save_budgets_sql(Backend::Sqlite))?
            .execute(rusqlite::params_from_iter(
                marketplace::save_budgets_params(&step.client_id, &snapshot, Timestamp::now()),
            ))?;
    }
    let commit = StepCommit {
        outcome,
        reached_known,
    };
    Ok((commit, keep))
}

/// Stores what a step fetched; returns how many shipments were new, and whether a list page
/// reached shipments stored already.
pub(super) fn write_data(
    conn: &Connection,
    user_id: i64,
    shop_id: i64,
    data: &StepData,
) -> rusqlite::Result<(u64, bool)> {
    let before: i64 = conn
        .prepare_cached(sql::LAST_CHANGE)?
        .query_row([user_id], |row| row.get(0))?;
    let written = match data {
        StepData::List(rows) => {
            let inserted = insert_new(conn, user_id, shop_id, rows)?;
            (inserted, (inserted as usize) < rows.len())
        }
        StepData::Details { details, gone } => {
            for id in gone.iter() {
                mark_detail_gone(conn, user_id, shop_id, id)?;
            }
            (store_details(conn, user_id, shop_id, details)?, false)
        }
    };
    let now = Timestamp::now().unix_seconds();
    conn.prepare_cached(webhooks::record_shipment_changes_sql(Backend::Sqlite))?
        .execute((now, shop_id, before, user_id))?;
    Ok(written)
}

/// Inserts those of `shipments` the shop does not have yet, and keeps its counter in step.
fn insert_new(
    conn: &Connection,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<u64> {
    let now = Timestamp::now();
    let known = stored_ids(conn, shop_id, shipments)?;
    let fresh = sql::not_stored(shipments, &known);
    if fresh.is_empty() {
        return Ok(0);
    }
    let first_change = allocate_changes(conn, user_id, fresh.len())?;
    let mut new_items = Vec::with_capacity(fresh.len());
    let mut insert = conn.prepare_cached(sql::INSERT_SHIPMENT)?;
    for (change_seq, shipment) in (first_change..).zip(fresh) {
        insert.execute(rusqlite::params_from_iter(sql::insert_params(
            shop_id, user_id, shipment, now, change_seq,
        )))?;
        new_items.push((conn.last_insert_rowid(), shipment.item_keys.as_slice()));
    }
    insert_item_keys(conn, user_id, &new_items)?;
    let inserted = new_items.len() as u64;
    conn.prepare_cached(sql::COUNT_STORED)?
        .execute((inserted as i64, shop_id))?;
    Ok(inserted)
}

/// The primary keys of those of `shipments` the shop has stored, by shipment id.
fn stored_ids(
    conn: &Connection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<HashMap<String, i64>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let params = std::iter::once(&shop_id as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|s| &s.shipment_id as &dyn rusqlite::ToSql));
        let mut select = conn.prepare_cached(&sql::stored_ids_sql(chunk.len()))?;
        let mut rows = select.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            found.insert(row.get(0)?, row.get(1)?);
        }
    }
    Ok(found)
}

fn insert_item_keys(
    conn: &Connection,
    user_id: i64,
    shipments: &[(i64, &[ItemKey])],
) -> rusqlite::Result<()> {
    let items = sql::flat_items(shipments);
    for chunk in items.chunks(sql::ROWS_PER_STATEMENT) {
        conn.prepare_cached(&sql::insert_items_sql(chunk.len()))?
            .execute(rusqlite::params_from_iter(sql::item_params(user_id, chunk)))?;
    }
    Ok(())
}

/// Fills in stored shipments' details, setting only the indexed columns that changed
/// ([`Changed`]) and replacing only the items that did; a detail of a shipment not stored is
/// inserted. Returns how many were new.
fn store_details(
    conn: &Connection,
    user_id: i64,
    shop_id: i64,
    details: &[NewShipment],
) -> rusqlite::Result<u64> {
    let stored = stored_rows(conn, shop_id, details)?;
    let (found, missing): (Vec<&NewShipment>, Vec<&NewShipment>) = details
        .iter()
        .partition(|detail| stored.contains_key(&detail.shipment_id));
    let mut inserted = 0;
    if !missing.is_empty() {
        let missing: Vec<NewShipment> = missing.into_iter().cloned().collect();
        inserted = insert_new(conn, user_id, shop_id, &missing)?;
    }
    if found.is_empty() {
        return Ok(inserted);
    }
    let now = Timestamp::now();
    let first_change = allocate_changes(conn, user_id, found.len())?;
    let mut replaced_items = Vec::with_capacity(found.len());
    for (change_seq, detail) in (first_change..).zip(found) {
        let row = &stored[&detail.shipment_id];
        let changed = Changed::of(row, detail);
        let mut update = conn.prepare_cached(changed.sql())?;
        let params = sql::detail_params(detail, changed, now, change_seq, row.id);
        for (index, param) in params.enumerate() {
            update.raw_bind_parameter(index + 1, param)?;
        }
        update.raw_execute()?;
        replaced_items.push((row.id, detail.item_keys.as_slice()));
    }
    if replaced_items.is_empty() {
        return Ok(inserted);
    }
    let stored_items = item_keys(conn, &replaced_items)?;
    sql::items_to_replace(&mut replaced_items, &stored_items);
    for chunk in replaced_items.chunks(sql::ROWS_PER_STATEMENT) {
        let pks = chunk.iter().map(|(pk, _)| pk);
        conn.prepare_cached(&sql::delete_items_sql(chunk.len()))?
            .execute(rusqlite::params_from_iter(pks))?;
    }
    insert_item_keys(conn, user_id, &replaced_items)?;
    Ok(inserted)
}

/// The stored items of `shipments` (by primary key), in the order they were stored.
fn item_keys(
    conn: &Connection,
    shipments: &[(i64, &[ItemKey])],
) -> rusqlite::Result<HashMap<i64, Vec<ItemKey>>> {
    let mut found: HashMap<i64, Vec<ItemKey>> = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let mut select = conn.prepare_cached(&sql::item_keys_sql(chunk.len()))?;
        let mut rows = select.query(rusqlite::params_from_iter(chunk.iter().map(|(pk, _)| pk)))?;
        while let Some(row) = rows.next()? {
            found.entry(row.get(0)?).or_default().push(ItemKey {
                order_item_id: row.get(1)?,
                ean: row.get(2)?,
            });
        }
    }
    Ok(found)
}

/// The stored rows of those of `shipments` the shop has, by shipment id.
fn stored_rows(
    conn: &Connection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<HashMap<String, StoredRow>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(sql::ROWS_PER_STATEMENT) {
        let params = std::iter::once(&shop_id as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|s| &s.shipment_id as &dyn rusqlite::ToSql));
        let mut select = conn.prepare_cached(&sql::stored_rows_sql(chunk.len()))?;
        let mut rows = select.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let stored = StoredRow {
                id: row.get(1)?,
                shipment_date: Timestamp::from_unix_seconds(row.get(2)?),
                shipment_reference: row.get(3)?,
                order_id: row.get(4)?,
                track_and_trace: row.get(5)?,
            };
            found.insert(row.get(0)?, stored);
        }
    }
    Ok(found)
}

/// Marks a shipment whose detail the marketplace no longer has, so it is not asked again.
fn mark_detail_gone(
    conn: &Connection,
    user_id: i64,
    shop_id: i64,
    shipment_id: &str,
) -> rusqlite::Result<()> {
    let now = Timestamp::now();
    let change_seq = allocate_changes(conn, user_id, 1)?;
    conn.prepare_cached(sql::MARK_DETAIL_GONE)?.execute((
        now.unix_seconds(),
        now.unix_seconds(),
        change_seq,
        shop_id,
        shipment_id,
    ))?;
    Ok(())
}

/// Takes the next `count` numbers of the seller's change sequence; returns the first.
/// Outside a run's steps every write is one a client must see at once: see
/// [`crate::store::shipments::Versions`].
pub(super) fn bump_epoch(conn: &Connection, user_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(sql::BUMP_EPOCH)?.execute([user_id])?;
    Ok(())
}

fn allocate_changes(conn: &Connection, user_id: i64, count: usize) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql::ALLOCATE_CHANGES)?
        .execute((count as i64, user_id))?;
    let last: i64 = conn
        .prepare_cached(sql::LAST_CHANGE)?
        .query_row([user_id], |row| row.get(0))?;
    Ok(last - count as i64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FulfilmentMethod;

    fn schema() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for script in crate::store::migrations::sqlite_scripts() {
            conn.execute_batch(script).unwrap();
        }
        // No shop row: these tests are about the shipments' own tables. The seller's row holds
        // the change sequence every write takes numbers from.
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute(
            "INSERT INTO users (id, username, email, password_hash, date_joined) \
             VALUES (1, 'ann', 'ann@example.com', '-', 0)",
            [],
        )
        .unwrap();
        conn
    }

    fn item(order_item_id: &str, ean: &str) -> ItemKey {
        ItemKey {
            order_item_id: order_item_id.into(),
            ean: Some(ean.into()),
        }
    }

    fn shipment(item_keys: Vec<ItemKey>) -> NewShipment {
        NewShipment {
            shipment_id: "914587795".into(),
            shipment_date: crate::domain::Timestamp::from_unix_seconds(1_700_000_000),
            shipment_reference: None,
            fulfilment_method: FulfilmentMethod::Fbr,
            order_id: Some("1043946570".into()),
            order_placed_at: None,
            pickup_point: None,
            transport_id: None,
            transporter_code: None,
            track_and_trace: None,
            shipping_label_id: None,
            transport_events: None,
            items: "[]".into(),
            item_keys,
            customer: None,
            raw: None,
            detail_synced_at: None,
        }
    }

    /// `(row id, order item id, EAN)` of the stored items, in the order stored.
    fn stored_items(conn: &rusqlite::Connection) -> Vec<(i64, String, Option<String>)> {
        conn.prepare("SELECT id, order_item_id, ean FROM shipment_items ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_detail_rewrites_the_items_only_where_they_differ_from_the_list() {
        let conn = schema();
        let (user, shop) = (1, 1);
        insert_new(&conn, user, shop, &[shipment(vec![item("1", "a")])]).unwrap();
        let listed = stored_items(&conn);

        let mut detail = shipment(vec![item("1", "a")]);
        detail.detail_synced_at = Some(crate::domain::Timestamp::from_unix_seconds(1));
        store_details(&conn, user, shop, &[detail.clone()]).unwrap();
        assert_eq!(stored_items(&conn), listed, "the same items stay as stored");

        detail.item_keys.push(item("2", "b"));
        store_details(&conn, user, shop, &[detail.clone()]).unwrap();
        let eans: Vec<_> = stored_items(&conn)
            .into_iter()
            .map(|(_, _, ean)| ean)
            .collect();
        assert_eq!(eans, [Some("a".to_owned()), Some("b".to_owned())]);

        detail.item_keys.remove(0);
        store_details(&conn, user, shop, &[detail]).unwrap();
        let items: Vec<_> = stored_items(&conn)
            .into_iter()
            .map(|(_, id, _)| id)
            .collect();
        assert_eq!(items, ["2"], "an item the detail no longer has is gone");
    }
}
