//! The shipments' statements, written once with `?` placeholders for both backend families,
//! and the decisions about what to write that do not depend on how it is run: which columns
//! a detail changes, which items it replaces.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Filter, ItemKey, NewShipment};
use crate::domain::Timestamp;
use crate::store::param::Param;

pub(crate) const LIST_COLUMNS: &str = "s.id, s.shop_id, s.shipment_id, s.shipment_date, \
    s.shipment_reference, s.fulfilment_method, s.order_id, s.pickup_point, s.transport_id, \
    s.transporter_code, s.track_and_trace, s.items, s.detail_synced_at, s.updated_at, s.change_seq, \
    s.personal_data_erased_at";

/// One shipment with its detail's columns after [`LIST_COLUMNS`]: `id, user_id`.
pub(crate) static DETAIL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {LIST_COLUMNS}, s.order_placed_at, s.shipping_label_id, s.transport_events, \
         s.customer, s.raw FROM shipments s WHERE s.id = ? AND s.user_id = ?"
    )
});

/// Whether the seller owns the shop: `shop_id, user_id`.
pub(crate) const OWNS_SHOP: &str = "SELECT 1 FROM shops WHERE id = ? AND user_id = ?";

/// The counters of one of the seller's shops (`user_id, shop_id`) or of all of them
/// (`user_id`), summed by the caller: PostgreSQL's and MySQL's `SUM` of a `BIGINT` is a
/// decimal that `Any` cannot read as an integer.
pub(crate) const SHOP_TOTAL: &str = "SELECT shipment_count FROM shops WHERE user_id = ? AND id = ?";
pub(crate) const SELLER_TOTAL: &str = "SELECT shipment_count FROM shops WHERE user_id = ?";

pub(crate) const VERSION: &str =
    "SELECT shipments_version, shipments_epoch FROM users WHERE id = ?";

/// For a change a client must see at once that takes no numbers of the change feed: both the
/// version and the epoch (see [`super::Versions`]).
pub(crate) const BUMP_VERSION: &str = "UPDATE users SET shipments_version = shipments_version + 1, \
    shipments_epoch = shipments_epoch + 1 WHERE id = ?";

/// Makes the changes of the transaction a client must see at once: `user_id`.
pub(crate) const BUMP_EPOCH: &str =
    "UPDATE users SET shipments_epoch = shipments_epoch + 1 WHERE id = ?";

/// [`BUMP_EPOCH`] for the seller of a shop: `shop_id`.
pub(crate) const BUMP_SHOP_EPOCH: &str = "UPDATE users SET shipments_epoch = shipments_epoch + 1 \
    WHERE id = (SELECT user_id FROM shops WHERE id = ?)";

/// Takes the next `count` numbers of the seller's change sequence (`count, user_id`), and
/// bumps the version with them: see [`super::changes`] for why under this row's lock.
pub(crate) const ALLOCATE_CHANGES: &str = "UPDATE users SET change_seq = change_seq + ?, \
    shipments_version = shipments_version + 1 WHERE id = ?";

/// The last number [`ALLOCATE_CHANGES`] took, read back in its transaction (MySQL's UPDATE
/// has no RETURNING): `user_id`.
pub(crate) const LAST_CHANGE: &str = "SELECT change_seq FROM users WHERE id = ?";

/// `shop_id, limit`.
pub(crate) const PENDING_DETAILS: &str = "SELECT shipment_id FROM shipments WHERE shop_id = ? \
    AND detail_synced_at IS NULL ORDER BY shipment_date DESC, id DESC LIMIT ?";

pub(crate) const COUNT_PENDING: &str =
    "SELECT COUNT(*) FROM shipments WHERE shop_id = ? AND detail_synced_at IS NULL";

/// `now, now, change_seq, shop_id, shipment_id`.
pub(crate) const MARK_DETAIL_GONE: &str = "UPDATE shipments SET detail_synced_at = ?, \
    updated_at = ?, change_seq = ? WHERE shop_id = ? AND shipment_id = ?";

