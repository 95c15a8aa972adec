//! Sharing programs and environments: grants of VIEW ⊂ EXECUTE ⊂ EDIT ⊂
//! ADMIN to other users.

use chrono::Utc;
use playground_entities::{AssetKind, environments, grants, programs, users};
use playground_policies::{Action, Grant, Kind};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::authz::{self, grant_to_i16};
use crate::error::{ApiError, ApiResult};

/// Which asset an id names, and who owns it.
async fn asset(app: &App, id: Uuid) -> ApiResult<(AssetKind, Uuid)> {
    if let Some(program) = programs::Entity::find_by_id(id)
        .filter(programs::Column::DeletedAt.is_null())
        .one(&app.read)
        .await?
    {
        return Ok((AssetKind::Program, program.owner_id));
    }
    if let Some(environment) = environments::Entity::find_by_id(id)
        .filter(environments::Column::DeletedAt.is_null())
        .one(&app.read)
        .await?
    {
        return Ok((AssetKind::Environment, environment.owner_id));
    }
    Err(ApiError::NotFound(
        "no program or environment with that id is visible to you".to_owned(),
    ))
}

fn kind_of(asset_kind: AssetKind) -> Kind {
    match asset_kind {
        AssetKind::Program => Kind::Program,
        AssetKind::Environment => Kind::Environment,
    }
}

async fn grantee(app: &App, email: &str) -> ApiResult<users::Model> {
    let email = crate::validation::no_nul("userEmail", email)?
        .trim()
        .to_lowercase();
    users::Entity::find()
        .filter(users::Column::Email.eq(&email))
        .one(&app.read)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no user with email {email}: ask an admin to create the account first"
            ))
        })
}

/// Grants `permission` on an asset to the user with `email`, replacing an
/// earlier grant.
pub async fn share(
    app: &App,
    principal: &Principal,
    asset_id: Uuid,
    email: &str,
    permission: Grant,
) -> ApiResult<bool> {
    let (asset_kind, owner_id) = asset(app, asset_id).await?;
    let grant = authz::effective_grant(app, principal, asset_id).await?;
    authz::check(app, principal, kind_of(asset_kind), Action::Share, grant)?;
    let user = grantee(app, email).await?;
    if user.id == owner_id {
        return Err(ApiError::conflict(
            "that user owns the asset and always holds ADMIN on it",
        ));
    }
    grants::Entity::insert(grants::ActiveModel {
        asset_id: Set(asset_id),
        user_id: Set(user.id),
        asset_kind: Set(asset_kind),
        permission: Set(grant_to_i16(permission)),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([grants::Column::AssetId, grants::Column::UserId])
            .update_column(grants::Column::Permission)
            .to_owned(),
    )
    .exec(&app.db)
    .await?;
    app.grants.forget(asset_id);
    Ok(true)
}

/// Removes a user's grant on an asset. The owner's grant stays.
pub async fn unshare(
    app: &App,
    principal: &Principal,
    asset_id: Uuid,
    email: &str,
) -> ApiResult<bool> {
    let (asset_kind, owner_id) = asset(app, asset_id).await?;
    let grant = authz::effective_grant(app, principal, asset_id).await?;
    authz::check(app, principal, kind_of(asset_kind), Action::Share, grant)?;
    let user = grantee(app, email).await?;
    if user.id == owner_id {
        return Err(ApiError::conflict(
            "the owner's ADMIN permission cannot be removed",
        ));
    }
    let n_removed = grants::Entity::delete_many()
        .filter(grants::Column::AssetId.eq(asset_id))
        .filter(grants::Column::UserId.eq(user.id))
        .exec(&app.db)
        .await?
        .rows_affected;
    app.grants.forget(asset_id);
    Ok(n_removed > 0)
}
