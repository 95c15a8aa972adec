//! Helpers for plugins' pure config validation: deserialize a JSON object
//! into a `<Kind>Config`, rejecting unknown keys and naming the field.

use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Parses an environment's `config` (a JSON object, `null` meaning `{}`)
/// into `T`. Errors read "config: …" and name the offending field.
pub fn parse_config<T: DeserializeOwned>(config: &serde_json::Value) -> Result<T, ConfigError> {
    let value = match config {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        serde_json::Value::Object(_) => config.clone(),
        other => {
            return Err(ConfigError::new(format!(
                "config must be a JSON object, got {}",
                json_kind(other)
            )));
        }
    };
    serde_json::from_value(value).map_err(|e| ConfigError::new(format!("config: {e}")))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[allow(dead_code)]
        python_wasm: Option<String>,
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_field() {
        let err = parse_config::<Sample>(&serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(err.message.contains("bogus"), "{}", err.message);
        let err = parse_config::<Sample>(&serde_json::json!({"pythonWasm": 3})).unwrap_err();
        assert!(err.message.contains("config"), "{}", err.message);
        assert!(parse_config::<Sample>(&serde_json::Value::Null).is_ok());
        assert!(parse_config::<Sample>(&serde_json::json!([1])).is_err());
    }
}
