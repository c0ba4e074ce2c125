//! One type for an instant. The database keeps most instants in Unix seconds and the leases and
//! token lifetimes in Unix milliseconds (a lease of 30 s needs better than a second); before this
//! type both were plain `i64`, and nothing stopped seconds being compared with milliseconds.
//! Now the unit is chosen where a value enters or leaves storage, by name, and nowhere else.

use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant in UTC, to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: i64,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp::from_unix_millis((nanos / 1_000_000) as i64)
    }

    pub const fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp {
            unix_millis: seconds.saturating_mul(1_000),
        }
    }

    pub const fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp {
            unix_millis: millis,
        }
    }

    /// Whole seconds, rounded down: how most columns store an instant.
    pub const fn unix_seconds(self) -> i64 {
        self.unix_millis.div_euclid(1_000)
    }

    pub const fn unix_millis(self) -> i64 {
        self.unix_millis
    }

    pub fn from_offset_date_time(t: time::OffsetDateTime) -> Timestamp {
        Timestamp::from_unix_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_offset_date_time(self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.unix_millis) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC, whole seconds, as API.md writes timestamps.
    pub fn rfc3339(self) -> String {
        Timestamp::from_unix_seconds(self.unix_seconds())
            .to_offset_date_time()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.unix_millis - earlier.unix_millis).unwrap_or(0))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        Timestamp::from_unix_millis(self.unix_millis.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, d: Duration) -> Timestamp {
        Timestamp::from_unix_millis(self.unix_millis.saturating_sub(millis(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_name_one_instant() {
        let t = Timestamp::from_unix_millis(1_700_000_000_999);
        assert_eq!(t.unix_seconds(), 1_700_000_000);
        assert_eq!(
            Timestamp::from_unix_seconds(1_700_000_000).unix_millis(),
            1_700_000_000_000
        );
        assert!(Timestamp::from_unix_seconds(t.unix_seconds()) <= t);
    }

    #[test]
    fn seconds_round_down_before_the_epoch_too() {
        assert_eq!(Timestamp::from_unix_millis(-1).unix_seconds(), -1);
    }

    #[test]
    fn durations_move_an_instant_and_measure_between_two() {
        let t = Timestamp::from_unix_seconds(100);
        assert_eq!((t + Duration::from_millis(1_500)).unix_millis(), 101_500);
        assert_eq!((t - Duration::from_secs(100)).unix_millis(), 0);
        assert_eq!(
            (t + Duration::from_secs(2)).since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.since(t + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn rfc3339_is_utc_in_whole_seconds() {
        assert_eq!(
            Timestamp::from_unix_millis(1_700_000_000_750).rfc3339(),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn round_trips_through_offset_date_time() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(Timestamp::from_offset_date_time(t.to_offset_date_time()), t);
    }
}
