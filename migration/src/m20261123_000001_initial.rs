//! The initial schema: users, API tokens, programs and their immutable
//! versions and files, environments, runs and their log lines, grants,
//! credentials and audit events.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

// The trait's signature elides SchemaManager's lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            manager.create_table(table).await?;
        }
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Alias::new("audit_events"),
            Alias::new("credentials"),
            Alias::new("grants"),
            Alias::new("run_logs"),
            Alias::new("runs"),
            Alias::new("environments"),
            Alias::new("program_files"),
            Alias::new("program_versions"),
            Alias::new("program_tags"),
            Alias::new("programs"),
            Alias::new("api_tokens"),
            Alias::new("users"),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    Role,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Programs {
    Table,
    Id,
    OwnerId,
    Name,
    Description,
    Tags,
    Runtime,
    Entrypoint,
    CurrentVersion,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum ProgramTags {
    Table,
    ProgramId,
    Tag,
}

#[derive(DeriveIden)]
enum ProgramVersions {
    Table,
    Id,
    ProgramId,
    Version,
    Entrypoint,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProgramFiles {
    Table,
    VersionId,
    Path,
    Sha256,
    Size,
}

#[derive(DeriveIden)]
enum Environments {
    Table,
    Id,
    OwnerId,
    Name,
    Executor,
    Image,
    MemoryMb,
    CpuMillis,
    TimeoutSeconds,
    MaxLogBytes,
    Pids,
    Config,
    Status,
    StatusReason,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    ProgramId,
    ProgramVersion,
    EnvironmentId,
    OwnerId,
    Status,
    ExitCode,
    FailureReason,
    Args,
    Env,
    CredentialIds,
    Attempt,
    RetryOf,
    LeaseOwner,
    LeaseExpiresAt,
    ExecutorRef,
    QueuedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RunLogs {
    Table,
    RunId,
    Seq,
    Stream,
    Line,
    Timestamp,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    AssetId,
    UserId,
    AssetKind,
    Permission,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Credentials {
    Table,
    Id,
    OwnerId,
    Name,
    Nonce,
    Ciphertext,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    ActorId,
    ActorEmail,
    Action,
    Object,
    Outcome,
    ClientAddr,
}

fn fk(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(on_delete)
        .to_owned()
}

fn tables() -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table(Users::Table)
            .col(uuid(Users::Id).primary_key())
            .col(string_len_uniq(Users::Email, 320))
            .col(string(Users::DisplayName))
            .col(string_len(Users::Role, 16))
            .col(string(Users::PasswordHash))
            .col(timestamp_with_time_zone(Users::CreatedAt))
            .to_owned(),
        Table::create()
            .table(ApiTokens::Table)
            .col(uuid(ApiTokens::Id).primary_key())
            .col(uuid(ApiTokens::UserId))
            .col(string(ApiTokens::Name))
            .col(string_len_uniq(ApiTokens::Prefix, 32))
            .col(string_len(ApiTokens::TokenHash, 64))
            .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
            .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
            .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
            .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
            .foreign_key(&mut fk(
                ApiTokens::Table,
                ApiTokens::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(Programs::Table)
            .col(uuid(Programs::Id).primary_key())
            .col(uuid(Programs::OwnerId))
            .col(string(Programs::Name))
            .col(text(Programs::Description))
            .col(json(Programs::Tags))
            .col(string_len(Programs::Runtime, 16))
            .col(string(Programs::Entrypoint))
            .col(integer(Programs::CurrentVersion))
            .col(timestamp_with_time_zone(Programs::CreatedAt))
            .col(timestamp_with_time_zone(Programs::UpdatedAt))
            .col(timestamp_with_time_zone_null(Programs::DeletedAt))
            .foreign_key(&mut fk(
                Programs::Table,
                Programs::OwnerId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned(),
        Table::create()
            .table(ProgramTags::Table)
            .col(uuid(ProgramTags::ProgramId))
            .col(string(ProgramTags::Tag))
            .primary_key(
                Index::create()
                    .col(ProgramTags::ProgramId)
                    .col(ProgramTags::Tag),
            )
            .foreign_key(&mut fk(
                ProgramTags::Table,
                ProgramTags::ProgramId,
                Programs::Table,
                Programs::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(ProgramVersions::Table)
            .col(uuid(ProgramVersions::Id).primary_key())
            .col(uuid(ProgramVersions::ProgramId))
            .col(integer(ProgramVersions::Version))
            .col(string(ProgramVersions::Entrypoint))
            .col(timestamp_with_time_zone(ProgramVersions::CreatedAt))
            .foreign_key(&mut fk(
                ProgramVersions::Table,
                ProgramVersions::ProgramId,
                Programs::Table,
                Programs::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(ProgramFiles::Table)
            .col(uuid(ProgramFiles::VersionId))
            .col(string_len(ProgramFiles::Path, 1024))
            .col(string_len(ProgramFiles::Sha256, 64))
            .col(big_integer(ProgramFiles::Size))
            .primary_key(
                Index::create()
                    .col(ProgramFiles::VersionId)
                    .col(ProgramFiles::Path),
            )
            .foreign_key(&mut fk(
                ProgramFiles::Table,
                ProgramFiles::VersionId,
                ProgramVersions::Table,
                ProgramVersions::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(Environments::Table)
            .col(uuid(Environments::Id).primary_key())
            .col(uuid(Environments::OwnerId))
            .col(string(Environments::Name))
            .col(string_len(Environments::Executor, 16))
            .col(string_null(Environments::Image))
            .col(integer(Environments::MemoryMb))
            .col(integer(Environments::CpuMillis))
            .col(integer(Environments::TimeoutSeconds))
            .col(big_integer(Environments::MaxLogBytes))
            .col(integer(Environments::Pids))
            .col(json(Environments::Config))
            .col(string_len(Environments::Status, 16))
            .col(text_null(Environments::StatusReason))
            .col(timestamp_with_time_zone(Environments::CreatedAt))
            .col(timestamp_with_time_zone(Environments::UpdatedAt))
            .col(timestamp_with_time_zone_null(Environments::DeletedAt))
            .foreign_key(&mut fk(
                Environments::Table,
                Environments::OwnerId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned(),
        Table::create()
            .table(Runs::Table)
            .col(uuid(Runs::Id).primary_key())
            .col(uuid(Runs::ProgramId))
            .col(integer(Runs::ProgramVersion))
            .col(uuid(Runs::EnvironmentId))
            .col(uuid(Runs::OwnerId))
            .col(string_len(Runs::Status, 16))
            .col(integer_null(Runs::ExitCode))
            .col(text_null(Runs::FailureReason))
            .col(json(Runs::Args))
            .col(json(Runs::Env))
            .col(json(Runs::CredentialIds))
            .col(integer(Runs::Attempt))
            .col(uuid_null(Runs::RetryOf))
            .col(string_len_null(Runs::LeaseOwner, 64))
            .col(timestamp_with_time_zone_null(Runs::LeaseExpiresAt))
            .col(string_null(Runs::ExecutorRef))
            .col(timestamp_with_time_zone(Runs::QueuedAt))
            .col(timestamp_with_time_zone_null(Runs::StartedAt))
            .col(timestamp_with_time_zone_null(Runs::FinishedAt))
            .col(timestamp_with_time_zone(Runs::UpdatedAt))
            .foreign_key(&mut fk(
                Runs::Table,
                Runs::ProgramId,
                Programs::Table,
                Programs::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut fk(
                Runs::Table,
                Runs::EnvironmentId,
                Environments::Table,
                Environments::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut fk(
                Runs::Table,
                Runs::OwnerId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned(),
        Table::create()
            .table(RunLogs::Table)
            .col(uuid(RunLogs::RunId))
            .col(big_integer(RunLogs::Seq))
            .col(string_len(RunLogs::Stream, 8))
            .col(text(RunLogs::Line))
            .col(timestamp_with_time_zone(RunLogs::Timestamp))
            .primary_key(Index::create().col(RunLogs::RunId).col(RunLogs::Seq))
            .foreign_key(&mut fk(
                RunLogs::Table,
                RunLogs::RunId,
                Runs::Table,
                Runs::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(Grants::Table)
            .col(uuid(Grants::AssetId))
            .col(uuid(Grants::UserId))
            .col(string_len(Grants::AssetKind, 16))
            .col(small_integer(Grants::Permission))
            .col(timestamp_with_time_zone(Grants::CreatedAt))
            .primary_key(Index::create().col(Grants::AssetId).col(Grants::UserId))
            .foreign_key(&mut fk(
                Grants::Table,
                Grants::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(Credentials::Table)
            .col(uuid(Credentials::Id).primary_key())
            .col(uuid(Credentials::OwnerId))
            .col(string(Credentials::Name))
            .col(blob(Credentials::Nonce))
            .col(blob(Credentials::Ciphertext))
            .col(timestamp_with_time_zone(Credentials::CreatedAt))
            .foreign_key(&mut fk(
                Credentials::Table,
                Credentials::OwnerId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned(),
        Table::create()
            .table(AuditEvents::Table)
            .col(uuid(AuditEvents::Id).primary_key())
            .col(timestamp_with_time_zone(AuditEvents::At))
            .col(uuid_null(AuditEvents::ActorId))
            .col(string_null(AuditEvents::ActorEmail))
            .col(string_len(AuditEvents::Action, 64))
            .col(string_null(AuditEvents::Object))
            .col(string_len(AuditEvents::Outcome, 32))
            .col(string_null(AuditEvents::ClientAddr))
            .to_owned(),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("idx_api_tokens_user")
            .table(ApiTokens::Table)
            .col(ApiTokens::UserId)
            .to_owned(),
        Index::create()
            .name("idx_programs_owner")
            .table(Programs::Table)
            .col(Programs::OwnerId)
            .to_owned(),
        Index::create()
            .name("idx_program_tags_tag")
            .table(ProgramTags::Table)
            .col(ProgramTags::Tag)
            .col(ProgramTags::ProgramId)
            .to_owned(),
        Index::create()
            .name("idx_program_versions_program_version")
            .table(ProgramVersions::Table)
            .col(ProgramVersions::ProgramId)
            .col(ProgramVersions::Version)
            .unique()
            .to_owned(),
        Index::create()
            .name("idx_environments_owner")
            .table(Environments::Table)
            .col(Environments::OwnerId)
            .to_owned(),
        Index::create()
            .name("idx_runs_status_queued")
            .table(Runs::Table)
            .col(Runs::Status)
            .col(Runs::QueuedAt)
            .to_owned(),
        Index::create()
            .name("idx_runs_owner")
            .table(Runs::Table)
            .col(Runs::OwnerId)
            .to_owned(),
        Index::create()
            .name("idx_runs_program")
            .table(Runs::Table)
            .col(Runs::ProgramId)
            .to_owned(),
        Index::create()
            .name("idx_runs_environment")
            .table(Runs::Table)
            .col(Runs::EnvironmentId)
            .to_owned(),
        Index::create()
            .name("idx_runs_lease")
            .table(Runs::Table)
            .col(Runs::LeaseExpiresAt)
            .to_owned(),
        Index::create()
            .name("idx_grants_user_kind")
            .table(Grants::Table)
            .col(Grants::UserId)
            .col(Grants::AssetKind)
            .col(Grants::AssetId)
            .to_owned(),
        Index::create()
            .name("idx_credentials_owner_name")
            .table(Credentials::Table)
            .col(Credentials::OwnerId)
            .col(Credentials::Name)
            .unique()
            .to_owned(),
        Index::create()
            .name("idx_audit_events_at")
            .table(AuditEvents::Table)
            .col(AuditEvents::At)
            .to_owned(),
        Index::create()
            .name("idx_audit_events_actor")
            .table(AuditEvents::Table)
            .col(AuditEvents::ActorId)
            .to_owned(),
    ]
}
