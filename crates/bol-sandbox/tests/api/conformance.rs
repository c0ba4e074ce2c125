//! Conformance: list and detail answers validate against bol's own OpenAPI schemas, so the
//! sandbox cannot drift from the real API.

use crate::helpers::{TestSandbox, unlimited};
use serde_json::{Value, json};

fn validator(schema_name: &str) -> jsonschema::Validator {
    let spec: Value = serde_json::from_str(include_str!("../data/retailer-openapi.json")).unwrap();
    let schema = json!({
        "$ref": format!("#/components/schemas/{schema_name}"),
        "components": spec["components"],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{instance:#}");
}

#[tokio::test]
async fn list_and_detail_answers_match_bols_schemas() {
    let app = TestSandbox::start(unlimited(1, 120, 80)).await;
    let token = app.token(1).await;
    let (list, detail) = (validator("ShipmentsResponse"), validator("Shipment"));
    let mut ids = Vec::new();
    for method in ["FBR", "FBB"] {
        for page in 1..=3 {
            let body = app
                .get_json(
                    &token,
                    &format!("/retailer/shipments?fulfilment-method={method}&page={page}"),
                )
                .await;
            if body == json!({}) {
                break;
            }
            assert_valid(&list, &body);
            ids.extend(
                body["shipments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["shipmentId"].as_str().unwrap().to_owned()),
            );
        }
    }
    assert_eq!(ids.len(), 200);
    let mut seen_optional = (false, false);
    for id in &ids {
        let body = app
            .get_json(&token, &format!("/retailer/shipments/{id}"))
            .await;
        assert_valid(&detail, &body);
        seen_optional.0 |= body.get("billingDetails").is_none();
        seen_optional.1 |= body["shipmentItems"][0].get("quantityShipped").is_none();
    }
    assert_eq!(
        seen_optional,
        (true, true),
        "optional fields go missing now and then"
    );
}

#[tokio::test]
async fn a_bad_request_answer_matches_bols_problem_schema() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    let token = app.token(1).await;
    let body: Value = app
        .get(&token, "/retailer/shipments?page=x")
        .await
        .json()
        .await
        .unwrap();
    assert_valid(&validator("Problem"), &body);
}
