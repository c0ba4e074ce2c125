//! API tokens, stored as hashes: the API's, which live until revoked, and the dashboard's
//! session tokens, which expire.

use sqlx::Row;

use super::users::{self, User};
use super::{Db, StoreError, StoreResult, maybe_seconds_at, seconds_at};
use crate::domain::Timestamp;

/// Who a token was issued to, which decides whether it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `POST /api/v1/auth/login` and registration: lives until revoked, as DRF's tokens do.
    Api,
    /// A dashboard session cookie: ends after an idle time and an absolute lifetime.
    Dashboard,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Dashboard => "dashboard",
        }
    }

    fn parse(stored: &str) -> Option<TokenKind> {
        match stored {
            "api" => Some(TokenKind::Api),
            "dashboard" => Some(TokenKind::Dashboard),
            _ => None,
        }
    }
}

/// A token row as authentication needs it.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub kind: TokenKind,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

pub async fn create(db: &Db, user_id: i64, token_hash: &str, kind: TokenKind) -> StoreResult<i64> {
    let sql = format!(
        "INSERT INTO api_tokens (user_id, token_hash, created_at, kind) VALUES (?, ?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(user_id)
        .bind(token_hash)
        .bind(Timestamp::now().unix_seconds())
        .bind(kind.as_str());
    db.insert(&db.pool, query).await
}

/// The user a token hash belongs to, with the token.
pub async fn authenticate(db: &Db, token_hash: &str) -> StoreResult<Option<(User, Token)>> {
    let row = db
        .query(
            "SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.date_joined, \
             t.id AS token_id, t.kind, t.created_at, t.last_used_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kind: String = row.try_get("kind")?;
    let token = Token {
        id: row.try_get("token_id")?,
        kind: TokenKind::parse(&kind).ok_or_else(|| {
            StoreError::Other(sqlx::Error::Decode(
                format!("unknown token kind {kind:?}").into(),
            ))
        })?,
        created_at: seconds_at(&row, "created_at")?,
        last_used_at: maybe_seconds_at(&row, "last_used_at")?,
    };
    Ok(Some((users::from_row(&row)?, token)))
}

/// Records that the token was used at `at`.
pub async fn touch(db: &Db, token_id: i64, at: Timestamp) -> StoreResult<()> {
    db.query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
        .bind(at.unix_seconds())
        .bind(token_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn revoke(db: &Db, token_id: i64) -> StoreResult<()> {
    db.query("DELETE FROM api_tokens WHERE id = ?")
        .bind(token_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Deletes up to `batch` dashboard sessions created at `created_before` or earlier, or last
/// used at `idle_before` or earlier; returns how many.
pub async fn delete_ended_sessions(
    db: &Db,
    created_before: Timestamp,
    idle_before: Timestamp,
    batch: u32,
) -> StoreResult<u64> {
    let sql = format!(
        "SELECT id FROM api_tokens WHERE kind = ? \
         AND (created_at <= ? OR COALESCE(last_used_at, created_at) <= ?) LIMIT {batch}"
    );
    let ids = db
        .query(&sql)
        .bind(TokenKind::Dashboard.as_str())
        .bind(created_before.unix_seconds())
        .bind(idle_before.unix_seconds())
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;
    super::delete_by_ids(db, "api_tokens", &ids).await
}
