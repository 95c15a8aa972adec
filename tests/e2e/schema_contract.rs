//! The served schema against the API contract (`api/contract.graphql`, a copy of the shared
//! contract): every contract type, field, argument, enum value and input field must be served
//! with the identical type; and the HTTP server serves what `playground schema` prints.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::parser::Positioned;
use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    InputValueDefinition, ServiceDocument, TypeDefinition, TypeKind, TypeSystemDefinition,
};

use crate::support::*;

const CONTRACT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contract.graphql");
const BUILT_IN_SCALARS: [&str; 5] = ["Boolean", "Float", "ID", "Int", "String"];

async fn served_sdl() -> String {
    let output = TestApp::bare_command()
        .arg("schema")
        .output()
        .await
        .expect("run playground schema");
    assert!(
        output.status.success(),
        "playground schema failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the SDL is UTF-8")
}

fn parse(name: &str, sdl: &str) -> ServiceDocument {
    parse_schema(sdl).unwrap_or_else(|err| panic!("{name} does not parse: {err}"))
}

fn types_by_name(document: &ServiceDocument) -> BTreeMap<String, &TypeDefinition> {
    document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(type_definition) => Some((
                type_definition.node.name.node.to_string(),
                &type_definition.node,
            )),
            _ => None,
        })
        .collect()
}

fn kind_name(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Scalar => "SCALAR",
        TypeKind::Object(_) => "OBJECT",
        TypeKind::Interface(_) => "INTERFACE",
        TypeKind::Union(_) => "UNION",
        TypeKind::Enum(_) => "ENUM",
        TypeKind::InputObject(_) => "INPUT_OBJECT",
    }
}

/// Contract input values (arguments or input fields) must be served with the same type;
/// served extras must be optional so that existing clients keep working.
fn compare_input_values(
    owner: &str,
    contract: &[Positioned<InputValueDefinition>],
    served: &[Positioned<InputValueDefinition>],
    problems: &mut Vec<String>,
) {
    for contract_value in contract {
        let name = contract_value.node.name.node.as_str();
        let expected = contract_value.node.ty.node.to_string();
        match served
            .iter()
            .find(|value| value.node.name.node.as_str() == name)
        {
            None => problems.push(format!("{owner}: `{name}: {expected}` is missing")),
            Some(value) if value.node.ty.node.to_string() != expected => problems.push(format!(
                "{owner}: `{name}` is `{}`, the contract says `{expected}`",
                value.node.ty.node
            )),
            Some(_) => {}
        }
    }
    for value in served {
        let name = value.node.name.node.as_str();
        let is_new = !contract.iter().any(|c| c.node.name.node.as_str() == name);
        if is_new && !value.node.ty.node.nullable && value.node.default_value.is_none() {
            problems.push(format!(
                "{owner}: added `{name}` is required; additions must be optional"
            ));
        }
    }
}

/// The names of the query, mutation and subscription root types (`schema { .. }`, else the
/// default names).
fn root_type_names(document: &ServiceDocument) -> [String; 3] {
    let mut roots = ["Query", "Mutation", "Subscription"].map(str::to_owned);
    for definition in &document.definitions {
        if let TypeSystemDefinition::Schema(schema) = definition {
            let schema = &schema.node;
            for (root, name) in
                roots
                    .iter_mut()
                    .zip([&schema.query, &schema.mutation, &schema.subscription])
            {
                if let Some(name) = name {
                    *root = name.node.to_string();
                }
            }
        }
    }
    roots
}

/// Everything the contract has that the served schema lacks or types differently.
fn contract_violations(contract: &ServiceDocument, served: &ServiceDocument) -> Vec<String> {
    let served_types = types_by_name(served);
    let contract_roots = root_type_names(contract);
    let served_roots = root_type_names(served);
    let mut problems = Vec::new();
    for (type_name, contract_type) in types_by_name(contract) {
        // A root is compared with the served root of the same operation, so that a renamed
        // root is reported once and its fields are still checked.
        let served_name = match contract_roots.iter().position(|root| *root == type_name) {
            Some(root_idx) => served_roots[root_idx].clone(),
            None => type_name.clone(),
        };
        if served_name != type_name {
            problems.push(format!(
                "the root type {type_name} is served as {served_name}; the contract names it {type_name}"
            ));
        }
        let Some(served_type) = served_types.get(&served_name) else {
            problems.push(format!("type {type_name} is missing"));
            continue;
        };
        match (&contract_type.kind, &served_type.kind) {
            (TypeKind::Object(contract_object), TypeKind::Object(served_object)) => {
                for contract_field in &contract_object.fields {
                    let field_name = contract_field.node.name.node.as_str();
                    let expected = contract_field.node.ty.node.to_string();
                    let Some(served_field) = served_object
                        .fields
                        .iter()
                        .find(|field| field.node.name.node.as_str() == field_name)
                    else {
                        problems.push(format!("{type_name}.{field_name}: {expected} is missing"));
                        continue;
                    };
                    let served_ty = served_field.node.ty.node.to_string();
                    if served_ty != expected {
                        problems.push(format!(
                            "{type_name}.{field_name} is `{served_ty}`, the contract says `{expected}`"
                        ));
                    }
                    compare_input_values(
                        &format!("{type_name}.{field_name}(..)"),
                        &contract_field.node.arguments,
                        &served_field.node.arguments,
                        &mut problems,
                    );
                }
            }
            (TypeKind::Enum(contract_enum), TypeKind::Enum(served_enum)) => {
                for value in &contract_enum.values {
                    let value_name = value.node.value.node.as_str();
                    if !served_enum
                        .values
                        .iter()
                        .any(|v| v.node.value.node.as_str() == value_name)
                    {
                        problems.push(format!("enum {type_name} lacks {value_name}"));
                    }
                }
            }
            (TypeKind::InputObject(contract_input), TypeKind::InputObject(served_input)) => {
                compare_input_values(
                    &format!("input {type_name}"),
                    &contract_input.fields,
                    &served_input.fields,
                    &mut problems,
                );
            }
            (TypeKind::Scalar, TypeKind::Scalar) => {}
            (contract_kind, served_kind) => problems.push(format!(
                "{type_name} is a {} but the contract says {}",
                kind_name(served_kind),
                kind_name(contract_kind)
            )),
        }
    }
    problems
}

