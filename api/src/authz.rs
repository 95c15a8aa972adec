//! Authorization: every resolver asks here. A decision is one indexed grant
//! lookup plus one Casbin enforcement over the small fixed policy.

use playground_entities::grants;
use playground_policies::{Action, Grant, Kind};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// The stored permission numbers, lowest first.
pub fn grant_from_i16(value: i16) -> Grant {
    match value {
        1 => Grant::View,
        2 => Grant::Execute,
        3 => Grant::Edit,
        4 => Grant::Admin,
        _ => Grant::None,
    }
}

pub fn grant_to_i16(grant: Grant) -> i16 {
    match grant {
        Grant::None => 0,
        Grant::View => 1,
        Grant::Execute => 2,
        Grant::Edit => 3,
        Grant::Admin => 4,
    }
}

/// The caller's effective permission on an asset: a global admin holds
/// ADMIN on everything; others hold what the grants table says.
pub async fn effective_grant(app: &App, principal: &Principal, asset_id: Uuid) -> ApiResult<Grant> {
    if principal.is_admin() {
        return Ok(Grant::Admin);
    }
    Ok(grant_of(&app.read, principal.id(), asset_id).await?)
}

/// What the grants table says a user holds on an asset: one primary-key
/// lookup, whatever the number of grants.
pub async fn grant_of(
    db: &sea_orm::DatabaseConnection,
    user_id: Uuid,
    asset_id: Uuid,
) -> Result<Grant, sea_orm::DbErr> {
    let row = grants::Entity::find_by_id((asset_id, user_id))
        .one(db)
        .await?;
    Ok(row.map_or(Grant::None, |g| grant_from_i16(g.permission)))
}

/// Checks an action that is not about one object (create, list users).
pub fn require(app: &App, principal: &Principal, kind: Kind, action: Action) -> ApiResult<()> {
    if app
        .authorizer
        .allows(principal.role(), kind, action, Grant::None)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "your role ({}) may not {} {}s; ask an admin",
            principal.role().as_str(),
            action.as_str(),
            kind.as_str()
        )))
    }
}

/// Checks an action on one object the caller holds `grant` on. An object
/// the caller may not even view is reported as not found.
pub fn check(
    app: &App,
    principal: &Principal,
    kind: Kind,
    action: Action,
    grant: Grant,
) -> ApiResult<()> {
    let role = principal.role();
    if !app.authorizer.allows(role, kind, Action::View, grant) {
        return Err(ApiError::not_found(kind.as_str()));
    }
    if !app.authorizer.allows(role, kind, action, grant) {
        return Err(ApiError::forbidden(format!(
            "you may not {} this {}: your permission on it is {} and your role is {}; ask its owner or an admin",
            action.as_str(),
            kind.as_str(),
            grant.as_str(),
            role.as_str()
        )));
    }
    Ok(())
}

/// Whether the caller may view an object it holds `grant` on.
pub fn can_view(app: &App, principal: &Principal, kind: Kind, grant: Grant) -> bool {
    app.authorizer
        .allows(principal.role(), kind, Action::View, grant)
}
