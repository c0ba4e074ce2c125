//! Push notifications on the engine's marketplace client: the subscription manager, the worker
//! that turns notifications into detail fetches, and the signature keys the receiver checks.
//!
//! The manager keeps each shop's wish (`push_enabled`) true at the marketplace: it creates the
//! WEBHOOK subscription and follows its process until the id exists, reads an active one back
//! every [`PushSettings::health_check`](crate::config::PushSettings) to notice that bol disabled
//! it (after ten failed deliveries), then enables it again with PUT and queues an incremental
//! sync for what was missed, and deletes it when push is turned off or the shop deleted.
//!
//! The worker fetches each notified shipment's detail once, however many notifications name it
//! (they carry no data, so their order does not matter), through the same client, rate budget
//! and store path as a run's detail step: the change feed and webhooks see the shipment as
//! they would after a sync. It leaves a shop alone while a run drives it.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bol::{ProcessState, PublicKeys, SignatureError, SignatureHeader, SubscriptionRequest};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::engine::Engine;
use super::queue::{QueueError, queue_run};
use crate::domain::{Mode, Timestamp, Trigger};
use crate::store::push::{self, Progress, PushStatus, Subscription};
use crate::store::{leases, marketplace, shipments, shops};

/// The lease that makes one process the subscription manager.
const MANAGER_LEASE: &str = "push-manager";
/// How long the manager's lease lasts without renewal: the longest time without a manager
/// after the process holding it dies.
const MANAGER_TERM: Duration = Duration::from_secs(30);
/// Subscriptions looked after in one pass.
const PASS_LIMIT: i64 = 100;
/// Shops whose notifications are fetched in one pass.
const SHOPS_PER_PASS: i64 = 50;
/// Notifications of one shop read in one go: at most this many detail calls, within the
/// client's rate budget.
const EVENTS_PER_SHOP: i64 = 200;
/// How long acted-on notifications are kept to recognise redeliveries (bol retries for ten
/// minutes).
const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// bol's signature keys as last fetched, shared by every request the receiver verifies.
#[derive(Debug, Default)]
pub struct PushKeys {
    keys: RwLock<Arc<PublicKeys>>,
    fetched_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Engine {
    /// Looks after subscriptions every tick and fetches notified shipments as they arrive,
    /// until `stop`.
    pub async fn run_push(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut purged = tokio::time::Instant::now();
        let mut reconciliations = tokio::task::JoinSet::new();
        let mut next_pass = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_pass {
                next_pass = tokio::time::Instant::now() + self.settings.push.tick;
                self.manage_if_manager().await;
                self.reconcile_due(&mut reconciliations).await;
                if purged.elapsed() >= Duration::from_secs(600) {
                    purged = tokio::time::Instant::now();
                    if let Err(e) = push::purge(&self.db, Timestamp::now() - DEDUPE_WINDOW).await {
                        tracing::warn!(error = %e, "purging old push notifications");
                    }
                }
            }
            if let Err(e) = self.fetch_notified().await {
                tracing::warn!(error = format!("{e:#}"), "fetching notified shipments");
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() {
                    // A reconciliation stopped midway is done again at its next turn.
                    reconciliations.shutdown().await;
                    leases::release(&self.db, MANAGER_LEASE, &self.owner).await.ok();
                    return;
                },
                () = tokio::time::sleep_until(next_pass) => {}
                // A notification this process received is fetched at once, not at the next
                // tick; those another process received wait for the tick.
                () = self.push_arrived.notified() => {}
            }
        }
    }

    /// Tells the worker a notification was recorded.
    pub fn push_arrived(&self) {
        self.push_arrived.notify_one();
    }

