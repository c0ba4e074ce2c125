//! Schema migrations, embedded in the binary. Each backend has its own SQL dialect of the same
//! schema version; sqlx's migrator records what ran and refuses edited history.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use super::{Backend, Db};

/// `(version, description, sqlite, postgres, mysql)` for every schema version, oldest first.
const MIGRATIONS: &[(i64, &str, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
        include_str!("../../migrations/mysql/0001_init.sql"),
    ),
    (
        2,
        "sync engine",
        include_str!("../../migrations/sqlite/0002_sync_engine.sql"),
        include_str!("../../migrations/postgres/0002_sync_engine.sql"),
        include_str!("../../migrations/mysql/0002_sync_engine.sql"),
    ),
    (
        3,
        "leases",
        include_str!("../../migrations/sqlite/0003_leases.sql"),
        include_str!("../../migrations/postgres/0003_leases.sql"),
        include_str!("../../migrations/mysql/0003_leases.sql"),
    ),
    (
        4,
        "dispatch",
        include_str!("../../migrations/sqlite/0004_dispatch.sql"),
        include_str!("../../migrations/postgres/0004_dispatch.sql"),
        include_str!("../../migrations/mysql/0004_dispatch.sql"),
    ),
    (
        5,
        "method indexes",
        include_str!("../../migrations/sqlite/0005_method_indexes.sql"),
        include_str!("../../migrations/postgres/0005_method_indexes.sql"),
        include_str!("../../migrations/mysql/0005_method_indexes.sql"),
    ),
    (
        6,
        "shipments version",
        include_str!("../../migrations/sqlite/0006_shipments_version.sql"),
        include_str!("../../migrations/postgres/0006_shipments_version.sql"),
        include_str!("../../migrations/mysql/0006_shipments_version.sql"),
    ),
    (
        7,
        "pending index",
        include_str!("../../migrations/sqlite/0007_pending_index.sql"),
        include_str!("../../migrations/postgres/0007_pending_index.sql"),
        include_str!("../../migrations/mysql/0007_pending_index.sql"),
    ),
    (
        8,
        "partial pending index",
        include_str!("../../migrations/sqlite/0008_partial_pending_index.sql"),
        include_str!("../../migrations/postgres/0008_partial_pending_index.sql"),
        include_str!("../../migrations/mysql/0008_partial_pending_index.sql"),
    ),
    (
        9,
        "tokens by secret",
        include_str!("../../migrations/sqlite/0009_tokens_by_secret.sql"),
        include_str!("../../migrations/postgres/0009_tokens_by_secret.sql"),
        include_str!("../../migrations/mysql/0009_tokens_by_secret.sql"),
    ),
    (
        10,
        "login failures and sessions",
        include_str!("../../migrations/sqlite/0010_login_failures_and_sessions.sql"),
        include_str!("../../migrations/postgres/0010_login_failures_and_sessions.sql"),
        include_str!("../../migrations/mysql/0010_login_failures_and_sessions.sql"),
    ),
    (
        11,
        "next sync",
        include_str!("../../migrations/sqlite/0011_next_sync.sql"),
        include_str!("../../migrations/postgres/0011_next_sync.sql"),
        include_str!("../../migrations/mysql/0011_next_sync.sql"),
    ),
    (
        12,
        "change feed",
        include_str!("../../migrations/sqlite/0012_change_feed.sql"),
        include_str!("../../migrations/postgres/0012_change_feed.sql"),
        include_str!("../../migrations/mysql/0012_change_feed.sql"),
    ),
    (
        13,
        "webhooks",
        include_str!("../../migrations/sqlite/0013_webhooks.sql"),
        include_str!("../../migrations/postgres/0013_webhooks.sql"),
        include_str!("../../migrations/mysql/0013_webhooks.sql"),
    ),
    (
        14,
        "keyset indexes",
        include_str!("../../migrations/sqlite/0014_keyset_indexes.sql"),
        include_str!("../../migrations/postgres/0014_keyset_indexes.sql"),
        include_str!("../../migrations/mysql/0014_keyset_indexes.sql"),
    ),
    (
        15,
        "buyer data protection",
        include_str!("../../migrations/sqlite/0015_buyer_data_protection.sql"),
        include_str!("../../migrations/postgres/0015_buyer_data_protection.sql"),
        include_str!("../../migrations/mysql/0015_buyer_data_protection.sql"),
    ),
    (
        16,
        "push notifications",
        include_str!("../../migrations/sqlite/0016_push.sql"),
        include_str!("../../migrations/postgres/0016_push.sql"),
        include_str!("../../migrations/mysql/0016_push.sql"),
    ),
    (
        17,
        "push reconciliation",
        include_str!("../../migrations/sqlite/0017_push_reconciliation.sql"),
        include_str!("../../migrations/postgres/0017_push_reconciliation.sql"),
        include_str!("../../migrations/mysql/0017_push_reconciliation.sql"),
    ),
    (
        18,
        "shipments epoch",
        include_str!("../../migrations/sqlite/0018_shipments_epoch.sql"),
        include_str!("../../migrations/postgres/0018_shipments_epoch.sql"),
        include_str!("../../migrations/mysql/0018_shipments_epoch.sql"),
    ),
    (
        19,
        "shop lookup indexes",
        include_str!("../../migrations/sqlite/0019_shop_lookup_indexes.sql"),
        include_str!("../../migrations/postgres/0019_shop_lookup_indexes.sql"),
        include_str!("../../migrations/mysql/0019_shop_lookup_indexes.sql"),
    ),
];

/// The SQLite schema's scripts, oldest first, for tests of rusqlite's statements.
#[cfg(test)]
pub(super) fn sqlite_scripts() -> impl Iterator<Item = &'static str> {
    MIGRATIONS.iter().map(|&(_, _, sqlite, _, _)| sqlite)
}

fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sqlite, postgres, mysql)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
                Backend::Mysql => mysql,
            };
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Brings the schema up to date; safe to run from several processes at once (the migrator
/// takes an advisory lock where the backend has one).
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    migrator(db.backend).run(&db.pool).await?;
    Ok(())
}
