//! `grants`: per-asset permissions. The owner of a program or environment
//! holds an ADMIN grant on it; sharing adds rows. `permission` is 1 = VIEW,
//! 2 = EXECUTE, 3 = EDIT, 4 = ADMIN, so "at least" is a comparison.

use sea_orm::entity::prelude::*;

use crate::AssetKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub asset_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub asset_kind: AssetKind,
    pub permission: i16,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
