//! Claims runs, drives each through its steps (a list page, a batch of details), commits every
//! step together with its checkpoint under the shop's lease, and queues scheduled runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use super::amqp::AmqpQueue;
use super::convert;
use crate::crypto::Cipher;
use crate::domain::{FulfilmentMethod, Mode, RunStatus, Trigger};
use crate::store::shipments::{self, NewShipment};
use crate::store::steps::{self, StepData, StepWrite};
use crate::store::sync_runs::{self, ApiCalls, StepDelta, StepOutcome};
use crate::store::{Db, leases, marketplace, shops};

/// The lease that makes one process the scheduler.
const SCHEDULER_LEASE: &str = "scheduler";
/// How long a scheduler's lease lasts without renewal: the longest time without a scheduler
/// after the process holding it dies.
const LEADER_LEASE: Duration = Duration::from_secs(30);

/// How the engine paces itself.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a shop's lease lasts without renewal: the time before another worker resumes
    /// the run of a worker that died.
    pub lease: Duration,
    /// How often idle workers look for queued runs they were not told about.
    pub poll_interval: Duration,
    /// Runs one process drives at once (many shops in parallel, one driver per shop).
    pub max_concurrent_runs: usize,
    /// Details fetched concurrently in one step.
    pub detail_batch: usize,
    /// How often the scheduler looks for shops due an automatic sync.
    pub schedule_interval: Duration,
    /// The longest a worker drives one run on a broker delivery before handing the run back to
    /// the queue: RabbitMQ cancels a consumer whose delivery stays unacknowledged for 30 minutes
    /// (its `consumer_timeout`).
    pub slice: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            max_concurrent_runs: 256,
            detail_batch: 10,
            schedule_interval: Duration::from_secs(30),
            slice: Duration::from_secs(600),
        }
    }
}

/// How a drive ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    Failed(String),
    Cancelled,
    /// The run is no longer queued or running: it ended, or its shop was deleted.
    Inactive,
    /// Another driver holds the shop's lease.
    Busy,
    /// Stopped at a step boundary because the process is stopping or the slice ended; the shop
    /// is released and the run resumes from its checkpoint with the next driver.
    Paused,
    /// This driver stalled past its lease and another took the shop over, or the run was ended
    /// (cancelled) just before this driver could end it.
    LeaseLost,
}

/// Where a run is; committed with the data each step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Checkpoint {
    /// Listing `method` at `page`. `catch_up`: re-reading from page 1 until known shipments,
    /// because new arrivals shifted the pages during this crawl.
    List {
        method: FulfilmentMethod,
        page: u32,
        catch_up: bool,
    },
    Details,
}

impl Checkpoint {
    const START: Checkpoint = Checkpoint::List {
        method: FulfilmentMethod::Fbr,
        page: 1,
        catch_up: false,
    };

    fn after_method(method: FulfilmentMethod) -> Checkpoint {
        match method {
            FulfilmentMethod::Fbr => Checkpoint::List {
                method: FulfilmentMethod::Fbb,
                page: 1,
                catch_up: false,
            },
            FulfilmentMethod::Fbb => Checkpoint::Details,
        }
    }
}

pub(super) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn api_calls(calls: &bol::Calls) -> ApiCalls {
    ApiCalls {
        list: calls.list.into(),
        detail: calls.detail.into(),
        token: calls.token.into(),
        rate_limited: calls.rate_limited.into(),
        errors: (calls.retries + calls.unauthorized).into(),
    }
}

fn add_calls(total: &mut ApiCalls, more: &ApiCalls) {
    total.list += more.list;
    total.detail += more.detail;
    total.token += more.token;
    total.rate_limited += more.rate_limited;
    total.errors += more.errors;
}

/// The sentence a failed run shows.
fn failure_sentence(error: &bol::Error) -> String {
    match error {
        bol::Error::InvalidCredentials => "The marketplace rejected the shop's credentials \
            (client id or secret); update them and start the sync again."
            .to_owned(),
        e if e.is_transient() => format!(
            "The marketplace kept failing after repeated retries ({e}); everything fetched so far \
             is stored, and the next sync continues from there."
        ),
        e => {
            format!("The marketplace refused a request ({e}); everything fetched so far is stored.")
        }
    }
}

