//! Shipments with their items, transport and customer details, and the raw marketplace JSON.
//! Lists are served from covering indexes; the unfiltered `count` comes from per-shop counters
//! maintained on insert, so no request counts the whole table.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreResult};
use crate::domain::FulfilmentMethod;

/// How a list is ordered; every order ends with `id` so that pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ordering {
    #[default]
    NewestFirst,
    OldestFirst,
    IdDescending,
    IdAscending,
}

impl Ordering {
    pub fn parse(value: &str) -> Result<Ordering, String> {
        match value {
            "-shipment_date" => Ok(Ordering::NewestFirst),
            "shipment_date" => Ok(Ordering::OldestFirst),
            "-id" => Ok(Ordering::IdDescending),
            "id" => Ok(Ordering::IdAscending),
            _ => Err("must be one of: -shipment_date, shipment_date, -id, id".into()),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Ordering::NewestFirst => "s.shipment_date DESC, s.id DESC",
            Ordering::OldestFirst => "s.shipment_date ASC, s.id ASC",
            Ordering::IdDescending => "s.id DESC",
            Ordering::IdAscending => "s.id ASC",
        }
    }
}

/// The filters of API.md, already parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    pub shop_id: Option<i64>,
    pub fulfilment_method: Option<FulfilmentMethod>,
    pub order_id: Option<String>,
    pub ean: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    pub shipped_after: Option<i64>,
    /// Exclusive upper bound, Unix seconds.
    pub shipped_before: Option<i64>,
    /// Exact match on shipment id, order id, shipment reference or track-and-trace.
    pub q: Option<String>,
}

impl Filter {
    /// Whether anything beyond the shop narrows the set (then the count must be computed).
    fn narrows(&self) -> bool {
        self.fulfilment_method.is_some()
            || self.order_id.is_some()
            || self.ean.is_some()
            || self.shipped_after.is_some()
            || self.shipped_before.is_some()
            || self.q.is_some()
    }
}

/// A shipment as listed; `items` and `transport_events` are JSON text ready to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentRow {
    pub id: i64,
    pub shop_id: i64,
    pub shipment_id: String,
    pub shipment_date: i64,
    pub shipment_reference: Option<String>,
    pub fulfilment_method: FulfilmentMethod,
    pub order_id: Option<String>,
    pub pickup_point: Option<bool>,
    pub transport_id: Option<String>,
    pub transporter_code: Option<String>,
    pub track_and_trace: Option<String>,
    pub items: String,
    pub detail_synced_at: Option<i64>,
}

/// The extra columns of one shipment's detail.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentDetail {
    pub row: ShipmentRow,
    pub order_placed_at: Option<i64>,
    pub shipping_label_id: Option<String>,
    pub transport_events: Option<String>,
    pub customer: Option<String>,
    pub raw: Option<String>,
}

const LIST_COLUMNS: &str = "s.id, s.shop_id, s.shipment_id, s.shipment_date, \
    s.shipment_reference, s.fulfilment_method, s.order_id, s.pickup_point, s.transport_id, \
    s.transporter_code, s.track_and_trace, s.items, s.detail_synced_at";

fn row_from(row: &AnyRow) -> Result<ShipmentRow, sqlx::Error> {
    Ok(ShipmentRow {
        id: row.try_get(0)?,
        shop_id: row.try_get(1)?,
        shipment_id: row.try_get(2)?,
        shipment_date: row.try_get(3)?,
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
        detail_synced_at: row.try_get(12)?,
    })
}

/// A bind value for the dynamically built list query.
enum Bind {
    Int(i64),
    Text(String),
}

