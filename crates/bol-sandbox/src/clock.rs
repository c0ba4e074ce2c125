//! Sandbox time: real time for windows and tokens, scaled "marketplace" time for shipment dates.
//!
//! With `--time-scale 60` a real second is a marketplace minute: rate windows and token
//! lifetimes shrink by the scale, and shipment dates and the three-month window advance by it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::{Date, Month, OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    /// Unix seconds (real and marketplace time agree here) when the sandbox started.
    anchor: i64,
    scale: f64,
}

impl Clock {
    pub(crate) fn new(scale: f64) -> Self {
        let anchor = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self {
            start: Instant::now(),
            anchor,
            scale,
        }
    }

    pub(crate) fn anchor(&self) -> i64 {
        self.anchor
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Marketplace seconds since the Unix epoch.
    pub(crate) fn market_now(&self) -> i64 {
        self.anchor + (self.elapsed().as_secs_f64() * self.scale) as i64
    }

    /// How long a marketplace duration lasts in real time.
    pub(crate) fn real(&self, market: Duration) -> Duration {
        market.div_f64(self.scale)
    }
}

/// Real wall-clock milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn last_sunday(year: i32, month: Month) -> Date {
    let last = Date::from_calendar_date(year, month, 31).unwrap_or(Date::MIN);
    last - time::Duration::days(i64::from(last.weekday().number_days_from_sunday()))
}

/// The Dutch/Belgian offset at a moment: +02:00 from the last Sunday of March to the last
/// Sunday of October (01:00 UTC both), +01:00 otherwise, as bol's timestamps carry.
fn offset_at(utc: OffsetDateTime) -> UtcOffset {
    let year = utc.year();
    let start = last_sunday(year, Month::March)
        .with_hms(1, 0, 0)
        .map(|t| t.assume_utc());
    let end = last_sunday(year, Month::October)
        .with_hms(1, 0, 0)
        .map(|t| t.assume_utc());
    let summer = matches!((start, end), (Ok(s), Ok(e)) if utc >= s && utc < e);
    let hours = if summer { 2 } else { 1 };
    UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
}

fn local(unix: i64) -> OffsetDateTime {
    let utc = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    utc.to_offset(offset_at(utc))
}

/// `2025-11-21T16:42:10+01:00`.
pub(crate) fn date_time(unix: i64) -> String {
    local(unix).format(&Rfc3339).unwrap_or_default()
}

/// `2025-11-24`, the local calendar date.
pub(crate) fn date(unix: i64) -> String {
    let d = local(unix).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `2023-03-16T12:53:03Z`, as in bol's "Expired JWT" message.
pub(crate) fn utc_ms(ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Weekday;

    #[test]
    fn dates_carry_the_dutch_offset() {
        // 2025-11-21T15:42:10Z (winter) and 2025-07-01T10:00:00Z (summer).
        assert_eq!(date_time(1_763_739_730), "2025-11-21T16:42:10+01:00");
        assert_eq!(date_time(1_751_364_000), "2025-07-01T12:00:00+02:00");
        assert_eq!(date(1_763_739_730), "2025-11-21");
        assert_eq!(last_sunday(2025, Month::March).weekday(), Weekday::Sunday);
    }

    #[test]
    fn utc_timestamps_end_in_z() {
        assert_eq!(utc_ms(1_678_971_183_500), "2023-03-16T12:53:03Z");
    }
}
