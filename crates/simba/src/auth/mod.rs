//! Seller authentication: password hashing, API tokens, login throttling and the extractor
//! that turns `Authorization: Token <key>` into the authenticated seller.

pub mod cache;
pub mod login;
pub mod password;
pub mod throttle;
pub mod token;

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::StoreResult;
use crate::store::users::User;

/// The authenticated seller and the token row the request came with.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub token_id: i64,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(token::key_from_header)
            .ok_or(ApiError::Unauthenticated)?;
        let (user, token_id) = authenticate(state, key)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(AuthUser { user, token_id })
    }
}

/// The seller a token key belongs to, with the token's id: from [`cache::AuthCache`] when the
/// key was seen in the last second, else from the database.
pub async fn authenticate(state: &AppState, key: &str) -> StoreResult<Option<(User, i64)>> {
    let hash = token::hash(key);
    if let Some(found) = state.auth_cache.get(&hash, Instant::now()) {
        return Ok(Some(found));
    }
    let found = crate::store::tokens::authenticate(&state.db, &hash).await?;
    if let Some((user, token_id)) = &found {
        state
            .auth_cache
            .put(hash, user.clone(), *token_id, Instant::now());
    }
    Ok(found)
}