/// Bound by [`insert_params`].
pub(crate) const INSERT_SHIPMENT: &str = "INSERT INTO shipments (shop_id, user_id, shipment_id, \
    shipment_date, shipment_reference, fulfilment_method, order_id, order_placed_at, pickup_point, \
    transport_id, transporter_code, track_and_trace, shipping_label_id, transport_events, items, \
    customer, raw, detail_synced_at, created_at, updated_at, change_seq) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Keeps the shop's shipment counter in step with its inserts: `inserted, shop_id`.
pub(crate) const COUNT_STORED: &str =
    "UPDATE shops SET shipment_count = shipment_count + ? WHERE id = ?";

/// Rows per multi-row statement: far below every backend's limit on bound parameters.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

fn placeholders(count: usize, group: &str) -> String {
    vec![group; count].join(", ")
}

/// `columns` of those of `count` shipment ids (bound after the shop id) that the shop has.
fn select_stored_sql(columns: &str, count: usize) -> String {
    format!(
        "SELECT {columns} FROM shipments WHERE shop_id = ? AND shipment_id IN ({})",
        placeholders(count, "?")
    )
}

/// The shipment id and primary key of those of `count` shipments the shop has stored: one
/// query per step instead of one per shipment.
pub(crate) fn stored_ids_sql(count: usize) -> String {
    select_stored_sql("shipment_id, id", count)
}

/// [`StoredRow`]s (after their shipment id) of those of `count` shipments the shop has.
pub(crate) fn stored_rows_sql(count: usize) -> String {
    select_stored_sql(
        "shipment_id, id, shipment_date, shipment_reference, order_id, track_and_trace",
        count,
    )
}

/// Inserts `count` items: `shipment_pk, user_id, order_item_id, ean` each.
pub(crate) fn insert_items_sql(count: usize) -> String {
    format!(
        "INSERT INTO shipment_items (shipment_pk, user_id, order_item_id, ean) VALUES {}",
        placeholders(count, "(?, ?, ?, ?)")
    )
}

/// Deletes the items of `count` shipments, by primary key.
pub(crate) fn delete_items_sql(count: usize) -> String {
    format!(
        "DELETE FROM shipment_items WHERE shipment_pk IN ({})",
        placeholders(count, "?")
    )
}

/// The stored items of `count` shipments (by primary key), in the order they were stored:
/// `shipment_pk, order_item_id, ean`.
pub(crate) fn item_keys_sql(count: usize) -> String {
    format!(
        "SELECT shipment_pk, order_item_id, ean FROM shipment_items \
         WHERE shipment_pk IN ({}) ORDER BY shipment_pk, id",
        placeholders(count, "?")
    )
}

/// [`INSERT_SHIPMENT`]'s values.
pub(crate) fn insert_params<'a>(
    shop_id: i64,
    user_id: i64,
    shipment: &'a NewShipment,
    now: Timestamp,
    change_seq: i64,
) -> [Param<'a>; 21] {
    [
        Param::Int(Some(shop_id)),
        Param::Int(Some(user_id)),
        Param::Text(Some(&shipment.shipment_id)),
        Param::seconds(Some(shipment.shipment_date)),
        Param::Text(shipment.shipment_reference.as_deref()),
        Param::Text(Some(shipment.fulfilment_method.as_str())),
        Param::Text(shipment.order_id.as_deref()),
        Param::seconds(shipment.order_placed_at),
        Param::Small(shipment.pickup_point.map(i16::from)),
        Param::Text(shipment.transport_id.as_deref()),
        Param::Text(shipment.transporter_code.as_deref()),
        Param::Text(shipment.track_and_trace.as_deref()),
        Param::Text(shipment.shipping_label_id.as_deref()),
        Param::Text(shipment.transport_events.as_deref()),
        Param::Text(Some(&shipment.items)),
        Param::Text(shipment.customer.as_deref()),
        Param::Text(shipment.raw.as_deref()),
        Param::seconds(shipment.detail_synced_at),
        Param::seconds(Some(now)),
        Param::seconds(Some(now)),
        Param::Int(Some(change_seq)),
    ]
}

/// Those of `shipments` not in `stored` (shipment ids), each once, in their order.
pub(crate) fn not_stored<'a, V>(
    shipments: &'a [NewShipment],
    stored: &HashMap<String, V>,
) -> Vec<&'a NewShipment> {
    let mut seen = std::collections::HashSet::with_capacity(shipments.len());
    shipments
        .iter()
        .filter(|s| !stored.contains_key(&s.shipment_id) && seen.insert(s.shipment_id.as_str()))
        .collect()
}

