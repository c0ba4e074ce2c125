//! A seller's webhook endpoints as the edges write them: the fields of a form or a JSON body
//! parsed by one set of rules (the URL's host resolved and checked, as a delivery will), the
//! limit on endpoints, the secret made once, and the test event.

use secrecy::SecretString;
use serde_json::json;

use crate::config::WebhookSettings;
use crate::crypto::Cipher;
use crate::domain::ValidationErrors;
use crate::domain::webhook::{EventSet, EventType, WebhookUrl, parse_description};
use crate::store::webhooks::{self as store, Endpoint, EndpointFields};
use crate::store::{Db, StoreError};
use crate::webhooks::{address, new_event, signature};

/// The most endpoints one seller may have.
pub const MAX_ENDPOINTS: i64 = 20;

/// The writable fields of an endpoint as sent; `url` and `events` are required to create one.
#[derive(Debug, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// Why an endpoint was not written.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("validation failed: {}", .0.summary())]
    Invalid(ValidationErrors),
    /// The seller has [`MAX_ENDPOINTS`] already; the sentence is the one both edges show.
    #[error("You already have {MAX_ENDPOINTS} webhook endpoints; delete one to add another.")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds an endpoint for the seller; returns it with its secret, which is never shown again.
pub async fn create(
    db: &Db,
    cipher: &Cipher,
    settings: &WebhookSettings,
    user_id: i64,
    input: &EndpointInput,
) -> Result<(Endpoint, SecretString), WebhookError> {
    let fields = parse_fields(input, None, settings.allow_private).await?;
    if store::count_endpoints(db, user_id).await? >= MAX_ENDPOINTS {
        return Err(WebhookError::TooMany);
    }
    let secret = signature::new_secret();
    let endpoint = store::create_endpoint(
        db,
        cipher,
        user_id,
        &fields,
        secrecy::ExposeSecret::expose_secret(&secret),
    )
    .await?;
    tracing::info!(
        webhook.id = endpoint.id,
        user.id = user_id,
        "webhook endpoint added"
    );
    Ok((endpoint, secret))
}

/// Applies `input` over `endpoint`.
pub async fn update(
    db: &Db,
    settings: &WebhookSettings,
    endpoint: &Endpoint,
    input: &EndpointInput,
) -> Result<Endpoint, WebhookError> {
    let fields = parse_fields(input, Some(endpoint), settings.allow_private).await?;
    Ok(store::update_endpoint(db, endpoint, &fields).await?)
}

/// Queues a `webhook.test` event for the endpoint alone.
pub async fn send_test(db: &Db, endpoint: &Endpoint) -> Result<(), StoreError> {
    let data = json!({
        "webhook_id": endpoint.id,
        "message": "This is a test event from Simba.",
    });
    let event = new_event(endpoint.user_id, EventType::Test, data);
    store::queue_for_endpoint(db, endpoint.id, &event).await
}

/// Applies `input` over `base` (`None` for a new endpoint); a URL given or kept is checked as a
/// delivery would check it, so that a name resolving to an internal address is a 422 now.
async fn parse_fields(
    input: &EndpointInput,
    base: Option<&Endpoint>,
    allow_private: bool,
) -> Result<EndpointFields, WebhookError> {
    let mut errors = ValidationErrors::default();
    if base.is_none() {
        if input.url.is_none() {
            errors.add("url", "is required");
        }
        if input.events.is_none() {
            errors.add("events", "is required");
        }
    }
    let url = match (&input.url, base) {
        (Some(v), _) => errors.check("url", WebhookUrl::parse(v, allow_private)),
        (None, Some(e)) => WebhookUrl::parse(&e.url, allow_private).ok(),
        (None, None) => None,
    };
    if let Some(url) = &url
        && input.url.is_some()
        && let Err(e) = address::check_url(url.url(), allow_private).await
    {
        errors.add("url", e.to_string());
    }
    let events = match (&input.events, base) {
        (Some(v), _) => errors.check("events", EventSet::parse(v)),
        (None, Some(e)) => Some(e.events.clone()),
        (None, None) => None,
    };
    let description = match (&input.description, base) {
        (Some(v), _) => errors.check("description", parse_description(v)),
        (None, Some(e)) => Some(e.description.clone()),
        (None, None) => Some(String::new()),
    };
    let active = input.active.or(base.map(|e| e.active)).unwrap_or(true);
    if !errors.is_empty() {
        return Err(WebhookError::Invalid(errors));
    }
    match (url, events, description) {
        (Some(url), Some(events), Some(description)) => Ok(EndpointFields {
            url,
            events,
            description,
            active,
        }),
        // A stored URL that no longer passes (private targets were allowed when it was
        // written): the seller must give a new one.
        _ => Err(WebhookError::Invalid(ValidationErrors::single(
            "url",
            "is no longer allowed; give a new one",
        ))),
    }
}
