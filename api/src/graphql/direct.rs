//! The WebSocket endpoint's executor: the schema, with a direct path for
//! `runLogs`, the one subscription that sends many results per request (a
//! run may print millions of lines).
//!
//! Through the schema, every line is a fresh execution of the selection set
//! (a context, the field resolvers, the extension chain, a result map). The
//! direct path plans a plain `runLogs` subscription once, when it arrives,
//! then writes each line's result from the plan. It takes only documents
//! whose meaning is plain: one subscription operation, the `runLogs` field
//! with its arguments given as literals or declared variables, and a flat
//! selection of `LogLine` fields (aliases and `__typename` allowed). Any
//! other document, and every error (a bad id, a run the caller may not
//! see, too many subscriptions), goes through the schema, so answers and
//! errors are the schema's own.

use std::any::TypeId;
use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, Type,
};
use async_graphql::{
    Data, Executor, ID, InputType, Name, Pos, Request, Response, ScalarType, ServerError, Value,
};
use async_graphql_value::Value as QueryValue;
use futures::StreamExt;

use super::PlaygroundSchema;
use super::enums::LogStream;
use crate::app::AppState;
use crate::auth::Auth;
use crate::events;

/// What the WebSocket endpoint executes requests with.
#[derive(Clone)]
pub struct WsExecutor {
    schema: PlaygroundSchema,
    app: AppState,
}

impl WsExecutor {
    pub fn new(schema: PlaygroundSchema, app: AppState) -> Self {
        Self { schema, app }
    }
}

impl Executor for WsExecutor {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        let schema = self.schema.clone();
        async move { schema.execute(request).await }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let hardening = &self.app.config.hardening;
        let limits = &self.app.config.limits;
        let plan = LogsPlan::of(
            &request,
            Limits {
                max_query_bytes: hardening.max_query_bytes,
                max_aliases: hardening.max_query_aliases,
                max_depth: limits.max_query_depth,
                max_complexity: limits.max_query_complexity,
            },
        );
        let Some(plan) = plan else {
            return Executor::execute_stream(&self.schema, request, session_data);
        };
        let schema = self.schema.clone();
        let app = self.app.clone();
        Box::pin(async_stream::stream! {
            let principal = session_data
                .as_deref()
                .and_then(auth_of)
                .and_then(|auth| auth.principal().ok())
                .cloned();
            let lines = match principal {
                Some(principal) => {
                    super::subscription::log_lines(app, principal, &plan.run_id, plan.after_seq)
                        .await
                        .ok()
                }
                None => None,
            };
            let Some(lines) = lines else {
                // The schema answers with its own error.
                let mut answer = Executor::execute_stream(&schema, request, session_data);
                while let Some(response) = answer.next().await {
                    yield response;
                }
                return;
            };
            futures::pin_mut!(lines);
            let mut timestamps = TimestampCache::default();
            while let Some(line) = lines.next().await {
                match line {
                    Ok(line) => yield plan.response(&line, &mut timestamps),
                    Err(error) => {
                        yield plan.error(error);
                        return;
                    }
                }
            }
        })
    }
}

fn auth_of(data: &Data) -> Option<&Auth> {
    data.get(&TypeId::of::<Auth>())?.downcast_ref::<Auth>()
}

/// The schema's limits a direct request must keep to as well.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_query_bytes: usize,
    pub max_aliases: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
}

/// A field of `LogLine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineField {
    Seq,
    Stream,
    Line,
    Timestamp,
    Typename,
}

/// A plain `runLogs` subscription, planned once.
#[derive(Debug)]
pub struct LogsPlan {
    /// The response key of the `runLogs` field.
    key: Name,
    /// Where the field is in the query (for errors).
    pos: Pos,
    run_id: ID,
    after_seq: Option<i32>,
    /// Response key and field, in the order asked.
    fields: Vec<(Name, LineField)>,
}

