//! A seller's shops as the edges write them: the fields a form or a JSON body gives, parsed by
//! one set of rules, and the create and update that answer a duplicate the same way, so the API
//! and the dashboard cannot drift apart.

use secrecy::SecretString;

use crate::crypto::Cipher;
use crate::domain::{
    ClientId, ClientSecret, Marketplace, ShopName, SyncInterval, ValidationErrors,
};
use crate::store::push;
use crate::store::shops::{self, Shop, ShopFields};
use crate::store::{Db, StoreError};

/// The writable fields of a shop as sent; which are required depends on the operation.
#[derive(Debug, Default)]
pub struct ShopInput {
    pub name: Option<String>,
    pub marketplace: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub auto_sync: Option<bool>,
    pub sync_interval_minutes: Option<i64>,
    pub push_enabled: Option<bool>,
}

/// Why a shop was not written.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("validation failed: {}", .0.summary())]
    Invalid(ValidationErrors),
    /// The seller has a shop with the same marketplace and client id; the sentence is the one
    /// both edges show.
    #[error("You already have a shop with this marketplace and client_id.")]
    Duplicate,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ShopError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UniqueViolation => ShopError::Duplicate,
            other => ShopError::Store(other),
        }
    }
}

/// The fields required to add a shop.
pub const REQUIRED_TO_CREATE: &[&str] = &["name", "client_id", "client_secret"];
/// The fields required to replace a shop's settings (the secret may be kept).
pub const REQUIRED_TO_REPLACE: &[&str] = &["name", "client_id"];

/// Adds a shop for the seller.
pub async fn create(
    db: &Db,
    cipher: &Cipher,
    user_id: i64,
    input: &ShopInput,
) -> Result<Shop, ShopError> {
    let (fields, secret) = parse_fields(input, None, REQUIRED_TO_CREATE)?;
    let secret = secret.expect("client_secret is required and parsed");
    let shop = shops::create(db, cipher, user_id, &fields, &secret).await?;
    if shop.push_enabled {
        push::set_wanted(db, user_id, shop.id, true).await?;
    }
    tracing::info!(shop.id = shop.id, user.id = user_id, "shop added");
    Ok(shop)
}

/// Applies `input` over `shop`; `required` fields must be present.
pub async fn update(
    db: &Db,
    cipher: &Cipher,
    shop: &Shop,
    input: &ShopInput,
    required: &[&str],
) -> Result<Shop, ShopError> {
    let (fields, secret) = parse_fields(input, Some(shop), required)?;
    let updated = shops::update(db, cipher, shop, &fields, secret.as_ref()).await?;
    if updated.push_enabled != shop.push_enabled {
        push::set_wanted(db, shop.user_id, shop.id, updated.push_enabled).await?;
    }
    Ok(updated)
}

/// Applies `input` over `base` (`None` for a new shop). `required` fields must be present.
fn parse_fields(
    input: &ShopInput,
    base: Option<&Shop>,
    required: &[&str],
) -> Result<(ShopFields, Option<ClientSecret>), ShopError> {
    let mut errors = ValidationErrors::default();
    let present = |field: &str| match field {
        "name" => input.name.is_some(),
        "client_id" => input.client_id.is_some(),
        "client_secret" => input.client_secret.is_some(),
        _ => true,
    };
    for field in required.iter().filter(|f| !present(f)) {
        errors.add(field, "is required");
    }
    let name = match (&input.name, base) {
        (Some(v), _) => errors.check("name", ShopName::parse(v)),
        (None, Some(shop)) => ShopName::parse(&shop.name).ok(),
        (None, None) => None,
    };
    let client_id = match (&input.client_id, base) {
        (Some(v), _) => errors.check("client_id", ClientId::parse(v)),
        (None, Some(shop)) => ClientId::parse(&shop.client_id).ok(),
        (None, None) => None,
    };
    let marketplace = match (&input.marketplace, base) {
        (Some(v), _) => errors.check("marketplace", Marketplace::parse(v)),
        (None, Some(shop)) => Marketplace::parse(&shop.marketplace).ok(),
        (None, None) => Some(Marketplace::default()),
    };
    let sync_interval = match (input.sync_interval_minutes, base) {
        (Some(v), _) => errors.check("sync_interval_minutes", SyncInterval::parse(v)),
        (None, Some(shop)) => SyncInterval::parse(shop.sync_interval_minutes.into()).ok(),
        (None, None) => Some(SyncInterval::DEFAULT),
    };
    let secret = input
        .client_secret
        .as_ref()
        .and_then(|s| errors.check("client_secret", ClientSecret::parse(s)));
    let auto_sync = input
        .auto_sync
        .or(base.map(|s| s.auto_sync))
        .unwrap_or(true);
    let push_enabled = input
        .push_enabled
        .or(base.map(|s| s.push_enabled))
        .unwrap_or(false);
    match (name, client_id, marketplace, sync_interval) {
        (Some(name), Some(client_id), Some(marketplace), Some(sync_interval))
            if errors.is_empty() =>
        {
            Ok((
                ShopFields {
                    name,
                    marketplace,
                    client_id,
                    auto_sync,
                    sync_interval,
                    push_enabled,
                },
                secret,
            ))
        }
        _ => Err(ShopError::Invalid(errors)),
    }
}
