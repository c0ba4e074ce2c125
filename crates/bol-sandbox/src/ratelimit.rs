//! Fixed-window rate limits per account and endpoint group, lock-free.
//!
//! Windows are aligned to the sandbox start and last 60 marketplace seconds; one atomic word
//! holds the window number and the count, so the hot path is a single compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The outcome of one call against a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The limit is off: no headers, no 429.
    Unlimited,
    Allowed {
        limit: u32,
        remaining: u32,
        reset: u64,
    },
    Denied {
        limit: u32,
        reset: u64,
    },
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limit: u32,
    /// Window number in the high 32 bits, calls in it in the low 32.
    state: AtomicU64,
}

impl Limiter {
    /// A limit of 0 means unlimited.
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit,
            state: AtomicU64::new(0),
        }
    }

    /// Counts one call made `elapsed` after the sandbox start.
    pub(crate) fn check(&self, elapsed: Duration, window: Duration) -> Decision {
        if self.limit == 0 {
            return Decision::Unlimited;
        }
        let window_ns = window.as_nanos().max(1);
        let number = elapsed.as_nanos() / window_ns;
        let left_ns = window_ns - elapsed.as_nanos() % window_ns;
        // Reset is whole seconds until the refill, never 0, as bol sends it.
        let reset = (left_ns.div_ceil(1_000_000_000) as u64).max(1);
        let tag = (number as u64) & 0xffff_ffff;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let used = if current >> 32 == tag {
                current & 0xffff_ffff
            } else {
                0
            };
            if used >= u64::from(self.limit) {
                return Decision::Denied {
                    limit: self.limit,
                    reset,
                };
            }
            let next = (tag << 32) | (used + 1);
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let remaining = self.limit - (used + 1) as u32;
                    return Decision::Allowed {
                        limit: self.limit,
                        remaining,
                        reset,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_limit_refills_at_the_next_window() {
        let limiter = Limiter::new(2);
        let t = Duration::from_secs(10);
        assert_eq!(
            limiter.check(t, MINUTE),
            Decision::Allowed {
                limit: 2,
                remaining: 1,
                reset: 50
            }
        );
        assert_eq!(
            limiter.check(t, MINUTE),
            Decision::Allowed {
                limit: 2,
                remaining: 0,
                reset: 50
            }
        );
        assert_eq!(
            limiter.check(t, MINUTE),
            Decision::Denied {
                limit: 2,
                reset: 50
            }
        );
        let next = Duration::from_millis(60_500);
        assert_eq!(
            limiter.check(next, MINUTE),
            Decision::Allowed {
                limit: 2,
                remaining: 1,
                reset: 60
            }
        );
    }

    #[test]
    fn reset_is_at_least_one_second() {
        let limiter = Limiter::new(5);
        let d = limiter.check(Duration::from_millis(999), Duration::from_secs(1));
        assert_eq!(
            d,
            Decision::Allowed {
                limit: 5,
                remaining: 4,
                reset: 1
            }
        );
    }

    #[test]
    fn zero_means_unlimited() {
        assert_eq!(
            Limiter::new(0).check(Duration::ZERO, MINUTE),
            Decision::Unlimited
        );
    }
}
