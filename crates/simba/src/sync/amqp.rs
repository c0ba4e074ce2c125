//! The job queue on RabbitMQ (`BROKER_URL=amqp://…`): one persistent message per run to drive.
//!
//! The run row stays the source of truth (status, checkpoint, shop lease); a message only says
//! "drive run N". It is acknowledged once the drive has ended with every step committed —
//! succeeded, failed, cancelled — or once it is clear that another live worker drives the run.
//! A worker that dies leaves its deliveries unacknowledged, so RabbitMQ hands them to another
//! worker, which resumes from the checkpoint as soon as the dead worker's shop lease expires. A
//! worker that stops (SIGTERM) or reaches the end of its slice releases the shop and returns the
//! message to the queue. When the connection drops, drives in flight go on (their steps commit
//! to the database, not to the broker) while the consumer reconnects with backoff; the copies
//! RabbitMQ redelivers meanwhile find the shop leased by a live driver and are dropped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::engine::{Engine, RunEnd};
use super::queue::{QueueFuture, RunQueue};
use crate::domain::Timestamp;
use crate::store::sync_runs;

/// How long a publish may wait for a connection, so that an API request does not hang while the
/// broker is away (the scheduler publishes the run later).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// The body of a message.
#[derive(Debug, Serialize, Deserialize)]
struct RunMessage {
    run_id: i64,
}

/// A RabbitMQ queue of sync runs: publishing with confirms, consuming with bounded prefetch.
#[derive(Debug)]
pub struct AmqpQueue {
    uri: String,
    queue: String,
    prefetch: u16,
    publisher: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

/// What to do with a delivery once its drive has ended.
enum Settle {
    Ack,
    Requeue,
}

/// What waiting for a leased shop found.
enum ShopWait {
    /// The lease expired or was released: drive the run.
    Free,
    /// A live driver renewed its lease: this copy of the message is not needed.
    Driven,
    Stopping,
}

impl AmqpQueue {
    /// Connects lazily: an unreachable broker does not stop the process from starting.
    pub fn new(uri: &url::Url, queue: &str, max_concurrent_runs: usize) -> AmqpQueue {
        AmqpQueue {
            uri: uri.as_str().to_owned(),
            queue: queue.to_owned(),
            prefetch: u16::try_from(max_concurrent_runs).unwrap_or(u16::MAX),
            publisher: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self, role: &str) -> anyhow::Result<(Connection, Channel)> {
        let name = format!("simba {role} (pid {})", std::process::id());
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = Connection::connect(&self.uri, properties)
            .await
            .context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        // Durable, so that queued runs outlive a broker restart; the consumer and the publisher
        // both declare it, whichever starts first.
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("declaring the queue {}", self.queue))?;
        Ok((connection, channel))
    }

    /// A channel in confirm mode, reconnecting when the last one was lost.
    async fn publishing_channel(&self) -> anyhow::Result<Channel> {
        let mut publisher = self.publisher.lock().await;
        if let Some((connection, channel)) = publisher.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (connection, channel) =
            tokio::time::timeout(CONNECT_TIMEOUT, self.connect("publisher"))
                .await
                .context("connecting to RabbitMQ timed out")??;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *publisher = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Publishes a persistent message for the run and waits for the broker to confirm it; one
    /// retry on a fresh connection covers a connection the broker closed since the last use.
    pub async fn publish(&self, run_id: i64) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&RunMessage { run_id }).expect("messages serialize");
        let mut last_error = None;
        for _ in 0..2 {
            let attempt = async {
                let channel = self.publishing_channel().await?;
                let confirmation = channel
                    .basic_publish(
                        "".into(),
                        self.queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        &body,
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into()),
                    )
                    .await?
                    .await?;
                anyhow::ensure!(confirmation.is_ack(), "RabbitMQ refused the message");
                anyhow::ensure!(
                    confirmation.take_message().is_none(),
                    "RabbitMQ has no queue named {} to route the message to",
                    self.queue
                );
                Ok(())
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *self.publisher.lock().await = None;
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("two attempts failed"))
    }

