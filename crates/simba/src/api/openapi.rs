//! The OpenAPI 3.1 document, generated from the handlers' annotations, at
//! `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Simba", description = "Every shipment of every marketplace shop, kept in sync."),
    paths(
        super::accounts::register, super::accounts::login, super::accounts::logout,
        super::accounts::get_user, super::accounts::update_user, super::accounts::delete_user,
        super::accounts::change_password,
        super::shops::list_shops, super::shops::create_shop, super::shops::get_shop,
        super::shops::replace_shop, super::shops::update_shop, super::shops::delete_shop,
        super::shipments::list_all, super::shipments::list_for_shop, super::shipments::changes,
        super::shipments::get_shipment,
        super::sync_runs::start_sync, super::sync_runs::list_runs, super::sync_runs::get_run,
        super::sync_runs::cancel_run,
        super::ops::healthz, super::ops::readyz, super::ops::metrics,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&TokenAuth, &ProblemResponses),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <key>` (or `Bearer <key>`), the key from register or login",
            ))),
        );
    }
}

/// Every error leaves as `application/problem+json` (see `error.rs`), and some leave from the
/// extractors before a handler runs: a body that is not JSON and a query that does not parse
/// (400), a missing or revoked token (401), a field that is unknown or invalid (422), a page
/// past the last one (404). The handlers' annotations list their own outcomes;
/// this adds the extractors' and gives every error its real media type.
struct ProblemResponses;

const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                document_problems(operation);
            }
        }
    }
}

fn document_problems(operation: &mut Operation) {
    let query = || {
        operation
            .parameters
            .iter()
            .flatten()
            .filter(|parameter| parameter.parameter_in == ParameterIn::Query)
    };
    let has_query = query().next().is_some();
    let paginated = query().any(|parameter| parameter.name == "page");
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    if has_body || has_query {
        responses
            .entry("400".into())
            .or_insert_with(|| problem("The body or the query is malformed"));
    }
    if has_body {
        responses
            .entry("422".into())
            .or_insert_with(|| problem("A field is unknown or invalid"));
    }
    if paginated {
        responses
            .entry("404".into())
            .or_insert_with(|| problem("No such page"));
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        responses
            .entry("401".into())
            .or_insert_with(|| problem("No valid token"));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with(['4', '5'])
            && let Some(content) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM_MEDIA_TYPE.into(), content);
        }
    }
}

fn problem(description: &str) -> RefOr<Response> {
    let content = Content::new(Some(Ref::from_schema_name("Problem")));
    RefOr::T(
        Response::builder()
            .description(description)
            .content(PROBLEM_MEDIA_TYPE, content)
            .build(),
    )
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
