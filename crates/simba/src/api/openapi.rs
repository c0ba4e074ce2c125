//! The OpenAPI 3.1 document, generated from the handlers' annotations, at
//! `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{AdditionalProperties, Object, OneOf, Schema, SchemaType, Type};
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
        super::webhooks::list_webhooks, super::webhooks::create_webhook,
        super::webhooks::get_webhook, super::webhooks::update_webhook,
        super::webhooks::delete_webhook, super::webhooks::test_webhook,
        super::webhooks::list_deliveries, super::webhooks::redeliver,
        super::data_protection::create_erasure, super::data_protection::data_subject,
        super::data_protection::access_log,
        super::ops::healthz, super::ops::readyz, super::ops::metrics,
        super::hooks::receive,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&TokenAuth, &CursorsAndTags, &ProblemResponses),
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

/// What every list and every GET share, documented once rather than on each handler: every
/// list (an operation with a `page` parameter) also walks by `cursor` (see `api::cursor`),
/// answering the page without its `count` and with a `Link` header; every authenticated GET
/// carries an `ETag` and answers 304 to a matching `If-None-Match` (see `api::conditional`).
struct CursorsAndTags;

impl Modify for CursorsAndTags {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.clone().unwrap_or_default();
        for item in openapi.paths.paths.values_mut() {
            let Some(operation) = &mut item.get else {
                continue;
            };
            if operation.security.as_ref().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let paginated = operation
                .parameters
                .iter()
                .flatten()
                .any(|parameter| parameter.name == "page");
            if paginated {
                document_cursor(operation, &components);
            }
            document_etag(operation);
        }
    }
}

fn string_schema() -> Schema {
    Schema::Object(Object::with_type(SchemaType::Type(Type::String)))
}

fn parameter(name: &str, place: ParameterIn, description: &str) -> Parameter {
    Parameter::builder()
        .name(name)
        .parameter_in(place)
        .description(Some(description))
        .schema(Some(string_schema()))
        .build()
}

fn header(description: &str) -> Header {
    let mut header = Header::new(string_schema());
    header.description = Some(description.to_owned());
    header
}

/// The `cursor` parameter, and the 200 answer as either page: by number (with `count`) or by
/// cursor (without, and nothing else: so that a body is exactly one of the two).
fn document_cursor(operation: &mut Operation, components: &utoipa::openapi::Components) {
    operation.parameters.get_or_insert_with(Vec::new).push(parameter(
        "cursor",
        ParameterIn::Query,
        "Walks the list by cursor: empty to start, then the value in `next` or `previous`.          Not with `page`. A cursor is bound to the seller, the list, its filters and its ordering.",
    ));
    let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") else {
        return;
    };
    ok.headers.insert(
        "Link".into(),
        header("On cursor pages: the next and previous pages (RFC 8288, rel=\"next\" and rel=\"prev\")"),
    );
    for content in ok.content.values_mut() {
        let Some(numbered) = content.schema.take() else {
            continue;
        };
        let object = match &numbered {
            RefOr::T(Schema::Object(object)) => Some(object.clone()),
            RefOr::Ref(reference) => reference
                .ref_location
                .rsplit('/')
                .next()
                .and_then(|name| components.schemas.get(name))
                .and_then(|schema| match schema {
                    RefOr::T(Schema::Object(object)) => Some(object.clone()),
                    _ => None,
                }),
            RefOr::T(_) => None,
        };
        let Some(mut by_cursor) = object else {
            content.schema = Some(numbered);
            continue;
        };
        by_cursor.properties.remove("count");
        by_cursor.required.retain(|name| name != "count");
        by_cursor.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        by_cursor.title = Some("Cursor page".into());
        by_cursor.description = Some("A page of a cursor walk: no `count`.".into());
        let mut either = OneOf::new();
        either.items = vec![numbered, RefOr::T(Schema::Object(by_cursor))];
        content.schema = Some(RefOr::T(Schema::OneOf(either)));
    }
}

/// `If-None-Match`, the `ETag` of the 200 answer, and the 304.
fn document_etag(operation: &mut Operation) {
    operation.parameters.get_or_insert_with(Vec::new).push(parameter(
        "If-None-Match",
        ParameterIn::Header,
        "Entity tags (or `*`) the client holds: a match (weak comparison) is a 304 with no body.",
    ));
    let etag = "The answer's entity tag, for `If-None-Match`";
    if let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") {
        ok.headers.insert("ETag".into(), header(etag));
    }
    let mut not_modified = Response::new("Not modified: the tag in `If-None-Match` still holds");
    not_modified.headers.insert("ETag".into(), header(etag));
    operation
        .responses
        .responses
        .insert("304".into(), RefOr::T(not_modified));
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
