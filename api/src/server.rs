//! `playground serve`: open and migrate the database, create the first
//! admin, build the app, listen, and shut down gracefully on SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::ServeConfig;
use crate::runner::{self, Scheduler};
use crate::services::{environments, users};
use crate::{db, graphql, http};

/// How long open connections (subscriptions) may keep the process alive
/// after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let db = db::connect(&config.database).await?;
    db::migrate(&db).await?;
    match users::bootstrap_admin(
        &db,
        config.auth.admin_email.as_deref(),
        config.auth.admin_password.as_deref(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating the first admin: {}", e.message()))?
    {
        users::FirstStart::NotFirst => {}
        users::FirstStart::CreatedConfigured(email) => {
            tracing::info!(%email, "first start: created the configured admin account");
        }
        users::FirstStart::CreatedDefault { email, password } => {
            say(&format!(
                "First start: created admin account {email} with password {password}"
            ));
        }
    }

    let listen = config.listen;
    let app = App::build(config, db).await?;
    environments::resume_preparation(&app).await?;
    Scheduler::start(&app);
    if let Some(url) = app
        .config
        .database
        .database_url
        .clone()
        .filter(|_| db::is_postgres(&app.db))
    {
        let listener_app = app.clone();
        runner::notify::spawn_listener(
            url,
            app.scheduler
                .owner()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned(),
            app.hub.clone(),
            move |event| runner::on_remote_event(&listener_app, event),
        );
    }
    let schema = graphql::build_schema(app.clone());
    let router = http::router(app.clone(), schema)?;

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    say(&format!("Playground listening on http://{addr}"));
    tracing::info!(%addr, graphiql = %format!("http://{addr}/graphql"), "serving");

    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let drain_app = app.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new runs are claimed; running runs may finish");
        drain_app.scheduler.shutdown().await;
        let _ = stopped_tx.send(());
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = stopped_rx.await;
        tracing::info!("runs drained; open connections get {SHUTDOWN_GRACE:?}");
        tokio::spawn(async {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!("connections still open after the grace period; exiting");
            std::process::exit(0);
        });
    })
    .await?;
    app.db.clone().close().await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// A line for the person who started the server, on stdout.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
