//! Marketplace state shared by every worker: cached access tokens (encrypted) and the rate
//! budgets the client learned from the marketplace's headers.
//!
//! Rate budgets are per client id: bol counts calls per API account, whoever makes them.
//! Tokens are per client id *and* secret: a token is the proof that its secret was right, so it
//! must never serve a seller who only names the client id. They are keyed by a fingerprint of
//! the secret (HMAC under a key derived from `SECRET_KEY`), which a database reader cannot test
//! guesses against.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Row;

use super::batch::{self, Statement};
use super::param::Param;
use super::{Backend, Db, StoreResult};
use crate::crypto::Cipher;
use crate::domain::Timestamp;

const TOKEN_PURPOSE: &str = "marketplace_tokens.token";

/// Inserts or replaces the token of a client id and secret's fingerprint: `client_id,
/// secret_fingerprint, token_enc, issued_at_ms, lifetime_ms`. Two workers writing at once both
/// succeed, the later one's token kept.
fn save_token_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Mysql => {
            "INSERT INTO marketplace_tokens \
             (client_id, secret_fingerprint, token_enc, issued_at_ms, lifetime_ms) \
             VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE token_enc = VALUES(token_enc), \
             issued_at_ms = VALUES(issued_at_ms), lifetime_ms = VALUES(lifetime_ms)"
        }
        Backend::Sqlite | Backend::Postgres => {
            "INSERT INTO marketplace_tokens \
             (client_id, secret_fingerprint, token_enc, issued_at_ms, lifetime_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id, secret_fingerprint) DO UPDATE \
             SET token_enc = excluded.token_enc, issued_at_ms = excluded.issued_at_ms, \
             lifetime_ms = excluded.lifetime_ms"
        }
    }
}

/// The purpose under which a secret's fingerprint keys its tokens.
const SECRET_FINGERPRINT_PURPOSE: &str = "marketplace_tokens.secret_fingerprint";

/// The fingerprint that keys the tokens of `client_id` with `secret`.
pub fn secret_fingerprint(cipher: &Cipher, client_id: &str, secret: &str) -> String {
    cipher.fingerprint(SECRET_FINGERPRINT_PURPOSE, &[client_id, secret])
}

/// The token cache the marketplace client reads and writes: one token per client id and
/// secret, shared by every worker process through the database.
#[derive(Clone, Debug)]
pub struct DbTokenCache {
    pub db: Db,
    pub cipher: Cipher,
}

impl bol::TokenCache for DbTokenCache {
    fn load<'a>(
        &'a self,
        creds: &'a bol::Credentials,
    ) -> bol::BoxFuture<'a, Option<bol::CachedToken>> {
        Box::pin(async move {
            let row = self
                .db
                .query(
                    "SELECT token_enc, issued_at_ms, lifetime_ms FROM marketplace_tokens \
                     WHERE client_id = ? AND secret_fingerprint = ?",
                )
                .bind(&creds.client_id)
                .bind(fingerprint_of(&self.cipher, creds))
                .fetch_optional(&self.db.pool)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "reading a cached marketplace token"))
                .ok()??;
            let token = self
                .cipher
                .decrypt(TOKEN_PURPOSE, &row.try_get::<String, _>(0).ok()?)
                .ok()?;
            let issued_at = Timestamp::from_unix_millis(row.try_get(1).ok()?);
            let lifetime_ms: i64 = row.try_get(2).ok()?;
            Some(bol::CachedToken::new(
                token,
                issued_at.to_offset_date_time(),
                Duration::from_millis(u64::try_from(lifetime_ms).ok()?),
            ))
        })
    }

    fn store<'a>(
        &'a self,
        creds: &'a bol::Credentials,
        token: &'a bol::CachedToken,
    ) -> bol::BoxFuture<'a, ()> {
        Box::pin(async move {
            let issued_at = token.expires_at - token.lifetime;
            let fingerprint = fingerprint_of(&self.cipher, creds);
            let client_id = creds.client_id.as_str();
            let save = Statement::new(
                save_token_sql(self.db.backend),
                vec![
                    client_id.into(),
                    fingerprint.as_str().into(),
                    self.cipher
                        .encrypt(TOKEN_PURPOSE, token.access_token.expose_secret())
                        .into(),
                    Timestamp::from_offset_date_time(issued_at)
                        .unix_millis()
                        .into(),
                    (token.lifetime.as_millis() as i64).into(),
                ],
            );
            // Tokens of a client id's former or wrong secrets are useless once expired; a shop
            // whose secret changed while a run held its old one leaves such a row behind.
            let expired = Statement::new(
                "DELETE FROM marketplace_tokens WHERE client_id = ? \
                 AND secret_fingerprint <> ? AND issued_at_ms + lifetime_ms < ?",
                vec![
                    client_id.into(),
                    fingerprint.into(),
                    Timestamp::now().unix_millis().into(),
                ],
            );
            if let Err(e) = batch::run(&self.db, vec![save, expired]).await {
                tracing::warn!(error = %e, "storing a marketplace token");
            }
        })
    }
}