/// `(shipment_pk, user_id, order_item_id, ean)` of each item of `shipments`, by primary key.
pub(crate) fn item_params<'a>(
    user_id: i64,
    items: &'a [(i64, &'a ItemKey)],
) -> impl Iterator<Item = Param<'a>> {
    items.iter().flat_map(move |(pk, item)| {
        [
            Param::Int(Some(*pk)),
            Param::Int(Some(user_id)),
            Param::Text(Some(&item.order_item_id)),
            Param::Text(item.ean.as_deref()),
        ]
    })
}

/// The items of shipments, each with its shipment's primary key, in [`ROWS_PER_STATEMENT`]s.
pub(crate) fn flat_items<'a>(shipments: &[(i64, &'a [ItemKey])]) -> Vec<(i64, &'a ItemKey)> {
    shipments
        .iter()
        .flat_map(|(pk, items)| items.iter().map(move |item| (*pk, item)))
        .collect()
}

/// A stored shipment's key and the indexed columns that its detail may change.
#[derive(Debug)]
pub(crate) struct StoredRow {
    pub id: i64,
    pub shipment_date: Timestamp,
    pub shipment_reference: Option<String>,
    pub order_id: Option<String>,
    pub track_and_trace: Option<String>,
}

/// Which of a stored row's indexed columns its detail changes, one bit each in the order of
/// [`UPDATE_DETAIL`]'s optional assignments.
///
/// An UPDATE that names an indexed column rewrites its index entry on SQLite, changed or not,
/// and the detail's statement would name columns of eight of the table's indexes; the list page
/// stored most of them already, and the detail rarely changes them. So both families read the
/// indexed columns first ([`stored_rows_sql`], the query that finds the stored rows anyway) and
/// set only those that differ: two index rewrites per detail instead of eight on SQLite, and on
/// PostgreSQL and MySQL, which compare values themselves, the same statements at no cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Changed(u8);

const SHIPMENT_DATE: u8 = 1;
const SHIPMENT_REFERENCE: u8 = 2;
const ORDER_ID: u8 = 4;
const TRACK_AND_TRACE: u8 = 8;

impl Changed {
    pub(crate) fn of(stored: &StoredRow, detail: &NewShipment) -> Changed {
        let mut bits = 0;
        if stored.shipment_date != detail.shipment_date {
            bits |= SHIPMENT_DATE;
        }
        if stored.shipment_reference != detail.shipment_reference {
            bits |= SHIPMENT_REFERENCE;
        }
        if stored.order_id != detail.order_id {
            bits |= ORDER_ID;
        }
        if stored.track_and_trace != detail.track_and_trace {
            bits |= TRACK_AND_TRACE;
        }
        Changed(bits)
    }

    /// The UPDATE of a detail that changes these columns; bound by [`detail_params`].
    pub(crate) fn sql(self) -> &'static str {
        &UPDATE_DETAIL[usize::from(self.0)]
    }
}

/// The detail's UPDATE for each combination of [`Changed`] columns, built once: a statement
/// per combination keeps each in the prepared-statement caches. A detail fetched before its
/// shipment's personal data was erased and stored after must not bring that data back, so the
/// statement itself keeps an erased row's personal columns as erased.
static UPDATE_DETAIL: LazyLock<Vec<String>> = LazyLock::new(|| {
    let optional = [
        (SHIPMENT_DATE, "shipment_date"),
        (SHIPMENT_REFERENCE, "shipment_reference"),
        (ORDER_ID, "order_id"),
        (TRACK_AND_TRACE, "track_and_trace"),
    ];
    (0..16u8)
        .map(|bits| {
            let mut sql = String::from(
                "UPDATE shipments SET order_placed_at = ?, pickup_point = ?, transport_id = ?, \
                 transporter_code = ?, shipping_label_id = ?, transport_events = ?, items = ?, \
                 customer = CASE WHEN personal_data_erased_at IS NULL THEN ? END, \
                 raw = CASE WHEN personal_data_erased_at IS NULL THEN ? ELSE raw END, \
                 detail_synced_at = ?, updated_at = ?, change_seq = ?",
            );
            for (bit, column) in optional {
                if bits & bit != 0 {
                    sql.push_str(&format!(", {column} = ?"));
                }
            }
            sql.push_str(" WHERE id = ?");
            sql
        })
        .collect()
});

