//! When a dashboard session ends: after a time without requests (idle) and a fixed time after
//! the login (absolute), checked on the server at every request, so that a copied cookie stops
//! working even if the browser never drops it; and the sweep that deletes ended sessions whose
//! cookie never comes back. API tokens do not expire (see `TokenKind`).

use std::time::Duration;

use crate::config::SessionSettings;
use crate::domain::Timestamp;
use crate::store::{Db, StoreResult, tokens};

/// A session's last use is written at most this often: a write per request would make every
/// page view, and every second of a run page's live refresh, a write transaction (serialised
/// with the sync engine's on SQLite), while an idle limit counted in minutes needs no finer
/// record. A session may therefore end up to this much before its idle time is quite over.
const LAST_USED_PRECISION: Duration = Duration::from_secs(60);

/// How often `serve` sweeps ended sessions: their rows are only dead weight, and a sweep costs
/// a scan of the token table.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Sessions deleted per statement by a sweep, so that no delete holds locks for long.
pub const SWEEP_BATCH: u32 = 500;

impl SessionSettings {
    /// When a session created at `created_at` and last used at `last_used_at` ends.
    pub fn ends_at(&self, created_at: Timestamp, last_used_at: Option<Timestamp>) -> Timestamp {
        let last_used = last_used_at.unwrap_or(created_at).max(created_at);
        (created_at + self.max_age).min(last_used + self.idle)
    }

    /// `(created_before, idle_before)`: a session created at or before the first, or last used
    /// at or before the second, has ended at `now`.
    pub fn ended_before(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        (now - self.max_age, now - self.idle)
    }

    /// Whether a session's recorded last use is old enough to be written again at `now`: after
    /// [`LAST_USED_PRECISION`], or a quarter of the idle time if that is shorter, so that
    /// a short idle time still outlasts the gap between writes and a session in use never
    /// ends for want of one.
    pub fn last_use_is_stale(
        &self,
        created_at: Timestamp,
        last_used_at: Option<Timestamp>,
        now: Timestamp,
    ) -> bool {
        let precision = LAST_USED_PRECISION.min(self.idle / 4);
        now.since(last_used_at.unwrap_or(created_at)) >= precision
    }
}

/// Deletes every session that has ended by `now`, [`SWEEP_BATCH`] at a time; returns how many.
/// An ended session is deleted when its cookie comes back, and this deletes the others, of
/// sellers who never return.
pub async fn sweep(db: &Db, settings: &SessionSettings, now: Timestamp) -> StoreResult<u64> {
    let (created_before, idle_before) = settings.ended_before(now);
    let mut swept = 0;
    loop {
        let deleted =
            tokens::delete_ended_sessions(db, created_before, idle_before, SWEEP_BATCH).await?;
        swept += deleted;
        if deleted < u64::from(SWEEP_BATCH) {
            return Ok(swept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_unix_seconds(second)
    }

    fn settings() -> SessionSettings {
        SessionSettings {
            idle: Duration::from_secs(2 * 3600),
            max_age: Duration::from_secs(12 * 3600),
        }
    }

    #[test]
    fn an_unused_session_ends_after_the_idle_time() {
        assert_eq!(settings().ends_at(at(1000), None), at(1000 + 2 * HOUR));
    }

    #[test]
    fn use_moves_the_idle_end_but_never_past_the_absolute_end() {
        let s = settings();
        assert_eq!(s.ends_at(at(0), Some(at(5 * HOUR))), at(7 * HOUR));
        assert_eq!(s.ends_at(at(0), Some(at(11 * HOUR))), at(12 * HOUR));
    }

    #[test]
    fn ended_before_agrees_with_ends_at() {
        let s = settings();
        let now = 100 * HOUR;
        let (created_before, idle_before) = s.ended_before(at(now));
        for (created, used) in [(now - 12 * HOUR, now), (now - 3 * HOUR, now - 2 * HOUR)] {
            let (created, used) = (at(created), at(used));
            assert!(s.ends_at(created, Some(used)) <= at(now));
            assert!(created <= created_before || used <= idle_before);
        }
        let alive = (at(now - 12 * HOUR + 1), at(now - 2 * HOUR + 1));
        assert!(s.ends_at(alive.0, Some(alive.1)) > at(now));
        assert!(alive.0 > created_before && alive.1 > idle_before);
    }

    #[test]
    fn the_last_use_is_written_at_most_once_a_minute() {
        let s = settings();
        assert!(!s.last_use_is_stale(at(0), None, at(59)));
        assert!(s.last_use_is_stale(at(0), None, at(60)));
        assert!(!s.last_use_is_stale(at(0), Some(at(100)), at(159)));
        assert!(s.last_use_is_stale(at(0), Some(at(100)), at(160)));
    }

    #[test]
    fn with_a_one_minute_idle_time_a_session_in_use_never_ends() {
        let s = SessionSettings {
            idle: Duration::from_secs(60),
            ..settings()
        };
        let mut last_used = None;
        for now in (0..=600).step_by(10).map(at) {
            assert!(s.ends_at(at(0), last_used) > now, "ended at {now:?}");
            if s.last_use_is_stale(at(0), last_used, now) {
                last_used = Some(now);
            }
        }
    }
}