    /// Consumes runs until `stop` turns true, reconnecting with backoff whenever the broker
    /// goes away. On stop, drives in flight pause at their step boundary and their messages go
    /// back to the queue before the connection closes.
    async fn consume(self: Arc<Self>, engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let mut retry = FIRST_RETRY;
        while !*stop.borrow() {
            let (connection, channel, mut consumer) = match self.open_consumer().await {
                Ok(opened) => opened,
                Err(e) => {
                    let wait = jittered(retry);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = wait.as_millis() as u64,
                        "RabbitMQ is unavailable"
                    );
                    retry = (retry * 2).min(LONGEST_RETRY);
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            retry = FIRST_RETRY;
            tracing::info!(queue = %self.queue, prefetch = self.prefetch, "consuming sync runs from RabbitMQ");
            loop {
                tokio::select! {
                    changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => {
                            tasks.spawn(handle(engine.clone(), delivery, stop.clone()));
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost the RabbitMQ connection; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("RabbitMQ cancelled the consumer; reconnecting");
                            break;
                        }
                    },
                }
                while tasks.try_join_next().is_some() {}
            }
            if *stop.borrow() {
                channel
                    .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                    .await
                    .ok();
                while tasks.join_next().await.is_some() {}
                connection.close(200, "simba is stopping".into()).await.ok();
                return;
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn open_consumer(&self) -> anyhow::Result<(Connection, Channel, lapin::Consumer)> {
        let (connection, channel) = self.connect("worker").await?;
        // Bounded prefetch: a worker holds no more runs than it drives at once, so the rest
        // wait in the queue for a worker with room.
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel, consumer))
    }
}

impl RunQueue for AmqpQueue {
    /// Publishes a message for the run; a message the broker did not confirm is published
    /// again by [`RunQueue::recover`], so the run is never lost.
    fn hand_over<'a>(&'a self, engine: &'a Engine, run_id: i64) -> QueueFuture<'a, ()> {
        Box::pin(async move {
            match self.publish(run_id).await {
                Ok(()) => {
                    if let Err(e) =
                        sync_runs::mark_dispatched(&engine.db, run_id, Timestamp::now()).await
                    {
                        tracing::warn!(run.id = run_id, error = %e, "recording a published run");
                    }
                }
                Err(e) => tracing::warn!(
                    run.id = run_id,
                    error = format!("{e:#}"),
                    "the broker did not take the run; the scheduler publishes it again"
                ),
            }
        })
    }

    fn serve(
        self: Arc<Self>,
        engine: Arc<Engine>,
        stop: watch::Receiver<bool>,
    ) -> QueueFuture<'static, ()> {
        Box::pin(self.consume(engine, stop))
    }

    /// Publishes again the active runs nobody drives whose message the broker never confirmed
    /// (the process that queued them died first, or the broker was down) or confirmed so long
    /// ago that it may have been lost with a broker's data. A copy of a message still queued is
    /// harmless: its driver finds the run ended or the shop leased.
    fn recover<'a>(&'a self, engine: &'a Engine) -> QueueFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            const REPUBLISH_AFTER: Duration = Duration::from_secs(10 * 60);
            const PUBLISH_GRACE: Duration = Duration::from_secs(10);
            let now = Timestamp::now();
            let runs = sync_runs::undispatched(
                &engine.db,
                now,
                now - REPUBLISH_AFTER,
                now - PUBLISH_GRACE,
            )
            .await?;
            if !runs.is_empty() {
                tracing::info!(
                    runs = runs.len(),
                    "publishing runs without a confirmed message"
                );
            }
            for run_id in runs {
                self.hand_over(engine, run_id).await;
            }
            Ok(())
        })
    }
}

