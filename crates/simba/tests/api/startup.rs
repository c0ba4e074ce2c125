//! Start-up checks on the embedded default: the generated key file, a wrong key, and the
//! database files' permissions.

use simba::app::AppState;
use simba::config::{Config, SecretKeySource};

#[tokio::test]
async fn without_secret_key_one_is_generated_beside_the_database_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("simba.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let key_file = dir.path().join("simba.db.secret_key");
    let config = || {
        let mut config = Config::for_tests(&url);
        config.secret_key = SecretKeySource::File(key_file.clone());
        config
    };
    let first = AppState::start(config()).await.unwrap();
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.len() >= 43);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    first.db.pool.close().await;
    let second = AppState::start(config()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    second.db.pool.close().await;
}

#[tokio::test]
async fn a_secret_key_that_cannot_decrypt_the_stored_secrets_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("simba.db").display()
    );
    let first = AppState::start(Config::for_tests(&url)).await.unwrap();
    first.db.pool.close().await;
    let mut config = Config::for_tests(&url);
    config.secret_key =
        SecretKeySource::Given("another-key-another-key-another-key-0".to_owned().into());
    let error = AppState::start(config).await.unwrap_err();
    assert!(
        error.to_string().contains("SECRET_KEY does not match"),
        "{error}"
    );
}

/// The permission bits of `path`, which must exist.
#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    metadata.permissions().mode() & 0o777
}

/// The database file and the `-wal` and `-shm` files SQLite keeps beside it.
#[cfg(unix)]
fn database_files(db_path: &std::path::Path) -> [std::path::PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut file = db_path.as_os_str().to_owned();
        file.push(suffix);
        file.into()
    })
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_wal_and_shm_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("simba.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let state = AppState::start(Config::for_tests(&url)).await.unwrap();
    sqlx::query("CREATE TABLE written_by_the_test (x INTEGER)")
        .execute(&state.db.pool)
        .await
        .unwrap();
    for file in database_files(&db_path) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    state.db.pool.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_database_others_can_read_is_made_private_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("simba.db");
    std::fs::write(&db_path, b"").unwrap();
    std::fs::set_permissions(&db_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let state = AppState::start(Config::for_tests(&url)).await.unwrap();
    for file in database_files(&db_path) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    state.db.pool.close().await;
}
