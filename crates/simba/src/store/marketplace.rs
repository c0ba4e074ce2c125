//! Marketplace state shared by every worker: cached access tokens (encrypted) and the rate
//! budgets the client learned from the marketplace's headers, both per client id.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Row;

use super::{Db, StoreError, StoreResult};
use crate::crypto::Cipher;

const TOKEN_PURPOSE: &str = "marketplace_tokens.token";

/// Writes a row keyed by `client_id`: an UPDATE, or an INSERT when there is none yet. Two
/// workers writing at once both succeed (the loser of the INSERT race updates instead); the
/// three dialects' upsert syntaxes differ, this does not.
async fn replace(
    db: &Db,
    table: &str,
    columns: &[&str],
    client_id: &str,
    values: Vec<ValueKind>,
) -> StoreResult<()> {
    let (update, insert) = replace_sql(table, columns);
    for _ in 0..2 {
        let updated = bind_values(db.query(&update), &values)
            .bind(client_id)
            .execute(&db.pool)
            .await?
            .rows_affected();
        if updated > 0 {
            return Ok(());
        }
        match bind_values(db.query(&insert).bind(client_id), &values)
            .execute(&db.pool)
            .await
            .map_err(StoreError::from)
        {
            Ok(_) => return Ok(()),
            Err(StoreError::UniqueViolation) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`replace`]'s two statements: an UPDATE binding `columns` then the client id, and an INSERT
/// binding the client id then `columns`.
fn replace_sql(table: &str, columns: &[&str]) -> (String, String) {
    let sets = columns
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(", ");
    let update = format!("UPDATE {table} SET {sets} WHERE client_id = ?");
    let insert = format!(
        "INSERT INTO {table} (client_id, {}) VALUES (?{})",
        columns.join(", "),
        ", ?".repeat(columns.len())
    );
    (update, insert)
}

fn bind_values<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    values: &[ValueKind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for value in values {
        query = match value {
            ValueKind::Int(v) => query.bind(*v),
            ValueKind::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

enum ValueKind {
    Int(i64),
    Text(String),
}

/// The token cache the marketplace client reads and writes: one token per client id, shared
/// by every worker process through the database.
#[derive(Clone, Debug)]
pub struct DbTokenCache {
    pub db: Db,
    pub cipher: Cipher,
}

impl bol::TokenCache for DbTokenCache {
    fn load<'a>(&'a self, client_id: &'a str) -> bol::BoxFuture<'a, Option<bol::CachedToken>> {
        Box::pin(async move {
            let row = self
                .db
                .query("SELECT token_enc, issued_at_ms, lifetime_ms FROM marketplace_tokens WHERE client_id = ?")
                .bind(client_id)
                .fetch_optional(&self.db.pool)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "reading a cached marketplace token"))
                .ok()??;
            let token = self
                .cipher
                .decrypt(TOKEN_PURPOSE, &row.try_get::<String, _>(0).ok()?)
                .ok()?;
            let issued_at_ms: i64 = row.try_get(1).ok()?;
            let lifetime_ms: i64 = row.try_get(2).ok()?;
            let issued_at = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(issued_at_ms) * 1_000_000,
            )
            .ok()?;
            Some(bol::CachedToken::new(
                token,
                issued_at,
                Duration::from_millis(u64::try_from(lifetime_ms).ok()?),
            ))
        })
    }

    fn store<'a>(
        &'a self,
        client_id: &'a str,
        token: &'a bol::CachedToken,
    ) -> bol::BoxFuture<'a, ()> {
        Box::pin(async move {
            let issued_at = token.expires_at - token.lifetime;
            let values = vec![
                ValueKind::Text(
                    self.cipher
                        .encrypt(TOKEN_PURPOSE, token.access_token.expose_secret()),
                ),
                ValueKind::Int((issued_at.unix_timestamp_nanos() / 1_000_000) as i64),
                ValueKind::Int(token.lifetime.as_millis() as i64),
            ];
            if let Err(e) = replace(
                &self.db,
                "marketplace_tokens",
                &["token_enc", "issued_at_ms", "lifetime_ms"],
                client_id,
                values,
            )
            .await
            {
                tracing::warn!(error = %e, "storing a marketplace token");
            }
        })
    }
}

/// The rate budgets last learned for `client_id`.
pub async fn load_budgets(db: &Db, client_id: &str) -> StoreResult<Vec<bol::BucketSnapshot>> {
    let row = db
        .query("SELECT snapshot FROM rate_budgets WHERE client_id = ?")
        .bind(client_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<String, _>(0).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

const BUDGETS: &str = "rate_budgets";
const BUDGET_COLUMNS: &[&str] = &["snapshot", "updated_at"];

/// Keeps the rate budgets learned for `client_id` for the next run and every worker.
pub async fn save_budgets(
    db: &Db,
    client_id: &str,
    budgets: &[bol::BucketSnapshot],
) -> StoreResult<()> {
    let snapshot = serde_json::to_string(budgets).expect("budgets always serialize");
    let values = vec![ValueKind::Text(snapshot), ValueKind::Int(super::now())];
    replace(db, BUDGETS, BUDGET_COLUMNS, client_id, values).await
}

/// [`save_budgets`] on a rusqlite connection (see [`super::writer`]). SQLite has one writer at
/// a time, so the INSERT after an UPDATE that found no row cannot lose a race.
pub(super) fn save_budgets_sqlite(
    conn: &rusqlite::Connection,
    client_id: &str,
    budgets: &[bol::BucketSnapshot],
) -> rusqlite::Result<()> {
    let snapshot = serde_json::to_string(budgets).expect("budgets always serialize");
    let now = super::now();
    let (update, insert) = replace_sql(BUDGETS, BUDGET_COLUMNS);
    if conn
        .prepare_cached(&update)?
        .execute((&snapshot, now, client_id))?
        == 0
    {
        conn.prepare_cached(&insert)?
            .execute((client_id, &snapshot, now))?;
    }
    Ok(())
}
