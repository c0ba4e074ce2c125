//! Shipment list pages this process served, kept as JSON until the seller's shipments change.
//!
//! A seller's shipments change only when a sync step or the push worker stores shipments, an
//! erasure rewrites them or a shop is deleted, and each bumps the seller's `shipments_version`
//! in the same transaction. A request reads that version
//! (one primary-key lookup) and answers from here when it matches, instead of walking the
//! index to its page and serialising 50 rows again. The version comes from the database, so a
//! change made by any process — a worker, another API server — is seen by the next request.
//!
//! A run's steps are the exception: a page read since the seller's last step may be served
//! for a moment longer (`stale_for`) while its epoch holds (see
//! [`Versions`]). A thousand shops syncing commit a step every few milliseconds,
//! and without it nearly every list request during their sync computed its page again: a
//! client polling the list then sees the run's progress up to that moment late, and its end
//! at once.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::store::keyset::{Position, Seek};
use crate::store::shipments::{Filter, Ordering, Versions};

/// Which page of which list: everything the page's rows and count depend on besides the
/// seller and the version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub filter: Filter,
    pub ordering: Ordering,
    pub place: Place,
}

/// Where a page lies in its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    Numbered {
        limit: i64,
        offset: i64,
    },
    /// A cursor's page: the same position read at the same version gives the same rows.
    Cursor(Seek),
}

/// One page's `results` as serialised, with what its links are made of: the list's `count`
/// for a numbered page; for a cursor's, the positions of its first and last rows and whether
/// more lie beyond it.
#[derive(Debug)]
pub struct CachedPage {
    pub count: i64,
    pub results: Box<RawValue>,
    pub ends: Option<(Position, Position)>,
    pub more: bool,
}

#[derive(Debug)]
pub struct PageCache {
    max_bytes: usize,
    stale_for: Duration,
    inner: Mutex<Inner>,
    /// Cursor pages asked for once and not kept: see [`PageCache::admit`].
    asked_once: Mutex<HashSet<u64>>,
}

/// The most cursor pages remembered as asked for once; past it they are forgotten together.
const ASKED_ONCE_LIMIT: usize = 16_384;

#[derive(Debug, Default)]
struct Inner {
    sellers: HashMap<i64, SellerPages>,
    bytes: usize,
}

#[derive(Debug)]
struct SellerPages {
    /// The latest version a kept page was read at.
    version: i64,
    pages: HashMap<PageKey, Kept>,
    bytes: usize,
}

#[derive(Debug)]
struct Kept {
    page: Arc<CachedPage>,
    versions: Versions,
    read_at: Instant,
}

impl Kept {
    /// Whether the page may be served while the seller's shipments stand at `now`. A page read
    /// at the same version is current whatever the epoch: only a change of shipments moves the
    /// version, and an epoch moved alone (a run's end) changed none.
    fn serves(&self, now: Versions, stale_for: Duration) -> bool {
        self.versions.version == now.version
            || (self.versions.epoch == now.epoch
                && self.versions.version < now.version
                && self.read_at.elapsed() < stale_for)
    }
}

