//! Shops: one marketplace account's credentials per row, the secret encrypted at rest.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::keyset::{self, Keyset, Seek};
use super::{Db, StoreResult, maybe_seconds_at, seconds_at};
use crate::crypto::Cipher;
use crate::domain::{ClientId, ClientSecret, Marketplace, ShopName, SyncInterval, Timestamp};

/// The associated data that binds a ciphertext to the `client_secret` column.
pub const SECRET_PURPOSE: &str = "shops.client_secret";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shop {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub marketplace: String,
    pub client_id: String,
    pub auto_sync: bool,
    pub sync_interval_minutes: i32,
    pub last_synced_at: Option<Timestamp>,
    pub active_run_id: Option<i64>,
    pub shipment_count: i64,
    pub credentials_rejected_at: Option<Timestamp>,
    /// The seller wants push notifications from the marketplace.
    pub push_enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Every writable field, parsed.
#[derive(Debug, Clone)]
pub struct ShopFields {
    pub name: ShopName,
    pub marketplace: Marketplace,
    pub client_id: ClientId,
    pub auto_sync: bool,
    pub sync_interval: SyncInterval,
    pub push_enabled: bool,
}

const COLUMNS: &str = "id, user_id, name, marketplace, client_id, auto_sync, \
    sync_interval_minutes, last_synced_at, active_run_id, shipment_count, \
    credentials_rejected_at, push_enabled, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Shop, sqlx::Error> {
    Ok(Shop {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        marketplace: row.try_get("marketplace")?,
        client_id: row.try_get("client_id")?,
        auto_sync: row.try_get::<i64, _>("auto_sync")? != 0,
        sync_interval_minutes: row.try_get("sync_interval_minutes")?,
        last_synced_at: maybe_seconds_at(row, "last_synced_at")?,
        active_run_id: row.try_get("active_run_id")?,
        shipment_count: row.try_get("shipment_count")?,
        credentials_rejected_at: maybe_seconds_at(row, "credentials_rejected_at")?,
        push_enabled: row.try_get::<i64, _>("push_enabled")? != 0,
        created_at: seconds_at(row, "created_at")?,
        updated_at: seconds_at(row, "updated_at")?,
    })
}

pub async fn create(
    db: &Db,
    cipher: &Cipher,
    user_id: i64,
    fields: &ShopFields,
    secret: &ClientSecret,
) -> StoreResult<Shop> {
    let now = Timestamp::now();
    let next_sync = fields
        .auto_sync
        .then(|| first_sync_at(now, fields.sync_interval));
    let sql = format!(
        "INSERT INTO shops (user_id, name, marketplace, client_id, client_secret_enc, auto_sync, \
         sync_interval_minutes, shipment_count, created_at, updated_at, next_sync_at, \
         push_enabled) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?){}",
        db.returning_id()
    );
    let query = db
        .query(&sql)
        .bind(user_id)
        .bind(fields.name.as_str())
        .bind(fields.marketplace.as_str())
        .bind(fields.client_id.as_str())
        .bind(cipher.encrypt(SECRET_PURPOSE, secret.expose()))
        .bind(i16::from(fields.auto_sync))
        .bind(fields.sync_interval.minutes())
        .bind(now.unix_seconds())
        .bind(now.unix_seconds())
        .bind(next_sync.map(Timestamp::unix_seconds))
        .bind(i16::from(fields.push_enabled));
    let id = db.insert(&db.pool, query).await?;
    Ok(Shop {
        id,
        user_id,
        name: fields.name.as_str().to_owned(),
        marketplace: fields.marketplace.as_str().to_owned(),
        client_id: fields.client_id.as_str().to_owned(),
        auto_sync: fields.auto_sync,
        sync_interval_minutes: fields.sync_interval.minutes(),
        last_synced_at: None,
        active_run_id: None,
        shipment_count: 0,
        credentials_rejected_at: None,
        push_enabled: fields.push_enabled,
        created_at: now,
        updated_at: now,
    })
}

/// The longest a shop waits for its first automatic sync (or its first after automatic sync
/// is turned on or its credentials change): a seller adding a shop sees it syncing within a
/// minute, and a thousand shops added at once start over that minute, not in one burst.
const FIRST_SYNC_SPREAD: Duration = Duration::from_secs(60);