/// Drives the run a delivery names, then acknowledges it or hands it back.
async fn handle(
    engine: Arc<Engine>,
    delivery: lapin::message::Delivery,
    stop: watch::Receiver<bool>,
) {
    let run_id = match serde_json::from_slice::<RunMessage>(&delivery.data) {
        Ok(message) => message.run_id,
        Err(e) => {
            tracing::warn!(error = %e, "dropping a message that names no sync run");
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .ok();
            return;
        }
    };
    match drive(&engine, run_id, stop).await {
        Settle::Ack => {
            // An ack on a channel that has since closed does nothing: RabbitMQ redelivers the
            // message, and its next consumer finds the run ended.
            if !matches!(delivery.ack(BasicAckOptions::default()).await, Ok(true)) {
                tracing::debug!(
                    run.id = run_id,
                    "the ack of a run was lost with its channel"
                );
            }
        }
        Settle::Requeue => {
            let requeued = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await;
            // The channel closed (`Ok(false)`: the acker is poisoned): the broker already
            // redelivered this message, and its consumer dropped it while this driver held the
            // shop. Publish it anew.
            if !matches!(requeued, Ok(true)) {
                engine.queued(run_id).await;
            }
        }
    }
}

async fn drive(engine: &Engine, run_id: i64, mut stop: watch::Receiver<bool>) -> Settle {
    loop {
        let end = engine
            .drive(run_id, stop.clone(), Some(engine.settings.slice))
            .await;
        tracing::debug!(run.id = run_id, ?end, "drive ended");
        match end {
            Ok(
                RunEnd::Succeeded
                | RunEnd::Failed(_)
                | RunEnd::Cancelled
                | RunEnd::Inactive
                | RunEnd::LeaseLost,
            ) => return Settle::Ack,
            Ok(RunEnd::Paused) => return Settle::Requeue,
            Ok(RunEnd::Busy) => match wait_for_shop(engine, run_id, &mut stop).await {
                Ok(ShopWait::Free) => {}
                Ok(ShopWait::Driven) => return Settle::Ack,
                Ok(ShopWait::Stopping) => return Settle::Requeue,
                Err(e) => {
                    tracing::warn!(
                        run.id = run_id,
                        error = format!("{e:#}"),
                        "reading a shop lease"
                    );
                    pause(&mut stop, engine.settings.poll_interval).await;
                    return Settle::Requeue;
                }
            },
            Err(e) => {
                tracing::warn!(
                    run.id = run_id,
                    error = format!("{e:#}"),
                    "sync run interrupted; handing it back to the queue"
                );
                // Not at once: a database that is down would otherwise bounce the message
                // between workers in a tight loop.
                pause(&mut stop, engine.settings.lease).await;
                return Settle::Requeue;
            }
        }
    }
}

/// Another driver holds the run's shop: waits until its lease is renewed (a live driver: this
/// message is a copy) or lapses (a dead one: this worker resumes the run).
async fn wait_for_shop(
    engine: &Engine,
    run_id: i64,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<ShopWait> {
    let Some(run) = sync_runs::engine_run(&engine.db, run_id).await? else {
        return Ok(ShopWait::Driven);
    };
    let Some((owner, first_until)) = sync_runs::lease_holder(&engine.db, run.shop_id).await? else {
        return Ok(ShopWait::Free);
    };
    if owner == engine.owner {
        return Ok(ShopWait::Driven);
    }
    let step = engine.settings.poll_interval.min(engine.settings.lease / 6);
    loop {
        if pause(stop, step).await {
            return Ok(ShopWait::Stopping);
        }
        match sync_runs::lease_holder(&engine.db, run.shop_id).await? {
            None => return Ok(ShopWait::Free),
            Some((_, until)) if until < Timestamp::now() => return Ok(ShopWait::Free),
            Some((holder, until)) if holder != owner || until > first_until => {
                return Ok(ShopWait::Driven);
            }
            Some(_) => {}
        }
    }
}

/// Sleeps for `duration` unless the process stops first; returns whether it is stopping.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
        () = tokio::time::sleep(duration) => false,
    }
}

/// Spreads reconnections of many workers over ±25 % of the backoff.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.75..1.25))
}
