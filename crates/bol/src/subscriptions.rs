//! Push notification subscriptions: the calls that manage them, the signature keys, and the
//! process statuses their asynchronous answers point at.
//!
//! Creating, updating and deleting a subscription answer 202 with a [`ProcessStatus`]; the new
//! subscription's id arrives later as the process's `entityId`. Every call goes through the
//! client's rate limiter, token and retry loop like the shipments calls, in groups of their own
//! because bol limits them separately (the keys endpoint to a handful of calls an hour).

use crate::{
    Answer, Client, Credentials, Failure, Group,
    client::{V10, encode_segment},
    parse::{self, Malformed},
};
use reqwest::header;
use serde::{Deserialize, Serialize};

/// The body of `POST /retailer/subscriptions` and `PUT /retailer/subscriptions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionRequest {
    /// Event types, e.g. `SHIPMENT`.
    pub resources: Vec<String>,
    /// Where a WEBHOOK's notifications are posted.
    pub url: String,
    /// `WEBHOOK`, `GCP_PUBSUB` or `AWS_SQS`.
    pub subscription_type: String,
    /// Whether notifications are sent; bol's default is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl SubscriptionRequest {
    /// An enabled WEBHOOK subscription to SHIPMENT events at `url`.
    pub fn shipment_webhook(url: impl Into<String>) -> SubscriptionRequest {
        SubscriptionRequest {
            resources: vec!["SHIPMENT".to_owned()],
            url: url.into(),
            subscription_type: "WEBHOOK".to_owned(),
            enabled: Some(true),
        }
    }
}

/// A subscription as bol holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// bol's id of the subscription.
    pub id: String,
    /// Event types.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Where notifications are posted.
    #[serde(default)]
    pub url: String,
    /// `WEBHOOK`, ...
    #[serde(default)]
    pub subscription_type: String,
    /// False once bol has disabled it (after failed deliveries) or it was created disabled;
    /// absent means bol's default, enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl Subscription {
    /// Whether bol sends notifications to it.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

#[derive(Deserialize)]
struct Subscriptions {
    #[serde(default)]
    subscriptions: Vec<Subscription>,
}

/// One of bol's public signature keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureKey {
    /// The id a signature header names as `keyId`.
    pub id: String,
    /// `RSA`.
    #[serde(rename = "type", default)]
    pub key_type: String,
    /// Base64 DER SubjectPublicKeyInfo.
    pub public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeySet {
    #[serde(default)]
    signature_keys: Vec<SignatureKey>,
}

/// Where an asynchronous request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    /// Not done yet: ask again later.
    Pending,
    /// Done; `entity_id` names what was made.
    Success,
    /// Refused; `error_message` says why.
    Failure,
    /// bol gave up.
    Timeout,
    /// A state this client does not know; treated as not done.
    #[serde(other)]
    Unknown,
}

/// `GET /shared/process-status/{id}`, and the 202 answers that point at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStatus {
    /// The id to poll.
    #[serde(default)]
    pub process_status_id: Option<String>,
    /// The id of what the process made, once it has.
    #[serde(default)]
    pub entity_id: Option<String>,
    /// e.g. `CREATE_SUBSCRIPTION`.
    #[serde(default)]
    pub event_type: String,
    /// Where it stands.
    pub status: ProcessState,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Malformed> {
    parse::json(body)
}

impl Client {
    /// `POST /retailer/subscriptions`: asks for a subscription; its id comes with the process.
    pub async fn create_subscription(
        &self,
        creds: &Credentials,
        request: &SubscriptionRequest,
    ) -> Result<Answer<ProcessStatus>, Failure> {
        let url = format!("{}/retailer/subscriptions", self.api_url());
        let body = serde_json::to_vec(request).expect("a request always serialises");
        self.api(
            creds,
            Group::Subscriptions,
            |http| {
                http.post(&url)
                    .header(header::CONTENT_TYPE, V10)
                    .body(body.clone())
            },
            json,
        )
        .await
    }