/// When a shop's first automatic sync is due: at a random point of the spread, or of its
/// interval if that is shorter.
fn first_sync_at(now: Timestamp, interval: SyncInterval) -> Timestamp {
    let spread = FIRST_SYNC_SPREAD.min(Duration::from_secs(60 * interval.minutes() as u64));
    now + spread.mul_f64(rand::random::<f64>())
}

/// The seller's shop, or `None` when it does not exist or belongs to someone else.
pub async fn get(db: &Db, user_id: i64, shop_id: i64) -> StoreResult<Option<Shop>> {
    let sql = format!("SELECT {COLUMNS} FROM shops WHERE id = ? AND user_id = ?");
    let row = db
        .query(&sql)
        .bind(shop_id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// One page of the seller's shops, oldest first, and their total.
pub async fn list(db: &Db, user_id: i64, limit: i64, offset: i64) -> StoreResult<(Vec<Shop>, i64)> {
    let from = "shops WHERE user_id = ?";
    keyset::read_numbered_page(
        db,
        COLUMNS,
        from,
        &[user_id],
        ORDER,
        limit,
        offset,
        from_row,
    )
    .await
}

/// The order of the seller's shops, oldest first, as keyset columns.
const ORDER: Keyset = Keyset {
    key: None,
    id: "id",
    descending: false,
};

/// One keyset page of the seller's shops, oldest first, and whether more lie beyond it in the
/// seek's direction.
pub async fn walk(db: &Db, user_id: i64, seek: &Seek) -> StoreResult<(Vec<Shop>, bool)> {
    let select = format!("SELECT {COLUMNS} FROM shops WHERE user_id = ?");
    keyset::read_page(db, &select, &[user_id], ORDER, seek, from_row).await
}

/// Replaces the writable fields; a new secret replaces the stored one. Changing the
/// credentials clears a previous "credentials rejected" mark.
pub async fn update(
    db: &Db,
    cipher: &Cipher,
    shop: &Shop,
    fields: &ShopFields,
    secret: Option<&ClientSecret>,
) -> StoreResult<Shop> {
    let now = Timestamp::now();
    let credentials_changed = secret.is_some() || fields.client_id.as_str() != shop.client_id;
    let old_credentials = if credentials_changed {
        credentials(db, shop.id).await?
    } else {
        None
    };
    let rejected_at = if credentials_changed {
        None
    } else {
        shop.credentials_rejected_at
    };
    let mut sql = String::from(
        "UPDATE shops SET name = ?, marketplace = ?, client_id = ?, auto_sync = ?, \
         sync_interval_minutes = ?, credentials_rejected_at = ?, push_enabled = ?, \
         updated_at = ?",
    );
    let interval_changed = fields.sync_interval.minutes() != shop.sync_interval_minutes;
    let next_sync = if !fields.auto_sync || rejected_at.is_some() {
        Some(None)
    } else if !shop.auto_sync || credentials_changed {
        Some(Some(first_sync_at(now, fields.sync_interval)))
    } else {
        None
    };
    match next_sync {
        Some(_) => sql.push_str(", next_sync_at = ?"),
        // An interval from the last run, as a run sets it.
        None if interval_changed => sql.push_str(
            ", next_sync_at = COALESCE(last_run_at + sync_interval_minutes * 60, next_sync_at)",
        ),
        None => {}
    }
    if secret.is_some() {
        sql.push_str(", client_secret_enc = ?");
    }
    sql.push_str(" WHERE id = ? AND user_id = ?");
    let mut query = db
        .query(&sql)
        .bind(fields.name.as_str())
        .bind(fields.marketplace.as_str())
        .bind(fields.client_id.as_str())
        .bind(i16::from(fields.auto_sync))
        .bind(fields.sync_interval.minutes())
        .bind(rejected_at.map(Timestamp::unix_seconds))
        .bind(i16::from(fields.push_enabled))
        .bind(now.unix_seconds());
    if let Some(at) = next_sync {
        query = query.bind(at.map(Timestamp::unix_seconds));
    }
    if let Some(secret) = secret {
        query = query.bind(cipher.encrypt(SECRET_PURPOSE, secret.expose()));
    }
    query
        .bind(shop.id)
        .bind(shop.user_id)
        .execute(&db.pool)
        .await?;
    if let Some((client_id, secret_enc)) = old_credentials {
        let unchanged = |old: &str| {
            client_id == fields.client_id.as_str() && secret.is_none_or(|s| s.expose() == old)
        };
        forget_token(db, cipher, shop.id, &client_id, &secret_enc, unchanged).await;
    }
    Ok(Shop {
        name: fields.name.as_str().to_owned(),
        marketplace: fields.marketplace.as_str().to_owned(),
        client_id: fields.client_id.as_str().to_owned(),
        auto_sync: fields.auto_sync,
        sync_interval_minutes: fields.sync_interval.minutes(),
        credentials_rejected_at: rejected_at,
        push_enabled: fields.push_enabled,
        updated_at: now,
        ..shop.clone()
    })
}

/// Deletes the shop with its runs and shipments, and forgets its marketplace token; `false`
/// when it was not the seller's.
pub async fn delete(db: &Db, cipher: &Cipher, user_id: i64, shop_id: i64) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let Some(row) = db
        .query("SELECT client_id, client_secret_enc FROM shops WHERE id = ? AND user_id = ?")
        .bind(shop_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(false);
    };
    let (client_id, secret_enc): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    // The marketplace's push subscription outlives the shop until the manager deletes it, with
    // the credentials it needs for that.
    db.query(
        "UPDATE push_subscriptions SET wanted = 0, client_id = ?, client_secret_enc = ?, \
         next_check_at = 0 WHERE shop_id = ?",
    )
    .bind(&client_id)
    .bind(&secret_enc)
    .bind(shop_id)
    .execute(&mut *tx)
    .await?;
    for sql in [
        "DELETE FROM push_events WHERE shop_id = ?",
        "DELETE FROM shipment_items WHERE shipment_pk IN (SELECT id FROM shipments WHERE shop_id = ?)",
        "DELETE FROM shipments WHERE shop_id = ?",
        "DELETE FROM sync_runs WHERE shop_id = ?",
        "DELETE FROM shops WHERE id = ?",
    ] {
        db.query(sql).bind(shop_id).execute(&mut *tx).await?;
    }
    super::shipments::bump_version_in(db, &mut tx, user_id).await?;
    tx.commit().await?;
    forget_token(db, cipher, shop_id, &client_id, &secret_enc, |_| false).await;
    Ok(true)
}

/// Forgets the token the shop's former credentials obtained, unless `kept` says the secret
/// did not change after all. A failure is logged, not returned: the change it follows has
/// committed, and a token left behind serves only those who present the same secret, until it
/// expires.
pub(super) async fn forget_token(
    db: &Db,
    cipher: &Cipher,
    shop_id: i64,
    client_id: &str,
    secret_enc: &str,
    kept: impl FnOnce(&str) -> bool,
) {
    let Ok(secret) = cipher.decrypt(SECRET_PURPOSE, secret_enc) else {
        return;
    };
    if kept(secret.expose_secret()) {
        return;
    }
    if let Err(e) =
        super::marketplace::forget_token(db, cipher, shop_id, client_id, secret.expose_secret())
            .await
    {
        tracing::warn!(shop.id = shop_id, error = %e, "forgetting a shop's marketplace token");
    }
}

/// The client id and the encrypted secret of a shop, for the sync engine.
pub async fn credentials(db: &Db, shop_id: i64) -> StoreResult<Option<(String, String)>> {
    let row = db
        .query("SELECT client_id, client_secret_enc FROM shops WHERE id = ?")
        .bind(shop_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// API.md's default mode: full until a sync has succeeded, incremental after. `None` when
/// the shop is gone.
pub async fn default_mode(db: &Db, shop_id: i64) -> StoreResult<Option<crate::domain::Mode>> {
    use crate::domain::Mode;
    let row = db
        .query("SELECT last_synced_at FROM shops WHERE id = ?")
        .bind(shop_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        let synced: Option<i64> = r.try_get(0)?;
        Ok(if synced.is_some() {
            Mode::Incremental
        } else {
            Mode::Full
        })
    })
    .transpose()
}