    /// A pass of the subscription manager, when this process holds its lease: two managers
    /// would create two subscriptions for one shop.
    async fn manage_if_manager(&self) {
        let now = Timestamp::now();
        let manager = leases::acquire(
            &self.db,
            MANAGER_LEASE,
            &self.owner,
            now,
            now + MANAGER_TERM,
        )
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "renewing the push manager lease"))
        .unwrap_or(false);
        if manager && let Err(e) = self.manage_subscriptions().await {
            tracing::warn!(error = format!("{e:#}"), "looking after push subscriptions");
        }
    }

    /// One pass of the manager over the subscriptions that are due; returns how many.
    pub async fn manage_subscriptions(&self) -> anyhow::Result<usize> {
        let due = push::due(&self.db, Timestamp::now(), PASS_LIMIT).await?;
        for row in &due {
            if let Err(e) = self.manage(row).await {
                tracing::warn!(
                    shop.id = row.shop_id,
                    error = format!("{e:#}"),
                    "push subscription"
                );
                let progress = Progress {
                    next_check_at: Timestamp::now() + self.settings.push.retry_delay,
                    ..progress_of(row)
                };
                self.record_progress(row, &progress).await?;
            }
        }
        Ok(due.len())
    }

    /// The credentials a subscription is managed with: the shop's, or those copied into the row
    /// when the shop was deleted. `None` when neither exists or decrypts.
    async fn push_credentials(
        &self,
        row: &Subscription,
    ) -> anyhow::Result<Option<bol::Credentials>> {
        let stored = match &row.credentials {
            Some(copied) => Some(copied.clone()),
            None => shops::credentials(&self.db, row.shop_id).await?,
        };
        Ok(stored.and_then(|(client_id, secret_enc)| {
            let secret = self
                .cipher
                .decrypt(shops::SECRET_PURPOSE, &secret_enc)
                .ok()?;
            Some(bol::Credentials {
                client_id,
                client_secret: bol::SecretString::from(secret.expose_secret().to_owned()),
            })
        }))
    }

    /// Records the manager's progress; a subscription active for the first time gets its first
    /// reconciliation at a random time within the reconciliation interval, so that a thousand
    /// shops switched on together are not reconciled together.
    async fn record_progress(&self, row: &Subscription, progress: &Progress) -> anyhow::Result<()> {
        let every = self.settings.push.reconcile_every;
        let first = Timestamp::now() + every.mul_f64(rand::random::<f64>());
        Ok(push::record(&self.db, row, progress, first).await?)
    }

    /// A shop's credentials, decrypted; `None` once the shop is gone.
    pub(super) async fn shop_credentials(
        &self,
        shop_id: i64,
    ) -> anyhow::Result<Option<bol::Credentials>> {
        let Some((client_id, secret_enc)) = shops::credentials(&self.db, shop_id).await? else {
            return Ok(None);
        };
        let secret = self.cipher.decrypt(shops::SECRET_PURPOSE, &secret_enc)?;
        Ok(Some(bol::Credentials {
            client_id,
            client_secret: bol::SecretString::from(secret.expose_secret().to_owned()),
        }))
    }

    async fn manage(&self, row: &Subscription) -> anyhow::Result<()> {
        let Some(creds) = self.push_credentials(row).await? else {
            // Nothing can be done at the marketplace without credentials.
            tracing::warn!(
                shop.id = row.shop_id,
                "push subscription without usable credentials dropped"
            );
            push::set_wanted(&self.db, row.user_id, row.shop_id, false).await?;
            push::remove(&self.db, row.shop_id).await?;
            return Ok(());
        };
        let now = Timestamp::now();
        let soon = now;
        if !row.wanted {
            return self.unsubscribe(row, &creds).await;
        }
        let Some(base) = self.settings.push.public_url.as_deref() else {
            let progress = Progress {
                next_check_at: now + self.settings.push.retry_delay,
                ..progress_of(row)
            };
            return self.record_progress(row, &progress).await;
        };
        let url = format!("{base}/hooks/bol/{}", row.hook_token);
        let progress = match (&row.subscription_id, &row.process_id) {
            (None, None) => {
                let started = self
                    .client
                    .create_subscription(&creds, &SubscriptionRequest::shipment_webhook(&url))
                    .await
                    .map_err(|f| f.error)?
                    .value;
                Progress {
                    status: PushStatus::Pending,
                    subscription_id: started
                        .entity_id
                        .filter(|_| started.status == ProcessState::Success),
                    process_id: started.process_status_id,
                    disabled_at: None,
                    next_check_at: soon,
                }
            }
            (None, Some(process)) => {
                let status = self
                    .client
                    .process_status(&creds, process)
                    .await
                    .map_err(|f| f.error)?
                    .value;
                match (status.status, status.entity_id) {
                    (ProcessState::Success, Some(id)) => {
                        tracing::info!(shop.id = row.shop_id, "push subscription created");
                        Progress {
                            status: PushStatus::Active,
                            subscription_id: Some(id),
                            process_id: None,
                            disabled_at: None,
                            next_check_at: now + self.settings.push.health_check,
                        }
                    }
                    (ProcessState::Failure | ProcessState::Timeout, _) => {
                        tracing::warn!(
                            shop.id = row.shop_id,
                            error = status.error_message,
                            "the marketplace did not create the push subscription"
                        );
                        Progress {
                            process_id: None,
                            next_check_at: now + self.settings.push.retry_delay,
                            ..progress_of(row)
                        }
                    }
                    _ => Progress {
                        next_check_at: soon,
                        ..progress_of(row)
                    },
                }
            }
            // Enabled again with PUT: wait for that process before reading it back, or every
            // pass until it settles would PUT once more.
            (Some(_), Some(process)) if row.status == PushStatus::Disabled => {
                let status = self
                    .client
                    .process_status(&creds, process)
                    .await
                    .map_err(|f| f.error)?
                    .value;
                let settled =
                    !matches!(status.status, ProcessState::Pending | ProcessState::Unknown);
                Progress {
                    process_id: (!settled).then(|| process.clone()),
                    next_check_at: soon,
                    ..progress_of(row)
                }
            }
            (Some(id), _) => match self.client.subscription(&creds, id).await {
                Ok(answer) if answer.value.is_enabled() && answer.value.url == url => Progress {
                    status: PushStatus::Active,
                    process_id: None,
                    disabled_at: None,
                    next_check_at: now + self.settings.push.health_check,
                    ..progress_of(row)
                },
                Ok(_) => {
                    let process = self
                        .client
                        .update_subscription(
                            &creds,
                            id,
                            &SubscriptionRequest::shipment_webhook(&url),
                        )
                        .await
                        .map_err(|f| f.error)?
                        .value;
                    tracing::warn!(
                        shop.id = row.shop_id,
                        "push subscription was disabled; enabled again, syncing the gap"
                    );
                    match queue_run(
                        self,
                        row.shop_id,
                        Some(Mode::Incremental),
                        Trigger::Schedule,
                    )
                    .await
                    {
                        Ok(_) | Err(QueueError::Active(_) | QueueError::NoShop(_)) => {}
                        Err(QueueError::Store(e)) => return Err(e.into()),
                    }
                    Progress {
                        status: PushStatus::Disabled,
                        process_id: process.process_status_id,
                        disabled_at: Some(row.disabled_at.unwrap_or(now)),
                        next_check_at: soon,
                        ..progress_of(row)
                    }
                }
                Err(failure) if matches!(failure.error, bol::Error::NotFound(_)) => Progress {
                    status: PushStatus::Pending,
                    subscription_id: None,
                    process_id: None,
                    disabled_at: None,
                    next_check_at: soon,
                },
                Err(failure) => return Err(failure.error.into()),
            },
        };
        self.record_progress(row, &progress).await
    }

    /// Deletes the marketplace's subscription (once its id is known), then the row.
    async fn unsubscribe(
        &self,
        row: &Subscription,
        creds: &bol::Credentials,
    ) -> anyhow::Result<()> {
        let id = match (&row.subscription_id, &row.process_id) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(process)) => {
                let status = self
                    .client
                    .process_status(creds, process)
                    .await
                    .map_err(|f| f.error)?
                    .value;
                match status.status {
                    ProcessState::Success => status.entity_id,
                    ProcessState::Failure | ProcessState::Timeout => None,
                    // Still being made: it is deleted once it exists.
                    _ => return self.record_progress(row, &progress_of(row)).await,
                }
            }
            (None, None) => None,
        };
        if let Some(id) = id {
            match self.client.delete_subscription(creds, &id).await {
                Ok(_) => tracing::info!(shop.id = row.shop_id, "push subscription deleted"),
                Err(failure) if matches!(failure.error, bol::Error::NotFound(_)) => {}
                Err(failure) => return Err(failure.error.into()),
            }
        }
        Ok(push::remove(&self.db, row.shop_id).await?)
    }

    /// One pass of the worker over shops with notifications waiting; returns how many shops.
    pub async fn fetch_notified(self: &Arc<Self>) -> anyhow::Result<usize> {
        let shops = push::shops_with_events(&self.db, SHOPS_PER_PASS).await?;
        let mut set = tokio::task::JoinSet::new();
        for (shop_id, user_id) in shops.iter().copied() {
            let engine = self.clone();
            set.spawn(async move { (shop_id, engine.fetch_shop_notified(shop_id, user_id).await) });
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((shop_id, Err(e))) = joined {
                tracing::warn!(
                    shop.id = shop_id,
                    error = format!("{e:#}"),
                    "fetching notified shipments"
                );
            }
        }
        Ok(shops.len())
    }

    async fn fetch_shop_notified(&self, shop_id: i64, user_id: i64) -> anyhow::Result<()> {
        let lease = format!("push:{shop_id}");
        let now = Timestamp::now();
        if !leases::acquire(
            &self.db,
            &lease,
            &self.owner,
            now,
            now + self.settings.lease,
        )
        .await?
        {
            return Ok(());
        }
        let result = self.fetch_leased(shop_id, user_id).await;
        leases::release(&self.db, &lease, &self.owner).await.ok();
        result
    }

    async fn fetch_leased(&self, shop_id: i64, user_id: i64) -> anyhow::Result<()> {
        let events = push::events(&self.db, shop_id, EVENTS_PER_SHOP).await?;
        let Some(&(last_id, _)) = events.last() else {
            return Ok(());
        };
        let Some(creds) = self.shop_credentials(shop_id).await? else {
            return Ok(());
        };
        let mut ids: BTreeSet<String> = events.iter().map(|(_, id)| id.clone()).collect();
        let erased = push::erased_among(&self.db, shop_id, &Vec::from_iter(ids.clone())).await?;
        ids.retain(|id| !erased.contains(id));
        let ids: Vec<String> = ids.into_iter().collect();
        let budgets = marketplace::load_budgets(&self.db, &creds.client_id).await?;
        self.client.limiter().restore(&creds.client_id, &budgets);
        let results = self.fetch_details(&creds, ids).await;
        let budgets = self.client.limiter().snapshot(&creds.client_id);
        marketplace::save_budgets(&self.db, &creds.client_id, &budgets).await?;
        let mut rows = Vec::new();
        let mut failure = None;
        let mut handled = erased.into_iter().collect::<Vec<_>>();
        for (id, result) in results {
            match result {
                Ok(answer) => {
                    rows.push(answer.value);
                    handled.push(id);
                }
                // Gone (or never this seller's): nothing to store.
                Err(f) if matches!(f.error, bol::Error::NotFound(_)) => {
                    tracing::info!(
                        shop.id = shop_id,
                        shipment.id = id,
                        "notified shipment not found"
                    );
                    handled.push(id);
                }
                Err(f) => failure = Some(f.error),
            }
        }
        let fetched = rows.len();
        if !rows.is_empty() {
            shipments::store_details(&self.db, user_id, shop_id, &rows).await?;
        }
        crate::engine_metrics::push_details(fetched);
        if let Some(error) = failure {
            // Only the shipments whose fetch failed are tried again: every call made counts.
            push::mark_shipments_done(&self.db, shop_id, last_id, &handled).await?;
            return Err(error.into());
        }
        push::mark_done(&self.db, shop_id, last_id).await?;
        Ok(())
    }

    /// Checks a notification's signature against bol's keys, fetching them again (with `row`'s
    /// credentials) when it names a key not seen yet, at most once per refetch floor.
    pub async fn verify_push(
        &self,
        row: &Subscription,
        header: &SignatureHeader,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let keys = self.push_keys.current();
        match keys.verify(header, body) {
            Err(SignatureError::UnknownKey(_)) => {}
            other => return other,
        }
        let mut fetched_at = self.push_keys.fetched_at.lock().await;
        let fresh = self.push_keys.current();
        if !fresh.contains(&header.key_id)
            && fetched_at.is_none_or(|at| at.elapsed() >= self.settings.push.key_refetch_floor)
        {
            let creds = self.push_credentials(row).await.ok().flatten();
            if let Some(creds) = creds {
                match self.client.signature_keys(&creds).await {
                    Ok(answer) => {
                        *fetched_at = Some(tokio::time::Instant::now());
                        let keys = Arc::new(PublicKeys::from_keys(&answer.value));
                        *self
                            .push_keys
                            .keys
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
                    }
                    Err(failure) => {
                        tracing::warn!(error = %failure.error, "fetching the push signature keys")
                    }
                }
            }
        }
        drop(fetched_at);
        self.push_keys.current().verify(header, body)
    }
}

impl PushKeys {
    fn current(&self) -> Arc<PublicKeys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A row's state as it stands, for progress that changes only part of it.
fn progress_of(row: &Subscription) -> Progress {
    Progress {
        status: row.status,
        subscription_id: row.subscription_id.clone(),
        process_id: row.process_id.clone(),
        disabled_at: row.disabled_at,
        next_check_at: Timestamp::now(),
    }
}
