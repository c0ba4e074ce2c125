//! Buyer data protection as the edges perform it: erasure on request, subject access, the
//! retention setting and its job's pass, and the access log every read of personal data
//! writes to before it answers (a read that cannot be logged is not served).

use crate::domain::Timestamp;
use crate::store::erasure::{self, Access, Subject};
use crate::store::shipments::{self, ShipmentDetail};
use crate::store::{Db, StoreResult};

/// The retention setting's bounds, in days.
pub const MIN_RETENTION_DAYS: i64 = 30;
pub const MAX_RETENTION_DAYS: i64 = 3650;
/// The most shipment ids one erasure request may name.
pub const MAX_SHIPMENT_IDS: usize = 1000;
/// How long the access log keeps an entry.
pub const ACCESS_LOG_RETENTION_DAYS: i64 = 365;
/// Shipments a retention pass erases for one seller before it turns to the next.
const SLICE_PER_SELLER: usize = 50_000;
/// How often the job runs for a seller whose setting has not changed.
pub const RETENTION_INTERVAL_SECONDS: i64 = 3600;

const SECONDS_PER_DAY: i64 = 86_400;

/// Validates a retention setting: `None` keeps personal data.
pub fn parse_retention_days(value: &serde_json::Value) -> Result<Option<i64>, String> {
    let message =
        format!("must be an integer from {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}, or null");
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(days @ MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS) => Ok(Some(days)),
            _ => Err(message),
        },
        _ => Err(message),
    }
}

/// Erases the personal data of the seller's shipments `subject` names; returns the ids
/// erased now (those erased before are not counted again).
pub async fn erase(db: &Db, user_id: i64, subject: &Subject) -> StoreResult<Vec<i64>> {
    let ids = erasure::select(db, user_id, subject, true).await?;
    let erased = erasure::erase(db, user_id, &ids).await?;
    if !erased.is_empty() {
        tracing::info!(
            user.id = user_id,
            shipments = erased.len(),
            "erased buyers' personal data on request"
        );
        erasure::checkpoint(db).await?;
    }
    Ok(erased)
}

/// Every shipment of the seller whose customer details hold `email`, with its full detail;
/// the read is logged first.
pub async fn subject_access(
    db: &Db,
    user_id: i64,
    actor: &str,
    email: &str,
) -> StoreResult<Vec<ShipmentDetail>> {
    let subject = Subject::Email(email.to_owned());
    let ids = erasure::select(db, user_id, &subject, false).await?;
    erasure::record_access(
        db,
        user_id,
        Access {
            actor,
            action: "data_subject.access",
            shipment_ids: Some(&ids),
            // The address's hash, not the address: the log outlives erasure, and must not
            // keep what erasure removed. The seller can hash an address to find its reads.
            filter: Some(&format!(
                "email_sha256={}",
                crate::auth::token::hash(&email.to_lowercase())
            )),
        },
    )
    .await?;
    let mut details = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(detail) = shipments::get(db, user_id, id).await? {
            details.push(detail);
        }
    }
    Ok(details)
}

/// One shipment's detail, the read logged first; `None` when the seller has no such shipment
/// (nothing is logged then).
pub async fn shipment_detail(
    db: &Db,
    user_id: i64,
    actor: &str,
    action: &str,
    id: i64,
) -> StoreResult<Option<ShipmentDetail>> {
    let Some(detail) = shipments::get(db, user_id, id).await? else {
        return Ok(None);
    };
    erasure::record_access(
        db,
        user_id,
        Access {
            actor,
            action,
            shipment_ids: Some(&[id]),
            filter: None,
        },
    )
    .await?;
    Ok(Some(detail))
}

/// One pass of the retention job: for each seller due ([`erasure::due_sellers`]), erases the
/// personal data of shipments dated more than their setting's days ago, in batches, and
/// prunes the access log. Resumable and idempotent: a pass cut short leaves erased what it
/// erased, and the next one finds only what still holds personal data. Returns how many
/// shipments it erased.
pub async fn retention_pass(db: &Db, now: Timestamp) -> StoreResult<usize> {
    let stale = Timestamp::from_unix_seconds(now.unix_seconds() - RETENTION_INTERVAL_SECONDS);
    let mut total = 0;
    // Rounds over the sellers still unfinished, each erasing at most a slice per seller: one
    // seller's backlog never holds up another's, and a backlog goes on at once, not a pass
    // later.
    let mut pending = erasure::due_sellers(db, stale).await?;
    while !pending.is_empty() {
        let mut unfinished = Vec::new();
        for (user_id, days) in pending {
            let before = Timestamp::from_unix_seconds(now.unix_seconds() - days * SECONDS_PER_DAY);
            let mut erased = 0;
            let mut finished = false;
            while erased < SLICE_PER_SELLER {
                let ids = erasure::expired(db, user_id, before, erasure::BATCH as i64).await?;
                if ids.is_empty() {
                    finished = true;
                    break;
                }
                erased += erasure::erase(db, user_id, &ids).await?.len();
            }
            if finished {
                erasure::record_run(db, user_id, now).await?;
            } else {
                unfinished.push((user_id, days));
            }
            if erased > 0 {
                tracing::info!(
                    user.id = user_id,
                    shipments = erased,
                    "retention erased buyers' personal data"
                );
            }
            total += erased;
        }
        pending = unfinished;
    }
    let log_before = Timestamp::from_unix_seconds(
        now.unix_seconds() - ACCESS_LOG_RETENTION_DAYS * SECONDS_PER_DAY,
    );
    while erasure::prune_access_log(db, log_before, erasure::BATCH as i64).await? > 0 {}
    if total > 0 {
        erasure::checkpoint(db).await?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_retention_setting_is_null_or_an_integer_in_range() {
        assert_eq!(parse_retention_days(&json!(null)), Ok(None));
        assert_eq!(parse_retention_days(&json!(30)), Ok(Some(30)));
        assert_eq!(parse_retention_days(&json!(3650)), Ok(Some(3650)));
        for bad in [
            json!(29),
            json!(3651),
            json!(30.5),
            json!("90"),
            json!(true),
        ] {
            assert!(parse_retention_days(&bad).is_err(), "{bad}");
        }
    }
}
