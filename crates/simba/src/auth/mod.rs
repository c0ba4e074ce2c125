//! Seller authentication: password hashing, API tokens, dashboard session expiry, login
//! throttling (by client address among others) and the extractor that turns
//! `Authorization: Token <key>` into the authenticated seller.

pub mod cache;
pub mod client_address;
pub mod password;
pub mod session;
pub mod throttle;
pub mod token;

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::config::SessionSettings;
use crate::error::ApiError;
use crate::store::tokens::{self, TokenKind};
use crate::store::users::User;
use crate::store::{Db, StoreResult};

use self::cache::AuthCache;
use crate::domain::{Timestamp, TrustedProxies};

/// What authenticating a request needs of the application's state. The extractors take any
/// state that provides it, so that `auth` knows nothing of the state that `app` builds for the
/// edges.
pub trait AuthContext: Send + Sync {
    fn db(&self) -> &Db;
    fn auth_cache(&self) -> &AuthCache;
    fn sessions(&self) -> &SessionSettings;
    fn trusted_proxies(&self) -> &TrustedProxies;
}

/// The authenticated seller and the token row the request came with.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub token_id: i64,
}

impl<S: AuthContext> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(token::key_from_header)
            .ok_or(ApiError::Unauthenticated)?;
        let found = authenticate(state, key)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(AuthUser {
            user: found.user,
            token_id: found.token_id,
        })
    }
}

/// What a valid token key stands for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub token_id: i64,
    pub kind: TokenKind,
}

/// The seller a token key belongs to, with the token: from [`cache::AuthCache`] when the key
/// was seen in the last second, else from the database. A dashboard session that has ended is
/// deleted and authenticates nobody; one still running has its last use recorded.
pub async fn authenticate(
    context: &impl AuthContext,
    key: &str,
) -> StoreResult<Option<Authenticated>> {
    let (db, cache) = (context.db(), context.auth_cache());
    let hash = token::hash(key);
    if let Some(found) = cache.get(&hash, Instant::now()) {
        return Ok(Some(found));
    }
    let Some((user, token)) = tokens::authenticate(db, &hash).await? else {
        return Ok(None);
    };
    let lifetime = match token.kind {
        TokenKind::Api => None,
        TokenKind::Dashboard => {
            let now = Timestamp::now();
            let sessions = context.sessions();
            let ends_at = sessions.ends_at(token.created_at, token.last_used_at);
            if ends_at <= now {
                // Ended by the check above at every request, whether or not the row goes now.
                if let Err(error) = tokens::revoke(db, token.id).await {
                    tracing::warn!(
                        error = format!("{:#}", anyhow::Error::from(error)),
                        "deleting an ended dashboard session"
                    );
                }
                return Ok(None);
            }
            // A last use that is not written only makes the session end sooner, counted from
            // the use before: no reason to fail the page.
            if sessions.last_use_is_stale(token.created_at, token.last_used_at, now)
                && let Err(error) = tokens::touch(db, token.id, now).await
            {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "recording a dashboard session's last use"
                );
            }
            Some(ends_at.since(now))
        }
    };
    let found = Authenticated {
        user,
        token_id: token.id,
        kind: token.kind,
    };
    cache.put(hash, found.clone(), Instant::now(), lifetime);
    Ok(Some(found))
}
