//! Buyer data protection: erasing the personal data of a seller's shipments, finding the
//! shipments of one buyer, the retention setting and its job's bookkeeping, and the access log.
//!
//! Erasure nulls `customer` and rewrites `raw` without the marketplace's address blocks (in
//! Rust, so that no backend's JSON functions are needed), and keeps ids, dates, items, prices
//! and transport. Every erased shipment takes a number of its seller's change sequence in the
//! erasure's own transaction, as a sync's writes do, so that the change feed, the webhooks and
//! the page cache (through the seller's shipments version) all see it.

use std::collections::BTreeSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::{self, Statement};
use super::keyset::{self, Keyset, Seek};
use super::shipments::sql as shipment_sql;
use super::{Db, StoreResult};
use crate::domain::Timestamp;
use crate::store::webhooks;

/// Shipments erased per transaction: each holds the seller's row lock (which a sync's commit
/// for that seller waits for) for a few milliseconds, never for the whole request or run.
pub const BATCH: usize = 500;

/// The keys of bol's shipment detail that hold the buyer's personal data: names, addresses,
/// e-mail, phone, company and tax numbers all live inside these blocks.
const PERSONAL_KEYS: &[&str] = &["shipmentDetails", "billingDetails", "customerDetails"];

/// Which of a seller's shipments a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The buyer's e-mail address, in the shipping or the billing details (case-insensitive).
    Email(String),
    OrderId(String),
    /// Row ids, as the API shows them.
    ShipmentIds(Vec<i64>),
}

/// `raw` without the buyer's personal data: the personal blocks become `null`. Text that is
/// not a JSON object cannot be scrubbed with confidence and is dropped whole.
pub fn scrub_raw(raw: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(raw).ok()?;
    let object = value.as_object_mut()?;
    for key in PERSONAL_KEYS {
        if let Some(block) = object.get_mut(*key) {
            *block = serde_json::Value::Null;
        }
    }
    Some(value.to_string())
}

