//! The queue's statements: claiming QUEUED runs atomically with a lease
//! (SQLite: one UPDATE; PostgreSQL: `FOR UPDATE SKIP LOCKED`), renewing
//! leases, taking over expired ones, and recording status transitions only
//! while this server holds the lease.

use chrono::{DateTime, Utc};
use playground_entities::{EnvironmentStatus, ExecutorKind, RunStatus, environments, runs};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::db::is_postgres;

pub const ACTIVE: [RunStatus; 2] = [RunStatus::Starting, RunStatus::Running];

/// Claims up to `n` QUEUED runs of `kind` whose environment can take runs,
/// moving them to STARTING under a lease held by `owner`.
pub async fn claim(
    db: &DatabaseConnection,
    kind: ExecutorKind,
    n: u64,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Vec<runs::Model>, DbErr> {
    let mut candidates = Query::select();
    candidates
        .column((runs::Entity, runs::Column::Id))
        .from(runs::Entity)
        .inner_join(
            environments::Entity,
            Expr::col((environments::Entity, environments::Column::Id))
                .equals((runs::Entity, runs::Column::EnvironmentId)),
        )
        .and_where(Expr::col((runs::Entity, runs::Column::Status)).eq(RunStatus::Queued))
        .and_where(Expr::col((environments::Entity, environments::Column::Executor)).eq(kind))
        .and_where(
            Expr::col((environments::Entity, environments::Column::Status))
                .is_in([EnvironmentStatus::Ready, EnvironmentStatus::Running]),
        )
        .and_where(Expr::col((environments::Entity, environments::Column::DeletedAt)).is_null())
        .order_by((runs::Entity, runs::Column::QueuedAt), Order::Asc)
        .order_by((runs::Entity, runs::Column::Id), Order::Asc)
        .limit(n);
    if is_postgres(db) {
        candidates.lock_with_tables_behavior(
            LockType::Update,
            [runs::Entity],
            LockBehavior::SkipLocked,
        );
        return claim_postgres(db, &candidates, owner, lease_until).await;
    }
    let now = Utc::now();
    runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(RunStatus::Starting))
        .col_expr(runs::Column::LeaseOwner, Expr::value(owner))
        .col_expr(runs::Column::LeaseExpiresAt, Expr::value(lease_until))
        .col_expr(runs::Column::UpdatedAt, Expr::value(now))
        .filter(runs::Column::Id.in_subquery(candidates.to_owned()))
        .filter(runs::Column::Status.eq(RunStatus::Queued))
        .exec_with_returning(db)
        .await
}

