//! Keyset ("seek") pagination: the condition and the order that read a page of a list from a
//! row's position on, so that a page at any depth costs what the first one costs — an index
//! range read from the position, where OFFSET would read and drop every row before it.
//!
//! A list orders by an integer key (a timestamp in seconds) and its `id` as tie-breaker, or by
//! `id` alone. Rows keep their position when others are inserted or removed, so a walk sees
//! every row that existed when it started exactly once, whatever commits meanwhile.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StoreResult};

/// A row's place in its list: its ordering key (none when the list orders by `id` alone) and
/// its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub key: Option<i64>,
    pub id: i64,
}

/// Which way a page reads from its position: on in the list's order, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Forward,
    Backward,
}

/// One page of a walk: the rows strictly past `from` in `direction` (from the start of the
/// list when there is no position), up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seek {
    pub from: Option<Position>,
    pub direction: Direction,
    pub limit: i64,
}

/// A list's ordering as columns: an optional integer key, then the id, both ascending or both
/// descending, so that one index `(scope..., key, id)` serves either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub key: Option<&'static str>,
    pub id: &'static str,
    pub descending: bool,
}

impl Keyset {
    /// Whether `seek` reads the columns in descending order.
    fn reads_descending(self, seek: &Seek) -> bool {
        self.descending != (seek.direction == Direction::Backward)
    }

    /// `" AND ..."`, the rows past the position, and its binds in order; nothing for the start.
    ///
    /// With a key, the bound on the key alone comes first: it is what an index range can seek
    /// to on every backend, and the disjunction after it only drops the rows that share the
    /// position's key.
    pub fn condition(self, seek: &Seek) -> (String, Vec<i64>) {
        let Some(from) = seek.from else {
            return (String::new(), Vec::new());
        };
        let (past, from_on) = match self.reads_descending(seek) {
            true => ("<", "<="),
            false => (">", ">="),
        };
        let id = self.id;
        match (self.key, from.key) {
            (Some(key), Some(value)) => (
                format!(" AND {key} {from_on} ? AND ({key} {past} ? OR {id} {past} ?)"),
                vec![value, value, from.id],
            ),
            _ => (format!(" AND {id} {past} ?"), vec![from.id]),
        }
    }

    /// `ORDER BY`'s terms for `seek`: the list's order, reversed when reading back.
    pub fn order_by(self, seek: &Seek) -> String {
        let direction = match self.reads_descending(seek) {
            true => "DESC",
            false => "ASC",
        };
        match self.key {
            Some(key) => format!("{key} {direction}, {} {direction}", self.id),
            None => format!("{} {direction}", self.id),
        }
    }
}

/// A seek reads one row more than its page, to tell whether there is more beyond it.
pub fn read_limit(seek: &Seek) -> i64 {
    seek.limit.saturating_add(1)
}

/// One keyset page of `select` (a statement through its WHERE conditions, `scope` bound to its
/// placeholders) read in `order` from the seek's position, each row turned by `row`; and
/// whether more lie beyond it in the seek's direction.
pub async fn read_page<T>(
    db: &Db,
    select: &str,
    scope: &[i64],
    order: Keyset,
    seek: &Seek,
    row: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> StoreResult<(Vec<T>, bool)> {
    let (condition, binds) = order.condition(seek);
    let sql = format!(
        "{select}{condition} ORDER BY {} LIMIT ?",
        order.order_by(seek)
    );
    let query = scope
        .iter()
        .chain(&binds)
        .fold(db.query(&sql), |query, value| query.bind(*value));
    let rows = query.bind(read_limit(seek)).fetch_all(&db.pool).await?;
    let items = rows.iter().map(row).collect::<Result<_, _>>()?;
    Ok(page_of(items, seek))
}

/// One page by number of the rows `from` selects (a FROM clause through its WHERE conditions,
/// `scope` bound to its placeholders) in `order`, each turned by `row`, and how many rows it
/// selects in all: the page-number lists' read, whose OFFSET reads every row it skips.
#[expect(clippy::too_many_arguments, reason = "one read, named by its parts")]
pub async fn read_numbered_page<T>(
    db: &Db,
    columns: &str,
    from: &str,
    scope: &[i64],
    order: Keyset,
    limit: i64,
    offset: i64,
    row: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> StoreResult<(Vec<T>, i64)> {
    let bind_scope = |sql| {
        scope
            .iter()
            .fold(db.query(sql), |query, value| query.bind(*value))
    };
    let count_sql = format!("SELECT COUNT(*) FROM {from}");
    let count: i64 = bind_scope(&count_sql)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    let start = Seek {
        from: None,
        direction: Direction::Forward,
        limit,
    };
    let sql = format!(
        "SELECT {columns} FROM {from} ORDER BY {} LIMIT ? OFFSET ?",
        order.order_by(&start)
    );
    let rows = bind_scope(&sql)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await?;
    let items = rows.iter().map(row).collect::<Result<_, _>>()?;
    Ok((items, count))
}

/// The rows a seek read (up to [`read_limit`]), as a page in the list's order, and whether
/// more lie beyond it in the seek's direction.
pub fn page_of<T>(mut rows: Vec<T>, seek: &Seek) -> (Vec<T>, bool) {
    let limit = usize::try_from(seek.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    if seek.direction == Direction::Backward {
        rows.reverse();
    }
    (rows, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEWEST_FIRST: Keyset = Keyset {
        key: Some("d"),
        id: "id",
        descending: true,
    };

    fn seek(direction: Direction) -> Seek {
        Seek {
            from: Some(Position {
                key: Some(100),
                id: 7,
            }),
            direction,
            limit: 2,
        }
    }

    #[test]
    fn a_forward_seek_bounds_the_key_first_and_reads_in_the_lists_order() {
        let seek = seek(Direction::Forward);
        let (sql, binds) = NEWEST_FIRST.condition(&seek);
        assert_eq!(sql, " AND d <= ? AND (d < ? OR id < ?)");
        assert_eq!(binds, [100, 100, 7]);
        assert_eq!(NEWEST_FIRST.order_by(&seek), "d DESC, id DESC");
    }

    #[test]
    fn a_backward_seek_reads_the_other_way_and_its_page_is_turned_back() {
        let seek = seek(Direction::Backward);
        let (sql, _) = NEWEST_FIRST.condition(&seek);
        assert_eq!(sql, " AND d >= ? AND (d > ? OR id > ?)");
        assert_eq!(NEWEST_FIRST.order_by(&seek), "d ASC, id ASC");
        assert_eq!(page_of(vec![1, 2, 3], &seek), (vec![2, 1], true));
    }

    #[test]
    fn the_start_has_no_condition_and_an_id_list_seeks_on_the_id() {
        let by_id = Keyset {
            key: None,
            id: "r.id",
            descending: false,
        };
        let start = Seek {
            from: None,
            direction: Direction::Forward,
            limit: 5,
        };
        assert_eq!(by_id.condition(&start), (String::new(), Vec::new()));
        let from_3 = Seek {
            from: Some(Position { key: None, id: 3 }),
            ..start
        };
        assert_eq!(by_id.condition(&from_3), (" AND r.id > ?".into(), vec![3]));
        assert_eq!(page_of(vec![4, 5], &from_3), (vec![4, 5], false));
    }
}
