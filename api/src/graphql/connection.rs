//! Relay-style connections (`edges`, `pageInfo`, `totalCount`) for each
//! listed type.

use async_graphql::SimpleObject;

use super::objects::{AuditEvent, Environment, Program, Run};
use crate::services::pagination::{Page, encode_cursor};

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty) => {
        #[derive(SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        #[derive(SimpleObject)]
        pub struct $connection {
            pub edges: Vec<$edge>,
            pub page_info: PageInfo,
            pub total_count: i32,
        }

        impl $connection {
            pub fn from_page<T>(
                page: Page<T>,
                id: impl Fn(&T) -> uuid::Uuid,
                node: impl Fn(T) -> $node,
            ) -> Self {
                let edges: Vec<$edge> = page
                    .items
                    .into_iter()
                    .map(|item| $edge {
                        cursor: encode_cursor(id(&item)),
                        node: node(item),
                    })
                    .collect();
                $connection {
                    page_info: PageInfo {
                        has_next_page: page.has_next_page,
                        end_cursor: edges.last().map(|e| e.cursor.clone()),
                    },
                    edges,
                    total_count: i32::try_from(page.total_count).unwrap_or(i32::MAX),
                }
            }
        }
    };
}

connection!(ProgramConnection, ProgramEdge, Program);
connection!(EnvironmentConnection, EnvironmentEdge, Environment);
connection!(RunConnection, RunEdge, Run);
connection!(AuditEventConnection, AuditEventEdge, AuditEvent);
