//! What the sync engine, its database writes and its scheduler report to `/metrics`: the names,
//! labels and histogram buckets in one place, so that the call sites (one line each), the
//! exporter's buckets ([`crate::telemetry`]) and the README's "Watching the engine" agree. The
//! marketplace client reports its own calls, 429s, tokens and rate-limit waits
//! ([`bol::telemetry`]).
//!
//! Every label has a few fixed values (a run status, a trigger, a step kind, a backend family):
//! never a shop, seller or run id, which would add series without bound. Counts are this
//! process's: with several processes, sum them in the query.
//!
//! A leaf module (it imports only `domain`), so that the store may report too.

use std::time::{Duration, Instant};

use crate::domain::{RunStatus, Trigger};

/// Counter: runs queued, by `trigger` (`api`, `schedule`, `cli`).
pub const RUNS_QUEUED: &str = "simba_sync_runs_queued_total";
/// Counter: runs ended, by final `status` (`succeeded`, `failed`, `cancelled`), counted by the
/// process that ended them (a cancel by the one that served it).
pub const RUNS_ENDED: &str = "simba_sync_runs_ended_total";
/// Gauge: runs this process drives now (each holds its shop's lease).
pub const RUNS_DRIVING: &str = "simba_sync_runs_driving";
/// Histogram: seconds a step took, by `kind`: `list` (a list page, with the details fetched
/// beside it), `details` (a batch of details), both with their waits for the rate budget;
/// `commit` (one of a step's results committed, retries of a transient failure included).
pub const STEP_DURATION: &str = "simba_sync_step_duration_seconds";
/// Gauge: writes queued for the SQLite writer, the group it is committing included.
pub const WRITER_QUEUE_DEPTH: &str = "simba_db_writer_queue_depth";
/// Histogram: seconds from a step's commit asked to its transaction's end, by `family`:
/// `sqlite` (queued for the writer and committed in its group; the writer's rare writes outside
/// a step, shipments stored by the demo or a test, are in it too) or `server` (PostgreSQL or
/// MySQL, from taking a pool connection to COMMIT).
pub const COMMIT_DURATION: &str = "simba_db_commit_duration_seconds";
/// Counter: push notifications the receiver answered, by `outcome`: `accepted` (recorded),
/// `duplicate` (recorded before), `ignored` (not about a shipment), `rejected` (unsigned,
/// forged, malformed or stale).
pub const PUSH_EVENTS: &str = "simba_push_events_total";
/// Counter: shipment details fetched because of push notifications.
pub const PUSH_DETAILS: &str = "simba_push_details_total";
/// Counter: reconciliations of push shops against the marketplace's 3-month window, by
/// `outcome`: `clean`, `repaired` (shipments of a first page were missing and are fetched) or
/// `resynced` (the counts differ deeper down: a full sync was queued).
pub const PUSH_RECONCILIATIONS: &str = "simba_push_reconciliations_total";
/// Counter: shipments reconciliations found missing locally, by `method` (FBR, FBB).
pub const PUSH_RECONCILIATION_GAPS: &str = "simba_push_reconciliation_gaps_total";
/// Gauge: shops found due by the scheduler's last pass.
pub const SCHEDULER_DUE_SHOPS: &str = "simba_scheduler_due_shops";
/// Gauge: at the scheduler's last pass, seconds since the most overdue shop it found was due
/// (0 when none was due). Shops overdue past the scheduler's grace are spread over their
/// interval first ([`SCHEDULER_SPREAD`]), so a large lag means a pass that cannot keep up.
pub const SCHEDULER_LAG: &str = "simba_scheduler_lag_seconds";
/// Counter: shops found overdue past the scheduler's grace (no scheduler ran for a while) and
/// spread over their interval instead of queued at once.
pub const SCHEDULER_SPREAD: &str = "simba_scheduler_overdue_spread_total";
/// Gauge: 1 while this process holds the scheduler's lease; summed over processes, 1.
pub const SCHEDULER_LEADER: &str = "simba_scheduler_leader";

/// [`STEP_DURATION`]'s buckets: a commit takes milliseconds, a step waiting for its budget up to
/// a rate window (a minute) and more.
pub const STEP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];
/// [`COMMIT_DURATION`]'s buckets: a commit takes a millisecond or a few; a queue behind it, a
/// checkpoint or a lock wait longer.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Gives every metric its help text in the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RUNS_QUEUED, "Sync runs queued, by trigger");
    describe_counter!(
        PUSH_EVENTS,
        "Push notifications from the marketplace, by outcome"
    );
    describe_counter!(
        PUSH_DETAILS,
        "Shipment details fetched because of push notifications"
    );
    for outcome in ["accepted", "duplicate", "ignored", "rejected"] {
        metrics::counter!(PUSH_EVENTS, "outcome" => outcome).increment(0);
    }
    describe_counter!(
        PUSH_RECONCILIATIONS,
        "Reconciliations of push shops against the marketplace, by outcome"
    );
    describe_counter!(
        PUSH_RECONCILIATION_GAPS,
        "Shipments reconciliations found missing locally, by fulfilment method"
    );
    describe_counter!(RUNS_ENDED, "Sync runs ended, by final status");
    describe_gauge!(RUNS_DRIVING, "Sync runs this process drives now");
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Duration of a sync step, by kind (list, details, commit)"
    );
    describe_gauge!(
        WRITER_QUEUE_DEPTH,
        "Writes queued for the SQLite writer, the group being committed included"
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time a sync step's transaction took to commit, queueing included, by backend family"
    );
    describe_gauge!(
        SCHEDULER_DUE_SHOPS,
        "Shops due at the scheduler's last pass"
    );
    describe_gauge!(
        SCHEDULER_LAG,
        Unit::Seconds,
        "How long the most overdue shop had been due at the scheduler's last pass"
    );
    describe_counter!(
        SCHEDULER_SPREAD,
        "Shops found overdue past the grace and spread over their interval"
    );
    describe_gauge!(
        SCHEDULER_LEADER,
        "1 while this process holds the scheduler lease"
    );
}

