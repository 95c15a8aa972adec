//! Programs: create, update (a file change makes a new immutable version),
//! delete, read and list what the caller may view.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use playground_entities::{
    AssetKind, ProgramRuntime, grants, program_files, program_tags, program_versions, programs,
};
use playground_policies::{Action, Grant, Kind};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, JoinType, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::app::App;
use crate::auth::Principal;
use crate::authz::{self, grant_from_i16, grant_to_i16};
use crate::error::{ApiError, ApiResult, InternalContext};
use crate::services::pagination::{Page, PageRequest, into_page};
use crate::validation::{self, CheckedFile, FileDraft};

/// A program together with the caller's permission on it.
#[derive(Clone, Debug)]
pub struct ProgramView {
    pub program: programs::Model,
    pub grant: Grant,
}

/// A file of a program version, with its bytes.
#[derive(Clone)]
pub struct StoredFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub content: Bytes,
}

pub struct NewProgram {
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub runtime: ProgramRuntime,
    pub entrypoint: String,
    pub files: Vec<FileDraft>,
}

#[derive(Default)]
pub struct ProgramChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub entrypoint: Option<String>,
    pub files: Option<Vec<FileDraft>>,
}

/// Filters of `programs`.
#[derive(Default)]
pub struct ProgramFilter {
    pub search: Option<String>,
    pub tag: Option<String>,
}