/// Forgets the cached token of `client_id` with `secret` unless another shop than `except_shop`
/// still uses exactly those credentials (an agency and its client may both hold them): the
/// token is theirs too, and dropping it would cost them a token call. Called when a shop's
/// credentials change or the shop is deleted.
pub async fn forget_token(
    db: &Db,
    cipher: &Cipher,
    except_shop: i64,
    client_id: &str,
    secret: &str,
) -> StoreResult<()> {
    let others = db
        .query("SELECT client_secret_enc FROM shops WHERE client_id = ? AND id <> ?")
        .bind(client_id)
        .bind(except_shop)
        .fetch_all(&db.pool)
        .await?;
    let still_used = others.iter().any(|row| {
        row.try_get::<String, _>(0)
            .ok()
            .and_then(|enc| cipher.decrypt(super::shops::SECRET_PURPOSE, &enc).ok())
            .is_some_and(|other| other.expose_secret() == secret)
    });
    if !still_used {
        db.query("DELETE FROM marketplace_tokens WHERE client_id = ? AND secret_fingerprint = ?")
            .bind(client_id)
            .bind(secret_fingerprint(cipher, client_id, secret))
            .execute(&db.pool)
            .await?;
    }
    Ok(())
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

/// Inserts or replaces a client id's budgets in one statement, inside a sync step's transaction
/// too: `client_id, snapshot, updated_at`, then `snapshot, updated_at` again.
pub(super) fn save_budgets_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Mysql => {
            "INSERT INTO rate_budgets (client_id, snapshot, updated_at) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE snapshot = ?, updated_at = ?"
        }
        Backend::Sqlite | Backend::Postgres => {
            "INSERT INTO rate_budgets (client_id, snapshot, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (client_id) DO UPDATE SET snapshot = ?, updated_at = ?"
        }
    }
}

/// [`save_budgets_sql`]'s values.
pub(super) fn save_budgets_params<'a>(
    client_id: &'a str,
    snapshot: &'a str,
    now: Timestamp,
) -> [Param<'a>; 5] {
    let (snapshot, now) = (Param::Text(Some(snapshot)), Param::seconds(Some(now)));
    [Param::Text(Some(client_id)), snapshot, now, snapshot, now]
}

/// The budgets as stored.
pub(super) fn budgets_snapshot(budgets: &[bol::BucketSnapshot]) -> String {
    serde_json::to_string(budgets).expect("budgets always serialize")
}

/// Keeps the rate budgets learned for `client_id` for the next run and every worker.
pub async fn save_budgets(
    db: &Db,
    client_id: &str,
    budgets: &[bol::BucketSnapshot],
) -> StoreResult<()> {
    let mut conn = db.pool.acquire().await?;
    save_budgets_in(db, &mut conn, client_id, budgets).await
}