/// The WHERE clause of a seller's shipments matching `filter`. A shop filter replaces the
/// seller condition, so that the shop's indexes answer without reading each row for its
/// seller: callers establish first that the shop is the seller's ([`scope_is_owned`]).
fn where_clause(user_id: i64, filter: &Filter) -> (String, Vec<Bind>) {
    let (mut sql, mut binds) = match filter.shop_id {
        Some(shop_id) => (
            String::from(" WHERE s.shop_id = ?"),
            vec![Bind::Int(shop_id)],
        ),
        None => (
            String::from(" WHERE s.user_id = ?"),
            vec![Bind::Int(user_id)],
        ),
    };
    if let Some(method) = filter.fulfilment_method {
        sql.push_str(" AND s.fulfilment_method = ?");
        binds.push(Bind::Text(method.as_str().to_owned()));
    }
    if let Some(order_id) = &filter.order_id {
        sql.push_str(" AND s.order_id = ?");
        binds.push(Bind::Text(order_id.clone()));
    }
    if let Some(ean) = &filter.ean {
        sql.push_str(
            " AND s.id IN (SELECT i.shipment_pk FROM shipment_items i WHERE i.user_id = ? AND i.ean = ?)",
        );
        binds.push(Bind::Int(user_id));
        binds.push(Bind::Text(ean.clone()));
    }
    if let Some(after) = filter.shipped_after {
        sql.push_str(" AND s.shipment_date >= ?");
        binds.push(Bind::Int(after));
    }
    if let Some(before) = filter.shipped_before {
        sql.push_str(" AND s.shipment_date < ?");
        binds.push(Bind::Int(before));
    }
    if let Some(q) = &filter.q {
        sql.push_str(
            " AND (s.shipment_id = ? OR s.order_id = ? OR s.shipment_reference = ? \
             OR s.track_and_trace = ?)",
        );
        for _ in 0..4 {
            binds.push(Bind::Text(q.clone()));
        }
    }
    (sql, binds)
}

/// Whether the filter's shop, if it names one, is the seller's: another seller's shop reads as
/// one without shipments.
async fn scope_is_owned(db: &Db, user_id: i64, filter: &Filter) -> StoreResult<bool> {
    let Some(shop_id) = filter.shop_id else {
        return Ok(true);
    };
    Ok(db
        .query("SELECT 1 FROM shops WHERE id = ? AND user_id = ?")
        .bind(shop_id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?
        .is_some())
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

/// One page of the seller's shipments matching `filter`, and the exact total.
pub async fn list(
    db: &Db,
    user_id: i64,
    filter: &Filter,
    ordering: Ordering,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<ShipmentRow>, i64)> {
    let (where_sql, binds) = where_clause(user_id, filter);
    if let Some(reader) = &db.reader {
        let page = PageQuery {
            user_id,
            shop_id: filter.shop_id,
            narrows: filter.narrows(),
            where_sql,
            binds,
            order: ordering.sql(),
            limit,
            offset,
        };
        return reader.read(move |conn| page.read(conn)).await;
    }
    let count = if filter.narrows() {
        if !scope_is_owned(db, user_id, filter).await? {
            return Ok((Vec::new(), 0));
        }
        let sql = format!("SELECT COUNT(*) FROM shipments s{where_sql}");
        bind_all(db.query(&sql), &binds)
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?
    } else {
        // Counts another seller's shop as empty, which ends the request below.
        super::shops::shipment_total(db, user_id, filter.shop_id).await?
    };
    if offset >= count {
        return Ok((Vec::new(), count));
    }
    // The page's ids first, from the index alone, then only those 50 rows: PostgreSQL and
    // MySQL otherwise read every row that OFFSET skips.
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM shipments s JOIN (SELECT s.id FROM shipments s{where_sql} \
         ORDER BY {order} LIMIT ? OFFSET ?) page ON page.id = s.id ORDER BY {order}",
        order = ordering.sql()
    );
    let rows = bind_all(db.query(&sql), &binds)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await?;
    let shipments = rows.iter().map(row_from).collect::<Result<_, _>>()?;
    Ok((shipments, count))
}

/// [`list`] on SQLite: the same queries, run by [`super::reader`] in one read transaction.
struct PageQuery {
    user_id: i64,
    shop_id: Option<i64>,
    narrows: bool,
    where_sql: String,
    binds: Vec<Bind>,
    order: &'static str,
    limit: i64,
    offset: i64,
}

impl PageQuery {
    fn read(self, conn: &rusqlite::Connection) -> rusqlite::Result<(Vec<ShipmentRow>, i64)> {
        let snapshot = conn.unchecked_transaction()?;
        let count: i64 = match (self.narrows, self.shop_id) {
            (true, Some(shop_id)) => {
                let owned = snapshot
                    .prepare_cached("SELECT 1 FROM shops WHERE id = ? AND user_id = ?")?
                    .exists((shop_id, self.user_id))?;
                if !owned {
                    return Ok((Vec::new(), 0));
                }
                self.count(&snapshot)?
            }
            (true, None) => self.count(&snapshot)?,
            (false, Some(shop_id)) => snapshot
                .prepare_cached(
                    "SELECT COALESCE(SUM(shipment_count), 0) FROM shops WHERE user_id = ? AND id = ?",
                )?
                .query_row((self.user_id, shop_id), |row| row.get(0))?,
            (false, None) => snapshot
                .prepare_cached(
                    "SELECT COALESCE(SUM(shipment_count), 0) FROM shops WHERE user_id = ?",
                )?
                .query_row([self.user_id], |row| row.get(0))?,
        };
        if self.offset >= count {
            return Ok((Vec::new(), count));
        }
        // `? + 0`: SQLite plans with the value of a bare bound LIMIT or OFFSET and re-prepares
        // the statement whenever it changes, which was every page (a fifth of the CPU).
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM shipments s{} ORDER BY {} LIMIT ? + 0 OFFSET ? + 0",
            self.where_sql, self.order
        );
        let params = self
            .binds
            .iter()
            .map(|bind| bind as &dyn rusqlite::ToSql)
            .chain([&self.limit as &dyn rusqlite::ToSql, &self.offset]);
        let rows = snapshot
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(params), sqlite_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows, count))
    }

    fn count(&self, conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM shipments s{}", self.where_sql);
        conn.prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(&self.binds), |row| row.get(0))
    }
}

