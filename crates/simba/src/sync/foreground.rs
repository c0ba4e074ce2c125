//! `simba sync --shop ID`: one run driven in the foreground with a progress bar, ending with
//! what it cost against the floor the published rate limits imply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::queue::{QueueError, queue_run};
use super::{Engine, RunEnd};
use crate::domain::{Mode, Trigger};
use crate::store::sync_runs;

/// Creates a run for `shop_id` and drives it here; returns an error when it fails.
/// `time_scale`: marketplace seconds per real second, for the rate-limit floor it reports.
pub async fn run(
    engine: &Arc<Engine>,
    shop_id: i64,
    mode: Option<Mode>,
    time_scale: f64,
) -> anyhow::Result<()> {
    let run = match queue_run(engine, shop_id, mode, Trigger::Cli).await {
        Ok(run) => run,
        Err(QueueError::Active(id)) => {
            anyhow::bail!("run {id} is already queued or running for shop {shop_id}")
        }
        Err(e) => return Err(e.into()),
    };
    let started = Instant::now();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} details {msg}",
        )
        .expect("the template is valid"),
    );
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let driver = engine.clone();
    let mut drive = tokio::spawn(async move { driver.drive(run.id, stop_rx, None).await });
    let end = loop {
        tokio::select! {
            end = &mut drive => break end.context("the sync task panicked")??,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(now) = sync_runs::get_unscoped(&engine.db, run.id).await? {
                    let p = &now.progress;
                    bar.set_length((p.details_fetched + p.details_pending) as u64);
                    bar.set_position(p.details_fetched as u64);
                    bar.set_message(format!("{} pages, {} calls", p.pages_fetched, now.api_calls.total()));
                }
            }
        }
    };
    bar.finish_and_clear();
    let run = sync_runs::get_unscoped(&engine.db, run.id)
        .await?
        .context("the run disappeared")?;
    let calls = &run.api_calls;
    let floor_secs = (calls.list as f64 / 25.0 + calls.detail as f64 / 50.0) * 60.0 / time_scale;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "run {} {}: {} shipments stored, {} details fetched\n\
         calls: {} list, {} detail, {} token (renewals), {} answered 429, {} errors\n\
         duration {wall:.1} s against a rate-limit floor of {floor_secs:.1} s",
        run.id,
        run.status,
        run.progress.shipments_stored,
        run.progress.details_fetched,
        calls.list,
        calls.detail,
        calls.token,
        calls.rate_limited,
        calls.errors,
    );
    match end {
        RunEnd::Succeeded => Ok(()),
        RunEnd::Failed(sentence) => anyhow::bail!(sentence),
        RunEnd::Cancelled => anyhow::bail!("the run was cancelled"),
        RunEnd::Busy => {
            anyhow::bail!("another worker is syncing this shop; the run stays queued for it")
        }
        RunEnd::Inactive | RunEnd::LeaseLost => {
            anyhow::bail!("the run was ended elsewhere (its shop deleted, or cancelled)")
        }
        RunEnd::Paused => anyhow::bail!("the run stopped early; a worker resumes it"),
    }
}
