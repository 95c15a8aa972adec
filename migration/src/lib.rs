//! The database migrations of Playground, for SQLite and PostgreSQL. Every
//! schema change is a new migration file; files are never edited once
//! released.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_run_cancel_requests;
mod m20261123_000003_shared_blobs;
mod m20261123_000004_audit_event_object_index;

/// Runs every migration in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_run_cancel_requests::Migration),
            Box::new(m20261123_000003_shared_blobs::Migration),
            Box::new(m20261123_000004_audit_event_object_index::Migration),
        ]
    }
}
