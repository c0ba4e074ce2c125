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

use crate::store::users::User;

#[derive(Debug, Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    user: User,
    token_id: i64,
    expires: Instant,
}

impl AuthCache {
    pub const TTL: Duration = Duration::from_secs(1);
    /// Beyond this many live tokens a second the lookups are cheap next to the requests.
    const CAPACITY: usize = 10_000;

    pub fn get(&self, token_hash: &str, now: Instant) -> Option<(User, i64)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token_hash)
            .filter(|entry| entry.expires > now)
            .map(|entry| (entry.user.clone(), entry.token_id))
    }

    /// Keeps an entry for [`AuthCache::TTL`], or for `lifetime` if that is shorter (what is
    /// left of a dashboard session).
    pub fn put(
        &self,
        token_hash: String,
        user: User,
        token_id: i64,
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
        entries.insert(
            token_hash,
            Entry {
                user,
                token_id,
                expires,
            },
        );
    }

    /// Called after anything that revokes a seller's tokens or changes the seller.
    pub fn forget_user(&self, user_id: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, entry| entry.user.id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("seller{id}"),
            email: format!("seller{id}@example.com"),
            first_name: String::new(),
            last_name: String::new(),
            date_joined: 0,
        }
    }

    #[test]
    fn an_entry_lives_for_the_ttl_only() {
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.put("h".into(), user(1), 7, now, None);
        assert_eq!(cache.get("h", now).map(|(u, t)| (u.id, t)), Some((1, 7)));
        assert!(cache.get("h", now + AuthCache::TTL).is_none());
        assert!(cache.get("other", now).is_none());
    }

    #[test]
    fn an_entry_never_outlives_the_session_it_stands_for() {
        let cache = AuthCache::default();
        let now = Instant::now();
        let left = Duration::from_millis(300);
        cache.put("s".into(), user(1), 7, now, Some(left));
        assert!(
            cache
                .get("s", now + left - Duration::from_millis(1))
                .is_some()
        );
        assert!(cache.get("s", now + left).is_none());
        cache.put("long".into(), user(1), 8, now, Some(AuthCache::TTL * 10));
        assert!(cache.get("long", now + AuthCache::TTL).is_none());
    }

    #[test]
    fn forgetting_a_seller_drops_all_their_tokens_only() {
        let cache = AuthCache::default();
        let now = Instant::now();
        cache.put("a".into(), user(1), 1, now, None);
        cache.put("b".into(), user(1), 2, now, None);
        cache.put("c".into(), user(2), 3, now, None);
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
            cache.put(format!("old{i}"), user(1), 1, now, None);
        }
        cache.put("refused".into(), user(2), 2, now, None);
        assert!(cache.get("refused", now).is_none());
        let later = now + AuthCache::TTL;
        cache.put("new".into(), user(2), 2, later, None);
        assert!(cache.get("new", later).is_some());
    }
}