/// The values of [`Changed::sql`]'s statement for `detail` of the stored row `id`.
pub(crate) fn detail_params<'a>(
    detail: &'a NewShipment,
    changed: Changed,
    now: Timestamp,
    change_seq: i64,
    id: i64,
) -> impl Iterator<Item = Param<'a>> {
    let always = [
        Param::seconds(detail.order_placed_at),
        Param::Small(detail.pickup_point.map(i16::from)),
        Param::Text(detail.transport_id.as_deref()),
        Param::Text(detail.transporter_code.as_deref()),
        Param::Text(detail.shipping_label_id.as_deref()),
        Param::Text(detail.transport_events.as_deref()),
        Param::Text(Some(&detail.items)),
        Param::Text(detail.customer.as_deref()),
        Param::Text(detail.raw.as_deref()),
        Param::seconds(detail.detail_synced_at),
        Param::seconds(Some(now)),
        Param::Int(Some(change_seq)),
    ];
    let optional = [
        (SHIPMENT_DATE, Param::seconds(Some(detail.shipment_date))),
        (
            SHIPMENT_REFERENCE,
            Param::Text(detail.shipment_reference.as_deref()),
        ),
        (ORDER_ID, Param::Text(detail.order_id.as_deref())),
        (
            TRACK_AND_TRACE,
            Param::Text(detail.track_and_trace.as_deref()),
        ),
    ];
    always
        .into_iter()
        .chain(
            optional
                .into_iter()
                .filter(move |(bit, _)| changed.0 & bit != 0)
                .map(|(_, param)| param),
        )
        .chain([Param::Int(Some(id))])
}

/// Keeps of `replaced` (shipments by primary key, with their detail's items) those whose items
/// differ from the `stored` ones. The list stored the same items, as a rule: rewriting them
/// would cost three B-tree deletions and three insertions per item for nothing.
pub(crate) fn items_to_replace(
    replaced: &mut Vec<(i64, &[ItemKey])>,
    stored: &HashMap<i64, Vec<ItemKey>>,
) {
    replaced.retain(|(pk, keys)| stored.get(pk).map_or(&[][..], Vec::as_slice) != *keys);
}

/// A bind value of a list query, owned so that the query can move to another thread.
#[derive(Debug)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

impl rusqlite::ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Bind::Int(v) => v.to_sql(),
            Bind::Text(v) => v.to_sql(),
        }
    }
}

/// Binds `binds` to a sqlx query, in order.
pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.as_str()),
        };
    }
    query
}

/// The seller's shipments a filter selects: its WHERE clause and binds.
#[derive(Debug)]
pub(crate) struct Selection {
    pub user_id: i64,
    pub shop_id: Option<i64>,
    /// Whether anything beyond the shop narrows the set (then the count must be computed).
    pub narrows: bool,
    pub where_sql: String,
    pub binds: Vec<Bind>,
}

