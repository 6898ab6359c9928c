//! The JSON Schema of the workflow document (`rescue schema`), for editors.

use serde_json::{json, Value};

use super::model::Workflow;
use crate::actions::Registry;

/// The schema derived from the model, with `uses` listing the registry's actions.
pub fn json_schema(registry: &Registry) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Workflow)).expect("a schema is JSON");
    let actions: Vec<Value> = registry
        .specs()
        .map(|spec| json!({"const": spec.name, "description": spec.summary}))
        .collect();
    if let Some(uses) = schema.pointer_mut("/$defs/Step/properties/uses") {
        let description = uses.get("description").cloned().unwrap_or(Value::Null);
        *uses = if actions.is_empty() { json!({"type": "string"}) } else { json!({"oneOf": actions}) };
        uses["description"] = description;
    }
    schema["$id"] = json!("https://github.com/rescue/rescue/workflow.schema.json");
    schema
}