/// `%"email"%` for `LIKE ... ESCAPE '!'`, lower-cased: the address as a whole JSON string
/// anywhere in the customer details.
fn email_pattern(email: &str) -> String {
    let mut pattern = String::from("%\"");
    for c in email.to_lowercase().chars() {
        if matches!(c, '!' | '%' | '_') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push_str("\"%");
    pattern
}

/// The row ids of the seller's shipments that `subject` names, in id order; with
/// `held_only`, only those still holding personal data.
///
/// By e-mail this reads each of the seller's shipments that still holds customer details:
/// the address is kept only inside them. A request names one buyer and is rare; an index of
/// addresses would be one more copy of the personal data to erase.
pub async fn select(
    db: &Db,
    user_id: i64,
    subject: &Subject,
    held_only: bool,
) -> StoreResult<Vec<i64>> {
    let held = if held_only {
        " AND personal_data_erased_at IS NULL"
    } else {
        ""
    };
    let rows = match subject {
        Subject::Email(email) => {
            let sql = format!(
                "SELECT id FROM shipments WHERE user_id = ?{held} AND customer IS NOT NULL \
                 AND LOWER(customer) LIKE ? ESCAPE '!' ORDER BY id"
            );
            db.query(&sql)
                .bind(user_id)
                .bind(email_pattern(email))
                .fetch_all(&db.pool)
                .await?
        }
        Subject::OrderId(order_id) => {
            let sql = format!(
                "SELECT id FROM shipments WHERE shop_id IN (SELECT id FROM shops WHERE user_id = ?) \
                 AND order_id = ?{held} ORDER BY id"
            );
            db.query(&sql)
                .bind(user_id)
                .bind(order_id.as_str())
                .fetch_all(&db.pool)
                .await?
        }
        Subject::ShipmentIds(ids) => {
            let mut found = Vec::with_capacity(ids.len());
            let unique: BTreeSet<i64> = ids.iter().copied().collect();
            let unique: Vec<i64> = unique.into_iter().collect();
            for chunk in unique.chunks(BATCH) {
                let sql = format!(
                    "SELECT id FROM shipments WHERE user_id = ?{held} AND id IN ({}) ORDER BY id",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut query = db.query(&sql).bind(user_id);
                for id in chunk {
                    query = query.bind(*id);
                }
                found.extend(query.fetch_all(&db.pool).await?);
            }
            found
        }
    };
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Erases the personal data of those of the seller's shipments `ids` that still hold it, in
/// transactions of [`BATCH`]; returns the ids erased, in id order. Another seller's ids erase
/// nothing. An erased shipment is marked as having its detail, so that no sync asks for it
/// again; a detail stored after cannot bring the data back either ([`shipment_sql`]'s update
/// keeps erased columns erased).
pub async fn erase(db: &Db, user_id: i64, ids: &[i64]) -> StoreResult<Vec<i64>> {
    let mut erased = Vec::new();
    for chunk in ids.chunks(BATCH) {
        erased.extend(erase_batch(db, user_id, chunk).await?);
    }
    erased.sort_unstable();
    Ok(erased)
}

async fn erase_batch(db: &Db, user_id: i64, ids: &[i64]) -> StoreResult<Vec<i64>> {
    let mut tx = db.begin_write().await?;
    // Taking the seller's row first makes this the writer before it reads: a SQLite
    // transaction that read and then writes after another writer's commit fails at once, and
    // on PostgreSQL and MySQL no sync step can store these shipments between read and write.
    db.query(shipment_sql::ALLOCATE_CHANGES)
        .bind(0i64)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // Erased data must not be served again from a page read before, however recent.
    db.query(shipment_sql::BUMP_EPOCH)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "SELECT id, shop_id, raw FROM shipments WHERE user_id = ? \
         AND personal_data_erased_at IS NULL AND id IN ({}) ORDER BY id",
        vec!["?"; ids.len()].join(", ")
    );
    let mut query = db.query(&sql).bind(user_id);
    for id in ids {
        query = query.bind(*id);
    }
    let rows: Vec<(i64, i64, Option<String>)> = query
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let before: i64 = db
        .query(shipment_sql::LAST_CHANGE)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    db.query(shipment_sql::ALLOCATE_CHANGES)
        .bind(rows.len() as i64)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let now = Timestamp::now().unix_seconds();
    let mut shops = BTreeSet::new();
    for (change_seq, (id, shop_id, raw)) in (before + 1..).zip(&rows) {
        db.query(
            "UPDATE shipments SET customer = NULL, raw = ?, personal_data_erased_at = ?, \
             detail_synced_at = COALESCE(detail_synced_at, ?), updated_at = ?, change_seq = ? \
             WHERE id = ? AND user_id = ?",
        )
        .bind(raw.as_deref().and_then(scrub_raw))
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(change_seq)
        .bind(*id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        shops.insert(*shop_id);
    }
    for shop_id in shops {
        db.query(webhooks::record_shipment_changes_sql(db.backend))
            .bind(now)
            .bind(shop_id)
            .bind(before)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id, _, _)| id).collect())
}

/// The seller's retention setting: days after its shipment date that a shipment's personal
/// data is kept; `None` keeps it.
pub async fn retention_days(db: &Db, user_id: i64) -> StoreResult<Option<i64>> {
    let row = db
        .query("SELECT retention_days FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?.flatten())
}

/// The seller's retention setting and when its job last ran for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: Option<i64>,
    pub ran_at: Option<Timestamp>,
}

pub async fn retention(db: &Db, user_id: i64) -> StoreResult<Retention> {
    let row = db
        .query("SELECT retention_days, retention_ran_at FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(Retention {
            days: None,
            ran_at: None,
        });
    };
    Ok(Retention {
        days: row.try_get(0)?,
        ran_at: super::maybe_seconds_at(&row, 1)?,
    })
}

