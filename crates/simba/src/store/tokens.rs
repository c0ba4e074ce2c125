//! API tokens, stored as hashes.

use super::users::{self, User};
use super::{Db, StoreResult};

pub async fn create(db: &Db, user_id: i64, token_hash: &str) -> StoreResult<i64> {
    let sql = format!(
        "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(user_id)
        .bind(token_hash)
        .bind(super::now());
    db.insert(&db.pool, query).await
}

/// The user a token hash belongs to, with the token's id.
pub async fn authenticate(db: &Db, token_hash: &str) -> StoreResult<Option<(User, i64)>> {
    let row = db
        .query(
            "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.date_joined, \
             t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|row| {
        Ok((
            users::from_row(&row)?,
            sqlx::Row::try_get(&row, "token_id")?,
        ))
    })
    .transpose()
}

pub async fn revoke(db: &Db, token_id: i64) -> StoreResult<()> {
    db.query("DELETE FROM api_tokens WHERE id = ?")
        .bind(token_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}
