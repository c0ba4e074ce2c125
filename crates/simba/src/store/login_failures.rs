//! Failed password checks, counted by the login throttle (`auth::throttle`) in the database so
//! that every process sees them and a restart forgets none. Subjects arrive already hashed.

use sqlx::Row;

use super::{Db, StoreResult, seconds_at};
use crate::domain::Timestamp;

/// Expired rows removed by each recorded attempt at most: several times the rows an attempt
/// adds, so pruning keeps ahead of any rate of attempts while no request pays for a backlog.
pub const PRUNE_BATCH: u32 = 50;

/// `(subject, failed_at)` of every failure of `subjects` after `since`, other than those of
/// `attempt`. The throttle refuses a subject before it gathers more rows than its limit, so
/// this reads a bounded number of rows through `login_failures_subject`.
pub async fn live(
    db: &Db,
    subjects: &[String],
    since: Timestamp,
    attempt: &str,
) -> StoreResult<Vec<(String, Timestamp)>> {
    let sql = format!(
        "SELECT subject, failed_at FROM login_failures \
         WHERE subject IN ({}) AND failed_at > ? AND attempt <> ?",
        placeholders(subjects.len())
    );
    let mut query = db.query(&sql);
    for subject in subjects {
        query = query.bind(subject.as_str());
    }
    let rows = query
        .bind(since.unix_seconds())
        .bind(attempt)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, seconds_at(row, 1)?)))
        .collect()
}

/// Records one failure of each subject for `attempt`, in one statement.
pub async fn record(db: &Db, subjects: &[String], attempt: &str, at: Timestamp) -> StoreResult<()> {
    let values = vec!["(?, ?, ?)"; subjects.len()].join(", ");
    let sql = format!("INSERT INTO login_failures (subject, attempt, failed_at) VALUES {values}");
    let mut query = db.query(&sql);
    for subject in subjects {
        query = query
            .bind(subject.as_str())
            .bind(attempt)
            .bind(at.unix_seconds());
    }
    query.execute(&db.pool).await?;
    Ok(())
}

/// Takes back what `attempt` recorded for `subjects`, and forgets every failure of `forgiven`
/// after `since` (older ones count no more and are [`prune`]'s: leaving them keeps this delete
/// off the rows a prune may be deleting).
pub async fn take_back(
    db: &Db,
    subjects: &[String],
    attempt: &str,
    forgiven: &[String],
    since: Timestamp,
) -> StoreResult<()> {
    let mut sql = format!(
        "DELETE FROM login_failures WHERE (subject IN ({}) AND attempt = ?)",
        placeholders(subjects.len())
    );
    if !forgiven.is_empty() {
        sql.push_str(&format!(
            " OR (subject IN ({}) AND failed_at > ?)",
            placeholders(forgiven.len())
        ));
    }
    let mut query = db.query(&sql);
    for subject in subjects {
        query = query.bind(subject.as_str());
    }
    query = query.bind(attempt);
    if !forgiven.is_empty() {
        for subject in forgiven {
            query = query.bind(subject.as_str());
        }
        query = query.bind(since.unix_seconds());
    }
    query.execute(&db.pool).await?;
    Ok(())
}

/// Deletes up to [`PRUNE_BATCH`] failures from `before` or earlier, oldest first, chosen by a
/// plain read and deleted by id ([`super::delete_by_ids`]): MySQL's `DELETE … ORDER BY
/// failed_at LIMIT` locked expired rows in `failed_at` order while a take-back forgiving a
/// subject locked the same rows in subject order, a deadlock InnoDB resolved by failing one.
pub async fn prune(db: &Db, before: Timestamp) -> StoreResult<()> {
    let sql = format!(
        "SELECT id FROM login_failures WHERE failed_at <= ? ORDER BY failed_at LIMIT {PRUNE_BATCH}"
    );
    let ids = db
        .query(&sql)
        .bind(before.unix_seconds())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;
    super::delete_by_ids(db, "login_failures", &ids).await?;
    Ok(())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