impl rusqlite::ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Bind::Int(v) => v.to_sql(),
            Bind::Text(v) => v.to_sql(),
        }
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShipmentRow> {
    Ok(ShipmentRow {
        id: row.get(0)?,
        shop_id: row.get(1)?,
        shipment_id: row.get(2)?,
        shipment_date: row.get(3)?,
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
        detail_synced_at: row.get(12)?,
    })
}

/// Up to `limit` of the seller's shipments matching `filter` with an id above `after_id`, in
/// id order: a keyset walk that exports any number of rows at a constant cost per page.
pub async fn list_after(
    db: &Db,
    user_id: i64,
    filter: &Filter,
    after_id: i64,
    limit: i64,
) -> StoreResult<Vec<ShipmentRow>> {
    if !scope_is_owned(db, user_id, filter).await? {
        return Ok(Vec::new());
    }
    let (where_sql, binds) = where_clause(user_id, filter);
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM shipments s{where_sql} AND s.id > ? ORDER BY s.id ASC LIMIT ?"
    );
    let rows = bind_all(db.query(&sql), &binds)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(row_from).collect::<Result<_, _>>()?)
}

/// One of the seller's shipments with its full detail.
pub async fn get(db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
    let sql = format!(
        "SELECT {LIST_COLUMNS}, s.order_placed_at, s.shipping_label_id, s.transport_events, \
         s.customer, s.raw FROM shipments s WHERE s.id = ? AND s.user_id = ?"
    );
    if let Some(reader) = &db.reader {
        return reader
            .read(move |conn| {
                use rusqlite::OptionalExtension;
                conn.prepare_cached(&sql)?
                    .query_row((id, user_id), |row| {
                        Ok(ShipmentDetail {
                            row: sqlite_row(row)?,
                            order_placed_at: row.get(13)?,
                            shipping_label_id: row.get(14)?,
                            transport_events: row.get(15)?,
                            customer: row.get(16)?,
                            raw: row.get(17)?,
                        })
                    })
                    .optional()
            })
            .await;
    }
    let row = db
        .query(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|row| {
        Ok::<_, sqlx::Error>(ShipmentDetail {
            row: row_from(&row)?,
            order_placed_at: row.try_get(13)?,
            shipping_label_id: row.try_get(14)?,
            transport_events: row.try_get(15)?,
            customer: row.try_get(16)?,
            raw: row.try_get(17)?,
        })
    })
    .transpose()
    .map_err(Into::into)
}

/// An item as stored for filtering by EAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    pub order_item_id: String,
    pub ean: Option<String>,
}

