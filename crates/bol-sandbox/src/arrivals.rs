//! New shipments arriving at a steady rate (`--arrival-rate`), so that crawls see pages shift.

use crate::state::Shared;
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// Adds arrivals to every account until `stop` is dropped. Rates are per account per
/// marketplace minute; whole shipments are added as the running total crosses each integer.
pub(crate) async fn run(
    shared: Arc<Shared>,
    per_minute: (f64, f64),
    mut stop: watch::Receiver<()>,
) {
    let mut added = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let minutes = (shared.clock.market_now() - shared.clock.anchor()) as f64 / 60.0;
        let due = (
            (per_minute.0 * minutes) as u64,
            (per_minute.1 * minutes) as u64,
        );
        let (fbr, fbb) = (due.0 - added.0, due.1 - added.1);
        if fbr + fbb > 0 {
            for account in &shared.accounts {
                shared.add_shipments(&account.client_id, fbr, fbb);
            }
            added = due;
        }
    }
}
