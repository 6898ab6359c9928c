//! The JSON Schema of the workflow document (`rescue schema`), for editors: derived from the
//! model, with `uses` listing the registry's actions and `with` checked per action.

use serde_json::{json, Map, Value};

use super::model::Workflow;
use crate::actions::{ActionSpec, ParamType, Registry};

pub fn json_schema(registry: &Registry) -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Workflow)).expect("a schema is JSON");
    drop_nulls(&mut schema);
    let specs: Vec<&ActionSpec> = registry.specs().collect();
    if let Some(step) = schema.pointer_mut("/$defs/Step") {
        let uses = &mut step["properties"]["uses"];
        let description = uses["description"].take();
        *uses = json!({
            "description": description,
            "oneOf": specs.iter().map(|s| json!({"const": s.name, "description": s.summary})).collect::<Vec<_>>(),
        });
        // `if: true` is accepted as well as an expression.
        step["properties"]["if"]["type"] = json!(["string", "boolean"]);
        step["allOf"] = specs.iter().map(|s| with_for(s)).collect();
    }
    schema
}

/// `with:` of a step using `spec`: its parameters, their types, the required ones.
fn with_for(spec: &ActionSpec) -> Value {
    let properties: Map<String, Value> = spec
        .params
        .iter()
        .map(|p| {
            let mut param = param_type(p.ty);
            param["description"] = json!(p.description);
            (p.name.to_string(), param)
        })
        .collect();
    let required: Vec<&str> = spec
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    let mut with =
        json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        with["required"] = json!(required);
    }
    let mut then = json!({"properties": {"with": with}});
    if !required.is_empty() {
        then["required"] = json!(["with"]);
    }
    json!({"if": {"properties": {"uses": {"const": spec.name}}, "required": ["uses"]}, "then": then})
}

/// A parameter's type; any parameter may also be an expression, checked at run time.
fn param_type(ty: ParamType) -> Value {
    let json_type = match ty {
        ParamType::String | ParamType::File => return json!({"type": "string"}),
        ParamType::Any => return json!({}),
        ParamType::Integer => "integer",
        ParamType::Boolean => "boolean",
        ParamType::Number => "number",
        ParamType::List => "array",
        ParamType::Object => "object",
    };
    json!({"anyOf": [{"type": json_type}, {"type": "string", "pattern": "\\$\\{\\{"}]})
}

/// Optional fields are left out, never `null`: the loader rejects `name: ~`, so the schema
/// does too (schemars renders `Option<T>` as nullable with a null default).
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get("anyOf") {
                let rest: Vec<Value> = any
                    .iter()
                    .filter(|s| s.get("type") != Some(&json!("null")))
                    .cloned()
                    .collect();
                if let [only] = rest.as_slice() {
                    map.remove("anyOf");
                    if let Value::Object(inner) = only.clone() {
                        map.extend(inner);
                    }
                }
            }
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