impl LogsPlan {
    /// The plan of `request` when it is a plain `runLogs` subscription that
    /// the schema would accept; `None` sends it through the schema.
    pub fn of(request: &Request, limits: Limits) -> Option<Self> {
        if request.query.len() > limits.max_query_bytes || !request.uploads.is_empty() {
            return None;
        }
        let document = async_graphql::parser::parse_query(&request.query).ok()?;
        Self::of_document(&document, request, limits)
    }

    fn of_document(
        document: &ExecutableDocument,
        request: &Request,
        limits: Limits,
    ) -> Option<Self> {
        if !document.fragments.is_empty() {
            return None;
        }
        let operation = match (&document.operations, request.operation_name.as_deref()) {
            (DocumentOperations::Single(operation), None) => operation,
            (DocumentOperations::Multiple(operations), name) if operations.len() == 1 => {
                let (operation_name, operation) = operations.iter().next()?;
                if name.is_some_and(|name| name != operation_name.as_str()) {
                    return None;
                }
                operation
            }
            _ => return None,
        };
        let operation = &operation.node;
        if operation.ty != OperationType::Subscription || !operation.directives.is_empty() {
            return None;
        }
        let [root] = operation.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(root) = &root.node else {
            return None;
        };
        let (pos, root) = (root.pos, &root.node);
        if root.name.node != "runLogs" || !root.directives.is_empty() {
            return None;
        }

        // Every declared variable is used once, by the argument it fits.
        let mut declared = Vec::new();
        for definition in &operation.variable_definitions {
            let definition = &definition.node;
            if !definition.directives.is_empty() || definition.default_value.is_some() {
                return None;
            }
            declared.push((&definition.name.node, &definition.var_type.node));
        }
        let mut used = Vec::new();
        let mut run_id = None;
        let mut after_seq = None;
        for (name, value) in &root.arguments {
            match (name.node.as_str(), &value.node) {
                ("runId", _) if run_id.is_some() => return None,
                ("afterSeq", _) if after_seq.is_some() => return None,
                ("runId", QueryValue::String(id)) => run_id = Some(ID(id.clone())),
                ("runId", QueryValue::Variable(variable)) => {
                    let (_, ty) = declared.iter().find(|(name, _)| *name == variable)?;
                    if !is_named(ty, "ID", false) {
                        return None;
                    }
                    let Value::String(id) = request.variables.get(variable)? else {
                        return None;
                    };
                    used.push(variable);
                    run_id = Some(ID(id.clone()));
                }
                ("afterSeq", QueryValue::Number(n)) => {
                    after_seq = Some(Some(i32::try_from(n.as_i64()?).ok()?));
                }
                ("afterSeq", QueryValue::Null) => after_seq = Some(None),
                ("afterSeq", QueryValue::Variable(variable)) => {
                    let (_, ty) = declared.iter().find(|(name, _)| *name == variable)?;
                    if !is_named(ty, "Int", true) {
                        return None;
                    }
                    let value = match request.variables.get(variable) {
                        Some(Value::Number(n)) => Some(i32::try_from(n.as_i64()?).ok()?),
                        Some(Value::Null) | None if ty.nullable => None,
                        _ => return None,
                    };
                    used.push(variable);
                    after_seq = Some(value);
                }
                _ => return None,
            }
        }
        if used.len() != declared.len()
            || declared
                .iter()
                .any(|(name, _)| used.iter().filter(|u| **u == *name).count() != 1)
        {
            return None;
        }

        let mut fields = Vec::new();
        let mut aliases = usize::from(root.alias.is_some());
        for selection in &root.selection_set.node.items {
            let Selection::Field(field) = &selection.node else {
                return None;
            };
            let field = &field.node;
            if !field.arguments.is_empty()
                || !field.directives.is_empty()
                || !field.selection_set.node.items.is_empty()
            {
                return None;
            }
            let line_field = match field.name.node.as_str() {
                "seq" => LineField::Seq,
                "stream" => LineField::Stream,
                "line" => LineField::Line,
                "timestamp" => LineField::Timestamp,
                "__typename" => LineField::Typename,
                _ => return None,
            };
            aliases += usize::from(field.alias.is_some());
            let key = field.response_key().node.clone();
            if fields.iter().any(|(k, _)| *k == key) {
                return None;
            }
            fields.push((key, line_field));
        }
        let complexity = 1 + fields.len();
        if fields.is_empty()
            || aliases > limits.max_aliases
            || limits.max_depth < 2
            || complexity > limits.max_complexity
        {
            return None;
        }
        Some(Self {
            key: root.response_key().node.clone(),
            pos,
            run_id: run_id?,
            after_seq: after_seq.flatten(),
            fields,
        })
    }

