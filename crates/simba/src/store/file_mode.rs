//! The SQLite database holds buyers' personal data, so its file and the `-wal` and `-shm` files
//! beside it are readable by their owner only (mode 0600).
//!
//! SQLite creates the `-wal` and `-shm` files with the permissions of the database file (its
//! unix VFS copies the database's mode; the test `the_sqlite_database_and_its_wal_and_shm_are_private`
//! checks it), so a database file created 0600 before SQLite opens it keeps all three private,
//! whatever the umask. A file found readable by others at start is tightened, with a warning.

use std::path::Path;
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// Creates the database file `url` names with mode 0600 if the URL lets SQLite create it and
/// it is missing, and takes group and world permissions off it and its `-wal` and `-shm`.
/// Nothing to do for an in-memory database.
pub(super) fn make_private(url: &str) -> std::io::Result<()> {
    let Some(path) = super::sqlite::reader::file_path(url) else {
        return Ok(());
    };
    if creates_if_missing(url) {
        create_private(&path)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        tighten(Path::new(&file))?;
    }
    Ok(())
}

/// Whether sqlx would create the file (`mode=rwc`), read as sqlx reads the URL.
fn creates_if_missing(url: &str) -> bool {
    SqliteConnectOptions::from_str(url).is_ok_and(|options| {
        options
            .to_url_lossy()
            .query_pairs()
            .any(|(key, value)| key == "mode" && value == "rwc")
    })
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // An empty file is a new database to SQLite.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn tighten(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the SQLite database holds buyers' personal data but other users could read it; \
             made it readable by its owner only (0600)"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mode_rwc_lets_sqlite_create_the_file() {
        assert!(creates_if_missing("sqlite://simba.db?mode=rwc"));
        assert!(creates_if_missing(
            "sqlite:///var/lib/simba/simba.db?mode=rwc"
        ));
        assert!(!creates_if_missing("sqlite://simba.db"));
        assert!(!creates_if_missing("sqlite://simba.db?mode=rw"));
    }
}
