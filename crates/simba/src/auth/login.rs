//! Password checks under the login throttle: the API's login, the dashboard's and a password
//! change all come here, so every way of guessing a password spends one budget.

use std::net::IpAddr;

use secrecy::SecretString;

use super::{password, throttle, token};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store::tokens::{self, TokenKind};
use crate::store::users::{self, User};
use crate::store::{Db, StoreResult};

/// Checks `login` (username or email) and `password` from `client` and issues a new token of
/// `kind`. An unknown login and a wrong password get the same answer after the same work
/// (the decoy hash is verified when there is no account).
pub async fn log_in(
    state: &AppState,
    login: &str,
    password: SecretString,
    client: IpAddr,
    kind: TokenKind,
) -> ApiResult<(String, User)> {
    let _in_flight = state.password_checks.enter(client)?;
    let found = users::find_for_login(&state.db, login.trim()).await?;
    let (user, stored_hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
    let attempt =
        throttle::begin_login(&state.db, &state.cipher, login, user.as_ref(), client).await?;
    let valid = password::verify(password, stored_hash)
        .await
        .map_err(ApiError::Internal)?;
    let Some(user) = user.filter(|_| valid) else {
        attempt.failed(&state.db).await?;
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded(&state.db).await;
    Ok((issue_token(&state.db, user.id, kind).await?, user))
}

/// Whether `password` is `user`'s current password, checked from `client` under the same
/// throttle as a login to the account.
pub async fn check_password(
    state: &AppState,
    user: &User,
    password: SecretString,
    client: IpAddr,
) -> ApiResult<bool> {
    let _in_flight = state.password_checks.enter(client)?;
    let stored = users::password_hash(&state.db, user.id).await?;
    let attempt = throttle::begin_password_check(&state.db, &state.cipher, user, client).await?;
    let valid = password::verify(password, stored)
        .await
        .map_err(ApiError::Internal)?;
    if valid {
        attempt.succeeded(&state.db).await;
    } else {
        attempt.failed(&state.db).await?;
    }
    Ok(valid)
}

/// Stores a new token for the seller; the key itself is returned once and never stored.
pub async fn issue_token(db: &Db, user_id: i64, kind: TokenKind) -> StoreResult<String> {
    let key = token::generate();
    tokens::create(db, user_id, &token::hash(&key), kind).await?;
    Ok(key)
}