    /// The result for one line, as the schema would give it.
    fn response(&self, line: &events::LogLine, timestamps: &mut TimestampCache) -> Response {
        let mut object = IndexMap::with_capacity(self.fields.len());
        for (key, field) in &self.fields {
            let value = match field {
                LineField::Seq => Value::from(i32::try_from(line.seq).unwrap_or(i32::MAX)),
                LineField::Stream => LogStream::from(line.stream).to_value(),
                LineField::Line => Value::String(line.line.clone()),
                LineField::Timestamp => timestamps.value(line.timestamp),
                LineField::Typename => Value::String("LogLine".to_owned()),
            };
            object.insert(key.clone(), value);
        }
        let mut data = IndexMap::with_capacity(1);
        data.insert(self.key.clone(), Value::Object(object));
        Response::new(Value::Object(data))
    }

    /// An error met while streaming, as the schema would give it.
    fn error(&self, error: async_graphql::Error) -> Response {
        let mut error: ServerError = error.into_server_error(self.pos);
        error.path = vec![async_graphql::PathSegment::Field(self.key.to_string())];
        Response::from_errors(vec![error])
    }
}

/// The lines stored together share their timestamp: it is formatted once.
#[derive(Default)]
struct TimestampCache {
    last: Option<(chrono::DateTime<chrono::Utc>, Value)>,
}

impl TimestampCache {
    fn value(&mut self, at: chrono::DateTime<chrono::Utc>) -> Value {
        match &self.last {
            Some((last, value)) if *last == at => value.clone(),
            _ => {
                let value = ScalarType::to_value(&at);
                self.last = Some((at, value.clone()));
                value
            }
        }
    }
}

