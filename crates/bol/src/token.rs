//! Access tokens: cached with their expiry, shared through a [`TokenCache`] the application
//! provides (Simba keeps them encrypted in its database), renewed by one caller at a time.
//!
//! bol blocks clients that fetch tokens too often, so a token is reused until shortly before it
//! expires; renewing it with more than half its life left counts as a wasted call. The margin
//! scales with the lifetime (at most 30 s, at most a tenth of it) so that the one-second lifetimes
//! of a time-scaled sandbox still leave most of the token usable.
//!
//! The margin only has to cover the trip of one request to bol: the client takes the token after
//! any wait for the rate limit, right before sending. Its expiry counts from when the token
//! request left, so it is never later than bol's. bol accepts tokens up to a second of clock
//! skew past their expiry (the sandbox shrinks that second with its time scale); the client
//! never counts on that allowance.

use secrecy::{ExposeSecret, SecretString};
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use time::OffsetDateTime;

/// A boxed future, so that [`TokenCache`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An access token with its expiry.
#[derive(Clone, Debug)]
pub struct CachedToken {
    /// The bearer token.
    pub access_token: SecretString,
    /// When bol stops accepting it.
    pub expires_at: OffsetDateTime,
    /// How long it was issued for; sets the renewal margin.
    pub lifetime: Duration,
}

impl CachedToken {
    /// A token issued at `issued_at` for `lifetime`.
    pub fn new(access_token: SecretString, issued_at: OffsetDateTime, lifetime: Duration) -> Self {
        CachedToken {
            access_token,
            expires_at: issued_at + lifetime,
            lifetime,
        }
    }

    /// When it should be replaced: `min(30 s, lifetime / 10)` before it expires.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.expires_at - (self.lifetime / 10).min(Duration::from_secs(30))
    }

    /// Whether it can still be used at `now`.
    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        now < self.renew_at()
    }
}

/// Where tokens are kept between processes and shared between workers. Implementations handle
/// (log) their own storage errors: the client then simply fetches a new token.
pub trait TokenCache: Send + Sync {
    /// The stored token of a client id, if any (fresh or not).
    fn load<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, Option<CachedToken>>;
    /// Stores the newest token of a client id, replacing the previous one.
    fn store<'a>(&'a self, client_id: &'a str, token: &'a CachedToken) -> BoxFuture<'a, ()>;
}

/// A [`TokenCache`] for one process, lost when it exits.
#[derive(Debug, Default)]
pub struct MemoryTokenCache {
    tokens: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache for MemoryTokenCache {
    fn load<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, Option<CachedToken>> {
        let token = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(client_id)
            .cloned();
        Box::pin(std::future::ready(token))
    }

    fn store<'a>(&'a self, client_id: &'a str, token: &'a CachedToken) -> BoxFuture<'a, ()> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client_id.to_owned(), token.clone());
        Box::pin(std::future::ready(()))
    }
}

/// One slot per client id; holding its lock is the right to renew, so concurrent callers share
/// one renewal.
pub(crate) struct TokenSlots {
    pub(crate) cache: Arc<dyn TokenCache>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<CachedToken>>>>>,
}

impl TokenSlots {
    pub(crate) fn new(cache: Arc<dyn TokenCache>) -> Self {
        TokenSlots {
            cache,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn slot(&self, client_id: &str) -> Arc<tokio::sync::Mutex<Option<CachedToken>>> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(client_id.to_owned())
            .or_default()
            .clone()
    }
}

/// Whether `token` may be used: fresh, and not the one bol just refused.
pub(crate) fn usable(token: &CachedToken, rejected: Option<&SecretString>) -> bool {
    token.is_fresh(OffsetDateTime::now_utc())
        && rejected.is_none_or(|r| r.expose_secret() != token.access_token.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime_secs: u64) -> CachedToken {
        CachedToken::new(
            SecretString::from("t"),
            OffsetDateTime::now_utc(),
            Duration::from_secs(lifetime_secs),
        )
    }

    #[test]
    fn the_renewal_margin_scales_with_the_lifetime() {
        let long = token(299);
        assert_eq!(
            long.expires_at - long.renew_at(),
            Duration::from_millis(29_900)
        );
        let one_second = token(1);
        assert_eq!(
            one_second.expires_at - one_second.renew_at(),
            Duration::from_millis(100)
        );
        assert!(one_second.is_fresh(OffsetDateTime::now_utc()));
        let hour = token(3600);
        assert_eq!(hour.expires_at - hour.renew_at(), Duration::from_secs(30));
    }

    #[test]
    fn a_rejected_token_is_not_used_again() {
        let t = token(299);
        assert!(usable(&t, None));
        assert!(!usable(&t, Some(&SecretString::from("t"))));
        assert!(usable(&t, Some(&SecretString::from("other"))));
    }

    #[tokio::test]
    async fn the_memory_cache_keeps_the_latest_token() {
        let cache = MemoryTokenCache::default();
        assert!(cache.load("a").await.is_none());
        cache.store("a", &token(10)).await;
        cache.store("a", &token(20)).await;
        assert_eq!(
            cache.load("a").await.unwrap().lifetime,
            Duration::from_secs(20)
        );
        assert!(cache.load("b").await.is_none());
    }
}
