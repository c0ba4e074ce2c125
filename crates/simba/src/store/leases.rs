//! Named leases: work that exactly one process may do at a time (the scheduler). A holder
//! renews its lease; when it dies, the lease expires and another process takes it.

use super::{Db, StoreError, StoreResult};
use crate::domain::Timestamp;

/// Takes or renews `name` for `owner` until `until`; `false` when another owner holds a
/// lease that has not expired.
pub async fn acquire(
    db: &Db,
    name: &str,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<bool> {
    let updated = db
        .query("UPDATE leases SET owner = ?, until_ms = ? WHERE name = ? AND (owner = ? OR until_ms < ?)")
        .bind(owner)
        .bind(until.unix_millis())
        .bind(name)
        .bind(owner)
        .bind(now.unix_millis())
        .execute(&db.pool)
        .await?
        .rows_affected();
    if updated == 1 {
        return Ok(true);
    }
    let inserted = db
        .query("INSERT INTO leases (name, owner, until_ms) VALUES (?, ?, ?)")
        .bind(name)
        .bind(owner)
        .bind(until.unix_millis())
        .execute(&db.pool)
        .await;
    match inserted.map_err(StoreError::from) {
        Ok(_) => Ok(true),
        Err(StoreError::UniqueViolation) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives `name` up, so that another process need not wait for it to expire.
pub async fn release(db: &Db, name: &str, owner: &str) -> StoreResult<()> {
    db.query("DELETE FROM leases WHERE name = ? AND owner = ?")
        .bind(name)
        .bind(owner)
        .execute(&db.pool)
        .await?;
    Ok(())
}