/// Sets the retention setting; the job runs for the seller at its next pass.
pub async fn set_retention_days(db: &Db, user_id: i64, days: Option<i64>) -> StoreResult<()> {
    db.query("UPDATE users SET retention_days = ?, retention_changed_at = ? WHERE id = ?")
        .bind(days)
        .bind(Timestamp::now().unix_seconds())
        .bind(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Sellers with a retention setting whose job is due: never run, changed since it last
/// started, or last started before `stale`. `(user_id, retention_days)`.
pub async fn due_sellers(db: &Db, stale: Timestamp) -> StoreResult<Vec<(i64, i64)>> {
    let rows = db
        .query(
            "SELECT id, retention_days FROM users WHERE retention_days IS NOT NULL \
             AND (retention_ran_at IS NULL OR retention_ran_at < ? \
             OR retention_changed_at >= retention_ran_at) ORDER BY id",
        )
        .bind(stale.unix_seconds())
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Up to `limit` of the seller's shipments dated before `before` that still hold personal
/// data, oldest first: an index range that skips every shipment erased already.
pub async fn expired(
    db: &Db,
    user_id: i64,
    before: Timestamp,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    let rows = db
        .query(
            "SELECT id FROM shipments WHERE user_id = ? AND personal_data_erased_at IS NULL \
             AND shipment_date < ? ORDER BY shipment_date, id LIMIT ?",
        )
        .bind(user_id)
        .bind(before.unix_seconds())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Records that the job's run for the seller started at `started`.
pub async fn record_run(db: &Db, user_id: i64, started: Timestamp) -> StoreResult<()> {
    db.query("UPDATE users SET retention_ran_at = ? WHERE id = ?")
        .bind(started.unix_seconds())
        .bind(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// One read of personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub id: i64,
    pub at: Timestamp,
    /// Who read: `user:<username>` for the API, `dashboard:<username>` for the dashboard.
    pub actor: String,
    /// What was read: `shipment.detail`, `data_subject.access`, `shipments.export`, ...
    pub action: String,
    pub shipment_ids: Option<Vec<i64>>,
    /// The query that selected them, when a filter did.
    pub filter: Option<String>,
}

/// A read to record.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub shipment_ids: Option<&'a [i64]>,
    pub filter: Option<&'a str>,
}

/// Logs a read. On a SQLite file the row joins the writer's next group commit: one commit for
/// the reads of many requests, where sqlx's pool committed one per request, each waiting for
/// SQLite's write lock.
pub async fn record_access(db: &Db, user_id: i64, access: Access<'_>) -> StoreResult<()> {
    let ids = access
        .shipment_ids
        .map(|ids| serde_json::to_string(ids).unwrap_or_default());
    let insert = Statement::new(
        "INSERT INTO access_log (user_id, at, actor, action, shipment_ids, filter) \
         VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            user_id.into(),
            Timestamp::now().unix_seconds().into(),
            access.actor.into(),
            access.action.into(),
            ids.as_deref().into(),
            access.filter.into(),
        ],
    );
    batch::run(db, vec![insert]).await?;
    Ok(())
}

const ACCESS_COLUMNS: &str = "id, at, actor, action, shipment_ids, filter";

fn access_row(row: &AnyRow) -> Result<AccessEntry, sqlx::Error> {
    let ids: Option<String> = row.try_get("shipment_ids")?;
    Ok(AccessEntry {
        id: row.try_get("id")?,
        at: super::seconds_at(row, "at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        shipment_ids: ids.and_then(|ids| serde_json::from_str(&ids).ok()),
        filter: row.try_get("filter")?,
    })
}

/// One page of the seller's access log, newest first, and its total.
pub async fn access_log(
    db: &Db,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<AccessEntry>, i64)> {
    let from = "access_log WHERE user_id = ?";
    keyset::read_numbered_page(
        db,
        ACCESS_COLUMNS,
        from,
        &[user_id],
        ACCESS_ORDER,
        limit,
        offset,
        access_row,
    )
    .await
}

/// The access log's order, newest first, as keyset columns.
const ACCESS_ORDER: Keyset = Keyset {
    key: None,
    id: "id",
    descending: true,
};

/// One keyset page of the seller's access log, newest first.
pub async fn walk_access_log(
    db: &Db,
    user_id: i64,
    seek: &Seek,
) -> StoreResult<(Vec<AccessEntry>, bool)> {
    let select = format!("SELECT {ACCESS_COLUMNS} FROM access_log WHERE user_id = ?");
    keyset::read_page(db, &select, &[user_id], ACCESS_ORDER, seek, access_row).await
}

/// Deletes up to `limit` access-log entries older than `before`; returns how many went.
pub async fn prune_access_log(db: &Db, before: Timestamp, limit: i64) -> StoreResult<u64> {
    let ids: Vec<i64> = db
        .query("SELECT id FROM access_log WHERE at < ? ORDER BY at LIMIT ?")
        .bind(before.unix_seconds())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    super::delete_by_ids(db, "access_log", &ids).await
}

/// Moves what the WAL holds into the database file and empties it, on SQLite: an erased
/// address otherwise stays readable in the WAL until the next automatic checkpoint. Readers
/// still in an older snapshot keep their frames; a later checkpoint (at the latest the clean
/// stop's) takes them.
pub async fn checkpoint(db: &Db) -> StoreResult<()> {
    if db.backend == super::Backend::Sqlite {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_raw_keeps_everything_but_the_personal_blocks() {
        let raw = r#"{"shipmentId":"1","shipmentDetails":{"email":"a@b.nl","surname":"Vries"},
            "billingDetails":{"email":"a@b.nl"},"shipmentItems":[{"unitPrice":24.95}],
            "transport":{"trackAndTrace":"3S"}}"#;
        let scrubbed = scrub_raw(raw).unwrap();
        assert!(!scrubbed.contains("a@b.nl") && !scrubbed.contains("Vries"));
        let value: serde_json::Value = serde_json::from_str(&scrubbed).unwrap();
        assert_eq!(value["shipmentDetails"], serde_json::Value::Null);
        assert_eq!(value["billingDetails"], serde_json::Value::Null);
        assert_eq!(value["shipmentItems"][0]["unitPrice"], 24.95);
        assert_eq!(value["transport"]["trackAndTrace"], "3S");
        assert_eq!(scrub_raw("not json"), None);
        assert_eq!(scrub_raw("[1]"), None);
    }

    #[test]
    fn an_email_pattern_escapes_like_wildcards() {
        assert_eq!(email_pattern("A_b%c!d@x.nl"), "%\"a!_b!%c!!d@x.nl\"%");
    }
}
