//! Test harness: the `db_test!`/`e2e_test!` macros that run a test once per database, the
//! server under test (`TestApp`), and its HTTP, WebSocket and JWT helpers.

pub mod app;
pub mod db;
pub mod docker;
pub mod fixtures;
pub mod jwt;
pub mod wasm;
pub mod ws;

pub use app::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, TestAppBuilder, USER_PASSWORD};
pub use db::{Backend, TestDb, run_db_test};
pub use fixtures::*;
pub use serde_json::{Value, json};
pub use ws::{WsClient, WsEvent, WsProtocol};

use std::future::Future;

/// Runs `test` with a server started from `builder` on `db`. Exists so that the closures
/// written in `e2e_test!` get their argument type from this signature.
pub async fn run_app_test<F, Fut>(db: TestDb, builder: TestAppBuilder, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let app = db.start(builder).await;
    test(app).await;
    drop(db);
}

/// `db_test!(name, |db| async move { .. })`: a module `name` with the tests `sqlite` and
/// `postgres`, each handing the closure a fresh `TestDb` (data directory + database).
macro_rules! db_test {
    ($name:ident, $test:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::support::run_db_test($crate::support::Backend::Sqlite, $test).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::support::run_db_test($crate::support::Backend::Postgres, $test).await;
            }
        }
    };
}

/// `e2e_test!(name, [builder,] |app| async move { .. })`: like `db_test!`, but the closure gets
/// a running server (`TestApp`) started from `builder` (default: `TestApp::builder()`).
macro_rules! e2e_test {
    ($name:ident, $builder:expr, $test:expr) => {
        db_test!($name, |db| async move {
            $crate::support::run_app_test(db, $builder, $test).await
        });
    };
    ($name:ident, $test:expr) => {
        e2e_test!($name, $crate::support::TestApp::builder(), $test);
    };
}