/// PostgreSQL: the candidates are locked in a materialized CTE, evaluated
/// exactly once. (As an `IN (subquery)`, the planner may scan the locking
/// subquery again, and `SKIP LOCKED` then yields rows past its `LIMIT`:
/// more runs claimed than slots.)
async fn claim_postgres(
    db: &DatabaseConnection,
    candidates: &sea_orm::sea_query::SelectStatement,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Vec<runs::Model>, DbErr> {
    let (picked, values) = candidates.build(sea_orm::sea_query::PostgresQueryBuilder);
    let mut values = values.0;
    let first = values.len() + 1;
    values.extend([
        sea_orm::Value::from(RunStatus::Starting),
        sea_orm::Value::from(owner.to_owned()),
        sea_orm::Value::from(lease_until),
        sea_orm::Value::from(Utc::now()),
        sea_orm::Value::from(RunStatus::Queued),
    ]);
    let [status, lease_owner, lease_expires_at, updated_at, queued] =
        std::array::from_fn(|i| format!("${}", first + i));
    let sql = format!(
        r#"WITH "picked" AS MATERIALIZED ({picked}) UPDATE "runs" SET "status" = {status}, "lease_owner" = {lease_owner}, "lease_expires_at" = {lease_expires_at}, "updated_at" = {updated_at} FROM "picked" WHERE "runs"."id" = "picked"."id" AND "runs"."status" = {queued} RETURNING "runs".*"#
    );
    runs::Entity::find()
        .from_raw_sql(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .all(db)
        .await
}

/// Claims one QUEUED run by id (a run `createRun` has just queued and may
/// start at once); `None` when it is no longer QUEUED or its environment no
/// longer takes runs.
pub async fn claim_one(
    db: &DatabaseConnection,
    run_id: Uuid,
    owner: &str,
    lease_until: DateTime<Utc>,
) -> Result<Option<runs::Model>, DbErr> {
    let mut taking_runs = Query::select();
    taking_runs
        .column(environments::Column::Id)
        .from(environments::Entity)
        .and_where(
            Expr::col(environments::Column::Status)
                .is_in([EnvironmentStatus::Ready, EnvironmentStatus::Running]),
        )
        .and_where(Expr::col(environments::Column::DeletedAt).is_null());
    let rows = runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(RunStatus::Starting))
        .col_expr(runs::Column::LeaseOwner, Expr::value(owner))
        .col_expr(runs::Column::LeaseExpiresAt, Expr::value(lease_until))
        .col_expr(runs::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(runs::Column::Id.eq(run_id))
        .filter(runs::Column::Status.eq(RunStatus::Queued))
        .filter(runs::Column::EnvironmentId.in_subquery(taking_runs))
        .exec_with_returning(db)
        .await?;
    Ok(rows.into_iter().next())
}

/// Renews the leases of the given runs `owner` holds; returns the ids it
/// still held (a run missing from them was taken over by another server).
pub async fn renew(
    db: &DatabaseConnection,
    owner: &str,
    run_ids: &[Uuid],
    lease_until: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut renewed = Vec::with_capacity(run_ids.len());
    for chunk in run_ids.chunks(500) {
        let rows = runs::Entity::update_many()
            .col_expr(runs::Column::LeaseExpiresAt, Expr::value(lease_until))
            .filter(runs::Column::LeaseOwner.eq(owner))
            .filter(runs::Column::Status.is_in(ACTIVE))
            .filter(runs::Column::Id.is_in(chunk.iter().copied()))
            .exec_with_returning(db)
            .await?;
        renewed.extend(rows.into_iter().map(|r| r.id));
    }
    Ok(renewed)
}

/// Puts a STARTING run this server holds back in the queue (its engine
/// could not be reached); `None` when it no longer held it.
pub async fn requeue(
    db: &DatabaseConnection,
    run_id: Uuid,
    owner: &str,
) -> Result<Option<runs::Model>, DbErr> {
    let rows = runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(RunStatus::Queued))
        .col_expr(
            runs::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            runs::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(runs::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(runs::Column::Id.eq(run_id))
        .filter(runs::Column::Status.eq(RunStatus::Starting))
        .filter(runs::Column::LeaseOwner.eq(owner))
        .exec_with_returning(db)
        .await?;
    Ok(rows.into_iter().next())
}

/// Which of `run_ids` are active under another server's lease.
pub async fn taken_by_others(
    db: &DatabaseConnection,
    owner: &str,
    run_ids: &[Uuid],
) -> Result<Vec<Uuid>, DbErr> {
    let mut taken = Vec::new();
    for chunk in run_ids.chunks(500) {
        let rows = runs::Entity::find()
            .filter(runs::Column::Id.is_in(chunk.iter().copied()))
            .filter(runs::Column::Status.is_in(ACTIVE))
            .filter(runs::Column::LeaseOwner.ne(owner))
            .all(db)
            .await?;
        taken.extend(rows.into_iter().map(|r| r.id));
    }
    Ok(taken)
}

/// Which active runs are orphans: their lease expired (and it is not
/// ours), or an earlier process of this server (`stable_prefix`, another
/// boot) held them.
fn orphaned(owner: &str, stable_prefix: &str) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(
            sea_orm::Condition::all()
                .add(runs::Column::LeaseExpiresAt.lt(Utc::now()))
                .add(runs::Column::LeaseOwner.ne(owner)),
        )
        .add(runs::Column::LeaseOwner.is_null())
        .add(
            sea_orm::Condition::all()
                .add(runs::Column::LeaseOwner.starts_with(stable_prefix))
                .add(runs::Column::LeaseOwner.ne(owner)),
        )
}

/// Active runs whose server is gone.
pub async fn orphans(
    db: &DatabaseConnection,
    owner: &str,
    stable_prefix: &str,
) -> Result<Vec<runs::Model>, DbErr> {
    runs::Entity::find()
        .filter(runs::Column::Status.is_in(ACTIVE))
        .filter(orphaned(owner, stable_prefix))
        .all(db)
        .await
}

/// Takes over an orphaned run's lease if it is still orphaned and no other
/// server took it first.
pub async fn take_over(
    db: &DatabaseConnection,
    run: &runs::Model,
    owner: &str,
    stable_prefix: &str,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut update = runs::Entity::update_many()
        .col_expr(runs::Column::LeaseOwner, Expr::value(owner))
        .col_expr(runs::Column::LeaseExpiresAt, Expr::value(lease_until))
        .filter(runs::Column::Id.eq(run.id))
        .filter(runs::Column::Status.is_in(ACTIVE))
        .filter(orphaned(owner, stable_prefix));
    update = match &run.lease_owner {
        Some(previous) => update.filter(runs::Column::LeaseOwner.eq(previous.clone())),
        None => update.filter(runs::Column::LeaseOwner.is_null()),
    };
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// STARTING → RUNNING for runs that share an executor reference (usually
/// none), if this server still holds them; returns the rows it moved.
pub async fn mark_running(
    db: &impl ConnectionTrait,
    run_ids: &[Uuid],
    owner: &str,
    executor_ref: Option<String>,
) -> Result<Vec<runs::Model>, DbErr> {
    let now = Utc::now();
    runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(RunStatus::Running))
        .col_expr(runs::Column::StartedAt, Expr::value(Some(now)))
        .col_expr(runs::Column::ExecutorRef, Expr::value(executor_ref))
        .col_expr(runs::Column::UpdatedAt, Expr::value(now))
        .filter(runs::Column::Id.is_in(run_ids.iter().copied()))
        .filter(runs::Column::Status.eq(RunStatus::Starting))
        .filter(runs::Column::LeaseOwner.eq(owner))
        .exec_with_returning(db)
        .await
}

/// Records one terminal status for runs this server still holds; returns
/// the rows it finished.
pub async fn finish(
    db: &impl ConnectionTrait,
    run_ids: &[Uuid],
    owner: &str,
    status: RunStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
) -> Result<Vec<runs::Model>, DbErr> {
    let now = Utc::now();
    runs::Entity::update_many()
        .col_expr(runs::Column::Status, Expr::value(status))
        .col_expr(runs::Column::ExitCode, Expr::value(exit_code))
        .col_expr(runs::Column::FailureReason, Expr::value(reason))
        .col_expr(runs::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(runs::Column::UpdatedAt, Expr::value(now))
        .col_expr(runs::Column::LeaseOwner, Expr::value(None::<String>))
        .col_expr(
            runs::Column::LeaseExpiresAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(runs::Column::Id.is_in(run_ids.iter().copied()))
        .filter(runs::Column::Status.is_in(ACTIVE))
        .filter(runs::Column::LeaseOwner.eq(owner))
        .exec_with_returning(db)
        .await
}

/// Cancel requests recorded for runs `owner` holds.
pub async fn cancel_requests(
    db: &DatabaseConnection,
    owner: &str,
) -> Result<Vec<(Uuid, String)>, DbErr> {
    Ok(runs::Entity::find()
        .filter(runs::Column::LeaseOwner.eq(owner))
        .filter(runs::Column::Status.is_in(ACTIVE))
        .filter(runs::Column::CancelReason.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| r.cancel_reason.map(|reason| (r.id, reason)))
        .collect())
}