/// A shipment as the sync engine writes it.
#[derive(Debug, Clone)]
pub struct NewShipment {
    pub shipment_id: String,
    pub shipment_date: i64,
    pub shipment_reference: Option<String>,
    pub fulfilment_method: FulfilmentMethod,
    pub order_id: Option<String>,
    pub order_placed_at: Option<i64>,
    pub pickup_point: Option<bool>,
    pub transport_id: Option<String>,
    pub transporter_code: Option<String>,
    pub track_and_trace: Option<String>,
    pub shipping_label_id: Option<String>,
    pub transport_events: Option<String>,
    /// The API's `items` array, as JSON text.
    pub items: String,
    pub item_keys: Vec<ItemKey>,
    pub customer: Option<String>,
    pub raw: Option<String>,
    pub detail_synced_at: Option<i64>,
}

/// Inserts shipments that the shop does not have yet, keyed by `(shop_id, shipment_id)`, and
/// keeps the shop's counter in step, all in one transaction. Returns how many were new.
pub async fn insert_new(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<u64> {
    let mut tx = db.pool.begin().await?;
    let inserted = insert_new_in(db, &mut tx, user_id, shop_id, shipments).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// [`insert_new`] inside the caller's transaction, so that a sync step commits its shipments
/// together with its checkpoint.
pub async fn insert_new_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<u64> {
    let now = super::now();
    let mut known = stored_ids(db, conn, shop_id, shipments).await?;
    let mut new_items = Vec::new();
    let insert_sql = format!("{INSERT_SHIPMENT}{}", db.returning_id());
    for shipment in shipments {
        if known.contains_key(&shipment.shipment_id) {
            continue;
        }
        let query = db
            .query(&insert_sql)
            .bind(shop_id)
            .bind(user_id)
            .bind(shipment.shipment_id.as_str())
            .bind(shipment.shipment_date)
            .bind(shipment.shipment_reference.as_deref())
            .bind(shipment.fulfilment_method.as_str())
            .bind(shipment.order_id.as_deref())
            .bind(shipment.order_placed_at)
            .bind(shipment.pickup_point.map(i16::from))
            .bind(shipment.transport_id.as_deref())
            .bind(shipment.transporter_code.as_deref())
            .bind(shipment.track_and_trace.as_deref())
            .bind(shipment.shipping_label_id.as_deref())
            .bind(shipment.transport_events.as_deref())
            .bind(shipment.items.as_str())
            .bind(shipment.customer.as_deref())
            .bind(shipment.raw.as_deref())
            .bind(shipment.detail_synced_at)
            .bind(now)
            .bind(now);
        let pk = db.insert(&mut *conn, query).await?;
        known.insert(shipment.shipment_id.clone(), pk);
        new_items.push((pk, shipment.item_keys.as_slice()));
    }
    insert_item_keys(db, conn, user_id, &new_items).await?;
    let inserted = new_items.len() as u64;
    if inserted == 0 {
        return Ok(0);
    }
    db.query(COUNT_STORED)
        .bind(inserted as i64)
        .bind(shop_id)
        .execute(&mut *conn)
        .await?;
    bump_version_in(db, conn, user_id).await?;
    Ok(inserted)
}

/// Rows per multi-row statement: far below every backend's limit on bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// The primary keys of those of `shipments` the shop has stored, by shipment id: one query per
/// step instead of one per shipment.
async fn stored_ids(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<HashMap<String, i64>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(ROWS_PER_STATEMENT) {
        let sql = select_stored_sql(STORED_IDS, chunk.len());
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

fn placeholders(count: usize, group: &str) -> String {
    vec![group; count].join(", ")
}

const INSERT_SHIPMENT: &str = "INSERT INTO shipments (shop_id, user_id, shipment_id, \
    shipment_date, shipment_reference, fulfilment_method, order_id, order_placed_at, pickup_point, \
    transport_id, transporter_code, track_and_trace, shipping_label_id, transport_events, items, \
    customer, raw, detail_synced_at, created_at, updated_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Keeps the shop's shipment counter in step with its inserts.
const COUNT_STORED: &str = "UPDATE shops SET shipment_count = shipment_count + ? WHERE id = ?";

const UPDATE_DETAIL: &str = "UPDATE shipments SET shipment_date = ?, \
    shipment_reference = ?, order_id = ?, order_placed_at = ?, pickup_point = ?, transport_id = ?, \
    transporter_code = ?, track_and_trace = ?, shipping_label_id = ?, transport_events = ?, \
    items = ?, customer = ?, raw = ?, detail_synced_at = ?, updated_at = ? WHERE id = ?";

const MARK_DETAIL_GONE: &str = "UPDATE shipments SET detail_synced_at = ?, \
    updated_at = ? WHERE shop_id = ? AND shipment_id = ?";

const COUNT_PENDING: &str =
    "SELECT COUNT(*) FROM shipments WHERE shop_id = ? AND detail_synced_at IS NULL";

/// `columns` of those of `count` shipment ids (bound after the shop id) that the shop has.
fn select_stored_sql(columns: &str, count: usize) -> String {
    format!(
        "SELECT {columns} FROM shipments WHERE shop_id = ? AND shipment_id IN ({})",
        placeholders(count, "?")
    )
}

const STORED_IDS: &str = "shipment_id, id";

/// Inserts `count` items: `shipment_pk, user_id, order_item_id, ean` each.
fn insert_items_sql(count: usize) -> String {
    format!(
        "INSERT INTO shipment_items (shipment_pk, user_id, order_item_id, ean) VALUES {}",
        placeholders(count, "(?, ?, ?, ?)")
    )
}

/// Deletes the items of `count` shipments, by primary key.
fn delete_items_sql(count: usize) -> String {
    format!(
        "DELETE FROM shipment_items WHERE shipment_pk IN ({})",
        placeholders(count, "?")
    )
}

async fn insert_item_keys(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    shipments: &[(i64, &[ItemKey])],
) -> StoreResult<()> {
    let items: Vec<(i64, &ItemKey)> = shipments
        .iter()
        .flat_map(|(pk, items)| items.iter().map(move |item| (*pk, item)))
        .collect();
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_items_sql(chunk.len());
        let mut query = db.query(&sql);
        for (pk, item) in chunk {
            query = query
                .bind(*pk)
                .bind(user_id)
                .bind(item.order_item_id.as_str())
                .bind(item.ean.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Fills in stored shipments' details (every field the detail call gives), replacing their
/// items, inside the caller's transaction; a detail of a shipment not stored is inserted.
pub async fn store_details_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    shop_id: i64,
    details: &[NewShipment],
) -> StoreResult<()> {
    let stored = stored_ids(db, conn, shop_id, details).await?;
    let (found, missing): (Vec<&NewShipment>, Vec<&NewShipment>) = details
        .iter()
        .partition(|detail| stored.contains_key(&detail.shipment_id));
    if !missing.is_empty() {
        let missing: Vec<NewShipment> = missing.into_iter().cloned().collect();
        insert_new_in(db, conn, user_id, shop_id, &missing).await?;
    }
    let now = super::now();
    let mut replaced_items = Vec::with_capacity(found.len());
    for detail in found {
        let pk = stored[&detail.shipment_id];
        db.query(UPDATE_DETAIL)
            .bind(detail.shipment_date)
            .bind(detail.shipment_reference.as_deref())
            .bind(detail.order_id.as_deref())
            .bind(detail.order_placed_at)
            .bind(detail.pickup_point.map(i16::from))
            .bind(detail.transport_id.as_deref())
            .bind(detail.transporter_code.as_deref())
            .bind(detail.track_and_trace.as_deref())
            .bind(detail.shipping_label_id.as_deref())
            .bind(detail.transport_events.as_deref())
            .bind(detail.items.as_str())
            .bind(detail.customer.as_deref())
            .bind(detail.raw.as_deref())
            .bind(detail.detail_synced_at)
            .bind(now)
            .bind(pk)
            .execute(&mut *conn)
            .await?;
        replaced_items.push((pk, detail.item_keys.as_slice()));
    }
    for chunk in replaced_items.chunks(ROWS_PER_STATEMENT) {
        let sql = delete_items_sql(chunk.len());
        let mut query = db.query(&sql);
        for (pk, _) in chunk {
            query = query.bind(*pk);
        }
        query.execute(&mut *conn).await?;
    }
    insert_item_keys(db, conn, user_id, &replaced_items).await?;
    if replaced_items.is_empty() {
        return Ok(());
    }
    bump_version_in(db, conn, user_id).await
}

/// Marks a shipment whose detail the marketplace no longer has, so it is not asked again.
pub async fn mark_detail_gone_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    shop_id: i64,
    shipment_id: &str,
) -> StoreResult<()> {
    db.query(MARK_DETAIL_GONE)
        .bind(super::now())
        .bind(super::now())
        .bind(shop_id)
        .bind(shipment_id)
        .execute(&mut *conn)
        .await?;
    bump_version_in(db, conn, user_id).await
}

/// The seller's shipments version (see [`bump_version_in`]).
pub async fn version(db: &Db, user_id: i64) -> StoreResult<i64> {
    const SQL: &str = "SELECT shipments_version FROM users WHERE id = ?";
    if let Some(reader) = &db.reader {
        return reader
            .read(move |conn| {
                conn.prepare_cached(SQL)?
                    .query_row([user_id], |row| row.get(0))
            })
            .await;
    }
    Ok(db
        .query(SQL)
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?)
}

/// Every transaction that changes a seller's shipments calls this, so that anything derived
/// from them (the API's cached list pages) can tell it is out of date with one read.
pub async fn bump_version_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
) -> StoreResult<()> {
    db.query(BUMP_VERSION)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

const BUMP_VERSION: &str =
    "UPDATE users SET shipments_version = shipments_version + 1 WHERE id = ?";

/// [`bump_version_in`] on a rusqlite connection inside the caller's transaction.
fn bump_version_sqlite(conn: &rusqlite::Connection, user_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(BUMP_VERSION)?.execute([user_id])?;
    Ok(())
}

/// Up to `limit` of the shop's shipments still waiting for their detail, newest first.
pub async fn pending_details(db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
    const SQL: &str = "SELECT shipment_id FROM shipments WHERE shop_id = ? \
        AND detail_synced_at IS NULL ORDER BY shipment_date DESC, id DESC LIMIT ?";
    if let Some(reader) = &db.reader {
        // Once per detail step: one hand-off to the blocking pool instead of one per row.
        return reader
            .read(move |conn| {
                conn.prepare_cached(SQL)?
                    .query_map((shop_id, limit), |row| row.get(0))?
                    .collect()
            })
            .await;
    }
    let rows = db
        .query(SQL)
        .bind(shop_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

/// How many of the shop's shipments still wait for their detail.
pub async fn count_pending_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    shop_id: i64,
) -> StoreResult<i64> {
    Ok(db
        .query(COUNT_PENDING)
        .bind(shop_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}

/// [`insert_new_in`] on a rusqlite connection inside the caller's transaction (see
/// [`super::writer`]).
pub(super) fn insert_new_sqlite(
    conn: &rusqlite::Connection,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<u64> {
    let now = super::now();
    let mut known = stored_ids_sqlite(conn, shop_id, shipments)?;
    let mut new_items = Vec::new();
    let mut insert = conn.prepare_cached(INSERT_SHIPMENT)?;
    for shipment in shipments {
        if known.contains_key(&shipment.shipment_id) {
            continue;
        }
        insert.execute(rusqlite::params![
            shop_id,
            user_id,
            shipment.shipment_id,
            shipment.shipment_date,
            shipment.shipment_reference,
            shipment.fulfilment_method.as_str(),
            shipment.order_id,
            shipment.order_placed_at,
            shipment.pickup_point.map(i16::from),
            shipment.transport_id,
            shipment.transporter_code,
            shipment.track_and_trace,
            shipment.shipping_label_id,
            shipment.transport_events,
            shipment.items,
            shipment.customer,
            shipment.raw,
            shipment.detail_synced_at,
            now,
            now,
        ])?;
        let pk = conn.last_insert_rowid();
        known.insert(shipment.shipment_id.clone(), pk);
        new_items.push((pk, shipment.item_keys.as_slice()));
    }
    insert_item_keys_sqlite(conn, user_id, &new_items)?;
    let inserted = new_items.len() as u64;
    if inserted == 0 {
        return Ok(0);
    }
    conn.prepare_cached(COUNT_STORED)?
        .execute((inserted as i64, shop_id))?;
    bump_version_sqlite(conn, user_id)?;
    Ok(inserted)
}

fn stored_ids_sqlite(
    conn: &rusqlite::Connection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<HashMap<String, i64>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(ROWS_PER_STATEMENT) {
        let params = std::iter::once(&shop_id as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|s| &s.shipment_id as &dyn rusqlite::ToSql));
        let mut select = conn.prepare_cached(&select_stored_sql(STORED_IDS, chunk.len()))?;
        let mut rows = select.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            found.insert(row.get(0)?, row.get(1)?);
        }
    }
    Ok(found)
}

fn insert_item_keys_sqlite(
    conn: &rusqlite::Connection,
    user_id: i64,
    shipments: &[(i64, &[ItemKey])],
) -> rusqlite::Result<()> {
    let items: Vec<(i64, &ItemKey)> = shipments
        .iter()
        .flat_map(|(pk, items)| items.iter().map(move |item| (*pk, item)))
        .collect();
    for chunk in items.chunks(ROWS_PER_STATEMENT) {
        let params = chunk.iter().flat_map(|(pk, item)| {
            [
                pk as &dyn rusqlite::ToSql,
                &user_id,
                &item.order_item_id,
                &item.ean,
            ]
        });
        conn.prepare_cached(&insert_items_sql(chunk.len()))?
            .execute(rusqlite::params_from_iter(params))?;
    }
    Ok(())
}

/// [`store_details_in`] on a rusqlite connection inside the caller's transaction.
///
/// SQLite rewrites an index's entry whenever an UPDATE names one of its columns, changed or
/// not, and [`UPDATE_DETAIL`] names columns of eight of the table's indexes; the list page
/// stored most of them already, and the detail rarely changes them. So the indexed columns are
/// read first and only those that differ are set: two index rewrites per detail instead of
/// eight. (PostgreSQL compares values itself; the pool's path keeps the one statement.)
pub(super) fn store_details_sqlite(
    conn: &rusqlite::Connection,
    user_id: i64,
    shop_id: i64,
    details: &[NewShipment],
) -> rusqlite::Result<()> {
    let stored = stored_rows_sqlite(conn, shop_id, details)?;
    let (found, missing): (Vec<&NewShipment>, Vec<&NewShipment>) = details
        .iter()
        .partition(|detail| stored.contains_key(&detail.shipment_id));
    if !missing.is_empty() {
        let missing: Vec<NewShipment> = missing.into_iter().cloned().collect();
        insert_new_sqlite(conn, user_id, shop_id, &missing)?;
    }
    let now = super::now();
    let mut replaced_items = Vec::with_capacity(found.len());
    for detail in found {
        let row = &stored[&detail.shipment_id];
        let mut sql = String::from(
            "UPDATE shipments SET order_placed_at = ?, pickup_point = ?, transport_id = ?, \
             transporter_code = ?, shipping_label_id = ?, transport_events = ?, items = ?, \
             customer = ?, raw = ?, detail_synced_at = ?, updated_at = ?",
        );
        let pickup_point = detail.pickup_point.map(i16::from);
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![
            &detail.order_placed_at,
            &pickup_point,
            &detail.transport_id,
            &detail.transporter_code,
            &detail.shipping_label_id,
            &detail.transport_events,
            &detail.items,
            &detail.customer,
            &detail.raw,
            &detail.detail_synced_at,
            &now,
        ];
        if row.shipment_date != detail.shipment_date {
            sql.push_str(", shipment_date = ?");
            params.push(&detail.shipment_date);
        }
        let texts = [
            (
                "shipment_reference",
                &row.shipment_reference,
                &detail.shipment_reference,
            ),
            ("order_id", &row.order_id, &detail.order_id),
            (
                "track_and_trace",
                &row.track_and_trace,
                &detail.track_and_trace,
            ),
        ];
        for (column, before, after) in texts {
            if before != after {
                sql.push_str(&format!(", {column} = ?"));
                params.push(after);
            }
        }
        sql.push_str(" WHERE id = ?");
        params.push(&row.id);
        conn.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(params))?;
        replaced_items.push((row.id, detail.item_keys.as_slice()));
    }
    if replaced_items.is_empty() {
        return Ok(());
    }
    // The list stored the same items, as a rule: rewriting them would cost three B-tree
    // deletions and three insertions per item for nothing.
    let stored_items = item_keys_sqlite(conn, &replaced_items)?;
    replaced_items
        .retain(|(pk, keys)| stored_items.get(pk).map_or(&[][..], Vec::as_slice) != *keys);
    for chunk in replaced_items.chunks(ROWS_PER_STATEMENT) {
        let pks = chunk.iter().map(|(pk, _)| pk);
        conn.prepare_cached(&delete_items_sql(chunk.len()))?
            .execute(rusqlite::params_from_iter(pks))?;
    }
    insert_item_keys_sqlite(conn, user_id, &replaced_items)?;
    bump_version_sqlite(conn, user_id)
}

/// The stored items of `shipments` (by primary key), in the order they were stored.
fn item_keys_sqlite(
    conn: &rusqlite::Connection,
    shipments: &[(i64, &[ItemKey])],
) -> rusqlite::Result<HashMap<i64, Vec<ItemKey>>> {
    let mut found: HashMap<i64, Vec<ItemKey>> = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT shipment_pk, order_item_id, ean FROM shipment_items \
             WHERE shipment_pk IN ({}) ORDER BY shipment_pk, id",
            placeholders(chunk.len(), "?")
        );
        let mut select = conn.prepare_cached(&sql)?;
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

/// A stored shipment's key and indexed columns that its detail may change.
struct StoredRow {
    id: i64,
    shipment_date: i64,
    shipment_reference: Option<String>,
    order_id: Option<String>,
    track_and_trace: Option<String>,
}

fn stored_rows_sqlite(
    conn: &rusqlite::Connection,
    shop_id: i64,
    shipments: &[NewShipment],
) -> rusqlite::Result<HashMap<String, StoredRow>> {
    let mut found = HashMap::with_capacity(shipments.len());
    for chunk in shipments.chunks(ROWS_PER_STATEMENT) {
        let sql = select_stored_sql(
            "shipment_id, id, shipment_date, shipment_reference, order_id, track_and_trace",
            chunk.len(),
        );
        let params = std::iter::once(&shop_id as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|s| &s.shipment_id as &dyn rusqlite::ToSql));
        let mut select = conn.prepare_cached(&sql)?;
        let mut rows = select.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let stored = StoredRow {
                id: row.get(1)?,
                shipment_date: row.get(2)?,
                shipment_reference: row.get(3)?,
                order_id: row.get(4)?,
                track_and_trace: row.get(5)?,
            };
            found.insert(row.get(0)?, stored);
        }
    }
    Ok(found)
}

/// [`mark_detail_gone_in`] on a rusqlite connection inside the caller's transaction.
pub(super) fn mark_detail_gone_sqlite(
    conn: &rusqlite::Connection,
    user_id: i64,
    shop_id: i64,
    shipment_id: &str,
) -> rusqlite::Result<()> {
    let now = super::now();
    conn.prepare_cached(MARK_DETAIL_GONE)?
        .execute((now, now, shop_id, shipment_id))?;
    bump_version_sqlite(conn, user_id)
}

/// [`count_pending_in`] on a rusqlite connection.
pub(super) fn count_pending_sqlite(
    conn: &rusqlite::Connection,
    shop_id: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(COUNT_PENDING)?
        .query_row([shop_id], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for script in super::super::migrations::sqlite_scripts() {
            conn.execute_batch(script).unwrap();
        }
        // No seller or shop rows: these tests are about the shipments' own tables.
        conn.pragma_update(None, "foreign_keys", false).unwrap();
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
            shipment_date: 1_700_000_000,
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
        insert_new_sqlite(&conn, user, shop, &[shipment(vec![item("1", "a")])]).unwrap();
        let listed = stored_items(&conn);

        let mut detail = shipment(vec![item("1", "a")]);
        detail.detail_synced_at = Some(1);
        store_details_sqlite(&conn, user, shop, &[detail.clone()]).unwrap();
        assert_eq!(stored_items(&conn), listed, "the same items stay as stored");

        detail.item_keys.push(item("2", "b"));
        store_details_sqlite(&conn, user, shop, &[detail.clone()]).unwrap();
        let eans: Vec<_> = stored_items(&conn)
            .into_iter()
            .map(|(_, _, ean)| ean)
            .collect();
        assert_eq!(eans, [Some("a".to_owned()), Some("b".to_owned())]);

        detail.item_keys.remove(0);
        store_details_sqlite(&conn, user, shop, &[detail]).unwrap();
        let items: Vec<_> = stored_items(&conn)
            .into_iter()
            .map(|(_, id, _)| id)
            .collect();
        assert_eq!(items, ["2"], "an item the detail no longer has is gone");
    }
}
