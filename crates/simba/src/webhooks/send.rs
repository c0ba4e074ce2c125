//! One delivery attempt: the signed POST, bounded in time and in what is read back, and what
//! came of it in a few words a seller can read (never a library's error text, which can name
//! internal addresses and paths).

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use url::Url;

use super::address::{AddressError, CheckedResolver, check_url};
use super::signature;
use crate::domain::Timestamp;

/// The most of an answer's body read (and then dropped): enough to let the connection be
/// reused, never a receiver's gigabyte.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The delivery client: no redirects, the checked resolver, a timeout per attempt.
pub fn client(allow_private: bool, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("Simba-Webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        // Through a proxy (reqwest reads `HTTPS_PROXY` by default) the checked resolver would
        // resolve only the proxy's name, and the proxy the target's, unchecked.
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(CheckedResolver { allow_private }))
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(4)
        .build()?)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered(u16),
    /// Any other answer, or none; the status code when there was one.
    Failed(Option<u16>, &'static str),
}

/// Posts `body` to `url`, signed with `secret` under the event id `id`.
pub async fn attempt(
    client: &reqwest::Client,
    allow_private: bool,
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> Attempt {
    let Ok(url) = Url::parse(url) else {
        return Attempt::Failed(None, "the endpoint URL is not valid");
    };
    if let Err(error) = check_before_sending(&url, allow_private).await {
        return Attempt::Failed(None, error);
    }
    let Some(key) = signature::decode_secret(secret) else {
        return Attempt::Failed(None, "the endpoint secret is not valid");
    };
    let timestamp = Timestamp::now().unix_seconds();
    let signature = signature::sign(&key, id, timestamp, body);
    let request = client
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Attempt::Failed(None, describe(&error)),
    };
    let status = response.status();
    let mut read = 0;
    while read < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    if status.is_success() {
        Attempt::Delivered(status.as_u16())
    } else if status.is_redirection() {
        Attempt::Failed(Some(status.as_u16()), "redirects are not followed")
    } else {
        Attempt::Failed(Some(status.as_u16()), "the receiver did not answer 2xx")
    }
}

/// What the resolver cannot check: an address literal, which is not resolved, and whether a
/// plain `http://` URL still points inside (its stored URL was checked when it was written,
/// but the setting may have been turned off since, and a name may resolve elsewhere now).
async fn check_before_sending(url: &Url, allow_private: bool) -> Result<(), &'static str> {
    let named = matches!(url.host(), Some(url::Host::Domain(_)));
    if named && url.scheme() == "https" {
        return Ok(());
    }
    if url.scheme() == "http" && !allow_private {
        return Err("plain http:// is not allowed");
    }
    check_url(url, allow_private).await.map_err(address_refusal)
}

fn address_refusal(error: AddressError) -> &'static str {
    match error {
        AddressError::Unresolvable => "the endpoint's host could not be resolved",
        AddressError::Internal => "the endpoint's address is not allowed",
        AddressError::PlainHttpToPublic => "plain http:// to a public address is not allowed",
    }
}

/// A fixed sentence for a failed request.
fn describe(error: &reqwest::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(address) = e.downcast_ref::<AddressError>() {
            return address_refusal(address.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    }
}
