//! Outbound webhooks' workers, in every process that runs sync workers: a dispatcher that turns
//! the outbox (changes recorded in the transactions that made them) into events, and a pool of
//! delivery tasks that send each event to its endpoints, signed ([`signature`]), to checked
//! addresses only ([`address`]), retried on a schedule of at least a day.
//!
//! A sync only writes outbox rows; everything slow happens here, on tasks of their own with a
//! bound on deliveries in flight overall and per endpoint, so that a receiver that hangs or
//! fails holds a few of these tasks, never a sync. Events are rendered by the edge that owns
//! their shape ([`Render`], the API's representation), so that a webhook's `data` and the API's
//! answer cannot drift apart.

pub mod address;
mod send;
pub mod signature;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::WebhookSettings;
use crate::crypto::Cipher;
use crate::domain::Timestamp;
use crate::domain::webhook::EventType;
use crate::store::shipments::ShipmentRow;
use crate::store::shops::Shop;
use crate::store::sync_runs::SyncRun;
use crate::store::webhooks::{self as store, Claimed, NewEvent, OutboxEntry, Outcome};
use crate::store::{Db, StoreResult, shops, sync_runs};

pub use send::Attempt;

/// Counter: delivery attempts by `outcome`: `delivered`, `retry` (failed, tried again later) or
/// `failed` (failed, schedule spent).
pub const DELIVERIES: &str = "simba_webhook_deliveries_total";
/// Gauge: deliveries waiting for an attempt, all processes' (read from the database).
pub const PENDING: &str = "simba_webhook_deliveries_pending";

/// Gives the webhook metrics their help text in the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        DELIVERIES,
        "Webhook delivery attempts, by outcome (delivered, retry, failed)"
    );
    metrics::describe_gauge!(PENDING, "Webhook deliveries waiting for an attempt");
}

/// The most shipments in one `shipments.changed` event.
pub const SHIPMENTS_PER_EVENT: i64 = 100;

/// How an event's `data` looks: the API's representation of what it is about.
pub trait Render: Send + Sync + std::fmt::Debug {
    fn run(&self, run: &SyncRun) -> Value;
    fn shop(&self, shop: &Shop) -> Value;
    fn shipment(&self, row: ShipmentRow) -> Value;
}

/// A new event's body: `{id, type, timestamp, data}`, as every delivery of it posts it.
pub fn new_event(user_id: i64, event_type: EventType, data: Value) -> NewEvent {
    let created_at = Timestamp::now();
    let uid = format!("evt_{:032x}", rand::random::<u128>());
    let body = json!({
        "id": uid,
        "type": event_type.as_str(),
        "timestamp": created_at.rfc3339(),
        "data": data,
    });
    NewEvent {
        user_id,
        uid,
        event_type,
        body: body.to_string(),
        created_at,
    }
}

