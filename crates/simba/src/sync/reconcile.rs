//! The push safety net's reconciliation: for a shop whose automatic syncs come less often
//! because push is active, it compares the marketplace's 3-month window with the local copy
//! now and then, repairs what it finds and records what it found.
//!
//! bol's list has no total, so the count of a fulfilment method is found by bisection over
//! its pages: pages 2, 4, 8, … until one is short, then halving between the last full page and
//! that one, and page 1 last. A window of 10,000 shipments (200 pages) is counted in 16 list
//! calls, not 200. The local side counts the shipments of that method shipped at or after the
//! marketplace's oldest listed one. Page 1 is compared id by id, and its missing shipments go to
//! the notification worker (one detail fetch each); counts that still differ mean a gap deeper
//! down, which a full sync (every page, only missing details) repairs, page 1's gaps with it.
//!
//! Page 1 comes last because shipments arrive while a census runs and shift bol's pages: they
//! raise the count, and reading page 1 after the count puts them among the shipments compared
//! id by id. What still shifts between the probes can show as a false gap deeper down, which
//! costs one full sync's list calls, never a detail call.

use std::sync::Arc;

use bol::{FulfilmentMethod, PAGE_SIZE};
use tokio::task::JoinSet;

use super::convert;
use super::engine::Engine;
use super::queue::{QueueError, queue_run};
use crate::domain::{Mode, Timestamp, Trigger};
use crate::engine_metrics;
use crate::store::marketplace;
use crate::store::push::{self, MethodCensus, Reconciliation};

/// Reconciliations one process runs at a time: each waits mostly for the list budget.
const IN_FLIGHT: usize = 32;
/// The highest page a census probes: 3,276,800 shipments in three months. A marketplace that
/// answers full pages beyond it is not counted.
const MAX_PAGE: u32 = 1 << 16;
/// bol's window, for the local count when the marketplace lists nothing.
const WINDOW: std::time::Duration = std::time::Duration::from_secs(92 * 24 * 3600);

/// A method's shipments as bol lists them.
struct Census {
    count: i64,
    /// The oldest shipment's date, when any is listed.
    oldest: Option<Timestamp>,
    first_page: Vec<String>,
}

/// A page as a census saw it: its number, its length, its oldest shipment's date.
struct Probe {
    page: u32,
    len: usize,
    oldest: Option<Timestamp>,
}

