//! The change feed: a seller's shipments in the order they last changed, read after the last
//! number a consumer saw (`GET /api/v1/shipments/changes`).
//!
//! Every write that changes shipments a consumer should see (a list page's new shipments, a
//! detail, a detail gone, an erasure) takes the next numbers of its seller's sequence,
//! `users.change_seq`, with one `UPDATE users SET change_seq = change_seq + n` in the
//! transaction that makes the change, and gives each changed row one of them. A consumer must
//! never be served a number while a smaller one can still commit: it would store the larger
//! one and ask only after it from then on. How each backend guarantees it:
//!
//! - **PostgreSQL and MySQL/MariaDB**: the UPDATE locks the seller's row until the
//!   transaction ends, so a second transaction that wants numbers waits for the first to
//!   commit or roll back before it takes any. Both servers make a transaction's writes visible
//!   before they release its row locks (PostgreSQL leaves the proc array, InnoDB the active
//!   transactions' list, before the lock waiters wake), and a read takes its snapshot at its
//!   start (PostgreSQL's READ COMMITTED per statement, InnoDB's consistent read per autocommit
//!   statement). So a snapshot that sees number `k` sees every number below `k` that
//!   committed, and none below `k` is still to come: a transaction that rolled back leaves a
//!   gap, never a late number.
//! - **SQLite**: one writer commits at a time (the writer thread, and SQLite's own write lock
//!   for anything else), so numbers commit in the order they are taken, and a WAL reader's
//!   snapshot holds a prefix of the commits.
//!
//! The price is that one seller's changing transactions take turns for the time between their
//! UPDATE and their commit; the shipments version the page cache reads was already bumped
//! there, so the feed adds no wait of its own. Rows written before the feed existed took their
//! id as their number (migration 0012).

use super::sql::{Bind, LIST_COLUMNS};

/// A read of the feed: up to `limit` of the seller's shipments (of one shop, if named) whose
/// last change is numbered above `after`, in that order.
#[derive(Debug, Clone)]
pub struct Feed {
    pub user_id: i64,
    pub shop_id: Option<i64>,
    pub after: i64,
    pub limit: i64,
}

impl Feed {
    /// The statement and its binds. With a shop, the shop's index answers and the seller's
    /// condition keeps another seller's shop empty.
    pub(crate) fn query(&self) -> (String, Vec<Bind>) {
        let (scope, mut binds) = match self.shop_id {
            Some(shop_id) => (
                "s.shop_id = ? AND s.user_id = ?",
                vec![Bind::Int(shop_id), Bind::Int(self.user_id)],
            ),
            None => ("s.user_id = ?", vec![Bind::Int(self.user_id)]),
        };
        binds.extend([Bind::Int(self.after), Bind::Int(self.limit)]);
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM shipments s WHERE {scope} AND s.change_seq > ? \
             ORDER BY s.change_seq LIMIT ?"
        );
        (sql, binds)
    }
}