impl PageCache {
    /// At most `max_bytes` of JSON (a page of 50 is ~21 KB); 0 keeps nothing. A page is served
    /// up to `stale_for` after a run's step changed the seller's shipments.
    pub fn new(max_bytes: usize, stale_for: Duration) -> PageCache {
        PageCache {
            max_bytes,
            stale_for,
            inner: Mutex::default(),
            asked_once: Mutex::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// The page kept for `key` and the version it was read at, if it may be served while the
    /// seller's shipments stand at `now`: read at `now`'s version, or less than `stale_for` ago
    /// in `now`'s epoch.
    pub fn get(
        &self,
        user_id: i64,
        now: Versions,
        key: &PageKey,
    ) -> Option<(i64, Arc<CachedPage>)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let kept = inner.sellers.get(&user_id)?.pages.get(key)?;
        kept.serves(now, self.stale_for)
            .then(|| (kept.versions.version, Arc::clone(&kept.page)))
    }

    /// Keeps a page read at `versions`, unless a page of the seller was read at a later
    /// version; a later version drops the seller's pages that can no longer be served.
    pub fn put(&self, user_id: i64, versions: Versions, key: PageKey, page: Arc<CachedPage>) {
        let size = page.results.get().len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if inner.bytes + size > self.max_bytes {
            // Clearing everything is crude but rare and keeps a hit free of bookkeeping; the
            // pages that matter are read again within a request each.
            inner.sellers.clear();
            inner.bytes = 0;
        }
        let seller = inner.sellers.entry(user_id).or_insert_with(|| SellerPages {
            version: versions.version,
            pages: HashMap::new(),
            bytes: 0,
        });
        if versions.version < seller.version {
            return;
        }
        if versions.version > seller.version {
            seller.version = versions.version;
            let before = seller.bytes;
            seller.pages.retain(|_, kept| {
                let keep = kept.serves(versions, self.stale_for);
                if !keep {
                    seller.bytes -= kept.page.results.get().len();
                }
                keep
            });
            inner.bytes -= before - seller.bytes;
        }
        let kept = Kept {
            page,
            versions,
            read_at: Instant::now(),
        };
        if let Some(replaced) = seller.pages.insert(key, kept) {
            seller.bytes -= replaced.page.results.get().len();
            inner.bytes -= replaced.page.results.get().len();
        }
        seller.bytes += size;
        inner.bytes += size;
    }

    /// Whether a cursor page just read should be kept: only from its second request on. A walk
    /// reads each of its pages once, and keeping them would push out the pages that are read
    /// again (the cache is cleared when full); a page asked for twice is likely asked for more.
    pub fn admit(&self, user_id: i64, key: &PageKey) -> bool {
        let mut hasher = std::hash::DefaultHasher::new();
        (user_id, key).hash(&mut hasher);
        let hash = hasher.finish();
        let mut asked = self.asked_once.lock().unwrap_or_else(|e| e.into_inner());
        if asked.remove(&hash) {
            return true;
        }
        if asked.len() >= ASKED_ONCE_LIMIT {
            asked.clear();
        }
        asked.insert(hash);
        false
    }

    /// Called when the seller is deleted, so that the pages do not wait for eviction.
    pub fn forget_user(&self, user_id: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seller) = inner.sellers.remove(&user_id) {
            inner.bytes -= seller.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(offset: i64) -> PageKey {
        PageKey {
            filter: Filter::default(),
            ordering: Ordering::default(),
            place: Place::Numbered { limit: 50, offset },
        }
    }

    fn at(version: i64, epoch: i64) -> Versions {
        Versions { version, epoch }
    }

    fn page(count: i64, json: &str) -> Arc<CachedPage> {
        Arc::new(CachedPage {
            count,
            results: RawValue::from_string(json.to_owned()).unwrap(),
            ends: None,
            more: false,
        })
    }

    #[test]
    fn a_page_is_served_only_at_its_version() {
        let cache = PageCache::new(1 << 20, Duration::ZERO);
        cache.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        assert_eq!(cache.get(1, at(3, 0), &key(0)).unwrap().1.count, 2);
        assert!(
            cache.get(1, at(4, 0), &key(0)).is_none(),
            "a newer version misses"
        );
        assert!(
            cache.get(1, at(3, 0), &key(50)).is_none(),
            "another page misses"
        );
        assert!(
            cache.get(2, at(3, 0), &key(0)).is_none(),
            "another seller misses"
        );
    }

    #[test]
    fn a_newer_version_replaces_the_sellers_pages_and_an_older_one_is_dropped() {
        let cache = PageCache::new(1 << 20, Duration::ZERO);
        cache.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        cache.put(1, at(3, 0), key(50), page(2, "[]"));
        cache.put(1, at(4, 0), key(0), page(3, "[1,2,3]"));
        assert!(cache.get(1, at(4, 0), &key(50)).is_none());
        assert_eq!(cache.get(1, at(4, 0), &key(0)).unwrap().1.count, 3);
        cache.put(1, at(3, 0), key(50), page(2, "[]"));
        assert!(
            cache.get(1, at(3, 0), &key(50)).is_none(),
            "a late older read is not kept"
        );
        assert_eq!(cache.inner.lock().unwrap().bytes, "[1,2,3]".len());
    }

    #[test]
    fn a_page_read_during_a_run_is_served_a_moment_longer_within_its_epoch() {
        let cache = PageCache::new(1 << 20, Duration::from_secs(3600));
        cache.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        let (version, stale) = cache.get(1, at(9, 0), &key(0)).unwrap();
        assert_eq!(
            (version, stale.count),
            (3, 2),
            "served with the version it was read at, for its tag"
        );
        assert!(
            cache.get(1, at(9, 1), &key(0)).is_none(),
            "a run's end, a push or an erasure is seen at once"
        );
        cache.put(1, at(9, 0), key(50), page(9, "[]"));
        assert!(
            cache.get(1, at(9, 0), &key(0)).is_some(),
            "another page read later leaves it"
        );
        cache.put(1, at(10, 1), key(50), page(10, "[]"));
        assert!(cache.get(1, at(10, 1), &key(0)).is_none());
        assert_eq!(
            cache.inner.lock().unwrap().bytes,
            "[]".len(),
            "a later epoch drops what it can no longer serve"
        );
    }

    #[test]
    fn a_page_is_not_served_past_stale_for_nor_when_it_is_zero() {
        let cache = PageCache::new(1 << 20, Duration::from_millis(30));
        cache.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        assert!(cache.get(1, at(4, 0), &key(0)).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(1, at(4, 0), &key(0)).is_none());
        assert!(
            cache.get(1, at(3, 0), &key(0)).is_some(),
            "its own version serves it still"
        );
        let strict = PageCache::new(1 << 20, Duration::ZERO);
        strict.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        assert!(strict.get(1, at(4, 0), &key(0)).is_none());
    }

    #[test]
    fn an_epoch_moved_alone_leaves_the_page_current() {
        let cache = PageCache::new(1 << 20, Duration::ZERO);
        cache.put(1, at(3, 0), key(0), page(2, "[1,2]"));
        assert!(
            cache.get(1, at(3, 1), &key(0)).is_some(),
            "a run that ended after its last step changed nothing more"
        );
    }

    #[test]
    fn a_cursor_page_is_kept_apart_from_numbered_pages_and_other_positions() {
        use crate::store::keyset::Direction;
        let cursor = |id, direction| PageKey {
            place: Place::Cursor(Seek {
                from: Some(Position { key: Some(7), id }),
                direction,
                limit: 50,
            }),
            ..key(0)
        };
        let cache = PageCache::new(1 << 20, Duration::ZERO);
        cache.put(1, at(3, 0), cursor(9, Direction::Forward), page(0, "[9]"));
        let (_, hit) = cache
            .get(1, at(3, 0), &cursor(9, Direction::Forward))
            .unwrap();
        assert_eq!(hit.results.get(), "[9]");
        assert!(
            cache
                .get(1, at(3, 0), &cursor(9, Direction::Backward))
                .is_none()
        );
        assert!(
            cache
                .get(1, at(3, 0), &cursor(8, Direction::Forward))
                .is_none()
        );
        assert!(cache.get(1, at(3, 0), &key(0)).is_none());
        assert!(
            cache
                .get(1, at(4, 0), &cursor(9, Direction::Forward))
                .is_none()
        );
    }

    #[test]
    fn a_cursor_page_is_admitted_on_its_second_request() {
        let cache = PageCache::new(1 << 20, Duration::ZERO);
        let cursor = PageKey {
            place: Place::Cursor(Seek {
                from: None,
                direction: crate::store::keyset::Direction::Forward,
                limit: 50,
            }),
            ..key(0)
        };
        assert!(
            !cache.admit(1, &cursor),
            "a walk's page read once is not kept"
        );
        assert!(!cache.admit(2, &cursor), "another seller's is another page");
        assert!(cache.admit(1, &cursor));
    }

    #[test]
    fn the_byte_budget_holds() {
        let cache = PageCache::new(10, Duration::ZERO);
        cache.put(1, at(1, 0), key(0), page(1, "[1,2,3]"));
        cache.put(2, at(1, 0), key(0), page(1, "[4,5,6]"));
        assert!(
            cache.get(1, at(1, 0), &key(0)).is_none(),
            "evicted to make room"
        );
        assert!(cache.get(2, at(1, 0), &key(0)).is_some());
        cache.put(3, at(1, 0), key(0), page(1, "[1,2,3,4,5,6,7,8,9]"));
        assert!(
            cache.get(3, at(1, 0), &key(0)).is_none(),
            "larger than the budget"
        );
        cache.forget_user(2);
        assert_eq!(cache.inner.lock().unwrap().bytes, 0);
    }
}
