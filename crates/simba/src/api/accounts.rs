//! `/auth/*`: register, log in and out, the profile, password change, account deletion.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::StrictJson;
use super::rfc3339;
use crate::auth::client_address::ClientAddress;
use crate::auth::{AuthUser, password};
use crate::domain::{Email, Password, PersonName, Username, ValidationErrors};
use crate::error::{ApiError, ApiResult, Problem};
use crate::services::accounts::{self, NewAccount};
use crate::services::data_protection;
use crate::state::AppState;
use crate::store::erasure;
use crate::store::tokens::TokenKind;
use crate::store::users;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route(
            "/auth/user",
            get(get_user)
                .put(update_user)
                .patch(update_user)
                .delete(delete_user),
        )
        .route("/auth/password/change", post(change_password))
}

/// A seller as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    id: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    #[schema(format = DateTime)]
    date_joined: String,
    /// Days after its shipment date that a shipment's buyer data is kept (30 to 3650); null
    /// (the default) keeps it.
    #[schema(minimum = 30, maximum = 3650)]
    retention_days: Option<i64>,
}

impl UserOut {
    /// The seller with their retention setting, read from the database: the authenticated
    /// user is cached without it.
    async fn read(state: &AppState, user: &users::User) -> ApiResult<UserOut> {
        let mut out = UserOut::from(user);
        out.retention_days = erasure::retention_days(&state.db, user.id).await?;
        Ok(out)
    }
}

impl From<&users::User> for UserOut {
    fn from(user: &users::User) -> Self {
        UserOut {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            date_joined: rfc3339(user.date_joined),
            retention_days: None,
        }
    }
}

