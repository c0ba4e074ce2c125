//! One step of a run: a list page (with the details of shipments listed so far fetched beside
//! it, since the two have their own rate limits) or a batch of details, then its results
//! committed with the checkpoint under the shop's lease. No transaction is open while the
//! marketplace answers: a step fetches everything first and commits after.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tracing::Instrument;

use super::checkpoint::{self, Outcome, Position};
use super::convert;
use super::engine::Engine;
use crate::domain::FulfilmentMethod;
use crate::domain::Timestamp;
use crate::engine_metrics::{StepKind, StepTimer};
use crate::store::StoreError;
use crate::store::shipments::{self, NewShipment};
use crate::store::steps::{self, StepData, StepWrite};
use crate::store::sync_runs::{self, ApiCalls, StepDelta, StepOutcome};

/// How long a step's commit is tried again while the database fails transiently (a pool
/// exhausted by thousands of runs, a deadlock, a failover). The shop's lease is renewed
/// meanwhile (its shop is still driven), so no other worker repeats the step's calls; giving up
/// sooner would make the next driver spend them again.
const COMMIT_PATIENCE: Duration = Duration::from_secs(600);

/// A detail call's answer, under the id it asked for, already in the row it is stored as: the
/// parsed answer is dropped as it arrives instead of waiting, beside its row, for the step's
/// other calls and its turn at the writer.
pub(super) type DetailResult = (String, Result<bol::Answer<NewShipment>, bol::Failure>);

/// What a step fetched: its inputs, committed in this order, and a list call that failed for
/// good, which ends the run after them.
pub(super) struct Step {
    pub(super) inputs: Vec<StepInput>,
    pub(super) list_failure: Option<bol::Failure>,
}

/// What a list call fetched.
pub(super) struct ListInput {
    rows: Arc<[NewShipment]>,
    is_last: bool,
    /// The page repeats shipments this driver listed on an earlier page.
    shifted: bool,
    calls: bol::Calls,
}

/// What a batch of detail calls fetched, as the step stores it.
pub(super) struct DetailsInput {
    data: StepData,
    delta: StepDelta,
    /// A detail call that failed for good (a shipment gone is not a failure): the run fails
    /// after the step's results are committed.
    fatal: Option<bol::Error>,
}

pub(super) enum StepInput {
    List(ListInput),
    Details(DetailsInput),
}

impl StepInput {
    pub(super) fn into_fatal(self) -> Option<bol::Error> {
        match self {
            StepInput::List(_) => None,
            StepInput::Details(details) => details.fatal,
        }
    }
}

