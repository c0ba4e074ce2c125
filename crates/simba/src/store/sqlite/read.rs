//! The SQLite family's reads: the shipment list, its keyset walk, one detail, the version and
//! the pending details, each in one call on one of the reader's connections.

use rusqlite::{Connection, OptionalExtension};

use crate::domain::{FulfilmentMethod, Timestamp};
use crate::store::shipments::sql::{self, Page, Selection, Walk};
use crate::store::shipments::{Feed, ShipmentDetail, ShipmentRow, Versions};

/// A page and its total, read in one transaction so that they agree.
pub(super) fn page(conn: &Connection, page: &Page) -> rusqlite::Result<(Vec<ShipmentRow>, i64)> {
    let snapshot = conn.unchecked_transaction()?;
    let count = count(&snapshot, &page.selection)?;
    if page.offset >= count {
        return Ok((Vec::new(), count));
    }
    // Unlike the server family's, the page is read in one statement: SQLite reads the rows
    // OFFSET skips from the covering index alone. `? + 0`: SQLite plans with the value of a
    // bare bound LIMIT or OFFSET and re-prepares the statement whenever it changes, which was
    // every page (a fifth of the CPU).
    let selection = &page.selection;
    let sql = format!(
        "SELECT {} FROM shipments s{} ORDER BY {} LIMIT ? + 0 OFFSET ? + 0",
        sql::LIST_COLUMNS,
        selection.where_sql,
        page.order
    );
    let params = selection
        .binds
        .iter()
        .map(|bind| bind as &dyn rusqlite::ToSql)
        .chain([&page.limit as &dyn rusqlite::ToSql, &page.offset]);
    let rows = snapshot
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(params), shipment_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, count))
}

/// The selection's total; 0 for another seller's shop.
fn count(conn: &Connection, selection: &Selection) -> rusqlite::Result<i64> {
    if !selection.narrows {
        return shop_totals(conn, selection);
    }
    if !owns_scope(conn, selection)? {
        return Ok(0);
    }
    conn.prepare_cached(&selection.count_sql())?
        .query_row(rusqlite::params_from_iter(&selection.binds), |row| {
            row.get(0)
        })
}

/// The counters of the selection's shops: of the seller's shop if it names one (none of
/// another seller's), else of all the seller's shops.
fn shop_totals(conn: &Connection, selection: &Selection) -> rusqlite::Result<i64> {
    let user_id = selection.user_id;
    match selection.shop_id {
        Some(shop_id) => conn
            .prepare_cached(sql::SHOP_TOTAL)?
            .query_map((user_id, shop_id), |row| row.get::<_, i64>(0))?
            .sum(),
        None => conn
            .prepare_cached(sql::SELLER_TOTAL)?
            .query_map([user_id], |row| row.get::<_, i64>(0))?
            .sum(),
    }
}

/// Whether the selection's shop, if it names one, is the seller's.
fn owns_scope(conn: &Connection, selection: &Selection) -> rusqlite::Result<bool> {
    match selection.shop_id {
        Some(shop_id) => conn
            .prepare_cached(sql::OWNS_SHOP)?
            .exists((shop_id, selection.user_id)),
        None => Ok(true),
    }
}

/// A keyset page of the selection.
pub(super) fn walk(conn: &Connection, walk: &Walk) -> rusqlite::Result<Vec<ShipmentRow>> {
    if !owns_scope(conn, &walk.selection)? {
        return Ok(Vec::new());
    }
    let params = walk
        .selection
        .binds
        .iter()
        .map(|bind| bind as &dyn rusqlite::ToSql)
        .chain([&walk.limit as &dyn rusqlite::ToSql]);
    conn.prepare_cached(&walk.sql())?
        .query_map(rusqlite::params_from_iter(params), shipment_row)?
        .collect()
}

/// Up to `limit` of the selection above `after_id`, in id order.
pub(super) fn after(
    conn: &Connection,
    selection: &Selection,
    after_id: i64,
    limit: i64,
) -> rusqlite::Result<Vec<ShipmentRow>> {
    if !owns_scope(conn, selection)? {
        return Ok(Vec::new());
    }
    let params = selection
        .binds
        .iter()
        .map(|bind| bind as &dyn rusqlite::ToSql)
        .chain([&after_id as &dyn rusqlite::ToSql, &limit]);
    conn.prepare_cached(&selection.after_sql())?
        .query_map(rusqlite::params_from_iter(params), shipment_row)?
        .collect()
}

pub(super) fn changes(conn: &Connection, feed: &Feed) -> rusqlite::Result<Vec<ShipmentRow>> {
    let (sql, binds) = feed.query();
    conn.prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(&binds), shipment_row)?
        .collect()
}

pub(super) fn detail(
    conn: &Connection,
    user_id: i64,
    id: i64,
) -> rusqlite::Result<Option<ShipmentDetail>> {
    conn.prepare_cached(&sql::DETAIL)?
        .query_row((id, user_id), |row| {
            Ok(ShipmentDetail {
                row: shipment_row(row)?,
                order_placed_at: row
                    .get::<_, Option<i64>>(16)?
                    .map(Timestamp::from_unix_seconds),
                shipping_label_id: row.get(17)?,
                transport_events: row.get(18)?,
                customer: row.get(19)?,
                raw: row.get(20)?,
            })
        })
        .optional()
}

pub(super) fn version(conn: &Connection, user_id: i64) -> rusqlite::Result<Versions> {
    conn.prepare_cached(sql::VERSION)?
        .query_row([user_id], |row| {
            Ok(Versions {
                version: row.get(0)?,
                epoch: row.get(1)?,
            })
        })
}

pub(super) fn pending_details(
    conn: &Connection,
    shop_id: i64,
    limit: i64,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(sql::PENDING_DETAILS)?
        .query_map((shop_id, limit), |row| row.get(0))?
        .collect()
}

/// A row of [`sql::LIST_COLUMNS`].
fn shipment_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShipmentRow> {
    Ok(ShipmentRow {
        id: row.get(0)?,
        shop_id: row.get(1)?,
        shipment_id: row.get(2)?,
        shipment_date: Timestamp::from_unix_seconds(row.get(3)?),
        shipment_reference: row.get(4)?,
        fulfilment_method: {
            let method: String = row.get(5)?;
            FulfilmentMethod::parse(&method).map_err(|message| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    rusqlite::types::Type::Text,
                    message.into(),
                )
            })?
        },
        order_id: row.get(6)?,
        pickup_point: row.get::<_, Option<i64>>(7)?.map(|v| v != 0),
        transport_id: row.get(8)?,
        transporter_code: row.get(9)?,
        track_and_trace: row.get(10)?,
        items: row.get(11)?,
        detail_synced_at: row
            .get::<_, Option<i64>>(12)?
            .map(Timestamp::from_unix_seconds),
        updated_at: Timestamp::from_unix_seconds(row.get(13)?),
        change_seq: row.get(14)?,
        personal_data_erased_at: row
            .get::<_, Option<i64>>(15)?
            .map(Timestamp::from_unix_seconds),
    })
}
