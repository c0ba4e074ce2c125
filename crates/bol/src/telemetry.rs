//! What the client reports to the process's metrics recorder: its calls by endpoint group and
//! status, the 429s, retries and tokens among them, and how long and how many calls wait for
//! their rate budget. The names are constants here, so that an application can describe them
//! and give the histograms their buckets without copying strings.
//!
//! Reported through the [`metrics`] facade, as logs go through `tracing`, rather than through
//! an observer trait the application implements. The facade is what the crate would otherwise
//! have to invent: a global slot for a recorder, with a no-op when none is installed, so the
//! crate still knows nothing of Prometheus, of Simba or of any database; it costs a few atomics
//! and two small crates (`portable-atomic`, `rapidhash`). An observer would widen the seam by
//! a trait that only counts, and every application would write the same glue behind it,
//! naming each counter itself: what a call, a 429 or a wait *is* would be defined twice, here
//! and in each application, and could drift apart.
//!
//! Every label has a bounded set of values, the endpoint group (`token`, `list`, `detail`)
//! and the HTTP status (a code, or `error` when no answer came): never the client id, which
//! names a seller. Calls are counted when their answer (or failure) arrives, so that the
//! counters agree with what the marketplace counted, retries and 429s included.

use std::time::Duration;

use crate::limiter::Group;

/// Counter: requests sent, by `group` and `status` (`200`, `401`, `429`, `503`, ... or
/// `error` for no answer: refused or dropped connection, timeout, body cut off).
pub const CALLS: &str = "bol_calls_total";
/// Counter: answers 429, by `group` (also in [`CALLS`]; in steady state it stays at zero).
pub const RATE_LIMITED: &str = "bol_rate_limited_total";
/// Counter: attempts repeated after a transient failure (5xx, no answer, malformed body), by
/// `group`.
pub const RETRIES: &str = "bol_retries_total";
/// Counter: new access tokens obtained. Token *requests* are [`CALLS`] of group `token`.
pub const TOKENS_OBTAINED: &str = "bol_tokens_obtained_total";
/// Histogram: seconds each call sent waited for its group's rate budget (zero for most), by
/// `group`; its `_sum` is the total time spent waiting.
pub const RATE_LIMIT_WAIT: &str = "bol_rate_limit_wait_seconds";
/// Gauge: calls waiting for their group's rate budget now, by `group`.
pub const WAITING_CALLS: &str = "bol_rate_limit_waiting_calls";
/// Gauge: accounts (client ids) with at least one call waiting for a rate budget now. With
/// one driver per shop, the runs held back by the marketplace's limits.
pub const WAITING_ACCOUNTS: &str = "bol_rate_limit_waiting_accounts";

/// Buckets for [`RATE_LIMIT_WAIT`]: no wait, the fractions of a second of a busy budget, up
/// to bol's one-minute windows and the longest `Retry-After` the client honours.
pub const RATE_LIMIT_WAIT_BUCKETS: &[f64] = &[
    0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
    3600.0,
];

/// Gives every metric its help text in the installed recorder, and the 429 counters their
/// series at zero (an alert on "should be 0" then sees a 0, not nothing); call once after
/// installing the recorder.
pub fn describe() {
    for group in Group::ALL {
        metrics::counter!(RATE_LIMITED, "group" => group_label(group)).increment(0);
    }
    metrics::describe_counter!(
        CALLS,
        "Requests sent to the marketplace, by endpoint group and HTTP status (error: no answer)"
    );
    metrics::describe_counter!(RATE_LIMITED, "Marketplace answers 429, by endpoint group");
    metrics::describe_counter!(
        RETRIES,
        "Marketplace requests repeated after a transient failure, by endpoint group"
    );
    metrics::describe_counter!(TOKENS_OBTAINED, "Marketplace access tokens obtained");
    metrics::describe_histogram!(
        RATE_LIMIT_WAIT,
        metrics::Unit::Seconds,
        "Time each marketplace request waited for its rate budget, by endpoint group"
    );
    metrics::describe_gauge!(
        WAITING_CALLS,
        "Marketplace requests waiting for their rate budget now, by endpoint group"
    );
    metrics::describe_gauge!(
        WAITING_ACCOUNTS,
        "Marketplace accounts with a request waiting for its rate budget now"
    );
}

pub(crate) fn group_label(group: Group) -> &'static str {
    match group {
        Group::Token => "token",
        Group::List => "list",
        Group::Detail => "detail",
        Group::Subscriptions => "subscriptions",
        Group::SignatureKeys => "signature_keys",
        Group::ProcessStatus => "process_status",
    }
}

/// A status as a label: the code when it is one HTTP defines (100 to 599), else `other`, so
/// that a broken server cannot add series.
fn status_label(status: Option<u16>) -> String {
    match status {
        None => "error".to_owned(),
        Some(code @ 100..=599) => code.to_string(),
        Some(_) => "other".to_owned(),
    }
}

/// A request to `group` was answered with `status`, or (`None`) got no answer.
pub(crate) fn answered(group: Group, status: Option<u16>) {
    metrics::counter!(CALLS, "group" => group_label(group), "status" => status_label(status))
        .increment(1);
}

pub(crate) fn rate_limited(group: Group) {
    metrics::counter!(RATE_LIMITED, "group" => group_label(group)).increment(1);
}

pub(crate) fn retried(group: Group) {
    metrics::counter!(RETRIES, "group" => group_label(group)).increment(1);
}

pub(crate) fn token_obtained() {
    metrics::counter!(TOKENS_OBTAINED).increment(1);
}

/// A request to `group` leaves after waiting `waited` for its budget.
pub(crate) fn waited(group: Group, waited: Duration) {
    metrics::histogram!(RATE_LIMIT_WAIT, "group" => group_label(group))
        .record(waited.as_secs_f64());
}

/// A call of `group` starts (`+1`) or stops (`-1`) waiting; `account_changed` when its account
/// went from no waiting call to one, or back.
pub(crate) fn waiting(group: Group, delta: f64, account_changed: bool) {
    metrics::gauge!(WAITING_CALLS, "group" => group_label(group)).increment(delta);
    if account_changed {
        metrics::gauge!(WAITING_ACCOUNTS).increment(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_bounded_labels() {
        assert_eq!(status_label(Some(429)), "429");
        assert_eq!(status_label(None), "error");
        assert_eq!(status_label(Some(999)), "other");
        assert_eq!(status_label(Some(42)), "other");
    }
}
