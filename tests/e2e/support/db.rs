//! The database a test runs against: a SQLite file in a fresh data directory, or a fresh
//! PostgreSQL database on the server named by `PLAYGROUND_TEST_POSTGRES_URL`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

use super::app::{TestApp, TestAppBuilder};

/// The PostgreSQL server used by the `postgres` variant of every test (an URL whose database
/// may be used to create and drop databases). Unset: those variants are skipped.
pub const POSTGRES_URL_ENV: &str = "PLAYGROUND_TEST_POSTGRES_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A data directory plus the database the server uses (its SQLite file, or a PostgreSQL
/// database created for this test alone).
pub struct TestDb {
    backend: Backend,
    data_dir: Arc<TempDir>,
    database_url: Option<String>,
}

impl TestDb {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// `--data-dir DIR [--database-url URL]`, as every subcommand that opens the database takes.
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.data_dir().display().to_string(),
        ];
        if let Some(database_url) = &self.database_url {
            args.push("--database-url".to_owned());
            args.push(database_url.clone());
        }
        args
    }

    /// Starts a server on this database; several may be started one after the other.
    pub async fn start(&self, builder: TestAppBuilder) -> TestApp {
        TestApp::start(builder, self.data_dir.clone(), self.database_url.clone()).await
    }

    /// Starts another server on this database with a data directory of its own, as a
    /// second replica on another machine would have (PostgreSQL only).
    pub async fn start_with_own_data_dir(&self, builder: TestAppBuilder) -> TestApp {
        let data_dir = tempfile::Builder::new()
            .prefix("playground-e2e-replica-")
            .tempdir()
            .expect("create a data directory");
        TestApp::start(builder, Arc::new(data_dir), self.database_url.clone()).await
    }

    /// The `playground` binary with a clean environment that points at this database through
    /// `PLAYGROUND_DATA_DIR` / `DATABASE_URL`; the caller adds the subcommand.
    pub fn command(&self) -> tokio::process::Command {
        let mut command = TestApp::bare_command();
        command.env("PLAYGROUND_DATA_DIR", self.data_dir());
        if let Some(database_url) = &self.database_url {
            command.env("DATABASE_URL", database_url);
        }
        command
    }

    /// A direct connection to the server's database, for what the API cannot do (moving a
    /// token's expiry into the past) or should not show (how a secret is stored).
    pub async fn connect(&self) -> DatabaseConnection {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rw",
                self.data_dir().join("playground.db").display()
            ),
        };
        Database::connect(url)
            .await
            .unwrap_or_else(|err| panic!("cannot open the test database directly: {err}"))
    }
}

/// Creates the data directory (and for PostgreSQL the database), runs `test`, then drops the
/// database even when the test panicked. The PostgreSQL variant is skipped when
/// `PLAYGROUND_TEST_POSTGRES_URL` is unset, and fails when it is set but unusable.
pub async fn run_db_test<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let postgres = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match std::env::var(POSTGRES_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Some(PgDatabase::create(url.trim()).await),
            _ => {
                println!(
                    "skipped: {POSTGRES_URL_ENV} is not set, so the PostgreSQL variant of this test does not run"
                );
                return;
            }
        },
    };
    let data_dir = tempfile::Builder::new()
        .prefix("playground-e2e-")
        .tempdir()
        .expect("create a temporary data directory");
    let test_db = TestDb {
        backend,
        data_dir: Arc::new(data_dir),
        database_url: postgres.as_ref().map(|pg| pg.url.clone()),
    };
    let outcome = AssertUnwindSafe(test(test_db)).catch_unwind().await;
    if let Some(pg) = postgres {
        pg.drop_best_effort().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A database created on the test PostgreSQL server for one test.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("pgtest_{}", uuid::Uuid::new_v4().simple());
        let admin = connect_admin(admin_url).await.unwrap_or_else(|err| {
            panic!(
                "{POSTGRES_URL_ENV} is set ({admin_url}) but PostgreSQL cannot be reached: {err}. \
                 Start PostgreSQL (see .ci/run) or unset {POSTGRES_URL_ENV} to skip the PostgreSQL tests."
            )
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|err| panic!("cannot create the test database {name}: {err}"));
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(admin_url)
            .unwrap_or_else(|err| panic!("{POSTGRES_URL_ENV} is not an URL: {err}"));
        url.set_path(&format!("/{name}"));
        PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    async fn drop_best_effort(self) {
        let Ok(admin) = connect_admin(&self.admin_url).await else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(err) = admin.execute_unprepared(&sql).await {
            eprintln!("could not drop the test database {}: {err}", self.name);
        }
        let _ = admin.close().await;
    }
}

async fn connect_admin(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Drops the test's PostgreSQL database while the server runs, so that it loses its database.
pub async fn terminate_postgres_database(test_db: &TestDb) {
    let database_url = test_db
        .database_url
        .as_deref()
        .expect("only a PostgreSQL test database can be terminated");
    let admin_url = std::env::var(POSTGRES_URL_ENV).expect("PostgreSQL test without its URL");
    let name = reqwest::Url::parse(database_url)
        .expect("database URL")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = connect_admin(admin_url.trim())
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .expect("drop the server's database");
    let _ = admin.close().await;
}
