//! The application state every request and background task shares: the
//! database, the executor registry, the authorizer, the blob store and the
//! event hub, built once at start-up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use playground_executors::Registry;
use playground_policies::Authorizer;
use sea_orm::DatabaseConnection;

use crate::auth::{Authenticator, load_or_create_secret};
use crate::blobs::BlobStore;
use crate::config::ServeConfig;
use crate::events::Hub;
use crate::limits::{LoginLimiter, SubscriptionSlots};
use crate::runner::Scheduler;
use crate::runner::logs::LogWriter;
use crate::runner::notify::Notifier;
use crate::services::credentials::Vault;

/// Everything a request needs.
pub struct App {
    /// Writes (and reads that must follow them in one transaction).
    pub db: DatabaseConnection,
    /// Reads: read-only connections beside the writer on SQLite, the same
    /// pool on PostgreSQL.
    pub read: DatabaseConnection,
    pub config: ServeConfig,
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    pub registry: Registry,
    pub blobs: BlobStore,
    pub hub: Arc<Hub>,
    /// Files of program versions already read (they never change).
    pub version_cache: crate::services::programs::VersionCache,
    /// Claims and supervises runs.
    pub scheduler: Scheduler,
    /// Encrypts credential values at rest.
    pub vault: Vault,
    /// Stores audit rows in batches.
    pub audit: crate::services::audit::AuditWriter,
    /// The grants table in memory (only with SQLite).
    pub grants: crate::authz::GrantCache,
    /// Failed logins per account and address (in memory, per process).
    pub login_limiter: LoginLimiter,
    /// Open subscriptions per user (in memory, per process).
    pub subscriptions: SubscriptionSlots,
}

pub type AppState = Arc<App>;

impl App {
    /// Builds the state for an opened, migrated database.
    pub async fn build(config: ServeConfig, db: DatabaseConnection) -> anyhow::Result<AppState> {
        let data_dir = &config.database.data_dir;
        let secret = match &config.auth.jwt_secret {
            Some(secret) if !secret.is_empty() => secret.as_bytes().to_vec(),
            _ => load_or_create_secret(&data_dir.join("jwt-secret"))?,
        };
        let authenticator =
            Authenticator::new(&secret, Duration::from_secs(config.auth.jwt_expiry_seconds));
        let authorizer = Authorizer::load_default()
            .await
            .context("loading the authorization policy")?;
        let shared_blobs = crate::db::is_postgres(&db).then(|| db.clone());
        let blobs = BlobStore::open(data_dir.join("blobs"), shared_blobs)
            .with_context(|| format!("opening the blob store in {}", data_dir.display()))?;
        let vault_key = match &config.auth.secret_key {
            Some(key) if !key.is_empty() => key.as_bytes().to_vec(),
            _ => load_or_create_secret(&data_dir.join("secret-key"))?,
        };
        let stable_id =
            String::from_utf8_lossy(&load_or_create_secret(&data_dir.join("instance-id"))?)
                .chars()
                .take(12)
                .collect::<String>();
        let hub = Arc::new(Hub::default());
        let notifier = if crate::db::is_postgres(&db) {
            Notifier::postgres(db.clone(), &stable_id)
        } else {
            Notifier::disabled()
        };
        let writer = LogWriter::spawn(db.clone(), hub.clone(), notifier.clone());
        let scheduler = Scheduler::new(
            config.scheduler.clone(),
            &stable_id,
            writer,
            notifier,
            db.clone(),
        );
        let registry = crate::plugins::registry(&config, &stable_id)?;
        let read = crate::db::readers(&config.database, &db).await?;
        crate::db::checkpoints(&config.database, &db).await?;
        // With PostgreSQL other servers change grants too: no cache.
        let grants = crate::authz::GrantCache::new();
        if !crate::db::is_postgres(&db) {
            grants
                .preload(&read)
                .await
                .context("loading the grants into memory")?;
        }
        let login_limiter = LoginLimiter::new(
            config.hardening.login_max_failures_per_account,
            config.hardening.login_max_failures_per_address,
            Duration::from_secs(config.hardening.login_window_seconds),
        );
        Ok(Arc::new(App {
            vault: Vault::new(&vault_key),
            grants,
            audit: crate::services::audit::AuditWriter::spawn(db.clone()),
            login_limiter,
            subscriptions: SubscriptionSlots::default(),
            db,
            read,
            config,
            authenticator,
            authorizer,
            registry,
            blobs,
            hub,
            scheduler,
            version_cache: Default::default(),
        }))
    }
}
