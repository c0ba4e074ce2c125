//! Seller accounts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreResult};
use crate::crypto::Cipher;
use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_joined: Timestamp,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Which unique key a registration collided with.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

const COLUMNS: &str = "id, username, email, first_name, last_name, date_joined";

pub(super) fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        date_joined: super::seconds_at(row, "date_joined")?,
    })
}

pub async fn taken(db: &Db, username: &str, email: &str) -> StoreResult<Option<Taken>> {
    let row = db
        .query("SELECT username FROM users WHERE username = ? OR email = ? LIMIT 1")
        .bind(username)
        .bind(email)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|row| {
        if row.try_get::<String, _>(0).ok().as_deref() == Some(username) {
            Taken::Username
        } else {
            Taken::Email
        }
    }))
}

/// Creates a seller and returns it; a duplicate username or email is a unique violation.
pub async fn create(db: &Db, new: &NewUser<'_>) -> StoreResult<User> {
    let now = Timestamp::now();
    let sql = format!(
        "INSERT INTO users (username, email, password_hash, first_name, last_name, date_joined) \
         VALUES (?, ?, ?, ?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(new.username)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.first_name)
        .bind(new.last_name)
        .bind(now.unix_seconds());
    let id = db.insert(&db.pool, query).await?;
    Ok(User {
        id,
        username: new.username.to_owned(),
        email: new.email.to_owned(),
        first_name: new.first_name.to_owned(),
        last_name: new.last_name.to_owned(),
        date_joined: now,
    })
}

/// The user whose username or email is `login`, with the password hash.
pub async fn find_for_login(db: &Db, login: &str) -> StoreResult<Option<(User, String)>> {
    let sql = format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE username = ? OR email = ? \
         ORDER BY CASE WHEN username = ? THEN 0 ELSE 1 END LIMIT 1"
    );
    let row = db
        .query(&sql)
        .bind(login)
        .bind(login.to_lowercase())
        .bind(login)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|row| Ok((from_row(&row)?, row.try_get("password_hash")?)))
        .transpose()
}

pub async fn password_hash(db: &Db, user_id: i64) -> StoreResult<Option<String>> {
    let row = db
        .query("SELECT password_hash FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub struct ProfileChange<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

pub async fn update_profile(db: &Db, user_id: i64, change: &ProfileChange<'_>) -> StoreResult<()> {
    db.query("UPDATE users SET email = ?, first_name = ?, last_name = ? WHERE id = ?")
        .bind(change.email)
        .bind(change.first_name)
        .bind(change.last_name)
        .bind(user_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Sets a new password and revokes every token of the user except `keep_token_id`.
pub async fn change_password(
    db: &Db,
    user_id: i64,
    new_hash: &str,
    keep_token_id: i64,
) -> StoreResult<()> {
    let mut tx = db.begin_write().await?;
    db.query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(new_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    db.query("DELETE FROM api_tokens WHERE user_id = ? AND id <> ?")
        .bind(user_id)
        .bind(keep_token_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes the seller; foreign keys cascade to tokens, shops, runs and shipments. The
/// marketplace tokens of the seller's shops are forgotten, as a shop's deletion forgets its own.
pub async fn delete(db: &Db, cipher: &Cipher, user_id: i64) -> StoreResult<()> {
    let shops = db
        .query("SELECT id, client_id, client_secret_enc FROM shops WHERE user_id = ?")
        .bind(user_id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<StoreResult<Vec<(i64, String, String)>>>()?;
    // Shipments and items are deleted explicitly first: one statement per table keeps the
    // cascade from running as one huge implicit delete on backends that cascade row by row.
    let mut tx = db.begin_write().await?;
    for sql in [
        "DELETE FROM shipment_items WHERE user_id = ?",
        "DELETE FROM shipments WHERE user_id = ?",
        "DELETE FROM users WHERE id = ?",
    ] {
        db.query(sql).bind(user_id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    for (shop_id, client_id, secret_enc) in shops {
        super::shops::forget_token(db, cipher, shop_id, &client_id, &secret_enc, |_| false).await;
    }
    Ok(())
}
