//! Start-up checks on the embedded default: the generated key file, and a wrong key.

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