/// A new token, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    token: String,
    user: UserOut,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// Letters, digits and `@ . + - _`.
    #[schema(min_length = 1, max_length = 150, pattern = r"^[\w@.+-]+$")]
    username: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 8 characters, not the username.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    password: SecretString,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterIn,
    responses((status = 201, body = TokenOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn register(
    State(state): State<AppState>,
    StrictJson(body): StrictJson<RegisterIn>,
) -> ApiResult<(StatusCode, Json<TokenOut>)> {
    let mut errors = ValidationErrors::default();
    let username = errors.check("username", Username::parse(&body.username));
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse(&body.password, &body.username));
    let first_name = errors.check("first_name", PersonName::parse(&body.first_name));
    let last_name = errors.check("last_name", PersonName::parse(&body.last_name));
    let (Some(username), Some(email), Some(password), Some(first_name), Some(last_name)) =
        (username, email, password, first_name, last_name)
    else {
        return Err(errors.into());
    };
    let new = NewAccount {
        username: &username,
        email: &email,
        password: &password,
        first_name: &first_name,
        last_name: &last_name,
    };
    let user = accounts::register(&state.db, &new).await?;
    tracing::info!(user.id = user.id, "seller registered");
    let token = issue_token(&state, &user).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

async fn issue_token(state: &AppState, user: &users::User) -> ApiResult<TokenOut> {
    Ok(TokenOut {
        token: accounts::issue_token(&state.db, user.id, TokenKind::Api).await?,
        user: UserOut::read(state, user).await?,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// The username or the email address.
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = TokenOut), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    StrictJson(body): StrictJson<LoginIn>,
) -> ApiResult<Json<TokenOut>> {
    let (key, user) = accounts::log_in(
        &state.db,
        &state.cipher,
        &state.password_checks,
        &body.username,
        body.password,
        client,
        TokenKind::Api,
    )
    .await?;
    Ok(Json(TokenOut {
        token: key,
        user: (&user).into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("token" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub(super) async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    accounts::log_out(&state.db, &state.auth_cache, &auth.user, auth.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/user", tag = "auth", security(("token" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem)))]
pub(super) async fn get_user(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<Json<UserOut>> {
    Ok(Json(UserOut::read(&state, &auth.user).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateIn {
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Read-only: accepted only when unchanged, so that a client may send back what it read.
    username: Option<String>,
    /// 30 to 3650 days, or null to keep buyers' personal data; left out, it stays as it is.
    /// A change starts the retention job within a minute.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 30, maximum = 3650)]
    retention_days: Option<serde_json::Value>,
}

/// `Some` for a field that is present, `null` included, so that `null` can mean "unset".
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

#[utoipa::path(method(put, patch), path = "/api/v1/auth/user", tag = "auth", security(("token" = [])), request_body = UserUpdateIn,
    responses((status = 200, body = UserOut), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    StrictJson(body): StrictJson<UserUpdateIn>,
) -> ApiResult<Json<UserOut>> {
    let current = auth.user;
    let mut errors = ValidationErrors::default();
    if body
        .username
        .as_ref()
        .is_some_and(|u| *u != current.username)
    {
        errors.add("username", "is read-only");
    }
    let email = match &body.email {
        Some(email) => errors
            .check("email", Email::parse(email))
            .map(|e| e.as_str().to_owned()),
        None => Some(current.email.clone()),
    };
    let name =
        |field: &str, value: &Option<String>, now: &str, errors: &mut ValidationErrors| match value
        {
            Some(v) => errors
                .check(field, PersonName::parse(v))
                .map(|n| n.as_str().to_owned()),
            None => Some(now.to_owned()),
        };
    let first_name = name(
        "first_name",
        &body.first_name,
        &current.first_name,
        &mut errors,
    );
    let last_name = name(
        "last_name",
        &body.last_name,
        &current.last_name,
        &mut errors,
    );
    let retention_days = body.retention_days.as_ref().and_then(|days| {
        errors.check(
            "retention_days",
            data_protection::parse_retention_days(days),
        )
    });
    let (Some(email), Some(first_name), Some(last_name)) = (email, first_name, last_name) else {
        return Err(errors.into());
    };
    errors.into_result()?;
    let change = users::ProfileChange {
        email: &email,
        first_name: &first_name,
        last_name: &last_name,
    };
    users::update_profile(&state.db, current.id, &change)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::UniqueViolation => {
                ApiError::conflict("A seller with that email address already exists.")
            }
            other => other.into(),
        })?;
    if let Some(days) = retention_days {
        erasure::set_retention_days(&state.db, current.id, days).await?;
    }
    state.auth_cache.forget_user(current.id);
    let user = users::User {
        email,
        first_name,
        last_name,
        ..current
    };
    Ok(Json(UserOut::read(&state, &user).await?))
}

#[utoipa::path(delete, path = "/api/v1/auth/user", tag = "auth", security(("token" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<StatusCode> {
    users::delete(&state.db, &state.cipher, auth.user.id).await?;
    state.auth_cache.forget_user(auth.user.id);
    state.page_cache.forget_user(auth.user.id);
    tracing::info!(user.id = auth.user.id, "seller deleted their account");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    #[schema(value_type = String, format = Password)]
    old_password: SecretString,
    /// At least 8 characters, not the username.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    new_password: SecretString,
}

#[utoipa::path(post, path = "/api/v1/auth/password/change", tag = "auth", security(("token" = [])),
    request_body = PasswordChangeIn,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    auth: AuthUser,
    StrictJson(body): StrictJson<PasswordChangeIn>,
) -> ApiResult<StatusCode> {
    let new_password = Password::parse(&body.new_password, &auth.user.username)
        .map_err(|m| ValidationErrors::single("new_password", m))?;
    let checked = accounts::check_password(
        &state.db,
        &state.cipher,
        &state.password_checks,
        &auth.user,
        body.old_password,
        client,
    );
    if !checked.await? {
        return Err(ValidationErrors::single("old_password", "is not the current password").into());
    }
    let new_hash = password::hash(new_password.secret().clone())
        .await
        .map_err(ApiError::Internal)?;
    users::change_password(&state.db, auth.user.id, &new_hash, auth.token_id).await?;
    state.auth_cache.forget_user(auth.user.id);
    Ok(StatusCode::NO_CONTENT)
}