/// Why a run ended before its first call: too many refused token requests (see
/// [`marketplace::refusal_wait`]).
fn refusal_wait_sentence(until: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(until)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    format!(
        "The marketplace refused too many of this seller's token requests in the last hour. So \
         that it does not block Simba's address, credentials without a token may ask again from \
         {at}; check the client id and secret meanwhile."
    )
}

/// One process's sync engine: its workers share one marketplace client.
pub struct Engine {
    pub(super) db: Db,
    cipher: Cipher,
    client: bol::Client,
    pub(super) settings: EngineSettings,
    /// Names this process in shop leases.
    pub(super) owner: String,
    wake: Notify,
    driving: Mutex<HashSet<i64>>,
    /// RabbitMQ, when `BROKER_URL` names it; otherwise workers claim runs from the database.
    queue: Option<Arc<AmqpQueue>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        db: Db,
        cipher: Cipher,
        client_config: bol::ClientConfig,
        settings: EngineSettings,
        queue: Option<AmqpQueue>,
    ) -> anyhow::Result<Arc<Engine>> {
        let cache = Arc::new(marketplace::DbTokenCache {
            db: db.clone(),
            cipher: cipher.clone(),
        });
        let client = bol::Client::with_token_cache(client_config, cache)
            .map_err(|e| anyhow::anyhow!("building the marketplace client: {e}"))?;
        let owner = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        Ok(Arc::new(Engine {
            db,
            cipher,
            client,
            settings,
            owner,
            wake: Notify::new(),
            driving: Mutex::new(HashSet::new()),
            queue: queue.map(Arc::new),
        }))
    }

    /// Hands a newly queued run to the workers: a message on the broker, or a wake-up for the
    /// workers of this process (the others find it when they next look). A message the broker
    /// did not confirm is published again by the scheduler, so the run is never lost.
    pub async fn queued(&self, run_id: i64) {
        let Some(queue) = &self.queue else {
            self.wake.notify_waiters();
            return;
        };
        match queue.publish(run_id).await {
            Ok(()) => {
                if let Err(e) = sync_runs::mark_dispatched(&self.db, run_id, now_ms()).await {
                    tracing::warn!(run.id = run_id, error = %e, "recording a published run");
                }
            }
            Err(e) => tracing::warn!(
                run.id = run_id,
                error = format!("{e:#}"),
                "the broker did not take the run; the scheduler publishes it again"
            ),
        }
    }

    /// Claims and drives runs until `stop` turns true; runs in flight stop at their next step
    /// boundary and release their shop, so another process resumes them at once.
    pub async fn run_workers(self: Arc<Self>, stop: watch::Receiver<bool>) {
        match self.queue.clone() {
            Some(queue) => queue.consume(self, stop).await,
            None => self.claim_from_database(stop).await,
        }
    }

    async fn claim_from_database(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.max_concurrent_runs));
        let mut tasks = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(e) = self.claim_and_spawn(&permits, &mut tasks, &stop).await {
                tracing::warn!(error = format!("{e:#}"), "looking for queued sync runs");
            }
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                _ = stop.changed() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn claim_and_spawn(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let free = permits.available_permits();
        if free == 0 {
            return Ok(());
        }
        let candidates = sync_runs::claimable(&self.db, now_ms(), (free * 2) as i64).await?;
        for candidate in candidates {
            if self
                .driving
                .lock()
                .expect("driving lock")
                .contains(&candidate.shop_id)
            {
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let engine = self.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                let _permit = permit;
                match engine.drive(candidate.run_id, stop, None).await {
                    Ok(end) => tracing::debug!(run.id = candidate.run_id, ?end, "drive ended"),
                    Err(e) => tracing::error!(
                        run.id = candidate.run_id,
                        error = format!("{e:#}"),
                        "sync run drive failed"
                    ),
                }
            });
        }
        Ok(())
    }

    /// Queues automatic runs for shops that are due, every schedule interval, while this
    /// process holds the scheduler lease: with many processes exactly one schedules, and
    /// another takes over within [`LEADER_LEASE`] of its death.
    pub async fn run_scheduler(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_schedule: Option<tokio::time::Instant> = None;
        let tick = self.settings.schedule_interval.min(LEADER_LEASE / 3);
        loop {
            let now = now_ms();
            let leader = leases::acquire(
                &self.db,
                SCHEDULER_LEASE,
                &self.owner,
                now,
                now + LEADER_LEASE.as_millis() as i64,
            )
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "renewing the scheduler lease"))
            .unwrap_or(false);
            let due =
                last_schedule.is_none_or(|at| at.elapsed() >= self.settings.schedule_interval);
            if leader && due {
                last_schedule = Some(tokio::time::Instant::now());
                match self.schedule_due().await {
                    Ok(0) => {}
                    Ok(queued) => tracing::info!(runs = queued, "scheduled automatic syncs"),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "scheduling automatic syncs")
                    }
                }
            }
            if leader && let Err(e) = self.publish_undispatched().await {
                tracing::warn!(error = format!("{e:#}"), "publishing runs again");
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() {
                    leases::release(&self.db, SCHEDULER_LEASE, &self.owner).await.ok();
                    return;
                },
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Queues one run per due shop; returns how many were queued.
    pub async fn schedule_due(&self) -> anyhow::Result<usize> {
        let mut queued = 0;
        for shop_id in sync_runs::due_for_schedule(&self.db, crate::store::now()).await? {
            let Some(mode) = shops::default_mode(&self.db, shop_id).await? else {
                continue;
            };
            match sync_runs::create_queued(&self.db, shop_id, mode, Trigger::Schedule).await {
                Ok(run) => {
                    self.queued(run.id).await;
                    queued += 1;
                }
                Err(sync_runs::QueueError::Active(_)) => {}
                Err(sync_runs::QueueError::Store(e)) => return Err(e.into()),
            }
        }
        Ok(queued)
    }

    /// With a broker: publishes again the active runs nobody drives whose message the broker
    /// never confirmed (the process that queued them died first, or the broker was down) or
    /// confirmed so long ago that it may have been lost with a broker's data. A copy of a
    /// message still queued is harmless: its driver finds the run ended or the shop leased.
    async fn publish_undispatched(&self) -> anyhow::Result<()> {
        if self.queue.is_none() {
            return Ok(());
        }
        const REPUBLISH_AFTER_MS: i64 = 10 * 60 * 1000;
        const PUBLISH_GRACE_SECONDS: i64 = 10;
        let now = now_ms();
        let runs = sync_runs::undispatched(
            &self.db,
            now,
            now - REPUBLISH_AFTER_MS,
            crate::store::now() - PUBLISH_GRACE_SECONDS,
        )
        .await?;
        if !runs.is_empty() {
            tracing::info!(
                runs = runs.len(),
                "publishing runs without a confirmed message"
            );
        }
        for run_id in runs {
            self.queued(run_id).await;
        }
        Ok(())
    }

    /// Drives one run to its end, until this process must stop or loses the shop, or until
    /// `slice` has passed (then it pauses at the next step boundary).
    pub async fn drive(
        &self,
        run_id: i64,
        stop: watch::Receiver<bool>,
        slice: Option<Duration>,
    ) -> anyhow::Result<RunEnd> {
        let Some(run) = sync_runs::engine_run(&self.db, run_id).await? else {
            return Ok(RunEnd::Inactive);
        };
        if !run.status.is_active() {
            return Ok(RunEnd::Inactive);
        }
        // Two tasks of this process woken for the same run: only the first drives it.
        if !self
            .driving
            .lock()
            .expect("driving lock")
            .insert(run.shop_id)
        {
            return Ok(RunEnd::Busy);
        }
        let deadline = slice.map(|slice| tokio::time::Instant::now() + slice);
        let end = self.drive_claimed(&run, stop, deadline).await;
        self.driving
            .lock()
            .expect("driving lock")
            .remove(&run.shop_id);
        end
    }

    async fn drive_claimed(
        &self,
        run: &sync_runs::EngineRun,
        stop: watch::Receiver<bool>,
        deadline: Option<tokio::time::Instant>,
    ) -> anyhow::Result<RunEnd> {
        let until = now_ms() + self.settings.lease.as_millis() as i64;
        if !sync_runs::lease(&self.db, run.shop_id, &self.owner, now_ms(), until).await? {
            return Ok(RunEnd::Busy);
        }
        let heartbeat = self.keep_lease(run.shop_id);
        // Read again under the lease: the row read before it may predate the last step of the
        // previous driver, and resuming from that checkpoint would fetch a page twice.
        let end = match sync_runs::engine_run(&self.db, run.id).await {
            Ok(Some(run)) if run.status.is_active() => {
                self.drive_leased(&run, stop, deadline).await
            }
            Ok(_) => Ok(RunEnd::Inactive),
            Err(e) => Err(e.into()),
        };
        heartbeat.abort();
        match &end {
            // `finish` released the shop with the run; another driver holds it.
            Ok(RunEnd::Succeeded | RunEnd::Failed(_) | RunEnd::Busy | RunEnd::LeaseLost) => {}
            Ok(RunEnd::Cancelled | RunEnd::Inactive | RunEnd::Paused) => {
                sync_runs::release_lease(&self.db, run.shop_id, &self.owner).await?;
            }
            // The lease is left to expire: a run that failed on the database is retried one
            // lease later rather than in a tight loop.
            Err(e) => tracing::warn!(
                run.id = run.id,
                error = format!("{e:#}"),
                "sync run interrupted"
            ),
        }
        end
    }

    /// Renews the shop's lease while a step waits (a rate-limit reset can outlast the lease),
    /// so that no other worker takes over a shop this one still drives.
    fn keep_lease(&self, shop_id: i64) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        let owner = self.owner.clone();
        let lease = self.settings.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now_ms() + lease.as_millis() as i64;
                match sync_runs::renew_lease(&db, shop_id, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(shop.id = shop_id, error = %e, "renewing a shop lease")
                    }
                }
            }
        })
    }

    async fn drive_leased(
        &self,
        run: &sync_runs::EngineRun,
        stop: watch::Receiver<bool>,
        deadline: Option<tokio::time::Instant>,
    ) -> anyhow::Result<RunEnd> {
        if !sync_runs::mark_running(&self.db, run.id).await? {
            return Ok(RunEnd::Cancelled);
        }
        let Some((client_id, secret_enc)) = shops::credentials(&self.db, run.shop_id).await? else {
            return Ok(RunEnd::Inactive);
        };
        let Ok(secret) = self.cipher.decrypt(shops::SECRET_PURPOSE, &secret_enc) else {
            let sentence = "The shop's client secret cannot be decrypted with this server's \
                SECRET_KEY; enter the secret again.";
            let end = sync_runs::RunFinish {
                status: RunStatus::Failed,
                error: Some(sentence),
                calls: &ApiCalls::default(),
            };
            sync_runs::finish(&self.db, run.id, run.shop_id, Some(&self.owner), &end).await?;
            return Ok(RunEnd::Failed(sentence.to_owned()));
        };
        let creds = bol::Credentials {
            client_id: client_id.clone(),
            client_secret: bol::SecretString::from(secret.expose_secret().to_owned()),
        };
        let now = crate::store::now();
        if let Some(until) =
            marketplace::refusal_wait(&self.db, &self.cipher, run.shop_id, &creds, now).await?
        {
            let sentence = refusal_wait_sentence(until);
            let end = sync_runs::RunFinish {
                status: RunStatus::Failed,
                error: Some(&sentence),
                calls: &ApiCalls::default(),
            };
            sync_runs::finish(&self.db, run.id, run.shop_id, Some(&self.owner), &end).await?;
            return Ok(RunEnd::Failed(sentence));
        }
        let budgets = marketplace::load_budgets(&self.db, &client_id).await?;
        self.client.limiter().restore(&client_id, &budgets);
        let incremental = run.mode == Mode::Incremental;
        let mut checkpoint = run
            .checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Checkpoint::START);
        let mut seen_this_run: HashSet<String> = HashSet::new();
        let mut shifted = false;
        tracing::info!(run.id = run.id, shop.id = run.shop_id, mode = %run.mode, "sync run started");
        loop {
            if *stop.borrow() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(RunEnd::Paused);
            }
            // A step's inputs, committed in this order; a list call that failed for good ends
            // the run after them.
            let mut inputs = Vec::with_capacity(2);
            let mut list_failure = None;
            match checkpoint {
                Checkpoint::List {
                    method,
                    page,
                    catch_up,
                } => {
                    // Details of the shipments listed so far are fetched while the next page is
                    // listed: the two have their own rate limits, so the details (the scarcer
                    // budget) start with the first page instead of after the last one.
                    let pending = shipments::pending_details(
                        &self.db,
                        run.shop_id,
                        self.settings.detail_batch as i64,
                    )
                    .await?;
                    let details = async {
                        match pending.is_empty() {
                            true => None,
                            false => Some(self.fetch_details(&creds, pending).await),
                        }
                    };
                    let (listed, details) =
                        tokio::join!(self.client.list_shipments(&creds, method, page), details);
                    match listed {
                        Ok(answer) => {
                            let rows: Vec<NewShipment> = answer
                                .value
                                .shipments
                                .iter()
                                .map(|s| convert::from_reduced(s, method))
                                .collect();
                            shifted |= page > 1
                                && rows.iter().any(|r| seen_this_run.contains(&r.shipment_id));
                            seen_this_run.extend(rows.iter().map(|r| r.shipment_id.clone()));
                            inputs.push(StepInput::List(ListInput {
                                rows,
                                is_last: answer.value.is_last(),
                                method,
                                page,
                                catch_up,
                                calls: answer.calls,
                            }));
                        }
                        Err(failure) => list_failure = Some(failure),
                    }
                    inputs.extend(details.map(StepInput::Details));
                }
                Checkpoint::Details => {
                    let ids = shipments::pending_details(
                        &self.db,
                        run.shop_id,
                        self.settings.detail_batch as i64,
                    )
                    .await?;
                    if ids.is_empty() {
                        let end = sync_runs::RunFinish {
                            status: RunStatus::Succeeded,
                            error: None,
                            calls: &ApiCalls::default(),
                        };
                        if !sync_runs::finish(
                            &self.db,
                            run.id,
                            run.shop_id,
                            Some(&self.owner),
                            &end,
                        )
                        .await?
                        {
                            return Ok(RunEnd::LeaseLost);
                        }
                        tracing::info!(
                            run.id = run.id,
                            shop.id = run.shop_id,
                            "sync run succeeded"
                        );
                        return Ok(RunEnd::Succeeded);
                    }
                    inputs.push(StepInput::Details(self.fetch_details(&creds, ids).await));
                }
            }
            let mut fatal = None;
            for input in inputs {
                let (next, outcome) = self
                    .commit_retrying(
                        run,
                        &client_id,
                        &input,
                        checkpoint,
                        incremental,
                        &mut shifted,
                    )
                    .await?;
                match outcome {
                    StepOutcome::Committed => {}
                    StepOutcome::Cancelled => return Ok(RunEnd::Cancelled),
                    StepOutcome::LeaseLost => return Ok(RunEnd::LeaseLost),
                }
                checkpoint = next;
                fatal = fatal.or(input.into_fatal());
            }
            if let Some(failure) = list_failure {
                return self
                    .fail(run, &creds, &failure.error, &api_calls(&failure.calls))
                    .await;
            }
            if let Some(error) = fatal {
                // The step's calls are committed with it; nothing is left to count.
                return self.fail(run, &creds, &error, &ApiCalls::default()).await;
            }
        }
    }

    async fn fetch_details(
        &self,
        creds: &bol::Credentials,
        ids: Vec<String>,
    ) -> Vec<(
        String,
        Result<bol::Answer<bol::ShipmentDetail>, bol::Failure>,
    )> {
        let mut set = JoinSet::new();
        for id in ids {
            let client = self.client.clone();
            let creds = creds.clone();
            set.spawn(async move {
                let result = client.shipment(&creds, &id).await;
                (id, result)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        results
    }

    /// Writes a step's results and checkpoint in one transaction; returns the next checkpoint,
    /// whether the commit happened, and a failure that ends the run after the commit.
    /// [`Engine::commit`], tried again when the database fails transiently (pool exhausted,
    /// deadlock, too many connections): the step's answers are in memory, and giving up would
    /// make the next driver repeat its marketplace calls.
    async fn commit_retrying(
        &self,
        run: &sync_runs::EngineRun,
        client_id: &str,
        input: &StepInput,
        current: Checkpoint,
        incremental: bool,
        shifted: &mut bool,
    ) -> anyhow::Result<(Checkpoint, StepOutcome)> {
        const ATTEMPTS: u32 = 6;
        let mut wait = Duration::from_millis(100);
        for attempt in 1.. {
            let mut shifted_after = *shifted;
            match self
                .commit(
                    run,
                    client_id,
                    input,
                    current,
                    incremental,
                    &mut shifted_after,
                )
                .await
            {
                Err(e) if attempt < ATTEMPTS && is_transient_database_error(&e) => {
                    tracing::warn!(
                        run.id = run.id,
                        attempt,
                        error = format!("{e:#}"),
                        "committing a step failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                result => {
                    *shifted = shifted_after;
                    return result;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn commit(
        &self,
        run: &sync_runs::EngineRun,
        client_id: &str,
        input: &StepInput,
        current: Checkpoint,
        incremental: bool,
        shifted: &mut bool,
    ) -> anyhow::Result<(Checkpoint, StepOutcome)> {
        let mut delta = StepDelta::default();
        let (data, all_new, reached_known) = match input {
            StepInput::List(list) => {
                delta.pages_fetched = 1;
                delta.shipments_seen = list.rows.len() as i64;
                delta.calls = api_calls(&list.calls);
                (
                    StepData::List(list.rows.clone()),
                    after_list(list, incremental, *shifted, false).0,
                    after_list(list, incremental, *shifted, true).0,
                )
            }
            StepInput::Details(results) => {
                let mut details = Vec::with_capacity(results.len());
                let mut gone = Vec::new();
                for (id, result) in results {
                    match result {
                        Ok(answer) => {
                            let mut detail =
                                convert::from_detail(&answer.value, crate::store::now());
                            // Stored under the id asked for, so the pending row is the one filled.
                            detail.shipment_id = id.clone();
                            details.push(detail);
                            delta.details_fetched += 1;
                            add_calls(&mut delta.calls, &api_calls(&answer.calls));
                        }
                        Err(failure) if matches!(failure.error, bol::Error::NotFound(_)) => {
                            gone.push(id.clone());
                            add_calls(&mut delta.calls, &api_calls(&failure.calls));
                        }
                        Err(failure) => add_calls(&mut delta.calls, &api_calls(&failure.calls)),
                    }
                }
                let data = StepData::Details { details, gone };
                // Details leave the list where it is: they may be fetched while it is read.
                (data, current, current)
            }
        };
        let checkpoint = |c: &Checkpoint| serde_json::to_string(c).expect("checkpoints serialize");
        let step = StepWrite {
            run_id: run.id,
            shop_id: run.shop_id,
            user_id: run.user_id,
            owner: self.owner.clone(),
            lease_until_ms: now_ms() + self.settings.lease.as_millis() as i64,
            data,
            delta,
            checkpoint_all_new: checkpoint(&all_new),
            checkpoint_reached_known: checkpoint(&reached_known),
            client_id: client_id.to_owned(),
            budgets: self.client.limiter().snapshot(client_id),
        };
        let committed = steps::commit(&self.db, step).await?;
        let next = match input {
            StepInput::List(list) => {
                let (next, shifted_after) =
                    after_list(list, incremental, *shifted, committed.reached_known);
                *shifted = shifted_after;
                next
            }
            StepInput::Details(_) => current,
        };
        Ok((next, committed.outcome))
    }

    async fn fail(
        &self,
        run: &sync_runs::EngineRun,
        creds: &bol::Credentials,
        error: &bol::Error,
        calls: &ApiCalls,
    ) -> anyhow::Result<RunEnd> {
        let client_id = &creds.client_id;
        if matches!(error, bol::Error::InvalidCredentials) {
            sync_runs::mark_credentials_rejected(&self.db, run.shop_id).await?;
            let now = crate::store::now();
            marketplace::record_refusal(&self.db, &self.cipher, run.shop_id, creds, now).await?;
        }
        let sentence = failure_sentence(error);
        tracing::warn!(run.id = run.id, shop.id = run.shop_id, error = %error, "sync run failed");
        let budgets = self.client.limiter().snapshot(client_id);
        marketplace::save_budgets(&self.db, client_id, &budgets).await?;
        let end = sync_runs::RunFinish {
            status: RunStatus::Failed,
            error: Some(&sentence),
            calls,
        };
        if !sync_runs::finish(&self.db, run.id, run.shop_id, Some(&self.owner), &end).await? {
            return Ok(RunEnd::LeaseLost);
        }
        Ok(RunEnd::Failed(sentence))
    }
}

/// The checkpoint after a list page, and whether pages shifted during the crawl still needs
/// handling; `reached_known`: some of the page's shipments were stored already.
fn after_list(
    list: &ListInput,
    incremental: bool,
    shifted: bool,
    reached_known: bool,
) -> (Checkpoint, bool) {
    let stop_at_known = incremental || list.catch_up;
    if list.is_last || (stop_at_known && reached_known) {
        if shifted && !stop_at_known {
            // New shipments arrived on page 1 after the crawl passed it: read from page 1 again
            // until shipments this run already stored.
            let again = Checkpoint::List {
                method: list.method,
                page: 1,
                catch_up: true,
            };
            (again, false)
        } else {
            (Checkpoint::after_method(list.method), false)
        }
    } else {
        let next = Checkpoint::List {
            method: list.method,
            page: list.page + 1,
            catch_up: list.catch_up,
        };
        (next, shifted)
    }
}

/// What a list step fetched.
struct ListInput {
    rows: Vec<NewShipment>,
    is_last: bool,
    method: FulfilmentMethod,
    page: u32,
    catch_up: bool,
    calls: bol::Calls,
}

enum StepInput {
    List(ListInput),
    Details(
        Vec<(
            String,
            Result<bol::Answer<bol::ShipmentDetail>, bol::Failure>,
        )>,
    ),
}

impl StepInput {
    /// A detail call that failed for good (a shipment gone is not a failure): the run fails
    /// after the step's results are committed.
    fn into_fatal(self) -> Option<bol::Error> {
        match self {
            StepInput::List(_) => None,
            StepInput::Details(results) => {
                results.into_iter().find_map(|(_, result)| match result {
                    Err(failure) if !matches!(failure.error, bol::Error::NotFound(_)) => {
                        Some(failure.error)
                    }
                    _ => None,
                })
            }
        }
    }
}

/// Whether a failed database call may succeed if tried again: the pool had no free connection,
/// the server refused one (too many connections), or the transaction lost a deadlock or
/// serialization conflict, or SQLite was busy.
fn is_transient_database_error(error: &anyhow::Error) -> bool {
    fn transient(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => matches!(
                db.code().as_deref(),
                // SQLSTATEs: serialization failure or deadlock (PostgreSQL and MySQL), deadlock
                // (PostgreSQL), too many connections (PostgreSQL, MySQL); SQLite busy/locked.
                Some("40001" | "40P01" | "53300" | "08004" | "5" | "6" | "517")
            ),
            _ => false,
        }
    }
    error.chain().any(|cause| {
        if let Some(error) = cause.downcast_ref::<sqlx::Error>() {
            return transient(error);
        }
        match cause.downcast_ref::<crate::store::StoreError>() {
            Some(crate::store::StoreError::Unavailable(error))
            | Some(crate::store::StoreError::Other(error)) => transient(error),
            Some(crate::store::StoreError::Busy(_)) => true,
            _ => false,
        }
    })
}
