//! Seller accounts: registration, logging in, password checks and tokens. The API, the
//! dashboard, `simba user` and `simba demo` all come here, so that each operation has one
//! definition and every way of guessing a password spends the one throttle budget
//! (`auth::throttle`). Failures are [`AccountError`]s, which each edge answers in its own form:
//! problem+json, an HTML page, a line on the terminal.

use std::net::IpAddr;

use secrecy::SecretString;

use crate::auth::cache::AuthCache;
use crate::auth::throttle::{self, ChecksInFlight, ThrottleError, Throttled};
use crate::auth::{password, token};
use crate::crypto::Cipher;
use crate::domain::{Email, Password, PersonName, Username};
use crate::store::tokens::{self, TokenKind};
use crate::store::users::{self, Taken, User};
use crate::store::{Db, StoreError, StoreResult};

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The login or the password is wrong; an unknown login gets the same answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed attempts, or too many checks at once from one address.
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    /// Another seller has the username or the email address.
    #[error("the {0:?} is taken")]
    Taken(Taken),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing or verifying a password failed.
    #[error("checking a password")]
    Password(#[source] anyhow::Error),
}

impl From<Throttled> for AccountError {
    fn from(Throttled { retry_after_secs }: Throttled) -> Self {
        AccountError::Throttled { retry_after_secs }
    }
}

impl From<ThrottleError> for AccountError {
    fn from(error: ThrottleError) -> Self {
        match error {
            ThrottleError::Throttled(throttled) => throttled.into(),
            ThrottleError::Store(error) => error.into(),
        }
    }
}

pub type AccountResult<T> = Result<T, AccountError>;

/// A new seller's parsed details.
pub struct NewAccount<'a> {
    pub username: &'a Username,
    pub email: &'a Email,
    pub password: &'a Password,
    pub first_name: &'a PersonName,
    pub last_name: &'a PersonName,
}

/// Creates a seller. A taken username or email is [`AccountError::Taken`], whether it is seen
/// before the (slow) password hash or only by the insert, when another registration won a race.
pub async fn register(db: &Db, new: &NewAccount<'_>) -> AccountResult<User> {
    let (username, email) = (new.username.as_str(), new.email.as_str());
    if let Some(taken) = users::taken(db, username, email).await? {
        return Err(AccountError::Taken(taken));
    }
    let password_hash = password::hash(new.password.secret().clone())
        .await
        .map_err(AccountError::Password)?;
    let row = users::NewUser {
        username,
        email,
        password_hash: &password_hash,
        first_name: new.first_name.as_str(),
        last_name: new.last_name.as_str(),
    };
    match users::create(db, &row).await {
        Err(StoreError::UniqueViolation) => {
            let taken = users::taken(db, username, email)
                .await?
                .unwrap_or(Taken::Username);
            Err(AccountError::Taken(taken))
        }
        other => Ok(other?),
    }
}

/// Checks `login` (username or email) and `password` from `client` under the throttle and
/// issues a new token of `kind`. An unknown login and a wrong password get the same answer
/// after the same work (the decoy hash is verified when there is no account).
pub async fn log_in(
    db: &Db,
    cipher: &Cipher,
    checks: &ChecksInFlight,
    login: &str,
    password: SecretString,
    client: IpAddr,
    kind: TokenKind,
) -> AccountResult<(String, User)> {
    let _in_flight = checks.enter(client)?;
    let found = users::find_for_login(db, login.trim()).await?;
    let (user, stored_hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
    let attempt = throttle::begin_login(db, cipher, login, user.as_ref(), client).await?;
    let valid = password::verify(password, stored_hash)
        .await
        .map_err(AccountError::Password)?;
    let Some(user) = user.filter(|_| valid) else {
        attempt.failed(db).await?;
        return Err(AccountError::InvalidCredentials);
    };
    attempt.succeeded(db).await;
    Ok((issue_token(db, user.id, kind).await?, user))
}

/// Whether `password` is `user`'s current password, checked from `client` under the same
/// throttle as a login to the account.
pub async fn check_password(
    db: &Db,
    cipher: &Cipher,
    checks: &ChecksInFlight,
    user: &User,
    password: SecretString,
    client: IpAddr,
) -> AccountResult<bool> {
    let _in_flight = checks.enter(client)?;
    let stored = users::password_hash(db, user.id).await?;
    let attempt = throttle::begin_password_check(db, cipher, user, client).await?;
    let valid = password::verify(password, stored)
        .await
        .map_err(AccountError::Password)?;
    if valid {
        attempt.succeeded(db).await;
    } else {
        attempt.failed(db).await?;
    }
    Ok(valid)
}

/// Ends the session or revokes the API token `token_id` of `user`, in this process's cache too.
pub async fn log_out(
    db: &Db,
    auth_cache: &AuthCache,
    user: &User,
    token_id: i64,
) -> StoreResult<()> {
    tokens::revoke(db, token_id).await?;
    auth_cache.forget_user(user.id);
    Ok(())
}

/// Stores a new token for the seller; the key itself is returned once and never stored.
pub async fn issue_token(db: &Db, user_id: i64, kind: TokenKind) -> StoreResult<String> {
    let key = token::generate();
    tokens::create(db, user_id, &token::hash(&key), kind).await?;
    Ok(key)
}