/// One process's webhook workers.
#[derive(Debug)]
pub struct Webhooks {
    db: Db,
    cipher: Cipher,
    settings: WebhookSettings,
    client: reqwest::Client,
    render: Arc<dyn Render>,
    in_flight: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

/// How long the delivery log keeps an ended delivery, and an event none of whose deliveries
/// is left: longer than any retry lasts, long enough to look into a receiver's month.
pub const DELIVERY_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_BATCH: i64 = 1000;

impl Webhooks {
    pub fn new(
        db: Db,
        cipher: Cipher,
        settings: WebhookSettings,
        render: Arc<dyn Render>,
    ) -> anyhow::Result<Arc<Webhooks>> {
        let client = send::client(settings.allow_private, settings.attempt_timeout)?;
        Ok(Arc::new(Webhooks {
            db,
            cipher,
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent)),
            settings,
            client,
            render,
            per_endpoint: Mutex::default(),
        }))
    }

    /// Dispatches and delivers until `stop` turns true, then lets the attempts in flight end
    /// (each is bounded by the attempt timeout) and records them.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut attempts = JoinSet::new();
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_gauge = Timestamp::from_unix_millis(0);
        let mut last_prune = Timestamp::from_unix_millis(0);
        while !*stop.borrow() {
            // An attempt ending frees a permit: claim again at once rather than at the next
            // tick, which would cap a process at one batch of permits per poll interval.
            let ticked = tokio::select! {
                _ = tick.tick() => true,
                Some(_) = attempts.join_next(), if !attempts.is_empty() => false,
                _ = stop.changed() => break,
            };
            while attempts.try_join_next().is_some() {}
            if ticked {
                if let Err(e) = self.dispatch().await {
                    tracing::warn!(
                        error = format!("{:#}", anyhow::Error::from(e)),
                        "dispatching webhook events"
                    );
                }
                if Timestamp::now().since(last_prune) >= PRUNE_EVERY {
                    last_prune = Timestamp::now();
                    self.prune_log().await;
                }
                if Timestamp::now().since(last_gauge) >= Duration::from_secs(5) {
                    last_gauge = Timestamp::now();
                    if let Ok(pending) = store::pending_count(&self.db).await {
                        metrics::gauge!(PENDING).set(pending as f64);
                    }
                }
            }
            if let Err(e) = self.clone().deliver_due(&mut attempts).await {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::from(e)),
                    "claiming webhook deliveries"
                );
            }
        }
        while attempts.join_next().await.is_some() {}
    }

    /// Deletes the ended deliveries and the events older than [`DELIVERY_LOG_RETENTION`], a
    /// batch at a time, so that no statement holds the tables for long.
    async fn prune_log(&self) {
        let before = Timestamp::now() - DELIVERY_LOG_RETENTION;
        loop {
            match store::prune_log(&self.db, before, PRUNE_BATCH).await {
                Ok(pruned) if pruned > 0 => continue,
                Ok(_) => return,
                Err(e) => {
                    let error = format!("{:#}", anyhow::Error::from(e));
                    tracing::warn!(error, "pruning the webhook delivery log");
                    return;
                }
            }
        }
    }

    /// Turns the outbox into events: run and shop changes one by one, changed shipments in
    /// batches of up to [`SHIPMENTS_PER_EVENT`].
    async fn dispatch(&self) -> StoreResult<()> {
        for entry in store::outbox(&self.db, 100).await? {
            let event = self.render_entry(&entry).await?;
            store::dispatch(&self.db, &entry, event.as_ref()).await?;
        }
        let now = Timestamp::now();
        for shop in store::changed_shops(&self.db).await? {
            // While a run is active, only full batches of shipments that have their detail go:
            // the others will change again. After the run, or after a quiet time without one,
            // whatever is left goes too.
            let flush =
                !shop.syncing && now.since(shop.last_changed_at) >= self.settings.quiet_time;
            let mut ready = if flush { shop.pending } else { shop.settled };
            while ready >= SHIPMENTS_PER_EVENT || (flush && ready > 0) {
                let pks =
                    store::changed_shipments(&self.db, shop.shop_id, SHIPMENTS_PER_EVENT, !flush)
                        .await?;
                if pks.is_empty() {
                    break;
                }
                // Their change rows go first, then they are read: a change that commits after
                // the read leaves a row of its own (on PostgreSQL and MySQL its upsert waits
                // for this transaction), so it is sent again rather than lost.
                let Some(taken) = store::take_shipment_changes(&self.db, &pks).await? else {
                    break;
                };
                let rows =
                    crate::store::shipments::rows_by_ids(&self.db, shop.user_id, &pks).await?;
                let data = json!({
                    "shop_id": shop.shop_id,
                    "shipments": rows.into_iter().map(|r| self.render.shipment(r)).collect::<Vec<_>>(),
                });
                let event = new_event(shop.user_id, EventType::ShipmentsChanged, data);
                store::record_shipments_event(&self.db, taken, &event).await?;
                ready -= pks.len() as i64;
            }
        }
        Ok(())
    }

    /// The event an outbox entry becomes, rendered from its subject's current state; `None`
    /// when the subject is gone.
    async fn render_entry(&self, entry: &OutboxEntry) -> StoreResult<Option<NewEvent>> {
        let data = match entry.event_type {
            EventType::SyncRunSucceeded | EventType::SyncRunFailed => {
                sync_runs::get(&self.db, entry.user_id, entry.subject_id)
                    .await?
                    .map(|run| self.render.run(&run))
            }
            EventType::ShopCredentialsRejected => {
                shops::get(&self.db, entry.user_id, entry.subject_id)
                    .await?
                    .map(|shop| self.render.shop(&shop))
            }
            EventType::ShipmentsChanged | EventType::Test => None,
        };
        Ok(data.map(|data| new_event(entry.user_id, entry.event_type, data)))
    }

    /// Claims as many due deliveries as there are free permits, overall and per endpoint, and
    /// starts an attempt for each.
    async fn deliver_due(self: Arc<Self>, attempts: &mut JoinSet<()>) -> StoreResult<()> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(());
        }
        let now = Timestamp::now();
        // Endpoints with every permit taken are left out of the query, so that a receiver
        // that hangs with a backlog cannot fill every batch and starve the others.
        let busy: Vec<i64> = self
            .per_endpoint
            .lock()
            .expect("per-endpoint permits")
            .iter()
            .filter(|(_, permits)| permits.available_permits() == 0)
            .map(|(id, _)| *id)
            .collect();
        let due = store::due(&self.db, now, &busy, (free * 4) as i64).await?;
        let mut permits: HashMap<i64, (OwnedSemaphorePermit, OwnedSemaphorePermit)> =
            HashMap::new();
        for delivery in due {
            let Ok(overall) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            let Ok(endpoint) = self
                .endpoint_permits(delivery.endpoint_id)
                .try_acquire_owned()
            else {
                continue;
            };
            permits.insert(delivery.id, (overall, endpoint));
        }
        let ids: Vec<i64> = permits.keys().copied().collect();
        let lease = self.settings.attempt_timeout + Duration::from_secs(50);
        for claimed in store::claim(&self.db, &ids, now, lease).await? {
            let Some(held) = permits.remove(&claimed.id) else {
                continue;
            };
            let this = self.clone();
            attempts.spawn(async move {
                this.attempt(claimed).await;
                drop(held);
            });
        }
        Ok(())
    }

    fn endpoint_permits(&self, endpoint_id: i64) -> Arc<Semaphore> {
        let mut map = self.per_endpoint.lock().expect("per-endpoint permits");
        // Endpoints nobody is sending to are forgotten, so the map stays as small as the work.
        map.retain(|_, s| s.available_permits() < self.settings.max_concurrent_per_endpoint);
        map.entry(endpoint_id)
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_concurrent_per_endpoint)))
            .clone()
    }

    /// One attempt at a claimed delivery, and its outcome recorded.
    async fn attempt(&self, claimed: Claimed) {
        let attempt = match self
            .cipher
            .decrypt(store::SECRET_PURPOSE, &claimed.secret_enc)
        {
            Ok(secret) => {
                send::attempt(
                    &self.client,
                    self.settings.allow_private,
                    &claimed.url,
                    secret.expose_secret(),
                    &claimed.event_uid,
                    &claimed.body,
                )
                .await
            }
            Err(_) => Attempt::Failed(None, "the endpoint secret could not be read"),
        };
        let outcome = self.outcome(claimed.attempts, attempt);
        let label = match &outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Failed {
                retry_at: Some(_), ..
            } => "retry",
            Outcome::Failed { retry_at: None, .. } => "failed",
        };
        metrics::counter!(DELIVERIES, "outcome" => label).increment(1);
        if let Err(e) = store::record_attempt(&self.db, &claimed, &outcome).await {
            // The claim lapses and the delivery is tried again: at least once, not exactly.
            tracing::warn!(
                delivery.id = claimed.id,
                error = format!("{:#}", anyhow::Error::from(e)),
                "recording a webhook delivery attempt"
            );
        }
    }

    /// When a failed attempt is tried again: the schedule's next delay, give or take a tenth so
    /// that deliveries failed together do not return together.
    fn outcome(&self, attempts_before: i64, attempt: Attempt) -> Outcome {
        match attempt {
            Attempt::Delivered(status_code) => Outcome::Delivered { status_code },
            Attempt::Failed(status_code, error) => {
                let delay = usize::try_from(attempts_before)
                    .ok()
                    .and_then(|n| self.settings.retry_delays.get(n));
                Outcome::Failed {
                    status_code,
                    error: error.to_owned(),
                    retry_at: delay
                        .map(|d| Timestamp::now() + d.mul_f64(0.9 + rand::random::<f64>() * 0.2)),
                }
            }
        }
    }
}
