//! Strict JSON bodies: the content type must be JSON, syntax errors are 400, and a body that
//! parses but does not fit (unknown, missing or mistyped fields) is 422 naming the field.
//! axum's own `Json` reports the last case without the field's name, hence this extractor.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::domain::ValidationErrors;
use crate::error::ApiError;

pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::BadRequest {
                detail: "Expected a JSON body with Content-Type: application/json.".into(),
                errors: None,
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    detail: "The request body could not be read.".into(),
                    errors: None,
                }
            }
        })?;
        parse(&bytes).map(StrictJson)
    }
}

/// A JSON body that may be left out entirely (no body, no content type).
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if declared_empty || (!has_type && !req.headers().contains_key(header::TRANSFER_ENCODING)) {
            return Ok(OptionalJson(None));
        }
        StrictJson::from_request(req, state)
            .await
            .map(|StrictJson(value)| OptionalJson(Some(value)))
    }
}

/// Parses a JSON body, mapping each failure to the answer API.md asks for.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            detail: "The request body is empty; a JSON object is required.".into(),
            errors: None,
        });
    }
    // Syntax first, so that a malformed document is a 400 whatever its fields.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| malformed(&e))?;
    // serde would also read a struct from an array; only an object is a valid body.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Validation(ValidationErrors::single(
            "non_field_errors",
            "the body must be a JSON object",
        )));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.classify() == serde_json::error::Category::Data {
            let (field, reason) = field_and_reason(&error.path().to_string(), &inner.to_string());
            ApiError::Validation(ValidationErrors::single(&field, reason))
        } else {
            malformed(inner)
        }
    })
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        detail: format!(
            "Malformed JSON at line {} column {}.",
            error.line(),
            error.column()
        ),
        errors: None,
    }
}

/// serde names unknown and missing fields only in its message; everything else is at the path.
fn field_and_reason(path: &str, message: &str) -> (String, String) {
    let message = message.split(" at line ").next().unwrap_or(message);
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    // serde_path_to_error's path already ends at an unknown field, but stops at the parent
    // of a missing one.
    let under_path = |name: String| {
        if path == "." {
            name
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = quoted("unknown field `") {
        return (under_path(name), "is not a known field".into());
    }
    if let Some(name) = quoted("missing field `") {
        return (under_path(name), "is required".into());
    }
    let field = if path == "." {
        "non_field_errors".into()
    } else {
        path.to_owned()
    };
    (field, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        name: String,
        count: Option<i64>,
    }

    fn errors_of(result: Result<Body, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Validation(errors)) => errors.0.into_keys().collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        assert_eq!(errors_of(parse(br#"{"name":"a","colour":1}"#)), ["colour"]);
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(errors_of(parse(br#"{"count":1}"#)), ["name"]);
    }

    #[test]
    fn mistyped_fields_are_named() {
        assert_eq!(errors_of(parse(br#"{"name":"a","count":"x"}"#)), ["count"]);
    }

    #[test]
    fn syntax_errors_and_empty_bodies_are_bad_requests() {
        for body in [&b"{"[..], b"", b"  ", b"{} x"] {
            let result = parse::<Body>(body);
            assert!(
                matches!(result, Err(ApiError::BadRequest { .. })),
                "{body:?}: {result:?}"
            );
        }
    }

    #[test]
    fn a_non_object_is_a_validation_error() {
        assert_eq!(errors_of(parse(b"[1]")), ["non_field_errors"]);
    }
}
