//! Login throttling: too many failed attempts for one username or from one client address
//! within a window answer 429 with `Retry-After` until the oldest failure ages out.
//! Kept in process memory: an attacker spreading attempts over several API processes gets at
//! most that many times the budget, which still bounds guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures tracked per key, with their limit.
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    per_username: usize,
    per_address: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, per_username: usize, per_address: usize) -> LoginThrottle {
        LoginThrottle {
            window,
            per_username,
            per_address,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, address: &str) -> [(String, bool); 2] {
        [
            (format!("u:{}", username.to_lowercase()), true),
            (format!("a:{address}"), false),
        ]
    }

    /// `Some(seconds)` to wait when either key is over its limit.
    pub fn check(&self, username: &str, address: &str, now: Instant) -> Option<u64> {
        let mut failures = self.failures.lock().expect("throttle lock poisoned");
        let mut wait = None;
        for (key, is_username) in Self::keys(username, address) {
            let limit = if is_username {
                self.per_username
            } else {
                self.per_address
            };
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = *times.front().expect("non-empty: over a positive limit");
                    let secs = (self.window - now.duration_since(oldest))
                        .as_secs_f64()
                        .ceil() as u64;
                    wait = wait.max(Some(secs.max(1)));
                }
            }
        }
        wait
    }

    pub fn record_failure(&self, username: &str, address: &str, now: Instant) {
        let mut failures = self.failures.lock().expect("throttle lock poisoned");
        if failures.len() > 100_000 {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for (key, _) in Self::keys(username, address) {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login forgives that username's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        let key = format!("u:{}", username.to_lowercase());
        self.failures
            .lock()
            .expect("throttle lock poisoned")
            .remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_for_a_username_blocks_until_the_window_passes() {
        let throttle = LoginThrottle::new(Duration::from_secs(60), 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check("anna", "1.1.1.1", t0), None);
            throttle.record_failure("anna", "1.1.1.1", t0);
        }
        assert_eq!(throttle.check("ANNA", "2.2.2.2", t0), Some(60));
        assert_eq!(
            throttle.check("anna", "1.1.1.1", t0 + Duration::from_secs(45)),
            Some(15)
        );
        assert_eq!(
            throttle.check("anna", "1.1.1.1", t0 + Duration::from_secs(60)),
            None
        );
        assert_eq!(throttle.check("bert", "2.2.2.2", t0), None);
    }

    #[test]
    fn the_limit_for_an_address_spans_usernames() {
        let throttle = LoginThrottle::new(Duration::from_secs(60), 100, 2);
        let t0 = Instant::now();
        throttle.record_failure("a", "9.9.9.9", t0);
        throttle.record_failure("b", "9.9.9.9", t0);
        assert!(throttle.check("c", "9.9.9.9", t0).is_some());
        assert!(throttle.check("c", "8.8.8.8", t0).is_none());
    }

    #[test]
    fn success_clears_the_username() {
        let throttle = LoginThrottle::new(Duration::from_secs(60), 1, 100);
        let t0 = Instant::now();
        throttle.record_failure("anna", "1.1.1.1", t0);
        throttle.record_success("anna");
        assert_eq!(throttle.check("anna", "3.3.3.3", t0), None);
    }
}
