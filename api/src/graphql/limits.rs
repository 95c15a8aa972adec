//! Limits on the shape of a query that async-graphql does not have itself:
//! the length of the query text (checked before parsing) and the number of
//! aliases (counted on the parsed document, before validation and
//! execution). Errors are the client's to fix, so they carry
//! `BAD_USER_INPUT` like the depth and complexity limits.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Positioned, ServerError, ServerResult, Variables};

/// The extension factory: `max_query_bytes` of query text, `max_aliases`
/// aliases per document.
pub struct QueryShapeLimits {
    pub max_query_bytes: usize,
    pub max_aliases: usize,
}

impl ExtensionFactory for QueryShapeLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryShapeCheck {
            max_query_bytes: self.max_query_bytes,
            max_aliases: self.max_aliases,
        })
    }
}

struct QueryShapeCheck {
    max_query_bytes: usize,
    max_aliases: usize,
}

fn bad_input(message: String) -> ServerError {
    let error =
        async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"));
    error.into_server_error(async_graphql::Pos::default())
}

/// Aliases in every operation and fragment of `document`, each written alias
/// counted once (a fragment spread many times multiplies work, which the
/// complexity limit accounts for).
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let mut stack: Vec<&Positioned<SelectionSet>> = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set)
        .chain(
            document
                .fragments
                .values()
                .map(|fragment| &fragment.node.selection_set),
        )
        .collect();
    let mut aliases = 0;
    while let Some(set) = stack.pop() {
        for item in &set.node.items {
            match &item.node {
                Selection::Field(field) => {
                    if field.node.alias.is_some() {
                        aliases += 1;
                    }
                    stack.push(&field.node.selection_set);
                }
                Selection::InlineFragment(fragment) => stack.push(&fragment.node.selection_set),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    aliases
}

#[async_trait::async_trait]
impl Extension for QueryShapeCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > self.max_query_bytes {
            return Err(bad_input(format!(
                "the query text is too long: {} bytes, at most {} are allowed; pass large values as variables",
                query.len(),
                self.max_query_bytes
            )));
        }
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(bad_input(format!(
                "the query is too complex: it uses {aliases} aliases, at most {} are allowed; split it into several requests",
                self.max_aliases
            )));
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_in_operations_fragments_and_nested_fields() {
        let document = async_graphql::parser::parse_query(
            "query A { a: me { b: id ...F ... on User { c: email } } } query B { d: me { id } } fragment F on User { e: id f: email }",
        )
        .unwrap();
        assert_eq!(count_aliases(&document), 6);
    }
}
