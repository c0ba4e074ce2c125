//! Small named values the server keeps about itself, such as the `SECRET_KEY` check value.

use sqlx::Row;

use super::{Db, StoreResult};

pub async fn get(db: &Db, name: &str) -> StoreResult<Option<String>> {
    let row = db
        .query("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Stores `value` unless the setting exists; returns the value that is stored afterwards, so
/// that processes starting together agree on one.
pub async fn get_or_insert(db: &Db, name: &str, value: &str) -> StoreResult<String> {
    if let Some(existing) = get(db, name).await? {
        return Ok(existing);
    }
    let inserted = db
        .query("INSERT INTO settings (name, value) VALUES (?, ?)")
        .bind(name)
        .bind(value)
        .execute(&db.pool)
        .await;
    match inserted {
        Ok(_) => Ok(value.to_owned()),
        Err(e) => match get(db, name).await? {
            Some(existing) => Ok(existing),
            None => Err(e.into()),
        },
    }
}