    /// `GET /retailer/subscriptions`: every subscription of the account.
    pub async fn subscriptions(
        &self,
        creds: &Credentials,
    ) -> Result<Answer<Vec<Subscription>>, Failure> {
        let url = format!("{}/retailer/subscriptions", self.api_url());
        self.api(
            creds,
            Group::Subscriptions,
            |http| http.get(&url),
            |body| json::<Subscriptions>(body).map(|s| s.subscriptions),
        )
        .await
    }

    /// `GET /retailer/subscriptions/{id}`; a subscription that is gone is [`crate::Error::NotFound`].
    pub async fn subscription(
        &self,
        creds: &Credentials,
        id: &str,
    ) -> Result<Answer<Subscription>, Failure> {
        let url = self.subscription_url(id);
        self.api(creds, Group::Subscriptions, |http| http.get(&url), json)
            .await
    }

    /// `PUT /retailer/subscriptions/{id}`: replaces it, e.g. to enable it again.
    pub async fn update_subscription(
        &self,
        creds: &Credentials,
        id: &str,
        request: &SubscriptionRequest,
    ) -> Result<Answer<ProcessStatus>, Failure> {
        let url = self.subscription_url(id);
        let body = serde_json::to_vec(request).expect("a request always serialises");
        self.api(
            creds,
            Group::Subscriptions,
            |http| {
                http.put(&url)
                    .header(header::CONTENT_TYPE, V10)
                    .body(body.clone())
            },
            json,
        )
        .await
    }

    /// `DELETE /retailer/subscriptions/{id}`.
    pub async fn delete_subscription(
        &self,
        creds: &Credentials,
        id: &str,
    ) -> Result<Answer<ProcessStatus>, Failure> {
        let url = self.subscription_url(id);
        self.api(creds, Group::Subscriptions, |http| http.delete(&url), json)
            .await
    }

    /// `GET /retailer/subscriptions/signature-keys`: the keys notifications are signed with.
    pub async fn signature_keys(
        &self,
        creds: &Credentials,
    ) -> Result<Answer<Vec<SignatureKey>>, Failure> {
        let url = format!("{}/retailer/subscriptions/signature-keys", self.api_url());
        self.api(
            creds,
            Group::SignatureKeys,
            |http| http.get(&url),
            |body| json::<KeySet>(body).map(|k| k.signature_keys),
        )
        .await
    }

    /// `GET /shared/process-status/{id}`.
    pub async fn process_status(
        &self,
        creds: &Credentials,
        id: &str,
    ) -> Result<Answer<ProcessStatus>, Failure> {
        let url = format!(
            "{}/shared/process-status/{}",
            self.api_url(),
            encode_segment(id)
        );
        self.api(creds, Group::ProcessStatus, |http| http.get(&url), json)
            .await
    }

    fn subscription_url(&self, id: &str) -> String {
        format!(
            "{}/retailer/subscriptions/{}",
            self.api_url(),
            encode_segment(id)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bol_answers_read_with_missing_optionals_and_unknown_states() {
        let status: ProcessStatus = json(
            br#"{"processStatusId":"1","eventType":"CREATE_SUBSCRIPTION","description":"x",
                "status":"PENDING","createTimestamp":"2026-12-01T10:00:00+01:00","links":[]}"#,
        )
        .unwrap();
        assert_eq!(status.status, ProcessState::Pending);
        assert_eq!(status.entity_id, None);
        let odd: ProcessStatus = json(br#"{"status":"QUEUED","entityId":"9"}"#).unwrap();
        assert_eq!(odd.status, ProcessState::Unknown);
        let keys: KeySet =
            json(br#"{"signatureKeys":[{"id":"1","type":"RSA","publicKey":"AA=="}]}"#).unwrap();
        assert_eq!(keys.signature_keys[0].key_type, "RSA");
        let subscription: Subscription = json(br#"{"id":"5"}"#).unwrap();
        assert!(subscription.is_enabled());
    }

    #[test]
    fn requests_are_written_as_bol_names_them() {
        let body =
            serde_json::to_value(SubscriptionRequest::shipment_webhook("https://x/h")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"resources":["SHIPMENT"],"url":"https://x/h","subscriptionType":"WEBHOOK","enabled":true})
        );
    }
}