#[tokio::test]
async fn served_schema_contains_the_whole_contract() {
    let contract_sdl = std::fs::read_to_string(CONTRACT_PATH)
        .unwrap_or_else(|err| panic!("read the contract copy {CONTRACT_PATH}: {err}"));
    let contract = parse("the contract", &contract_sdl);
    assert!(
        types_by_name(&contract).len() > 30,
        "the contract copy looks truncated"
    );
    let served = parse("the served SDL", &served_sdl().await);
    let problems = contract_violations(&contract, &served);
    assert!(
        problems.is_empty(),
        "the served schema breaks the contract:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_contract_check_finds_a_missing_field_and_a_changed_type() {
    let contract = parse(
        "contract",
        "type Query { a: Int! b(x: ID!): String }\nenum E { X Y }\ninput I { f: Int! }",
    );
    let served = parse(
        "served",
        "type Query { a: Int b(x: ID!, y: Int!): String c: Int }\nenum E { X }\ninput I { f: Int! g: Int! }",
    );
    let problems = contract_violations(&contract, &served);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(contract_violations(&contract, &contract).is_empty());
    let renamed_root = parse(
        "served",
        "schema { query: QueryRoot }\ntype QueryRoot { a: Int! b(x: ID!): String }\nenum E { X Y }\ninput I { f: Int! }",
    );
    let problems = contract_violations(&contract, &renamed_root);
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

/// name → (kind, sorted member names: fields, input fields or enum values), user types only.
type TypeSummary = BTreeMap<String, (String, BTreeSet<String>)>;

fn summarize_sdl(document: &ServiceDocument) -> TypeSummary {
    types_by_name(document)
        .into_iter()
        .filter(|(name, _)| !BUILT_IN_SCALARS.contains(&name.as_str()))
        .map(|(name, type_definition)| {
            let members: BTreeSet<String> = match &type_definition.kind {
                TypeKind::Object(object) => object
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                TypeKind::Interface(interface) => interface
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                TypeKind::InputObject(input) => input
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                TypeKind::Enum(enum_type) => enum_type
                    .values
                    .iter()
                    .map(|v| v.node.value.node.to_string())
                    .collect(),
                TypeKind::Scalar | TypeKind::Union(_) => BTreeSet::new(),
            };
            (name, (kind_name(&type_definition.kind).to_owned(), members))
        })
        .collect()
}

fn summarize_introspection(schema: &Value) -> TypeSummary {
    let names = |list: &Value| -> BTreeSet<String> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    schema["types"]
        .as_array()
        .expect("introspection lists types")
        .iter()
        .filter_map(|introspected| {
            let name = introspected["name"].as_str()?.to_owned();
            if name.starts_with("__") || BUILT_IN_SCALARS.contains(&name.as_str()) {
                return None;
            }
            let kind = introspected["kind"].as_str()?.to_owned();
            let members = match kind.as_str() {
                "OBJECT" | "INTERFACE" => names(&introspected["fields"]),
                "INPUT_OBJECT" => names(&introspected["inputFields"]),
                "ENUM" => names(&introspected["enumValues"]),
                _ => BTreeSet::new(),
            };
            Some((name, (kind, members)))
        })
        .collect()
}

e2e_test!(http_server_serves_the_printed_schema, |app| async move {
    let token = app.admin_token().await;
    let introspection = app
        .gql_ok(
            Some(&token),
            "{ __schema { queryType { name } mutationType { name } subscriptionType { name } types { name kind fields(includeDeprecated: true) { name } inputFields { name } enumValues(includeDeprecated: true) { name } } } }",
            json!({}),
        )
        .await;
    let schema = &introspection["__schema"];
    let printed_document = parse("the printed SDL", &served_sdl().await);
    let [query, mutation, subscription] = root_type_names(&printed_document);
    assert_eq!(schema["queryType"]["name"], query.as_str());
    assert_eq!(schema["mutationType"]["name"], mutation.as_str());
    assert_eq!(schema["subscriptionType"]["name"], subscription.as_str());
    let served = summarize_introspection(schema);
    let printed = summarize_sdl(&printed_document);
    assert_eq!(
        served, printed,
        "introspection over HTTP differs from `playground schema`"
    );
});
