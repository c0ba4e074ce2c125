//! Shipments with their items, transport and customer details, and the raw marketplace JSON.
//! Lists are served from covering indexes; the unfiltered `count` comes from per-shop counters
//! maintained on insert, so no request counts the whole table.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreResult};

/// How a list is ordered; every order ends with `id` so that pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub shop_id: Option<i64>,
    pub fulfilment_method: Option<&'static str>,
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
    pub fulfilment_method: String,
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
        fulfilment_method: row.try_get(5)?,
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

fn where_clause(user_id: i64, filter: &Filter) -> (String, Vec<Bind>) {
    let mut sql = String::from(" WHERE s.user_id = ?");
    let mut binds = vec![Bind::Int(user_id)];
    if let Some(shop_id) = filter.shop_id {
        sql.push_str(" AND s.shop_id = ?");
        binds.push(Bind::Int(shop_id));
    }
    if let Some(method) = filter.fulfilment_method {
        sql.push_str(" AND s.fulfilment_method = ?");
        binds.push(Bind::Text(method.to_owned()));
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
    let count = if filter.narrows() {
        let sql = format!("SELECT COUNT(*) FROM shipments s{where_sql}");
        bind_all(db.query(&sql), &binds)
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?
    } else {
        super::shops::shipment_total(db, user_id, filter.shop_id).await?
    };
    if offset >= count {
        return Ok((Vec::new(), count));
    }
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM shipments s{where_sql} ORDER BY {} LIMIT ? OFFSET ?",
        ordering.sql()
    );
    let rows = bind_all(db.query(&sql), &binds)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await?;
    let shipments = rows.iter().map(row_from).collect::<Result<_, _>>()?;
    Ok((shipments, count))
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
#[derive(Debug, Clone)]
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
    pub fulfilment_method: String,
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
    let mut inserted = 0;
    let insert_sql = format!(
        "INSERT INTO shipments (shop_id, user_id, shipment_id, shipment_date, shipment_reference, \
         fulfilment_method, order_id, order_placed_at, pickup_point, transport_id, \
         transporter_code, track_and_trace, shipping_label_id, transport_events, items, customer, \
         raw, detail_synced_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){}",
        db.returning_id()
    );
    for shipment in shipments {
        let exists = db
            .query("SELECT id FROM shipments WHERE shop_id = ? AND shipment_id = ?")
            .bind(shop_id)
            .bind(shipment.shipment_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if exists {
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
        insert_item_keys(db, conn, pk, user_id, &shipment.item_keys).await?;
        inserted += 1;
    }
    db.query("UPDATE shops SET shipment_count = shipment_count + ? WHERE id = ?")
        .bind(inserted as i64)
        .bind(shop_id)
        .execute(&mut *conn)
        .await?;
    Ok(inserted)
}

async fn insert_item_keys(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    shipment_pk: i64,
    user_id: i64,
    items: &[ItemKey],
) -> StoreResult<()> {
    for item in items {
        db.query(
            "INSERT INTO shipment_items (shipment_pk, user_id, order_item_id, ean) VALUES (?, ?, ?, ?)",
        )
        .bind(shipment_pk)
        .bind(user_id)
        .bind(item.order_item_id.as_str())
        .bind(item.ean.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Fills in a stored shipment's detail (every field the detail call gives), replacing its
/// items, inside the caller's transaction.
pub async fn store_detail_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
    shop_id: i64,
    detail: &NewShipment,
) -> StoreResult<()> {
    let row = db
        .query("SELECT id FROM shipments WHERE shop_id = ? AND shipment_id = ?")
        .bind(shop_id)
        .bind(detail.shipment_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        insert_new_in(db, conn, user_id, shop_id, std::slice::from_ref(detail)).await?;
        return Ok(());
    };
    let pk: i64 = row.try_get(0)?;
    db.query(
        "UPDATE shipments SET shipment_date = ?, shipment_reference = ?, order_id = ?, \
         order_placed_at = ?, pickup_point = ?, transport_id = ?, transporter_code = ?, \
         track_and_trace = ?, shipping_label_id = ?, transport_events = ?, items = ?, customer = ?, \
         raw = ?, detail_synced_at = ?, updated_at = ? WHERE id = ?",
    )
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
    .bind(super::now())
    .bind(pk)
    .execute(&mut *conn)
    .await?;
    db.query("DELETE FROM shipment_items WHERE shipment_pk = ?")
        .bind(pk)
        .execute(&mut *conn)
        .await?;
    insert_item_keys(db, conn, pk, user_id, &detail.item_keys).await
}

/// Marks a shipment whose detail the marketplace no longer has, so it is not asked again.
pub async fn mark_detail_gone_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    shop_id: i64,
    shipment_id: &str,
) -> StoreResult<()> {
    db.query("UPDATE shipments SET detail_synced_at = ?, updated_at = ? WHERE shop_id = ? AND shipment_id = ?")
        .bind(super::now())
        .bind(super::now())
        .bind(shop_id)
        .bind(shipment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Up to `limit` of the shop's shipments still waiting for their detail, newest first.
pub async fn pending_details(db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
    let rows = db
        .query(
            "SELECT shipment_id FROM shipments WHERE shop_id = ? AND detail_synced_at IS NULL \
             ORDER BY shipment_date DESC, id DESC LIMIT ?",
        )
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
        .query("SELECT COUNT(*) FROM shipments WHERE shop_id = ? AND detail_synced_at IS NULL")
        .bind(shop_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?)
}
