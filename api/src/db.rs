//! Opening the database (SQLite in WAL mode with foreign keys and a busy
//! timeout, or PostgreSQL) and running the migrations.
//!
//! SQLite has one writer at a time, and a connection that finds the write
//! lock taken sleeps (1 ms, then longer) before it tries again. So writes go
//! through one connection, where they queue in the pool without sleeping,
//! and reads through a pool of read-only connections that never wait for a
//! writer (WAL). With PostgreSQL both are the same pool.

use std::time::Duration;

use anyhow::Context;
use playground_migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    TransactionTrait,
};

use crate::config::DatabaseConfig;

/// Connects to the configured database, creating the data directory (and
/// the SQLite file) when needed.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let url = config.url();
    let mut options = ConnectOptions::new(url.clone());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        options.max_connections(1).map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    } else {
        options.max_connections(32);
    }
    let db = Database::connect(options)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(&url)))?;
    Ok(db)
}

/// The connections for reading: for SQLite a pool of read-only
/// connections beside the writer; for PostgreSQL the same pool.
pub async fn readers(
    config: &DatabaseConfig,
    db: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    if is_postgres(db) {
        return Ok(db.clone());
    }
    let url = config.url();
    let mut options = ConnectOptions::new(url.clone());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .max_connections(READERS)
        .map_sqlx_sqlite_opts(|opts| opts.read_only(true).busy_timeout(Duration::from_secs(10)));
    Database::connect(options)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(&url)))
}

/// Read-only SQLite connections.
const READERS: u32 = 8;

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    // Replicas starting together migrate one after another: the first holds
    // a transaction-scoped advisory lock while it migrates, the others wait
    // for it and then find nothing left to do.
    let lock = if is_postgres(db) {
        let txn = db
            .begin()
            .await
            .context("locking the database for migration")?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7468221593117205)")
            .await
            .context("locking the database for migration")?;
        Some(txn)
    } else {
        None
    };
    Migrator::up(db, None)
        .await
        .context("database migration failed")?;
    if let Some(txn) = lock {
        txn.commit()
            .await
            .context("unlocking the database after migration")?;
    }
    Ok(())
}

/// Whether the database answers a trivial query (for `/readyz`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    let sql = "SELECT 1";
    db.execute_unprepared(sql).await.is_ok()
}

/// Whether this is a PostgreSQL connection (claims and notifications differ).
pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:****{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("postgres://user:secret@localhost/db"),
            "postgres://user:****@localhost/db"
        );
        assert_eq!(
            redact("sqlite://data/x.db?mode=rwc"),
            "sqlite://data/x.db?mode=rwc"
        );
    }
}