impl Selection {
    /// A shop filter replaces the seller condition, so that the shop's indexes answer without
    /// reading each row for its seller: readers establish first that the shop is the seller's
    /// ([`OWNS_SHOP`]), or count through its seller's shops. Without a shop, an order id or a
    /// search is looked up through the seller's shops ([`seller_lookup`]), which then stands
    /// for the seller condition: beside it, SQLite would read all the seller's rows by their
    /// date index and test each.
    pub(crate) fn new(user_id: i64, filter: &Filter) -> Selection {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds = Vec::new();
        let looked_up = filter.order_id.is_some() || filter.q.is_some();
        match filter.shop_id {
            Some(shop_id) => {
                conditions.push("s.shop_id = ?".into());
                binds.push(Bind::Int(shop_id));
            }
            None if !looked_up => {
                conditions.push("s.user_id = ?".into());
                binds.push(Bind::Int(user_id));
            }
            None => {}
        }
        if let Some(method) = filter.fulfilment_method {
            conditions.push("s.fulfilment_method = ?".into());
            binds.push(Bind::Text(method.as_str().to_owned()));
        }
        if let Some(order_id) = &filter.order_id {
            conditions.push(match filter.shop_id {
                Some(_) => {
                    binds.push(Bind::Text(order_id.clone()));
                    "s.order_id = ?".into()
                }
                None => seller_lookup(&["order_id"], user_id, order_id, &mut binds),
            });
        }
        if let Some(ean) = &filter.ean {
            conditions.push(
                "s.id IN (SELECT i.shipment_pk FROM shipment_items i WHERE i.user_id = ? AND i.ean = ?)"
                    .into(),
            );
            binds.push(Bind::Int(user_id));
            binds.push(Bind::Text(ean.clone()));
        }
        if let Some(after) = filter.shipped_after {
            conditions.push("s.shipment_date >= ?".into());
            binds.push(Bind::Int(after.unix_seconds()));
        }
        if let Some(before) = filter.shipped_before {
            conditions.push("s.shipment_date < ?".into());
            binds.push(Bind::Int(before.unix_seconds()));
        }
        if let Some(q) = &filter.q {
            conditions.push(match filter.shop_id {
                Some(_) => {
                    let any = SEARCHED.map(|column| {
                        binds.push(Bind::Text(q.clone()));
                        format!("s.{column} = ?")
                    });
                    format!("({})", any.join(" OR "))
                }
                None => seller_lookup(&SEARCHED, user_id, q, &mut binds),
            });
        }
        let sql = format!(" WHERE {}", conditions.join(" AND "));
        Selection {
            user_id,
            shop_id: filter.shop_id,
            narrows: filter.narrows(),
            where_sql: sql,
            binds,
        }
    }

    /// Counts the selection, when it [`narrows`](Selection::narrows).
    pub(crate) fn count_sql(&self) -> String {
        format!("SELECT COUNT(*) FROM shipments s{}", self.where_sql)
    }

    /// Up to a limit of the selection above an id, in id order: binds, `after_id, limit`.
    pub(crate) fn after_sql(&self) -> String {
        format!(
            "SELECT {LIST_COLUMNS} FROM shipments s{} AND s.id > ? ORDER BY s.id ASC LIMIT ?",
            self.where_sql
        )
    }
}

/// The columns a search (`q`) matches exactly.
const SEARCHED: [&str; 4] = [
    "shipment_id",
    "order_id",
    "shipment_reference",
    "track_and_trace",
];

/// `s.id IN (...)`: the seller's shipments with any of `columns` equal to `value`, found by
/// seeking each of the seller's shops in the shop's index on the column (the lookups are
/// indexed per shop: see migration 0019). The branches are wrapped in a derived table so
/// that MariaDB reads them once instead of once per row, as a dependent subquery.
fn seller_lookup(columns: &[&str], user_id: i64, value: &str, binds: &mut Vec<Bind>) -> String {
    let branches: Vec<String> = columns
        .iter()
        .map(|column| {
            binds.push(Bind::Int(user_id));
            binds.push(Bind::Text(value.to_owned()));
            format!(
                "SELECT x.id FROM shipments x WHERE x.shop_id IN \
                 (SELECT h.id FROM shops h WHERE h.user_id = ?) AND x.{column} = ?"
            )
        })
        .collect();
    format!(
        "s.id IN (SELECT m.id FROM ({}) m)",
        branches.join(" UNION ALL ")
    )
}

/// A keyset page of a selection (see [`crate::store::keyset`]): the selection narrowed to the
/// rows past a position, read in an order, up to a limit.
#[derive(Debug)]
pub(crate) struct Walk {
    pub selection: Selection,
    /// `ORDER BY`'s terms.
    pub order: String,
    pub limit: i64,
}

impl Walk {
    /// The page's statement: the selection's binds, then `limit`.
    pub(crate) fn sql(&self) -> String {
        format!(
            "SELECT {LIST_COLUMNS} FROM shipments s{} ORDER BY {} LIMIT ?",
            self.selection.where_sql, self.order
        )
    }
}

/// One page of a selection.
#[derive(Debug)]
pub(crate) struct Page {
    pub selection: Selection,
    /// `ORDER BY`'s terms.
    pub order: &'static str,
    pub limit: i64,
    pub offset: i64,
}
