//! `TestSandbox`: a sandbox on a random port and a client that speaks to it like a bol client.

use bol_sandbox::{Limits, Sandbox, SandboxConfig};
use reqwest::{Response, StatusCode};
use serde_json::Value;

pub const V10: &str = "application/vnd.retailer.v10+json";

pub struct TestSandbox {
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
    pub base: String,
}

/// A config with limits off, so tests that are not about limits never meet a 429.
pub fn unlimited(accounts: u32, fbr: u32, fbb: u32) -> SandboxConfig {
    SandboxConfig {
        limits: Limits::OFF,
        ..SandboxConfig::default().with_accounts(accounts, fbr, fbb)
    }
}

impl TestSandbox {
    pub async fn start(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let base = sandbox.base_url();
        Self {
            sandbox,
            client: reqwest::Client::new(),
            base,
        }
    }

    pub async fn request_token(&self, client_id: &str, secret: &str) -> Response {
        self.client
            .post(format!("{}/token", self.base))
            .basic_auth(client_id, Some(secret))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("token request")
    }

    /// A token for `sandbox-N`.
    pub async fn token(&self, n: u32) -> String {
        let r = self
            .request_token(&format!("sandbox-{n}"), &format!("secret-{n}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get_raw(&self, token: &str, path_and_query: &str) -> reqwest::Result<Response> {
        self.client
            .get(format!("{}{}", self.base, path_and_query))
            .bearer_auth(token)
            .header("accept", V10)
            .send()
            .await
    }

    pub async fn get(&self, token: &str, path_and_query: &str) -> Response {
        self.get_raw(token, path_and_query).await.expect("request")
    }

    /// The JSON of a 200 answer.
    pub async fn get_json(&self, token: &str, path_and_query: &str) -> Value {
        let r = self.get(token, path_and_query).await;
        assert_eq!(r.status(), StatusCode::OK, "{path_and_query}");
        r.json().await.unwrap()
    }

    /// The shipments of one list page (empty for `{}`).
    pub async fn page(&self, token: &str, method: &str, page: u32) -> Vec<Value> {
        let body = self
            .get_json(
                token,
                &format!("/retailer/shipments?fulfilment-method={method}&page={page}"),
            )
            .await;
        match body.get("shipments") {
            Some(list) => list.as_array().unwrap().clone(),
            None => {
                assert_eq!(body, serde_json::json!({}));
                Vec::new()
            }
        }
    }

    /// Every shipment id of a method, crawling until an empty page.
    pub async fn crawl(&self, token: &str, method: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for page in 1.. {
            let shipments = self.page(token, method, page).await;
            if shipments.is_empty() {
                break;
            }
            ids.extend(
                shipments
                    .iter()
                    .map(|s| s["shipmentId"].as_str().unwrap().to_owned()),
            );
        }
        ids
    }
}

pub fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name} missing"))
}
