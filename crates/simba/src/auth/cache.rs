//! Tokens this process authenticated in the last second, so that a client's burst of requests
//! costs one token lookup instead of one per request.
//!
//! Revocations made through this process (logout, password change, account deletion, profile
//! update) forget the seller's entries at once; one made through another process (a second API
//! server, `simba user`) takes effect here within [`AuthCache::TTL`]. An entry never outlives
//! the dashboard session it stands for, whose end is known to the second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Authenticated;

#[derive(Debug, Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    found: Authenticated,
    expires: Instant,
}

impl AuthCache {
    pub const TTL: Duration = Duration::from_secs(1);
    /// Beyond this many live tokens a second the lookups are cheap next to the requests.
    const CAPACITY: usize = 10_000;

    pub fn get(&self, token_hash: &str, now: Instant) -> Option<Authenticated> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token_hash)
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.found.clone())
    }

    /// Keeps an entry for [`AuthCache::TTL`], or for `lifetime` if that is shorter (what is
    /// left of a dashboard session).
    pub fn put(
        &self,
        token_hash: String,
        found: Authenticated,
        now: Instant,
        lifetime: Option<Duration>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::CAPACITY {
            entries.retain(|_, entry| entry.expires > now);
            if entries.len() >= Self::CAPACITY {
                return;
            }
        }
        let expires = now + lifetime.map_or(Self::TTL, |left| left.min(Self::TTL));
        entries.insert(token_hash, Entry { found, expires });
    }

    /// Called after anything that revokes a seller's tokens or changes the seller.
    pub fn forget_user(&self, user_id: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, entry| entry.found.user.id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tokens::TokenKind;
    use crate::store::users::User;

    fn token(user_id: i64, token_id: i64, kind: TokenKind) -> Authenticated {
        let user = User {
            id: user_id,
            username: format!("seller{user_id}"),
            email: format!("seller{user_id}@example.com"),
            first_name: String::new(),
            last_name: String::new(),
            date_joined: crate::domain::Timestamp::from_unix_seconds(0),
        };
        Authenticated {
            user,
            token_id,
            kind,
        }
    }

    #[test]
    fn an_entry_lives_for_the_ttl_only() {
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.put("h".into(), token(1, 7, TokenKind::Api), now, None);
        let found = cache.get("h", now).unwrap();
        assert_eq!((found.user.id, found.token_id), (1, 7));
        assert!(cache.get("h", now + AuthCache::TTL).is_none());
        assert!(cache.get("other", now).is_none());
    }

    #[test]
    fn an_entry_never_outlives_the_session_it_stands_for() {
        let cache = AuthCache::default();
        let now = Instant::now();
        let left = Duration::from_millis(300);
        cache.put(
            "s".into(),
            token(1, 7, TokenKind::Dashboard),
            now,
            Some(left),
        );
        assert!(
            cache
                .get("s", now + left - Duration::from_millis(1))
                .is_some()
        );
        assert!(cache.get("s", now + left).is_none());
        cache.put(
            "long".into(),
            token(1, 8, TokenKind::Dashboard),
            now,
            Some(AuthCache::TTL * 10),
        );
        assert!(cache.get("long", now + AuthCache::TTL).is_none());
    }

    #[test]
    fn an_entry_keeps_its_token_kind() {
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.put("a".into(), token(1, 1, TokenKind::Api), now, None);
        cache.put("d".into(), token(1, 2, TokenKind::Dashboard), now, None);
        assert_eq!(cache.get("a", now).unwrap().kind, TokenKind::Api);
        assert_eq!(cache.get("d", now).unwrap().kind, TokenKind::Dashboard);
    }

    #[test]
    fn forgetting_a_seller_drops_all_their_tokens_only() {
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.put("a".into(), token(1, 1, TokenKind::Api), now, None);
        cache.put("b".into(), token(1, 2, TokenKind::Api), now, None);
        cache.put("c".into(), token(2, 3, TokenKind::Api), now, None);
        cache.forget_user(1);
        assert!(cache.get("a", now).is_none());
        assert!(cache.get("b", now).is_none());
        assert!(cache.get("c", now).is_some());
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_entries() {
        let cache = AuthCache::default();
        let now = Instant::now();
        for i in 0..AuthCache::CAPACITY {
            cache.put(format!("old{i}"), token(1, 1, TokenKind::Api), now, None);
        }
        cache.put("refused".into(), token(2, 2, TokenKind::Api), now, None);
        assert!(cache.get("refused", now).is_none());
        let later = now + AuthCache::TTL;
        cache.put("new".into(), token(2, 2, TokenKind::Api), later, None);
        assert!(cache.get("new", later).is_some());
    }
}
