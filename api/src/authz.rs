//! Authorization: every resolver asks here. A decision is one indexed grant
//! lookup plus one Casbin enforcement over the small fixed policy (whose
//! answers the `Authorizer` keeps in a table). On SQLite, where one server
//! owns the database, grants read are kept in memory and forgotten when a
//! grant on the asset changes; with PostgreSQL other servers change grants
//! too, so every decision reads the table.

use playground_entities::grants;
use playground_policies::{Action, Grant, Kind};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
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
    Ok(app.grants.get(&app.read, principal.id(), asset_id).await?)
}

/// The grants table in memory (see the module's doc): loaded whole at
/// start, kept in step by the writers, which `forget` an asset after
/// changing its grants (it is read again, whole, on its next decision). A
/// table too large to keep is not cached: every decision reads it.
pub struct GrantCache {
    enabled: std::sync::atomic::AtomicBool,
    inner: std::sync::Mutex<CachedGrants>,
}

#[derive(Default)]
struct CachedGrants {
    /// Every grant of the table, but for the `stale` assets': an asset
    /// absent from here has no grants.
    by_asset: std::collections::HashMap<Uuid, std::collections::HashMap<Uuid, Grant>>,
    n: usize,
    /// Bumped by every change, so a read that raced one is not kept.
    generation: u64,
    stale: std::collections::HashSet<Uuid>,
}

/// Most grants kept; a larger table is not cached.
const MAX_CACHED_GRANTS: usize = 1_000_000;

impl GrantCache {
    /// A cache that answers nothing until [`GrantCache::preload`] fills it.
    pub fn new() -> Self {
        Self {
            enabled: false.into(),
            inner: Default::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Acquire)
    }

    fn disable(&self, inner: &mut CachedGrants) {
        self.enabled
            .store(false, std::sync::atomic::Ordering::Release);
        *inner = CachedGrants::default();
    }

    /// Loads the whole grants table and answers from it from now on, when
    /// it has at most `MAX_CACHED_GRANTS` rows. Only for a database no
    /// other server writes to (SQLite).
    pub async fn preload(&self, db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        use sea_orm::{PaginatorTrait, QuerySelect};
        if grants::Entity::find().count(db).await? as usize > MAX_CACHED_GRANTS {
            return Ok(());
        }
        let rows: Vec<(Uuid, Uuid, i16)> = grants::Entity::find()
            .select_only()
            .column(grants::Column::AssetId)
            .column(grants::Column::UserId)
            .column(grants::Column::Permission)
            .into_tuple()
            .all(db)
            .await?;
        let mut inner = self.inner.lock().expect("grants lock");
        *inner = CachedGrants {
            n: rows.len(),
            ..Default::default()
        };
        for (asset, user, permission) in rows {
            inner
                .by_asset
                .entry(asset)
                .or_default()
                .insert(user, grant_from_i16(permission));
        }
        self.enabled
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// What `user_id` holds on `asset_id`.
    pub async fn get(
        &self,
        db: &sea_orm::DatabaseConnection,
        user_id: Uuid,
        asset_id: Uuid,
    ) -> Result<Grant, sea_orm::DbErr> {
        if !self.enabled() {
            return grant_of(db, user_id, asset_id).await;
        }
        let generation = {
            let inner = self.inner.lock().expect("grants lock");
            if !inner.stale.contains(&asset_id) {
                let users = inner.by_asset.get(&asset_id);
                return Ok(users
                    .and_then(|u| u.get(&user_id))
                    .copied()
                    .unwrap_or(Grant::None));
            }
            inner.generation
        };
        // A stale asset: read all its grants again.
        let users: std::collections::HashMap<Uuid, Grant> = grants::Entity::find()
            .filter(grants::Column::AssetId.eq(asset_id))
            .all(db)
            .await?
            .into_iter()
            .map(|g| (g.user_id, grant_from_i16(g.permission)))
            .collect();
        let grant = users.get(&user_id).copied().unwrap_or(Grant::None);
        let mut inner = self.inner.lock().expect("grants lock");
        if self.enabled() && inner.generation == generation {
            if inner.n + users.len() > MAX_CACHED_GRANTS {
                self.disable(&mut inner);
            } else {
                inner.n += users.len();
                if !users.is_empty() {
                    inner.by_asset.insert(asset_id, users);
                }
                inner.stale.remove(&asset_id);
            }
        }
        Ok(grant)
    }

    /// Forgets what is known of an asset's grants; called after a change to
    /// them is committed.
    pub fn forget(&self, asset_id: Uuid) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.lock().expect("grants lock");
        if let Some(users) = inner.by_asset.remove(&asset_id) {
            inner.n -= users.len();
        }
        inner.stale.insert(asset_id);
        inner.generation += 1;
    }
}

impl Default for GrantCache {
    fn default() -> Self {
        Self::new()
    }
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
