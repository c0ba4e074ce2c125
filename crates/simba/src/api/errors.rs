//! How the API answers the failures of the layers below it: the one place where a store error,
//! a service error or a malformed query parameter becomes a status and a problem. The mappings
//! live at this edge, not beside `ApiError`, so that `error` depends on nothing but the domain
//! and the dashboard maps the same failures to its own pages.

use crate::error::ApiError;
use crate::services::accounts::AccountError;
use crate::services::shops::ShopError;
use crate::services::webhooks::WebhookError;
use crate::store::StoreError;
use crate::store::users::Taken;
use crate::web::BadParam;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UniqueViolation => ApiError::conflict("A record with the same key exists."),
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause.into()),
            StoreError::Other(cause) => ApiError::Internal(cause.into()),
            StoreError::Busy(cause) => ApiError::Unavailable(cause.into()),
            StoreError::Sqlite(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
        }
    }
}

impl From<BadParam> for ApiError {
    fn from(BadParam(errors): BadParam) -> Self {
        ApiError::BadRequest {
            detail: errors.summary(),
            errors: Some(errors),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::InvalidCredentials => ApiError::InvalidCredentials,
            AccountError::Throttled { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            AccountError::Taken(Taken::Username) => {
                ApiError::conflict("A seller with that username already exists.")
            }
            AccountError::Taken(Taken::Email) => {
                ApiError::conflict("A seller with that email address already exists.")
            }
            AccountError::Store(error) => error.into(),
            AccountError::Password(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<ShopError> for ApiError {
    fn from(error: ShopError) -> Self {
        match error {
            ShopError::Invalid(errors) => ApiError::Validation(errors),
            ShopError::Duplicate => ApiError::conflict(ShopError::Duplicate.to_string()),
            ShopError::Store(error) => error.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(errors) => ApiError::Validation(errors),
            WebhookError::TooMany => ApiError::conflict(WebhookError::TooMany.to_string()),
            WebhookError::Store(error) => error.into(),
        }
    }
}