pub async fn create(app: &App, principal: &Principal, input: NewProgram) -> ApiResult<ProgramView> {
    authz::require(app, principal, Kind::Program, Action::Create)?;
    let name = validation::name("name", &input.name)?;
    let description = validation::description(input.description)?;
    let tags = validation::tags(input.tags)?;
    let files = validation::files(input.files, &app.config.limits)?;
    let entrypoint =
        validation::entrypoint(&input.entrypoint, files.iter().map(|f| f.path.as_str()))?;
    store_blobs(app, &files).await?;

    let now = Utc::now();
    let program_id = Uuid::now_v7();
    let txn = app.db.begin().await?;
    let program = programs::ActiveModel {
        id: Set(program_id),
        owner_id: Set(principal.id()),
        name: Set(name),
        description: Set(description),
        tags: Set(serde_json::json!(tags)),
        runtime: Set(input.runtime),
        entrypoint: Set(entrypoint.clone()),
        current_version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(&txn)
    .await?;
    insert_tags(&txn, program_id, &tags).await?;
    insert_version(&txn, program_id, 1, &entrypoint, &files).await?;
    grants::ActiveModel {
        asset_id: Set(program_id),
        user_id: Set(principal.id()),
        asset_kind: Set(AssetKind::Program),
        permission: Set(grant_to_i16(Grant::Admin)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    app.grants.forget(program_id);
    Ok(ProgramView {
        program,
        grant: Grant::Admin,
    })
}

pub async fn update(
    app: &App,
    principal: &Principal,
    id: Uuid,
    changes: ProgramChanges,
) -> ApiResult<ProgramView> {
    let ProgramView { program, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Program, Action::Edit, grant)?;

    let name = changes
        .name
        .map(|n| validation::name("name", &n))
        .transpose()?;
    let description = changes
        .description
        .map(|d| validation::description(Some(d)))
        .transpose()?;
    let tags = changes
        .tags
        .map(|t| validation::tags(Some(t)))
        .transpose()?;
    // A new version when the files or the entrypoint change.
    let new_version = match (changes.files, changes.entrypoint) {
        (None, None) => None,
        (Some(drafts), entrypoint) => {
            let files = validation::files(drafts, &app.config.limits)?;
            let entrypoint = entrypoint.unwrap_or_else(|| program.entrypoint.clone());
            let entrypoint =
                validation::entrypoint(&entrypoint, files.iter().map(|f| f.path.as_str()))?;
            store_blobs(app, &files).await?;
            Some((entrypoint, files))
        }
        (None, Some(entrypoint)) => {
            let current = version_files(app, program.id, program.current_version).await?;
            let entrypoint =
                validation::entrypoint(&entrypoint, current.iter().map(|f| f.path.as_str()))?;
            if entrypoint == program.entrypoint {
                None
            } else {
                let files = current
                    .into_iter()
                    .map(|f| CheckedFile {
                        path: f.path,
                        content: f.content,
                    })
                    .collect();
                Some((entrypoint, files))
            }
        }
    };

    let txn = app.db.begin().await?;
    let mut active: programs::ActiveModel = program.clone().into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(description) = description {
        active.description = Set(description);
    }
    if let Some(tags) = &tags {
        active.tags = Set(serde_json::json!(tags));
        program_tags::Entity::delete_many()
            .filter(program_tags::Column::ProgramId.eq(program.id))
            .exec(&txn)
            .await?;
        insert_tags(&txn, program.id, tags).await?;
    }
    if let Some((entrypoint, files)) = &new_version {
        let version = program.current_version + 1;
        // Only one concurrent update can move the version from n to n + 1.
        let moved = programs::Entity::update_many()
            .col_expr(programs::Column::CurrentVersion, Expr::value(version))
            .filter(programs::Column::Id.eq(program.id))
            .filter(programs::Column::CurrentVersion.eq(program.current_version))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            return Err(ApiError::conflict(
                "the program was changed by someone else meanwhile: read it again and retry",
            ));
        }
        insert_version(&txn, program.id, version, entrypoint, files).await?;
        active.current_version = Set(version);
        active.entrypoint = Set(entrypoint.clone());
    }
    active.updated_at = Set(Utc::now());
    let program = active.update(&txn).await?;
    txn.commit().await?;
    Ok(ProgramView { program, grant })
}

pub async fn delete(app: &App, principal: &Principal, id: Uuid) -> ApiResult<bool> {
    let ProgramView { program, grant } = load(app, principal, id).await?;
    authz::check(app, principal, Kind::Program, Action::Delete, grant)?;
    let mut active: programs::ActiveModel = program.into();
    active.deleted_at = Set(Some(Utc::now()));
    active.update(&app.db).await?;
    Ok(true)
}

/// A program the caller may view (not deleted), or `NOT_FOUND`.
pub async fn load(app: &App, principal: &Principal, id: Uuid) -> ApiResult<ProgramView> {
    let program = programs::Entity::find_by_id(id)
        .filter(programs::Column::DeletedAt.is_null())
        .one(&app.read)
        .await?
        .ok_or_else(|| ApiError::not_found("program"))?;
    let grant = authz::effective_grant(app, principal, id).await?;
    if !authz::can_view(app, principal, Kind::Program, grant) {
        return Err(ApiError::not_found("program"));
    }
    Ok(ProgramView { program, grant })
}

/// A program by id even when deleted, for the runs that ran it: the caller
/// was already allowed to see the run.
pub async fn load_for_run(app: &App, principal: &Principal, id: Uuid) -> ApiResult<ProgramView> {
    let program = programs::Entity::find_by_id(id)
        .one(&app.read)
        .await?
        .ok_or_else(|| ApiError::not_found("program"))?;
    let grant = authz::effective_grant(app, principal, id).await?;
    Ok(ProgramView { program, grant })
}

/// `null` for what does not exist or is not visible to the caller.
pub async fn get(app: &App, principal: &Principal, id: Uuid) -> ApiResult<Option<ProgramView>> {
    crate::error::found(load(app, principal, id).await)
}

pub async fn list(
    app: &App,
    principal: &Principal,
    filter: ProgramFilter,
    page: PageRequest,
) -> ApiResult<Page<ProgramView>> {
    let mut query = programs::Entity::find().filter(programs::Column::DeletedAt.is_null());
    if !principal.is_admin() {
        query = query
            .join(
                JoinType::InnerJoin,
                programs::Entity::belongs_to(grants::Entity)
                    .from(programs::Column::Id)
                    .to(grants::Column::AssetId)
                    .into(),
            )
            .filter(grants::Column::UserId.eq(principal.id()))
            .filter(grants::Column::Permission.gte(grant_to_i16(Grant::View)));
    }
    if let Some(search) = &filter.search {
        validation::no_nul("search", search)?;
    }
    if let Some(tag) = &filter.tag {
        validation::no_nul("tag", tag)?;
    }
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        query = query.filter(
            Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col((
                        programs::Entity,
                        programs::Column::Name,
                    ))))
                    .like(LikeExpr::new(pattern.clone()).escape('\\')),
                )
                .add(
                    Expr::expr(Func::lower(Expr::col((
                        programs::Entity,
                        programs::Column::Description,
                    ))))
                    .like(LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    if let Some(tag) = filter.tag {
        query = query.filter(
            programs::Column::Id.in_subquery(
                Query::select()
                    .column(program_tags::Column::ProgramId)
                    .from(program_tags::Entity)
                    .and_where(program_tags::Column::Tag.eq(tag.trim()))
                    .to_owned(),
            ),
        );
    }
    let total_count = query.clone().count(&app.read).await?;
    if let Some(after) = page.after {
        query = query.filter(programs::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(programs::Column::Id)
        .limit(page.first + 1)
        .all(&app.read)
        .await?;
    let page = into_page(rows, page, total_count);
    let grants = grants_on(app, principal, page.items.iter().map(|p| p.id).collect()).await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|program| {
                let grant = grants(program.id);
                ProgramView { program, grant }
            })
            .collect(),
        has_next_page: page.has_next_page,
        total_count: page.total_count,
    })
}

/// The caller's grants on a set of assets, with one query.
pub async fn grants_on(
    app: &App,
    principal: &Principal,
    ids: Vec<Uuid>,
) -> ApiResult<impl Fn(Uuid) -> Grant + use<>> {
    let admin = principal.is_admin();
    let rows = if admin {
        Vec::new()
    } else {
        grants::Entity::find()
            .filter(grants::Column::UserId.eq(principal.id()))
            .filter(grants::Column::AssetId.is_in(ids))
            .all(&app.read)
            .await?
    };
    let map: std::collections::HashMap<Uuid, Grant> = rows
        .into_iter()
        .map(|g| (g.asset_id, grant_from_i16(g.permission)))
        .collect();
    Ok(move |id| {
        if admin {
            Grant::Admin
        } else {
            map.get(&id).copied().unwrap_or(Grant::None)
        }
    })
}

/// The files of one version of a program, with their bytes.
pub async fn version_files(
    app: &App,
    program_id: Uuid,
    version: i32,
) -> ApiResult<Vec<StoredFile>> {
    let Some(version) = program_versions::Entity::find()
        .filter(program_versions::Column::ProgramId.eq(program_id))
        .filter(program_versions::Column::Version.eq(version))
        .one(&app.read)
        .await?
    else {
        return Err(ApiError::not_found("program version"));
    };
    let rows = program_files::Entity::find()
        .filter(program_files::Column::VersionId.eq(version.id))
        .order_by_asc(program_files::Column::Path)
        .all(&app.read)
        .await?;
    let mut files = Vec::with_capacity(rows.len());
    for row in rows {
        let content = app
            .blobs
            .get(&row.sha256)
            .await
            .internal("reading a program file")?;
        files.push(StoredFile {
            path: row.path,
            sha256: row.sha256,
            size: row.size,
            content,
        });
    }
    Ok(files)
}

/// Program versions are immutable, so their files can be kept in memory
/// for the runs that launch them again and again.
#[derive(Default)]
pub struct VersionCache {
    inner: std::sync::Mutex<(VersionFiles, u64)>,
}

type VersionFiles = HashMap<(Uuid, i32), Arc<Vec<StoredFile>>>;

/// Most bytes the version cache holds before it starts over.
const VERSION_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The files of one program version, from memory when they were read before.
pub async fn version_files_cached(
    app: &App,
    program_id: Uuid,
    version: i32,
) -> ApiResult<Arc<Vec<StoredFile>>> {
    if let Some(files) = app
        .version_cache
        .inner
        .lock()
        .expect("cache lock")
        .0
        .get(&(program_id, version))
    {
        return Ok(files.clone());
    }
    let files = Arc::new(version_files(app, program_id, version).await?);
    let size: u64 = files.iter().map(|f| f.content.len() as u64).sum();
    let mut inner = app.version_cache.inner.lock().expect("cache lock");
    if inner.1 + size > VERSION_CACHE_BYTES {
        inner.0.clear();
        inner.1 = 0;
    }
    if size <= VERSION_CACHE_BYTES {
        inner.0.insert((program_id, version), files.clone());
        inner.1 += size;
    }
    Ok(files)
}

async fn store_blobs(app: &App, files: &[CheckedFile]) -> ApiResult<()> {
    for file in files {
        app.blobs
            .put(file.content.clone())
            .await
            .internal("storing a program file")?;
    }
    Ok(())
}

async fn insert_tags(
    txn: &impl sea_orm::ConnectionTrait,
    program_id: Uuid,
    tags: &[String],
) -> ApiResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    program_tags::Entity::insert_many(tags.iter().map(|tag| program_tags::ActiveModel {
        program_id: Set(program_id),
        tag: Set(tag.clone()),
    }))
    .exec(txn)
    .await?;
    Ok(())
}

async fn insert_version(
    txn: &impl sea_orm::ConnectionTrait,
    program_id: Uuid,
    version: i32,
    entrypoint: &str,
    files: &[CheckedFile],
) -> ApiResult<()> {
    let version_id = Uuid::now_v7();
    program_versions::ActiveModel {
        id: Set(version_id),
        program_id: Set(program_id),
        version: Set(version),
        entrypoint: Set(entrypoint.to_owned()),
        created_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    // Bounded batches keep every statement under the databases' parameter limits.
    for chunk in files.chunks(200) {
        program_files::Entity::insert_many(chunk.iter().map(|file| program_files::ActiveModel {
            version_id: Set(version_id),
            path: Set(file.path.clone()),
            sha256: Set(crate::blobs::BlobStore::digest(&file.content)),
            size: Set(file.content.len() as i64),
        }))
        .exec(txn)
        .await?;
    }
    Ok(())
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
