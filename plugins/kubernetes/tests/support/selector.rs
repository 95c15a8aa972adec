//! Label and field selectors of list and watch requests, as the fake API
//! server understands them.

use std::collections::BTreeMap;

use serde_json::Value;

/// `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`) and `fieldSelector`
/// (`metadata.name`, `metadata.namespace`).
pub(crate) struct Selector {
    labels: Vec<(String, Option<String>, bool)>,
    fields: Vec<(String, String)>,
}

impl Selector {
    pub(crate) fn parse(query: &BTreeMap<String, String>) -> Selector {
        let labels = query
            .get("labelSelector")
            .map(|s| {
                s.split(',')
                    .filter(|t| !t.is_empty())
                    .map(|term| {
                        if let Some((k, v)) = term.split_once("!=") {
                            (k.to_owned(), Some(v.to_owned()), false)
                        } else if let Some((k, v)) =
                            term.split_once("==").or_else(|| term.split_once('='))
                        {
                            (k.to_owned(), Some(v.to_owned()), true)
                        } else if let Some(k) = term.strip_prefix('!') {
                            (k.to_owned(), None, false)
                        } else {
                            (term.to_owned(), None, true)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fields = query
            .get("fieldSelector")
            .map(|s| {
                s.split(',')
                    .filter_map(|t| t.split_once('='))
                    .map(|(k, v)| (k.trim_end_matches('=').to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Selector { labels, fields }
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let labels_match = self.labels.iter().all(|(key, value, positive)| {
            let actual = labels[key].as_str();
            match (value, positive) {
                (Some(value), true) => actual == Some(value.as_str()),
                (Some(value), false) => actual != Some(value.as_str()),
                (None, true) => actual.is_some(),
                (None, false) => actual.is_none(),
            }
        });
        labels_match
            && self.fields.iter().all(|(field, value)| {
                let pointer = format!("/{}", field.replace('.', "/"));
                object.pointer(&pointer).and_then(Value::as_str) == Some(value.as_str())
            })
    }
}