fn is_named(ty: &Type, name: &str, nullable_allowed: bool) -> bool {
    matches!(&ty.base, BaseType::Named(n) if n == name) && (nullable_allowed || !ty.nullable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Variables;

    const LIMITS: Limits = Limits {
        max_query_bytes: 10_000,
        max_aliases: 30,
        max_depth: 12,
        max_complexity: 500,
    };

    fn plan(query: &str, variables: serde_json::Value) -> Option<LogsPlan> {
        let request = Request::new(query).variables(Variables::from_json(variables));
        LogsPlan::of(&request, LIMITS)
    }

    fn keys(plan: &LogsPlan) -> Vec<(&str, LineField)> {
        plan.fields.iter().map(|(k, f)| (k.as_str(), *f)).collect()
    }

    #[test]
    fn plain_run_logs_subscriptions_are_planned() {
        let p = plan(
            "subscription($id: ID!, $after: Int) { runLogs(runId: $id, afterSeq: $after) { seq stream line timestamp } }",
            serde_json::json!({ "id": "r1", "after": 7 }),
        )
        .unwrap();
        assert_eq!(p.key.as_str(), "runLogs");
        assert_eq!(p.run_id.as_str(), "r1");
        assert_eq!(p.after_seq, Some(7));
        use LineField::*;
        assert_eq!(
            keys(&p),
            [
                ("seq", Seq),
                ("stream", Stream),
                ("line", Line),
                ("timestamp", Timestamp)
            ]
        );

        let p = plan(
            r#"subscription Follow { logs: runLogs(runId: "r2") { n: seq __typename text: line } }"#,
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(p.key.as_str(), "logs");
        assert_eq!(p.after_seq, None);
        assert_eq!(
            keys(&p),
            [("n", Seq), ("__typename", Typename), ("text", Line)]
        );

        let p = plan(
            "subscription($id: ID!, $after: Int) { runLogs(runId: $id, afterSeq: $after) { seq } }",
            serde_json::json!({ "id": "r3" }),
        )
        .unwrap();
        assert_eq!(p.after_seq, None, "a nullable variable left out is null");
        let p = plan(
            r#"subscription { runLogs(runId: "r4", afterSeq: 12) { seq } }"#,
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(p.after_seq, Some(12));
    }

    #[test]
    fn anything_else_goes_through_the_schema() {
        let others = [
            // Not a subscription, or not runLogs alone.
            (
                r#"query { runLogs(runId: "r") { seq } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runStatus(runId: "r") { status } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r") { seq } other: runLogs(runId: "s") { seq } }"#,
                serde_json::json!({}),
            ),
            // Fragments and directives.
            (
                r#"subscription { runLogs(runId: "r") { ...F } } fragment F on LogLine { seq }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r") { ... on LogLine { seq } } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r") { seq @include(if: false) } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription @skip(if: true) { runLogs(runId: "r") { seq } }"#,
                serde_json::json!({}),
            ),
            // Unknown or repeated fields and arguments.
            (
                r#"subscription { runLogs(runId: "r") { seq nope } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r") { seq seq } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r") { } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r", x: 1) { seq } }"#,
                serde_json::json!({}),
            ),
            (r#"subscription { runLogs { seq } }"#, serde_json::json!({})),
            (
                r#"subscription { runLogs(runId: 5) { seq } }"#,
                serde_json::json!({}),
            ),
            (
                r#"subscription { runLogs(runId: "r", afterSeq: 99999999999) { seq } }"#,
                serde_json::json!({}),
            ),
            // Variables that the schema would refuse.
            (
                "subscription($id: ID) { runLogs(runId: $id) { seq } }",
                serde_json::json!({ "id": "r" }),
            ),
            (
                "subscription($id: ID!) { runLogs(runId: $id) { seq } }",
                serde_json::json!({}),
            ),
            (
                "subscription($id: ID!) { runLogs(runId: $id) { seq } }",
                serde_json::json!({ "id": 5 }),
            ),
            (
                "subscription($id: ID!, $unused: Int) { runLogs(runId: $id) { seq } }",
                serde_json::json!({ "id": "r" }),
            ),
            (
                "subscription($id: ID!, $after: Int!) { runLogs(runId: $id, afterSeq: $after) { seq } }",
                serde_json::json!({ "id": "r" }),
            ),
            (
                "subscription($id: ID! = \"r\") { runLogs(runId: $id) { seq } }",
                serde_json::json!({}),
            ),
            (
                "subscription { runLogs(runId: $id) { seq } }",
                serde_json::json!({ "id": "r" }),
            ),
            ("not graphql", serde_json::json!({})),
        ];
        for (query, variables) in others {
            assert!(plan(query, variables).is_none(), "planned: {query}");
        }
        // A named operation that is not the one asked for.
        let request =
            Request::new(r#"subscription A { runLogs(runId: "r") { seq } }"#).operation_name("B");
        assert!(LogsPlan::of(&request, LIMITS).is_none());
        // The schema's limits hold here too.
        let tight = Limits {
            max_aliases: 0,
            ..LIMITS
        };
        let request = Request::new(r#"subscription { runLogs(runId: "r") { n: seq } }"#);
        assert!(LogsPlan::of(&request, tight).is_none());
        let tight = Limits {
            max_query_bytes: 10,
            ..LIMITS
        };
        let request = Request::new(r#"subscription { runLogs(runId: "r") { seq } }"#);
        assert!(LogsPlan::of(&request, tight).is_none());
    }
}
