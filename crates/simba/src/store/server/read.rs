//! The server family's reads: the shipment list, its keyset walk, one detail, the version and
//! the pending details, on the pool.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::domain::FulfilmentMethod;
use crate::store::shipments::sql::{self, Page, Selection, Walk, bind_all};
use crate::store::shipments::{Feed, ShipmentDetail, ShipmentRow, Versions};
use crate::store::{Db, StoreResult, maybe_seconds_at, seconds_at};

/// A page and its total. Unlike the SQLite family's, not in one transaction: that would cost
/// two more round trips per request, and a total a step behind its page is what any client
/// paging through a changing list sees anyway.
pub(super) async fn page(db: &Db, page: &Page) -> StoreResult<(Vec<ShipmentRow>, i64)> {
    let selection = &page.selection;
    let count = count(db, selection).await?;
    if page.offset >= count {
        return Ok((Vec::new(), count));
    }
    // The page's ids first, from the index alone, then only those rows: PostgreSQL and MySQL
    // otherwise read every row that OFFSET skips.
    let sql = format!(
        "SELECT {columns} FROM shipments s JOIN (SELECT s.id FROM shipments s{where_sql} \
         ORDER BY {order} LIMIT ? OFFSET ?) page ON page.id = s.id ORDER BY {order}",
        columns = sql::LIST_COLUMNS,
        where_sql = selection.where_sql,
        order = page.order
    );
    let rows = bind_all(db.query(&sql), &selection.binds)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&db.pool)
        .await?;
    let shipments = rows.iter().map(shipment_row).collect::<Result<_, _>>()?;
    Ok((shipments, count))
}

/// The selection's total; 0 for another seller's shop.
async fn count(db: &Db, selection: &Selection) -> StoreResult<i64> {
    if !selection.narrows {
        return shop_totals(db, selection).await;
    }
    if !owns_scope(db, selection).await? {
        return Ok(0);
    }
    let sql = selection.count_sql();
    Ok(bind_all(db.query(&sql), &selection.binds)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

/// The counters of the selection's shops: of the seller's shop if it names one (none of
/// another seller's), else of all the seller's shops.
async fn shop_totals(db: &Db, selection: &Selection) -> StoreResult<i64> {
    let query = match selection.shop_id {
        Some(shop_id) => db
            .query(sql::SHOP_TOTAL)
            .bind(selection.user_id)
            .bind(shop_id),
        None => db.query(sql::SELLER_TOTAL).bind(selection.user_id),
    };
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|row| row.try_get::<i64, _>(0))
        .sum::<Result<i64, _>>()
        .map_err(Into::into)
}

/// Whether the selection's shop, if it names one, is the seller's.
async fn owns_scope(db: &Db, selection: &Selection) -> StoreResult<bool> {
    let Some(shop_id) = selection.shop_id else {
        return Ok(true);
    };
    Ok(db
        .query(sql::OWNS_SHOP)
        .bind(shop_id)
        .bind(selection.user_id)
        .fetch_optional(&db.pool)
        .await?
        .is_some())
}

/// A keyset page of the selection.
pub(super) async fn walk(db: &Db, walk: &Walk) -> StoreResult<Vec<ShipmentRow>> {
    if !owns_scope(db, &walk.selection).await? {
        return Ok(Vec::new());
    }
    let sql = walk.sql();
    let rows = bind_all(db.query(&sql), &walk.selection.binds)
        .bind(walk.limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(shipment_row).collect::<Result<_, _>>()?)
}

/// Up to `limit` of the selection above `after_id`, in id order.
pub(super) async fn after(
    db: &Db,
    selection: &Selection,
    after_id: i64,
    limit: i64,
) -> StoreResult<Vec<ShipmentRow>> {
    if !owns_scope(db, selection).await? {
        return Ok(Vec::new());
    }
    let sql = selection.after_sql();
    let rows = bind_all(db.query(&sql), &selection.binds)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(shipment_row).collect::<Result<_, _>>()?)
}

pub(super) async fn changes(db: &Db, feed: &Feed) -> StoreResult<Vec<ShipmentRow>> {
    let (sql, binds) = feed.query();
    let rows = bind_all(db.query(&sql), &binds).fetch_all(&db.pool).await?;
    Ok(rows.iter().map(shipment_row).collect::<Result<_, _>>()?)
}

pub(super) async fn detail(db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
    let row = db
        .query(&sql::DETAIL)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|row| {
        Ok::<_, sqlx::Error>(ShipmentDetail {
            row: shipment_row(&row)?,
            order_placed_at: maybe_seconds_at(&row, 16)?,
            shipping_label_id: row.try_get(17)?,
            transport_events: row.try_get(18)?,
            customer: row.try_get(19)?,
            raw: row.try_get(20)?,
        })
    })
    .transpose()
    .map_err(Into::into)
}

pub(super) async fn version(db: &Db, user_id: i64) -> StoreResult<Versions> {
    let row = db
        .query(sql::VERSION)
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?;
    Ok(Versions {
        version: row.try_get(0)?,
        epoch: row.try_get(1)?,
    })
}

pub(super) async fn pending_details(db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
    let rows = db
        .query(sql::PENDING_DETAILS)
        .bind(shop_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

/// A row of [`sql::LIST_COLUMNS`].
pub(in crate::store) fn shipment_row(row: &AnyRow) -> Result<ShipmentRow, sqlx::Error> {
    Ok(ShipmentRow {
        id: row.try_get(0)?,
        shop_id: row.try_get(1)?,
        shipment_id: row.try_get(2)?,
        shipment_date: seconds_at(row, 3)?,
        shipment_reference: row.try_get(4)?,
        fulfilment_method: {
            let method: String = row.try_get(5)?;
            FulfilmentMethod::parse(&method).map_err(|message| sqlx::Error::ColumnDecode {
                index: "5".into(),
                source: message.into(),
            })?
        },
        order_id: row.try_get(6)?,
        pickup_point: row.try_get::<Option<i64>, _>(7)?.map(|v| v != 0),
        transport_id: row.try_get(8)?,
        transporter_code: row.try_get(9)?,
        track_and_trace: row.try_get(10)?,
        items: row.try_get(11)?,
        detail_synced_at: maybe_seconds_at(row, 12)?,
        updated_at: seconds_at(row, 13)?,
        change_seq: row.try_get(14)?,
        personal_data_erased_at: maybe_seconds_at(row, 15)?,
    })
}
