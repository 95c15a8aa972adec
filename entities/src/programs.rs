//! `programs`: the catalog entry. Name, description and tags are mutable;
//! files and entrypoint live in immutable `program_versions`, and
//! `current_version` points at the newest. Deleting sets `deleted_at` so
//! runs keep their program.

use sea_orm::entity::prelude::*;

use crate::ProgramRuntime;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "programs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    /// JSON array of strings; `program_tags` indexes them.
    pub tags: Json,
    pub runtime: ProgramRuntime,
    pub entrypoint: String,
    pub current_version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
