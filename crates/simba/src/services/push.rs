//! The push receiver's rules, between the HTTP edge and the store: which hook a token names,
//! whether the notification is bol's (signature), fresh and new, and what it is about.
//! Nothing here calls the marketplace except a refetch of the signature keys on an unknown key.

use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::Timestamp;
use crate::store::push;
use crate::store::{Db, StoreError};
use crate::sync::Engine;

/// The longest hook token accepted: tokens are 48 hex characters.
const MAX_TOKEN_LEN: usize = 64;
/// How far ahead of this server's clock a notification's timestamp may be.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What became of a notification that was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Recorded for the worker.
    Accepted,
    /// The same notification was recorded before.
    Duplicate,
    /// Signed, but about something other than a shipment (a test, another resource).
    Ignored,
}

/// Why a notification was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No hook with this token (or its shop turned push off).
    #[error("no such hook")]
    NoHook,
    /// Unsigned, forged, malformed or stale: the marketplace did not send it as it is.
    #[error("refused notification: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A notification as bol sends it; only what is needed.
#[derive(serde::Deserialize)]
struct Notification {
    #[serde(default, alias = "timeStamp")]
    timestamp: Option<serde_json::Value>,
    event: Event,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    resource: String,
    resource_id: serde_json::Value,
}

/// Checks and records one notification posted to `/hooks/bol/{token}`. `signature` is the
/// header's value, `body` the raw bytes as received.
pub async fn receive(
    db: &Db,
    engine: &Engine,
    token: &str,
    signature: Option<&str>,
    body: &[u8],
    max_age: Duration,
) -> Result<Received, Refused> {
    if token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Refused::NoHook);
    }
    let row = push::by_token(db, token)
        .await?
        .filter(|row| row.wanted)
        .ok_or(Refused::NoHook)?;
    match check(engine, &row, signature, body, max_age).await {
        Ok(Some(shipment_id)) => {
            let digest = hex(&Sha256::digest(body));
            let new = push::record_event(db, row.shop_id, &shipment_id, &digest, Timestamp::now())
                .await?;
            Ok(if new {
                engine.push_arrived();
                Received::Accepted
            } else {
                Received::Duplicate
            })
        }
        Ok(None) => Ok(Received::Ignored),
        Err(why) => {
            push::count_rejected(db, row.shop_id).await?;
            tracing::warn!(
                shop.id = row.shop_id,
                reason = why,
                "push notification refused"
            );
            Err(Refused::Rejected(why))
        }
    }
}

/// The shipment a genuine, fresh notification names; `None` for one about something else.
async fn check(
    engine: &Engine,
    row: &push::Subscription,
    signature: Option<&str>,
    body: &[u8],
    max_age: Duration,
) -> Result<Option<String>, String> {
    let header =
        bol::SignatureHeader::parse(signature.ok_or("not signed")?).map_err(|e| e.to_string())?;
    engine
        .verify_push(row, &header, body)
        .await
        .map_err(|e| e.to_string())?;
    let notification: Notification =
        serde_json::from_slice(body).map_err(|_| "not a notification".to_owned())?;
    if let Some(at) = notification.timestamp.as_ref().and_then(instant) {
        let now = OffsetDateTime::now_utc();
        if at < now - max_age || at > now + CLOCK_SKEW {
            return Err("stale or future timestamp".into());
        }
    }
    if notification.event.resource != "SHIPMENT" {
        return Ok(None);
    }
    let id = match &notification.event.resource_id {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err("resourceId is not an id".into()),
    };
    if id.is_empty()
        || id.len() > bol::MAX_SHIPMENT_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("resourceId is not a shipment id".into());
    }
    Ok(Some(id))
}

/// A notification's timestamp: RFC 3339, or Unix milliseconds as one client reads it.
fn instant(value: &serde_json::Value) -> Option<OffsetDateTime> {
    match value {
        serde_json::Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok(),
        serde_json::Value::Number(n) => {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(n.as_i64()?) * 1_000_000).ok()
        }
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_rfc3339_or_unix_milliseconds() {
        let rfc = instant(&serde_json::json!("2026-12-01T10:00:00+01:00")).unwrap();
        let ms = instant(&serde_json::json!(1_796_115_600_000_i64)).unwrap();
        assert_eq!(rfc, ms);
        assert_eq!(instant(&serde_json::json!(true)), None);
    }
}