/// [`save_budgets`] inside the caller's transaction (a sync step's).
pub(super) async fn save_budgets_in(
    db: &Db,
    conn: &mut sqlx::AnyConnection,
    client_id: &str,
    budgets: &[bol::BucketSnapshot],
) -> StoreResult<()> {
    let snapshot = budgets_snapshot(budgets);
    save_budgets_params(client_id, &snapshot, Timestamp::now())
        .into_iter()
        .fold(db.query(save_budgets_sql(db.backend)), |query, param| {
            param.bind(query)
        })
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How long a refused token request counts against the seller whose shop made it.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(3600);
/// Refusals in the window after which a seller's credentials that hold no token must wait.
/// bol blocks an address that asks for tokens too often, and that address is every seller's:
/// one seller trying secret after secret must not get Simba blocked. Counted per seller only,
/// so that nobody's refusals hold back another seller's shop.
pub const REFUSALS_ALLOWED: i64 = 10;

/// Records that the marketplace refused the token request of the shop's credentials, and
/// forgets any token those credentials obtained before: they are no longer proof of anything.
/// Pruning the seller's refusals past the window is best-effort.
pub async fn record_refusal(
    db: &Db,
    cipher: &Cipher,
    shop_id: i64,
    creds: &bol::Credentials,
    now: Timestamp,
) -> StoreResult<()> {
    db.query(
        "INSERT INTO credential_rejections (user_id, client_id, rejected_at) \
         SELECT user_id, client_id, ? FROM shops WHERE id = ?",
    )
    .bind(now.unix_seconds())
    .bind(shop_id)
    .execute(&db.pool)
    .await?;
    db.query("DELETE FROM marketplace_tokens WHERE client_id = ? AND secret_fingerprint = ?")
        .bind(&creds.client_id)
        .bind(fingerprint_of(cipher, creds))
        .execute(&db.pool)
        .await?;
    let pruned = db
        .query(
            "DELETE FROM credential_rejections \
             WHERE user_id = (SELECT user_id FROM shops WHERE id = ?) AND rejected_at <= ?",
        )
        .bind(shop_id)
        .bind((now - REFUSAL_WINDOW).unix_seconds())
        .execute(&db.pool)
        .await;
    if let Err(e) = pruned {
        tracing::warn!(shop.id = shop_id, error = %e, "pruning refused token requests");
    }
    Ok(())
}

/// When the shop's credentials may next ask for a token, if not now: its seller has used up
/// [`REFUSALS_ALLOWED`] in the window, and these exact credentials hold no token. Credentials
/// that do (they obtained one, and bol has not refused them since) are never held back.
pub async fn refusal_wait(
    db: &Db,
    cipher: &Cipher,
    shop_id: i64,
    creds: &bol::Credentials,
    now: Timestamp,
) -> StoreResult<Option<Timestamp>> {
    let proven = db
        .query("SELECT 1 FROM marketplace_tokens WHERE client_id = ? AND secret_fingerprint = ?")
        .bind(&creds.client_id)
        .bind(fingerprint_of(cipher, creds))
        .fetch_optional(&db.pool)
        .await?
        .is_some();
    if proven {
        return Ok(None);
    }
    let newest = db
        .query(&format!(
            "SELECT rejected_at FROM credential_rejections \
             WHERE user_id = (SELECT user_id FROM shops WHERE id = ?) \
             AND rejected_at > ? ORDER BY rejected_at DESC LIMIT {REFUSALS_ALLOWED}"
        ))
        .bind(shop_id)
        .bind((now - REFUSAL_WINDOW).unix_seconds())
        .fetch_all(&db.pool)
        .await?;
    if (newest.len() as i64) < REFUSALS_ALLOWED {
        return Ok(None);
    }
    let oldest_counted = super::seconds_at(&newest[newest.len() - 1], 0)?;
    Ok(Some(oldest_counted + REFUSAL_WINDOW))
}

fn fingerprint_of(cipher: &Cipher, creds: &bol::Credentials) -> String {
    secret_fingerprint(
        cipher,
        &creds.client_id,
        creds.client_secret.expose_secret(),
    )
}
