//! A fresh database per test, dropped again when the test ends, also when it panics half-way
//! (`.ci/run` still sweeps what a killed test process left behind).

use std::io::Write;

use super::{Backend, say_skipped, unique_name};

/// A database that lives as long as the test's apps on it.
pub(super) enum TestDatabase {
    Sqlite(
        #[expect(dead_code, reason = "held so the directory lives as long as the app")]
        tempfile::TempDir,
    ),
    Server {
        backend: Backend,
        admin_url: String,
        name: String,
    },
}

/// The URL of database `name` on the server of `base`.
fn with_database(base: &str, name: &str) -> String {
    let mut url = url::Url::parse(base).expect("a valid test database URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn admin_connect(admin_url: &str) -> Result<sqlx::AnyConnection, String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(admin_url)
        .await
        .map_err(|e| format!("the test database server at {admin_url} does not answer: {e}"))
}

async fn admin_execute(conn: &mut sqlx::AnyConnection, sql: String) -> Result<(), String> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| format!("{sql}: {e}"))
}

impl TestDatabase {
    /// A fresh database and its URL; `None` (and a note) when the backend's URL is not set.
    pub(super) async fn create(backend: Backend) -> Option<(TestDatabase, String)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("simba.db").display()
                );
                Some((TestDatabase::Sqlite(dir), url))
            }
            Backend::Postgres | Backend::Mysql => {
                let var = backend.env_var().unwrap();
                let Some(admin_url) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
                    say_skipped(backend, var);
                    return None;
                };
                let name = unique_name();
                let mut conn = admin_connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                admin_execute(&mut conn, format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let url = with_database(&admin_url, &name);
                let db = TestDatabase::Server {
                    backend,
                    admin_url,
                    name,
                };
                Some((db, url))
            }
        }
    }
}

/// Drops database `name`, first ending the connections still on it: PostgreSQL refuses to drop
/// a database anyone is connected to, and a connection left inside a transaction (a step of a
/// test that panicked) would hold MariaDB's DROP for its lock wait timeout, a year by default.
async fn drop_server_database(backend: Backend, admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = admin_connect(admin_url).await?;
    if backend == Backend::Mysql {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ?",
        )
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("listing the connections to {name}: {e}"))?;
        for id in ids {
            // A connection that closed meanwhile cannot be killed, and need not be.
            admin_execute(&mut conn, format!("KILL CONNECTION {id}"))
                .await
                .ok();
        }
    }
    let sql = match backend {
        Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        _ => format!("DROP DATABASE IF EXISTS {name}"),
    };
    admin_execute(&mut conn, sql).await
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let TestDatabase::Server {
            backend,
            admin_url,
            name,
        } = self
        else {
            return;
        };
        // Drop cannot await, and blocking on the test's own runtime would deadlock a
        // current-thread one: a thread with a runtime of its own drops the database.
        let dropped = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?
                        .block_on(drop_server_database(*backend, admin_url, name))
                })
                .join()
                .unwrap_or_else(|_| Err("the thread dropping it panicked".into()))
        });
        if let Err(e) = dropped {
            // A second panic while the test's own unwinds would abort the whole test binary.
            if std::thread::panicking() {
                let _ = writeln!(std::io::stderr(), "test database {name} left behind: {e}");
            } else {
                panic!("dropping test database {name}: {e}");
            }
        }
    }
}
