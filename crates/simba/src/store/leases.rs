//! Named leases: work that exactly one process may do at a time (the scheduler). A holder
//! renews its lease; when it dies, the lease expires and another process takes it.

use super::batch::{self, Statement};
use super::{Backend, Db, StoreResult};
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
    let renew = Statement::new(
        "UPDATE leases SET owner = ?, until_ms = ? WHERE name = ? AND (owner = ? OR until_ms < ?)",
        vec![
            owner.into(),
            until.unix_millis().into(),
            name.into(),
            owner.into(),
            now.unix_millis().into(),
        ],
    );
    // A first holder: of two processes inserting at once, one inserts and the other nothing.
    let insert_if_none = match db.backend {
        Backend::Mysql => "INSERT IGNORE INTO leases (name, owner, until_ms) VALUES (?, ?, ?)",
        Backend::Sqlite | Backend::Postgres => {
            "INSERT INTO leases (name, owner, until_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        }
    };
    let take = Statement::new(
        insert_if_none,
        vec![name.into(), owner.into(), until.unix_millis().into()],
    );
    let changed = batch::run(db, vec![renew, take]).await?;
    Ok(changed.is_some_and(|done| done.rows.iter().sum::<u64>() == 1))
}

/// Gives `name` up, so that another process need not wait for it to expire.
pub async fn release(db: &Db, name: &str, owner: &str) -> StoreResult<()> {
    let release = Statement::new(
        "DELETE FROM leases WHERE name = ? AND owner = ?",
        vec![name.into(), owner.into()],
    );
    batch::run(db, vec![release]).await?;
    Ok(())
}
