//! Shipments with their items, transport and customer details, and the raw marketplace JSON:
//! the types and the operations the API and the engine call. Lists are served from covering
//! indexes; the unfiltered `count` comes from per-shop counters maintained on insert, so no
//! request counts the whole table.
//!
//! The statements are written once ([`sql`]); each backend family runs them its own way
//! ([`super::hot`]).

mod feed;
pub(super) mod sql;

pub use feed::Feed;

use std::sync::Arc;

use super::hot::HotPath;
use super::keyset::{self, Keyset, Position, Seek};
use super::steps::StepData;
use super::{Db, StoreResult};
use crate::domain::{FulfilmentMethod, Timestamp};
use sql::{Bind, Page, Selection, Walk};

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

    /// The same order as keyset columns, each served by an index `(scope, shipment_date, id)`
    /// or `(scope, id)`.
    fn keyset(self) -> Keyset {
        let (key, descending) = match self {
            Ordering::NewestFirst => (Some("s.shipment_date"), true),
            Ordering::OldestFirst => (Some("s.shipment_date"), false),
            Ordering::IdDescending => (None, true),
            Ordering::IdAscending => (None, false),
        };
        Keyset {
            key,
            id: "s.id",
            descending,
        }
    }

    /// A row's place in a list in this order.
    pub fn position(self, row: &ShipmentRow) -> Position {
        Position {
            key: self.keyset().key.map(|_| row.shipment_date.unix_seconds()),
            id: row.id,
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
    /// Inclusive lower bound.
    pub shipped_after: Option<Timestamp>,
    /// Exclusive upper bound.
    pub shipped_before: Option<Timestamp>,
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
    pub shipment_date: Timestamp,
    pub shipment_reference: Option<String>,
    pub fulfilment_method: FulfilmentMethod,
    pub order_id: Option<String>,
    pub pickup_point: Option<bool>,
    pub transport_id: Option<String>,
    pub transporter_code: Option<String>,
    pub track_and_trace: Option<String>,
    pub items: String,
    pub detail_synced_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Where the shipment's last change stands in its seller's change feed ([`changes`]).
    pub change_seq: i64,
    /// When the buyer's personal data was erased; `None` while it is held.
    pub personal_data_erased_at: Option<Timestamp>,
}

/// The extra columns of one shipment's detail.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentDetail {
    pub row: ShipmentRow,
    pub order_placed_at: Option<Timestamp>,
    pub shipping_label_id: Option<String>,
    pub transport_events: Option<String>,
    pub customer: Option<String>,
    pub raw: Option<String>,
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
    pub shipment_date: Timestamp,
    pub shipment_reference: Option<String>,
    pub fulfilment_method: FulfilmentMethod,
    pub order_id: Option<String>,
    pub order_placed_at: Option<Timestamp>,
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
    pub detail_synced_at: Option<Timestamp>,
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
    let page = Page {
        selection: Selection::new(user_id, filter),
        order: ordering.sql(),
        limit,
        offset,
    };
    db.family.list(db, page).await
}

/// One keyset page of the seller's shipments, as [`walk`] reads it.
#[derive(Debug)]
pub struct Walked {
    /// The seller's versions read before the page: the page is never older than them.
    pub versions: Versions,
    pub rows: Vec<ShipmentRow>,
    /// Whether more rows lie beyond the page in the seek's direction.
    pub more: bool,
}

/// One keyset page of the seller's shipments matching `filter` in `ordering`; another seller's
/// shop reads as empty.
pub async fn walk(
    db: &Db,
    user_id: i64,
    filter: &Filter,
    ordering: Ordering,
    seek: &Seek,
) -> StoreResult<Walked> {
    let keyset = ordering.keyset();
    let mut selection = Selection::new(user_id, filter);
    let (condition, binds) = keyset.condition(seek);
    selection.where_sql.push_str(&condition);
    selection.binds.extend(binds.into_iter().map(Bind::Int));
    let walk = Walk {
        selection,
        order: keyset.order_by(seek),
        limit: keyset::read_limit(seek),
    };
    let (versions, rows) = db.family.walk(db, walk).await?;
    let (rows, more) = keyset::page_of(rows, seek);
    Ok(Walked {
        versions,
        rows,
        more,
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
    let selection = Selection::new(user_id, filter);
    db.family.list_after(db, selection, after_id, limit).await
}

/// The feed's next shipments after `feed.after`: see [`feed`] for why no number is served
/// while a smaller one can still commit.
pub async fn changes(db: &Db, feed: Feed) -> StoreResult<Vec<ShipmentRow>> {
    db.family.changes(db, feed).await
}

/// The seller's shipments with these row ids, as listed, in id order: what a
/// `shipments.changed` event carries. Not a hot path (one query per hundred changes), so one
/// definition on the pool serves every backend.
pub async fn rows_by_ids(db: &Db, user_id: i64, ids: &[i64]) -> StoreResult<Vec<ShipmentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {} FROM shipments s WHERE s.user_id = ? AND s.id IN ({}) ORDER BY s.id",
        sql::LIST_COLUMNS,
        vec!["?"; ids.len()].join(", ")
    );
    let mut query = db.query(&sql).bind(user_id);
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(&db.pool).await?;
    Ok(rows
        .iter()
        .map(super::server::read::shipment_row)
        .collect::<Result<_, _>>()?)
}

/// One of the seller's shipments with its full detail.
pub async fn get(db: &Db, user_id: i64, id: i64) -> StoreResult<Option<ShipmentDetail>> {
    db.family.get(db, user_id, id).await
}

/// Where a seller's shipments stand, so that anything derived from them (the API's cached list
/// pages) can tell with one read how far it is out of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Bumped by every transaction that changes the seller's shipments.
    pub version: i64,
    /// Bumped only by the changes a client must see at once: a run's end (its status says its
    /// shipments are all there), a push, an erasure, a shop's deletion. A run's steps leave it.
    pub epoch: i64,
}

/// The seller's [`Versions`].
pub async fn version(db: &Db, user_id: i64) -> StoreResult<Versions> {
    db.family.version(db, user_id).await
}

/// Up to `limit` of the shop's shipments still waiting for their detail, newest first.
pub async fn pending_details(db: &Db, shop_id: i64, limit: i64) -> StoreResult<Vec<String>> {
    db.family.pending_details(db, shop_id, limit).await
}

/// Inserts shipments that the shop does not have yet, keyed by `(shop_id, shipment_id)`, and
/// keeps the shop's counter in step, all in one transaction. Returns how many were new.
pub async fn insert_new(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    shipments: &[NewShipment],
) -> StoreResult<u64> {
    let data = StepData::List(shipments.into());
    db.family.write(db, user_id, shop_id, data).await
}

/// Fills in stored shipments' details (every field the detail call gives), replacing their
/// items, in one transaction; a detail of a shipment not stored is inserted. Returns how many
/// were new.
pub async fn store_details(
    db: &Db,
    user_id: i64,
    shop_id: i64,
    details: &[NewShipment],
) -> StoreResult<u64> {
    let data = StepData::Details {
        details: details.into(),
        gone: Arc::default(),
    };
    db.family.write(db, user_id, shop_id, data).await
}

/// Bumps the seller's version and epoch (see [`Versions`]) inside the caller's transaction.
pub async fn bump_version_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    user_id: i64,
) -> StoreResult<()> {
    db.query(sql::BUMP_VERSION)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
