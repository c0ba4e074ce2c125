//! A run from lease to end: take the shop's lease, keep it while steps wait for their rate
//! budget, run step after step until the run ends or must pause, and end it — succeeded, failed
//! with a sentence the seller can act on, or handed back to the queue.
//!
//! A run and each of its steps have a span carrying `run.id` and `shop.id`, so every line
//! logged inside, the marketplace client's included, names its run.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::watch;
use tracing::Instrument;

use super::checkpoint::{Checkpoint, Position};
use super::engine::{Engine, RunEnd};
use super::step::{Step, api_calls};
use crate::domain::Timestamp;
use crate::domain::{Mode, RunStatus};
use crate::store::sync_runs::{self, ApiCalls, StepOutcome};
use crate::store::{marketplace, shops};

impl Engine {
    /// Drives one run to its end, until this process must stop or loses the shop, or until
    /// `slice` has passed (then it pauses at the next step boundary).
    #[tracing::instrument(
        name = "sync_run",
        skip_all,
        fields(run.id = run_id, shop.id = tracing::field::Empty)
    )]
    pub async fn drive(
        &self,
        run_id: i64,
        stop: watch::Receiver<bool>,
        slice: Option<Duration>,
    ) -> anyhow::Result<RunEnd> {
        let Some(run) = sync_runs::engine_run(&self.db, run_id).await? else {
            return Ok(RunEnd::Inactive);
        };
        tracing::Span::current().record("shop.id", run.shop_id);
        if !run.status.is_active() {
            return Ok(RunEnd::Inactive);
        }
        // Two tasks of this process woken for the same run: only the first drives it.
        if !self.start_driving(run.shop_id) {
            return Ok(RunEnd::Busy);
        }
        let _driving = crate::engine_metrics::Driving::start();
        let deadline = slice.map(|slice| tokio::time::Instant::now() + slice);
        let end = self.drive_claimed(&run, stop, deadline).await;
        self.stop_driving(run.shop_id);
        end
    }

    async fn drive_claimed(
        &self,
        run: &sync_runs::EngineRun,
        stop: watch::Receiver<bool>,
        deadline: Option<tokio::time::Instant>,
    ) -> anyhow::Result<RunEnd> {
        let until = Timestamp::now() + self.settings.lease;
        if !sync_runs::lease(&self.db, run.shop_id, &self.owner, Timestamp::now(), until).await? {
            return Ok(RunEnd::Busy);
        }
        // Read again under the lease: the row read before it may predate the last step of the
        // previous driver, and resuming from that checkpoint would fetch a page twice.
        let end = match sync_runs::engine_run(&self.db, run.id).await {
            Ok(Some(run)) if run.status.is_active() => {
                self.drive_leased(&run, stop, deadline).await
            }
            Ok(_) => Ok(RunEnd::Inactive),
            Err(e) => Err(e.into()),
        };
        match &end {
            // `finish` released the shop with the run; another driver holds it.
            Ok(RunEnd::Succeeded | RunEnd::Failed(_) | RunEnd::Busy | RunEnd::LeaseLost) => {}
            Ok(RunEnd::Cancelled | RunEnd::Inactive | RunEnd::Paused) => {
                sync_runs::release_lease(&self.db, run.shop_id, &self.owner).await?;
            }
            // The lease is left to expire: a run that failed on the database is retried one
            // lease later rather than in a tight loop.
            Err(e) => tracing::warn!(error = format!("{e:#}"), "sync run interrupted"),
        }
        end
    }

    /// Runs step after step under the lease until the run ends or must pause.
    async fn drive_leased(
        &self,
        run: &sync_runs::EngineRun,
        stop: watch::Receiver<bool>,
        deadline: Option<tokio::time::Instant>,
    ) -> anyhow::Result<RunEnd> {
        if !sync_runs::mark_running(&self.db, run.id).await? {
            return Ok(RunEnd::Cancelled);
        }
        let creds = match self.credentials(run).await? {
            Ok(creds) => creds,
            Err(end) => return Ok(end),
        };
        let budgets = marketplace::load_budgets(&self.db, &creds.client_id).await?;
        self.client.limiter().restore(&creds.client_id, &budgets);
        let incremental = run.mode == Mode::Incremental;
        let mut position = Position::resume(run.checkpoint.as_deref());
        let mut seen_this_run: HashSet<String> = HashSet::new();
        tracing::info!(mode = %run.mode, "sync run started");
        loop {
            if *stop.borrow() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(RunEnd::Paused);
            }
            let (step, span) = match position.checkpoint {
                Checkpoint::List { method, page, .. } => {
                    let span =
                        tracing::info_span!("step", kind = "list", method = method.as_str(), page);
                    let step = self
                        .list_step(run, &creds, (method, page), &mut seen_this_run)
                        .instrument(span.clone())
                        .await?;
                    (step, span)
                }
                Checkpoint::Details => {
                    let span = tracing::info_span!("step", kind = "details");
                    match self
                        .details_step(run, &creds)
                        .instrument(span.clone())
                        .await?
                    {
                        Some(step) => (step, span),
                        None => return self.succeed(run).await,
                    }
                }
            };
            let committed = self
                .commit_step(run, &creds, step, &mut position, incremental)
                .instrument(span)
                .await?;
            if let Some(end) = committed {
                return Ok(end);
            }
        }
    }

    /// Commits a step's inputs in order, moving `position` on; the end of the run when the
    /// step ended it (cancelled, the lease lost, or a call that failed for good).
    async fn commit_step(
        &self,
        run: &sync_runs::EngineRun,
        creds: &bol::Credentials,
        step: Step,
        position: &mut Position,
        incremental: bool,
    ) -> anyhow::Result<Option<RunEnd>> {
        let mut fatal = None;
        for input in step.inputs {
            let (next, outcome) = self
                .commit_retrying(run, &creds.client_id, &input, *position, incremental)
                .await?;
            match outcome {
                StepOutcome::Committed => {}
                StepOutcome::Cancelled => return Ok(Some(RunEnd::Cancelled)),
                StepOutcome::LeaseLost => return Ok(Some(RunEnd::LeaseLost)),
            }
            *position = next;
            fatal = fatal.or(input.into_fatal());
        }
        if let Some(failure) = step.list_failure {
            let calls = api_calls(&failure.calls);
            return Ok(Some(self.fail(run, creds, &failure.error, &calls).await?));
        }
        if let Some(error) = fatal {
            // The step's calls are committed with it; nothing is left to count.
            return Ok(Some(
                self.fail(run, creds, &error, &ApiCalls::default()).await?,
            ));
        }
        Ok(None)
    }

    /// The shop's credentials, or the end of a run that must not call the marketplace: its
    /// shop is gone, its secret unreadable, or its seller's token requests refused too often.
    async fn credentials(
        &self,
        run: &sync_runs::EngineRun,
    ) -> anyhow::Result<Result<bol::Credentials, RunEnd>> {
        let Some((client_id, secret_enc)) = shops::credentials(&self.db, run.shop_id).await? else {
            return Ok(Err(RunEnd::Inactive));
        };
        let Ok(secret) = self.cipher.decrypt(shops::SECRET_PURPOSE, &secret_enc) else {
            let sentence = "The shop's client secret cannot be decrypted with this server's \
                SECRET_KEY; enter the secret again.";
            return Ok(Err(self
                .fail_before_calls(run, sentence.to_owned())
                .await?));
        };
        let creds = bol::Credentials {
            client_id,
            client_secret: bol::SecretString::from(secret.expose_secret().to_owned()),
        };
        let now = Timestamp::now();
        if let Some(until) =
            marketplace::refusal_wait(&self.db, &self.cipher, run.shop_id, &creds, now).await?
        {
            return Ok(Err(self
                .fail_before_calls(run, refusal_wait_sentence(until))
                .await?));
        }
        Ok(Ok(creds))
    }

    async fn succeed(&self, run: &sync_runs::EngineRun) -> anyhow::Result<RunEnd> {
        let end = sync_runs::RunFinish {
            status: RunStatus::Succeeded,
            error: None,
            calls: &ApiCalls::default(),
        };
        if !sync_runs::finish(&self.db, run.id, run.shop_id, Some(&self.owner), &end).await? {
            return Ok(RunEnd::LeaseLost);
        }
        tracing::info!("sync run succeeded");
        Ok(RunEnd::Succeeded)
    }

    /// Ends a run that made no call, with the sentence that says why.
    async fn fail_before_calls(
        &self,
        run: &sync_runs::EngineRun,
        sentence: String,
    ) -> anyhow::Result<RunEnd> {
        let end = sync_runs::RunFinish {
            status: RunStatus::Failed,
            error: Some(&sentence),
            calls: &ApiCalls::default(),
        };
        sync_runs::finish(&self.db, run.id, run.shop_id, Some(&self.owner), &end).await?;
        Ok(RunEnd::Failed(sentence))
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
            let now = Timestamp::now();
            marketplace::record_refusal(&self.db, &self.cipher, run.shop_id, creds, now).await?;
        }
        let sentence = failure_sentence(error);
        tracing::warn!(error = %error, "sync run failed");
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
fn refusal_wait_sentence(until: Timestamp) -> String {
    let at = until.rfc3339();
    format!(
        "The marketplace refused too many of this seller's token requests in the last hour. So \
         that it does not block Simba's address, credentials without a token may ask again from \
         {at}; check the client id and secret meanwhile."
    )
}