impl Engine {
    /// Claims the reconciliations that are due and runs them in `set`, at most [`IN_FLIGHT`]
    /// at a time.
    pub(super) async fn reconcile_due(self: &Arc<Self>, set: &mut JoinSet<()>) {
        while set.try_join_next().is_some() {}
        let room = IN_FLIGHT.saturating_sub(set.len());
        if room == 0 {
            return;
        }
        let claimed = match push::claim_reconciliations(
            &self.db,
            Timestamp::now(),
            self.settings.push.retry_delay,
            room as i64,
        )
        .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming push reconciliations");
                return;
            }
        };
        for (shop_id, user_id) in claimed {
            let engine = self.clone();
            set.spawn(async move {
                if let Err(e) = engine.reconcile(shop_id, user_id).await {
                    tracing::warn!(
                        shop.id = shop_id,
                        error = format!("{e:#}"),
                        "reconciling a push shop"
                    );
                }
            });
        }
    }

    /// Reconciles one shop now; `None` when it has no usable credentials.
    pub async fn reconcile(
        &self,
        shop_id: i64,
        user_id: i64,
    ) -> anyhow::Result<Option<Reconciliation>> {
        let Some(creds) = self.shop_credentials(shop_id).await? else {
            return Ok(None);
        };
        let budgets = marketplace::load_budgets(&self.db, &creds.client_id).await?;
        self.client.limiter().restore(&creds.client_id, &budgets);
        let mut censuses = Vec::with_capacity(2);
        let mut failure = None;
        for method in [FulfilmentMethod::Fbr, FulfilmentMethod::Fbb] {
            match self.census(&creds, method).await {
                Ok(census) => censuses.push((method, census)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let budgets = self.client.limiter().snapshot(&creds.client_id);
        marketplace::save_budgets(&self.db, &creds.client_id, &budgets).await?;
        if let Some(error) = failure {
            return Err(error);
        }
        let now = Timestamp::now();
        let mut methods = Vec::with_capacity(2);
        let mut repairs = Vec::new();
        let mut deeper_gap = false;
        for (method, census) in censuses {
            let since = census.oldest.unwrap_or(now - WINDOW);
            let local = push::local_count(&self.db, shop_id, method, since).await?;
            let missing = push::missing_among(&self.db, shop_id, &census.first_page).await?;
            deeper_gap |= census.count > local + missing.len() as i64;
            methods.push(MethodCensus {
                method,
                marketplace: census.count,
                local,
                missing_on_first_page: missing.len() as i64,
            });
            repairs.extend(missing);
        }
        // A full sync fetches the first pages' missing shipments too: queued beside it, they
        // would be fetched twice.
        let full_sync_queued = deeper_gap
            && match queue_run(self, shop_id, Some(Mode::Full), Trigger::Schedule).await {
                Ok(_) => true,
                Err(QueueError::Active(_) | QueueError::NoShop(_)) => false,
                Err(QueueError::Store(e)) => return Err(e.into()),
            };
        if !full_sync_queued {
            push::queue_repairs(&self.db, shop_id, &repairs, now).await?;
        }
        // A deeper gap no sync was queued for (a run had just started) is looked at again soon,
        // once that run has ended; otherwise the next turn is an interval away, give or take a
        // tenth so that shops reconciled together drift apart.
        let next = if deeper_gap && !full_sync_queued {
            now + self.settings.push.retry_delay
        } else {
            now + self
                .settings
                .push
                .reconcile_every
                .mul_f64(0.9 + 0.2 * rand::random::<f64>())
        };
        let found = Reconciliation {
            methods,
            full_sync_queued,
        };
        push::record_reconciliation(&self.db, shop_id, now, &found, next).await?;
        report(shop_id, user_id, &found);
        Ok(Some(found))
    }

    /// Counts `method`'s listed shipments by bisection over the pages.
    async fn census(
        &self,
        creds: &bol::Credentials,
        method: FulfilmentMethod,
    ) -> anyhow::Result<Census> {
        let list = |page| async move {
            self.client
                .list_shipments(creds, method, page)
                .await
                .map(|answer| answer.value)
                .map_err(|failure| failure.error)
        };
        let probe_of = |page: u32, listed: &bol::ShipmentPage| Probe {
            page,
            len: listed.shipments.len(),
            oldest: listed
                .shipments
                .last()
                .map(|s| convert::from_reduced(s, method).shipment_date),
        };
        // Page 1 is read last, so that a shipment that arrived while the pages were counted is
        // on it (and fetched, if missing) rather than a gap the count cannot place. Until then
        // it stands for a full page: page 2 says whether it is.
        let mut full = Probe {
            page: 1,
            len: PAGE_SIZE,
            oldest: None,
        };
        let mut short = None;
        while short.is_none() {
            let page = full.page * 2;
            if page > MAX_PAGE {
                anyhow::bail!("{method} lists full pages beyond page {MAX_PAGE}");
            }
            let listed = list(page).await?;
            let probe = probe_of(page, &listed);
            if listed.is_last() {
                short = Some(probe);
            } else {
                full = probe;
            }
        }
        let mut short = short.expect("the loop ends with a short page");
        while short.page - full.page > 1 {
            let page = full.page + (short.page - full.page) / 2;
            let listed = list(page).await?;
            let probe = probe_of(page, &listed);
            if listed.is_last() {
                short = probe;
            } else {
                full = probe;
            }
        }
        let first = list(1).await?;
        let first_page = first
            .shipments
            .iter()
            .map(|s| s.shipment_id.clone())
            .collect();
        let (count, oldest) = if full.page == 1 && short.len == 0 {
            // Only page 1 lists anything.
            (first.shipments.len(), probe_of(1, &first).oldest)
        } else {
            let oldest = short.oldest.or(full.oldest);
            (full.page as usize * PAGE_SIZE + short.len, oldest)
        };
        Ok(Census {
            count: count as i64,
            oldest,
            first_page,
        })
    }
}

/// Logs and counts a reconciliation's outcome.
fn report(shop_id: i64, user_id: i64, found: &Reconciliation) {
    for census in &found.methods {
        if census.gap() > 0 {
            engine_metrics::push_reconciliation_gaps(census.method.as_str(), census.gap() as u64);
        }
    }
    let outcome = if found.full_sync_queued {
        "resynced"
    } else if found.gaps() > 0 {
        "repaired"
    } else {
        "clean"
    };
    engine_metrics::push_reconciliation(outcome);
    if found.gaps() > 0 {
        tracing::warn!(
            shop.id = shop_id,
            user.id = user_id,
            gaps = found.gaps(),
            full_sync_queued = found.full_sync_queued,
            "reconciliation found shipments push missed"
        );
    } else {
        tracing::info!(shop.id = shop_id, "reconciliation found no gap");
    }
}
