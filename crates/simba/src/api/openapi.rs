//! The OpenAPI 3.1 document, generated from the handlers' annotations, at
//! `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Simba", description = "Every shipment of every marketplace shop, kept in sync."),
    paths(
        super::accounts::register, super::accounts::login, super::accounts::logout,
        super::accounts::get_user, super::accounts::update_user, super::accounts::delete_user,
        super::accounts::change_password,
        super::shops::list_shops, super::shops::create_shop, super::shops::get_shop,
        super::shops::replace_shop, super::shops::update_shop, super::shops::delete_shop,
        super::shipments::list_all, super::shipments::list_for_shop, super::shipments::get_shipment,
        super::sync_runs::start_sync, super::sync_runs::list_runs, super::sync_runs::get_run,
        super::sync_runs::cancel_run,
        super::ops::healthz, super::ops::readyz, super::ops::metrics,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&TokenAuth),
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

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
