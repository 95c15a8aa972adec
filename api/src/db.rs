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
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous,
};
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
                // The server checkpoints beside the writer (`checkpoints`);
                // the writer does so itself only if that falls far behind.
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
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

/// Pages of write-ahead log (about 40 MB) past which the writer
/// checkpoints in its own commit, in case the checkpoint connection cannot.
const WRITER_CHECKPOINT_PAGES: &str = "10000";

/// How often the WAL is copied back into the database file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(200);

/// SQLite: copies the write-ahead log back into the database file from a
/// connection of its own, every [`CHECKPOINT_PERIOD`]. By default SQLite
/// does this inside the commit that makes the log pass 1,000 pages, on the
/// writer, where every other write waits for it (about a quarter of the
/// writer's time while a run streams lines); the writer now does it only
/// past [`WRITER_CHECKPOINT_PAGES`]. A passive checkpoint runs
/// beside the writer and the readers and never blocks them; the log then
/// starts over at the next write. Nothing to do for PostgreSQL.
pub async fn checkpoints(config: &DatabaseConfig, db: &DatabaseConnection) -> anyhow::Result<()> {
    if is_postgres(db) {
        return Ok(());
    }
    let url = config.url();
    let mut connection = Some(checkpoint_connection(&url).await?);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(CHECKPOINT_PERIOD).await;
            let result = match connection.as_mut() {
                Some(connection) => sea_orm::sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(connection)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from),
                None => checkpoint_connection(&url).await.map(|opened| {
                    connection = Some(opened);
                }),
            };
            match result {
                Ok(()) => failing = false,
                Err(error) => {
                    // Opened again at the next period; said once per spell
                    // of failures, not every period.
                    connection = None;
                    if !failing {
                        failing = true;
                        tracing::warn!(%error, "checkpointing the database's log failed");
                    }
                }
            }
        }
    });
    Ok(())
}

async fn checkpoint_connection(url: &str) -> anyhow::Result<SqliteConnection> {
    let options: SqliteConnectOptions = url
        .parse()
        .with_context(|| format!("cannot open the database at {}", redact(url)))?;
    options
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot open the database at {}", redact(url)))
}

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
    use super::*;

    /// Writes `n` pages' worth of rows to the table `t`, in one transaction.
    async fn write(db: &DatabaseConnection, n: usize) {
        let txn = db.begin().await.unwrap();
        for _ in 0..n {
            txn.execute_unprepared("INSERT INTO t (v) VALUES (randomblob(4000))")
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            data_dir: dir.path().to_owned(),
            database_url: None,
        };
        let db = connect(&config).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (v BLOB)")
            .await
            .unwrap();
        let wal = dir.path().join("playground.db-wal");
        let wal_size = || std::fs::metadata(&wal).unwrap().len();

        // The writer does not checkpoint: the log only grows.
        write(&db, 500).await;
        write(&db, 500).await;
        tokio::time::sleep(CHECKPOINT_PERIOD * 3).await;
        let unchecked = wal_size();
        assert!(
            unchecked > 4_000_000,
            "the log holds both writes: {unchecked} bytes"
        );

        // With the checkpointer, the log starts over once it has been copied
        // into the database file, so it stops growing.
        checkpoints(&config, &db).await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(CHECKPOINT_PERIOD * 3).await;
            write(&db, 500).await;
        }
        assert_eq!(wal_size(), unchecked, "the log was reused, not grown");
        let rows = db
            .query_one_raw(sea_orm::Statement::from_string(
                DatabaseBackend::Sqlite,
                "SELECT COUNT(*) AS n FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 3000);
    }

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
