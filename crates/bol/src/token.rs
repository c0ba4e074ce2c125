//! Access tokens: cached with their expiry, shared through a [`TokenCache`] the application
//! provides (Simba keeps them encrypted in its database), renewed by one caller at a time.
//!
//! bol blocks clients that fetch tokens too often, so a token is reused until shortly before it
//! expires; renewing it with more than half its life left counts as a wasted call. The margin
//! scales with the lifetime (at most 30 s, at most a tenth of it) so that the one-second lifetimes
//! of a time-scaled sandbox still leave most of the token usable.
//!
//! A token serves only the exact credentials that obtained it: the client id *and* its secret.
//! Keyed by the client id alone, a cache would hand one seller's token to anyone who names
//! that client id with any secret. The in-process slots keep the secret beside the token and
//! compare it; a [`TokenCache`] gets the whole [`Credentials`] to key its storage by.
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

use crate::Credentials;

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
///
/// Both methods take the whole credentials: a token may be returned only to the client id *and*
/// secret that obtained it, so an implementation keys its storage by both (a keyed fingerprint
/// of the secret, never the secret itself).
pub trait TokenCache: Send + Sync {
    /// The stored token of exactly these credentials, if any (fresh or not).
    fn load<'a>(&'a self, creds: &'a Credentials) -> BoxFuture<'a, Option<CachedToken>>;
    /// Stores the newest token of these credentials, replacing the previous one.
    fn store<'a>(&'a self, creds: &'a Credentials, token: &'a CachedToken) -> BoxFuture<'a, ()>;
}

/// A token with the secret that obtained it.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    secret: SecretString,
    token: CachedToken,
}

impl Held {
    pub(crate) fn new(creds: &Credentials, token: CachedToken) -> Held {
        Held {
            secret: creds.client_secret.clone(),
            token,
        }
    }

    /// The token, if `creds` carry the secret that obtained it.
    pub(crate) fn for_creds(&self, creds: &Credentials) -> Option<&CachedToken> {
        same_secret(&self.secret, &creds.client_secret).then_some(&self.token)
    }
}

/// Compares in time independent of where the secrets differ (Simba's `crypto::same_secret`
/// does the same for its own secrets; this crate stays free of the application's).
fn same_secret(a: &SecretString, b: &SecretString) -> bool {
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A [`TokenCache`] for one process, lost when it exits.
#[derive(Debug, Default)]
pub struct MemoryTokenCache {
    tokens: Mutex<HashMap<String, Held>>,
}

impl TokenCache for MemoryTokenCache {
    fn load<'a>(&'a self, creds: &'a Credentials) -> BoxFuture<'a, Option<CachedToken>> {
        let token = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&creds.client_id)
            .and_then(|held| held.for_creds(creds))
            .cloned();
        Box::pin(std::future::ready(token))
    }

    fn store<'a>(&'a self, creds: &'a Credentials, token: &'a CachedToken) -> BoxFuture<'a, ()> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(creds.client_id.clone(), Held::new(creds, token.clone()));
        Box::pin(std::future::ready(()))
    }
}

/// The slot of one client id, holding the last token obtained and the secret that obtained it.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// One slot per client id; holding its lock is the right to renew, so concurrent callers share
/// one renewal. A caller with another secret for the same client id waits for the lock too,
/// but never gets the token: a wrong secret gets no token to replace it with, so the slot keeps
/// the right one.
pub(crate) struct TokenSlots {
    pub(crate) cache: Arc<dyn TokenCache>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl TokenSlots {
    pub(crate) fn new(cache: Arc<dyn TokenCache>) -> Self {
        TokenSlots {
            cache,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn slot(&self, client_id: &str) -> Slot {
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

    fn creds(client_id: &str, secret: &str) -> Credentials {
        Credentials {
            client_id: client_id.into(),
            client_secret: SecretString::from(secret),
        }
    }

    #[tokio::test]
    async fn the_memory_cache_keeps_the_latest_token() {
        let cache = MemoryTokenCache::default();
        let a = creds("a", "s");
        assert!(cache.load(&a).await.is_none());
        cache.store(&a, &token(10)).await;
        cache.store(&a, &token(20)).await;
        assert_eq!(
            cache.load(&a).await.unwrap().lifetime,
            Duration::from_secs(20)
        );
        assert!(cache.load(&creds("b", "s")).await.is_none());
    }

    #[tokio::test]
    async fn a_token_is_not_served_to_the_same_client_id_with_another_secret() {
        let cache = MemoryTokenCache::default();
        cache.store(&creds("a", "right"), &token(10)).await;
        for wrong in ["", "righ", "right ", "RIGHT", "wrong"] {
            assert!(cache.load(&creds("a", wrong)).await.is_none(), "{wrong:?}");
        }
        assert!(cache.load(&creds("a", "right")).await.is_some());
        let held = Held::new(&creds("a", "right"), token(10));
        assert!(held.for_creds(&creds("a", "wrong")).is_none());
        assert!(held.for_creds(&creds("a", "right")).is_some());
    }
}