pub fn run_queued(trigger: Trigger) {
    metrics::counter!(RUNS_QUEUED, "trigger" => trigger.as_str()).increment(1);
}

pub fn run_ended(status: RunStatus) {
    metrics::counter!(RUNS_ENDED, "status" => status.as_str()).increment(1);
}

/// Counts a run in [`RUNS_DRIVING`] while it lives.
#[must_use = "the run is counted until this is dropped"]
pub struct Driving(());

impl Driving {
    pub fn start() -> Driving {
        metrics::gauge!(RUNS_DRIVING).increment(1.0);
        Driving(())
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        metrics::gauge!(RUNS_DRIVING).decrement(1.0);
    }
}

/// The kinds of [`STEP_DURATION`].
#[derive(Clone, Copy, Debug)]
pub enum StepKind {
    List,
    Details,
    Commit,
}

impl StepKind {
    fn as_str(self) -> &'static str {
        match self {
            StepKind::List => "list",
            StepKind::Details => "details",
            StepKind::Commit => "commit",
        }
    }
}

/// Records a step's duration in [`STEP_DURATION`] when dropped, however the step ended.
#[must_use = "the step is timed until this is dropped"]
pub struct StepTimer {
    kind: StepKind,
    started: Instant,
}

impl StepTimer {
    pub fn start(kind: StepKind) -> StepTimer {
        StepTimer {
            kind,
            started: Instant::now(),
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        metrics::histogram!(STEP_DURATION, "kind" => self.kind.as_str())
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Times a step's transaction into [`COMMIT_DURATION`] when dropped, however it ended; on the
/// SQLite writer it is counted in [`WRITER_QUEUE_DEPTH`] meanwhile.
#[must_use = "the commit is timed until this is dropped"]
pub struct CommitTimer {
    family: &'static str,
    started: Instant,
}

impl CommitTimer {
    /// A write queued for the SQLite writer.
    pub fn sqlite_writer() -> CommitTimer {
        metrics::gauge!(WRITER_QUEUE_DEPTH).increment(1.0);
        CommitTimer {
            family: "sqlite",
            started: Instant::now(),
        }
    }

    /// A step's transaction on the server family's pool.
    pub fn server() -> CommitTimer {
        CommitTimer {
            family: "server",
            started: Instant::now(),
        }
    }
}

impl Drop for CommitTimer {
    fn drop(&mut self) {
        metrics::histogram!(COMMIT_DURATION, "family" => self.family)
            .record(self.started.elapsed().as_secs_f64());
        if self.family == "sqlite" {
            metrics::gauge!(WRITER_QUEUE_DEPTH).decrement(1.0);
        }
    }
}

/// A scheduling pass found `due` shops, the most overdue of them due for `lag`.
pub fn scheduler_pass(due: usize, lag: Duration) {
    metrics::gauge!(SCHEDULER_DUE_SHOPS).set(due as f64);
    metrics::gauge!(SCHEDULER_LAG).set(lag.as_secs_f64());
}

/// A scheduling pass spread `shops` overdue shops over their interval.
pub fn scheduler_spread(shops: u64) {
    metrics::counter!(SCHEDULER_SPREAD).increment(shops);
}

pub fn scheduler_leader(leads: bool) {
    metrics::gauge!(SCHEDULER_LEADER).set(if leads { 1.0 } else { 0.0 });
}

/// A push notification answered with `outcome` (one of [`PUSH_EVENTS`]' values).
pub fn push_event(outcome: &'static str) {
    metrics::counter!(PUSH_EVENTS, "outcome" => outcome).increment(1);
}

/// Details fetched for push notifications.
pub fn push_details(count: usize) {
    metrics::counter!(PUSH_DETAILS).increment(count as u64);
}

/// A reconciliation ended with `outcome` (one of [`PUSH_RECONCILIATIONS`]' values).
pub fn push_reconciliation(outcome: &'static str) {
    metrics::counter!(PUSH_RECONCILIATIONS, "outcome" => outcome).increment(1);
}

/// `count` shipments of `method` a reconciliation found missing locally.
pub fn push_reconciliation_gaps(method: &'static str, count: u64) {
    metrics::counter!(PUSH_RECONCILIATION_GAPS, "method" => method).increment(count);
}
