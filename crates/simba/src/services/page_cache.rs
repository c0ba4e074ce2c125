//! Shipment list pages this process served, kept as JSON until the seller's shipments change.
//!
//! A seller's shipments change only when a sync step or the push worker stores shipments, an
//! erasure rewrites them or a shop is deleted, and each bumps the seller's `shipments_version`
//! in the same transaction. A request reads that version
//! (one primary-key lookup) and answers from here when it matches, instead of walking the
//! index to its page and serialising 50 rows again. The version comes from the database, so a
//! change made by any process — a worker, another API server — is seen by the next request.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use crate::store::keyset::{Position, Seek};
use crate::store::shipments::{Filter, Ordering};

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
    version: i64,
    pages: HashMap<PageKey, Arc<CachedPage>>,
    bytes: usize,
}

impl PageCache {
    /// At most `max_bytes` of JSON (a page of 50 is ~21 KB); 0 keeps nothing.
    pub fn new(max_bytes: usize) -> PageCache {
        PageCache {
            max_bytes,
            inner: Mutex::default(),
            asked_once: Mutex::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_bytes > 0
    }

    pub fn get(&self, user_id: i64, version: i64, key: &PageKey) -> Option<Arc<CachedPage>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seller = inner.sellers.get(&user_id)?;
        if seller.version != version {
            return None;
        }
        seller.pages.get(key).cloned()
    }

    /// Keeps a page read at `version`; a page of an older version than one already kept is
    /// dropped, and a newer version drops the seller's older pages.
    pub fn put(&self, user_id: i64, version: i64, key: PageKey, page: Arc<CachedPage>) {
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
            version,
            pages: HashMap::new(),
            bytes: 0,
        });
        if version < seller.version {
            return;
        }
        if version > seller.version {
            inner.bytes -= seller.bytes;
            seller.version = version;
            seller.pages.clear();
            seller.bytes = 0;
        }
        if let Some(replaced) = seller.pages.insert(key, page) {
            seller.bytes -= replaced.results.get().len();
            inner.bytes -= replaced.results.get().len();
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
        let cache = PageCache::new(1 << 20);
        cache.put(1, 3, key(0), page(2, "[1,2]"));
        assert_eq!(cache.get(1, 3, &key(0)).unwrap().count, 2);
        assert!(cache.get(1, 4, &key(0)).is_none(), "a newer version misses");
        assert!(cache.get(1, 3, &key(50)).is_none(), "another page misses");
        assert!(cache.get(2, 3, &key(0)).is_none(), "another seller misses");
    }

    #[test]
    fn a_newer_version_replaces_the_sellers_pages_and_an_older_one_is_dropped() {
        let cache = PageCache::new(1 << 20);
        cache.put(1, 3, key(0), page(2, "[1,2]"));
        cache.put(1, 3, key(50), page(2, "[]"));
        cache.put(1, 4, key(0), page(3, "[1,2,3]"));
        assert!(cache.get(1, 4, &key(50)).is_none());
        assert_eq!(cache.get(1, 4, &key(0)).unwrap().count, 3);
        cache.put(1, 3, key(50), page(2, "[]"));
        assert!(
            cache.get(1, 3, &key(50)).is_none(),
            "a late older read is not kept"
        );
        assert_eq!(cache.inner.lock().unwrap().bytes, "[1,2,3]".len());
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
        let cache = PageCache::new(1 << 20);
        cache.put(1, 3, cursor(9, Direction::Forward), page(0, "[9]"));
        let hit = cache.get(1, 3, &cursor(9, Direction::Forward)).unwrap();
        assert_eq!(hit.results.get(), "[9]");
        assert!(cache.get(1, 3, &cursor(9, Direction::Backward)).is_none());
        assert!(cache.get(1, 3, &cursor(8, Direction::Forward)).is_none());
        assert!(cache.get(1, 3, &key(0)).is_none());
        assert!(cache.get(1, 4, &cursor(9, Direction::Forward)).is_none());
    }

    #[test]
    fn a_cursor_page_is_admitted_on_its_second_request() {
        let cache = PageCache::new(1 << 20);
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
        let cache = PageCache::new(10);
        cache.put(1, 1, key(0), page(1, "[1,2,3]"));
        cache.put(2, 1, key(0), page(1, "[4,5,6]"));
        assert!(cache.get(1, 1, &key(0)).is_none(), "evicted to make room");
        assert!(cache.get(2, 1, &key(0)).is_some());
        cache.put(3, 1, key(0), page(1, "[1,2,3,4,5,6,7,8,9]"));
        assert!(cache.get(3, 1, &key(0)).is_none(), "larger than the budget");
        cache.forget_user(2);
        assert_eq!(cache.inner.lock().unwrap().bytes, 0);
    }
}
