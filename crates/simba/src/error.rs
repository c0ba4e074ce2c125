//! The one application error type. Every failure leaves as `application/problem+json`
//! (RFC 9457); unexpected ones are logged once with their cause chain and answered with a
//! fixed body that reveals nothing internal.
//!
//! It depends on the domain alone, so that whatever the edges share may use it; how a store or
//! service error becomes an `ApiError` is decided at the API edge (`api::errors`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::ValidationErrors;

/// The problem document; `errors` and `active_run_id` appear only where they apply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    #[schema(example = "Validation failed")]
    pub title: &'static str,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "client_secret must not be empty")]
    pub detail: String,
    /// Field name → messages, on 400 and 422 answers that concern named fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    pub errors: Option<ValidationErrors>,
    /// The run that is already queued or running, on a 409 from starting a sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_run_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {}", .0.summary())]
    Validation(ValidationErrors),
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Option<ValidationErrors>,
    },
    #[error("authentication required")]
    Unauthenticated,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {detail}")]
    Conflict {
        detail: String,
        active_run_id: Option<i64>,
    },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("request body timed out")]
    RequestTimeout,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            detail: detail.into(),
            active_run_id: None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn problem(self) -> Problem {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let mut problem = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail: String::new(),
            errors: None,
            active_run_id: None,
        };
        problem.detail = match self {
            ApiError::Validation(errors) => {
                problem.title = "Validation failed";
                let detail = errors.summary();
                problem.errors = Some(errors);
                detail
            }
            ApiError::BadRequest { detail, errors } => {
                problem.errors = errors;
                detail
            }
            ApiError::Unauthenticated => {
                "Authentication credentials were not provided or are not valid.".into()
            }
            ApiError::InvalidCredentials => {
                "Unable to log in with the provided credentials.".into()
            }
            ApiError::NotFound => "The requested resource was not found.".into(),
            ApiError::MethodNotAllowed => "This method is not allowed on this resource.".into(),
            ApiError::Conflict {
                detail,
                active_run_id,
            } => {
                problem.active_run_id = active_run_id;
                detail
            }
            ApiError::PayloadTooLarge => "The request body is larger than the limit.".into(),
            ApiError::RequestTimeout => "The request body did not arrive in time.".into(),
            ApiError::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts; try again in {retry_after_secs} seconds.")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "service unavailable");
                "The service is temporarily unavailable; try again shortly.".into()
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "An unexpected error occurred.".into()
            }
        };
        problem
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let unauthenticated = matches!(self, ApiError::Unauthenticated);
        let body = serde_json::to_vec(&self.problem()).expect("a problem always serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}