/// Counts an answer's calls as the run row does.
pub(super) fn api_calls(calls: &bol::Calls) -> ApiCalls {
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

impl Engine {
    /// Lists `method` at `page` while the details of the shipments listed so far are fetched:
    /// the details (the scarcer budget) start with the first page instead of after the last.
    /// `seen`: the shipments this driver listed so far, which tell a shifted page.
    pub(super) async fn list_step(
        &self,
        run: &sync_runs::EngineRun,
        creds: &bol::Credentials,
        (method, page): (FulfilmentMethod, u32),
        seen: &mut HashSet<String>,
    ) -> anyhow::Result<Step> {
        let _timer = StepTimer::start(StepKind::List);
        let pending =
            shipments::pending_details(&self.db, run.shop_id, self.settings.detail_batch as i64)
                .await?;
        let details = async {
            match pending.is_empty() {
                true => None,
                false => Some(self.fetch_details(creds, pending).await),
            }
        };
        let (listed, details) =
            tokio::join!(self.client.list_shipments(creds, method, page), details);
        let mut step = Step {
            inputs: Vec::with_capacity(2),
            list_failure: None,
        };
        match listed {
            Ok(answer) => {
                let rows: Arc<[NewShipment]> = answer
                    .value
                    .shipments
                    .iter()
                    .map(|s| convert::from_reduced(s, method))
                    .collect();
                let shifted = page > 1 && rows.iter().any(|r| seen.contains(&r.shipment_id));
                seen.extend(rows.iter().map(|r| r.shipment_id.clone()));
                step.inputs.push(StepInput::List(ListInput {
                    rows,
                    is_last: answer.value.is_last(),
                    shifted,
                    calls: answer.calls,
                }));
            }
            Err(failure) => step.list_failure = Some(failure),
        }
        step.inputs
            .extend(details.map(|results| StepInput::Details(details_input(results))));
        Ok(step)
    }

    /// Fetches a batch of pending details; `None` when no detail is pending.
    pub(super) async fn details_step(
        &self,
        run: &sync_runs::EngineRun,
        creds: &bol::Credentials,
    ) -> anyhow::Result<Option<Step>> {
        let ids =
            shipments::pending_details(&self.db, run.shop_id, self.settings.detail_batch as i64)
                .await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let _timer = StepTimer::start(StepKind::Details);
        Ok(Some(Step {
            inputs: vec![StepInput::Details(details_input(
                self.fetch_details(creds, ids).await,
            ))],
            list_failure: None,
        }))
    }

    /// Fetches details concurrently; each call carries the step's span, so the client's logs
    /// name the run. A detail is stored under the id asked for, so the pending row is the one
    /// filled.
    pub(super) async fn fetch_details(
        &self,
        creds: &bol::Credentials,
        ids: Vec<String>,
    ) -> Vec<DetailResult> {
        let mut set = JoinSet::new();
        for id in ids {
            let client = self.client.clone();
            let creds = creds.clone();
            set.spawn(
                async move {
                    let result = client.shipment(&creds, &id).await.map(|answer| {
                        let mut row = convert::from_detail(&answer.value, Timestamp::now());
                        row.shipment_id = id.clone();
                        bol::Answer {
                            value: row,
                            calls: answer.calls,
                        }
                    });
                    (id, result)
                }
                .in_current_span(),
            );
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        results
    }

    /// [`Engine::commit`], tried again when the database fails transiently (pool exhausted,
    /// deadlock, too many connections): the step's answers are in memory, and giving up would
    /// make the next driver repeat its marketplace calls.
    pub(super) async fn commit_retrying(
        &self,
        run: &sync_runs::EngineRun,
        client_id: &str,
        input: &StepInput,
        position: Position,
        incremental: bool,
    ) -> anyhow::Result<(Position, StepOutcome)> {
        let _timer = StepTimer::start(StepKind::Commit);
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self
                .commit(run, client_id, input, position, incremental)
                .await
            {
                Err(e) if started.elapsed() < COMMIT_PATIENCE && e.is_transient() => {
                    tracing::warn!(
                        attempt,
                        error = format!("{:#}", anyhow::Error::from(e)),
                        "committing a step failed; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                result => return Ok(result?),
            }
        }
    }

    /// Writes a step's results and checkpoint in one transaction; returns the position after
    /// it and whether the commit happened.
    async fn commit(
        &self,
        run: &sync_runs::EngineRun,
        client_id: &str,
        input: &StepInput,
        position: Position,
        incremental: bool,
    ) -> Result<(Position, StepOutcome), StoreError> {
        let (data, delta, all_new, reached_known) = match input {
            StepInput::List(list) => {
                let after = |reached_known| {
                    let page = Outcome::Page {
                        is_last: list.is_last,
                        shifted: list.shifted,
                        reached_known,
                    };
                    checkpoint::next(position, page, incremental)
                };
                let delta = StepDelta {
                    pages_fetched: 1,
                    shipments_seen: list.rows.len() as i64,
                    calls: api_calls(&list.calls),
                    ..StepDelta::default()
                };
                let data = StepData::List(list.rows.clone());
                (data, delta, after(false), after(true))
            }
            StepInput::Details(details) => {
                let after = checkpoint::next(position, Outcome::Details, incremental);
                (details.data.clone(), details.delta.clone(), after, after)
            }
        };
        let step = StepWrite {
            run_id: run.id,
            shop_id: run.shop_id,
            user_id: run.user_id,
            owner: self.owner.clone(),
            lease: self.settings.lease,
            data,
            delta,
            checkpoint_all_new: all_new.checkpoint.to_json(),
            checkpoint_reached_known: reached_known.checkpoint.to_json(),
            client_id: client_id.to_owned(),
            budgets: self.client.limiter().snapshot(client_id),
        };
        let committed = steps::commit(&self.db, step).await?;
        let next = if committed.reached_known {
            reached_known
        } else {
            all_new
        };
        Ok((next, committed.outcome))
    }
}

/// The rows and counters of a batch of details: a shipment bol no longer knows is gone, not a
/// failure.
fn details_input(results: Vec<DetailResult>) -> DetailsInput {
    let mut delta = StepDelta::default();
    let mut details = Vec::with_capacity(results.len());
    let mut gone = Vec::new();
    let mut fatal = None;
    for (id, result) in results {
        match result {
            Ok(answer) => {
                details.push(answer.value);
                delta.details_fetched += 1;
                add_calls(&mut delta.calls, &api_calls(&answer.calls));
            }
            Err(failure) => {
                add_calls(&mut delta.calls, &api_calls(&failure.calls));
                match failure.error {
                    bol::Error::NotFound(_) => gone.push(id),
                    error => fatal = fatal.or(Some(error)),
                }
            }
        }
    }
    DetailsInput {
        data: StepData::Details {
            details: details.into(),
            gone: gone.into(),
        },
        delta,
        fatal,
    }
}
