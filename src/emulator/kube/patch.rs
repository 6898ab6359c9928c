//! PATCH bodies by content type, as kube-apiserver accepts them: JSON patch (RFC 6902), merge
//! patch (RFC 7386) and strategic merge patch. What kubectl cordon, uncordon and taint send is a
//! strategic merge patch of `spec.unschedulable` or the whole `spec.taints` list, which has no
//! merge key (k8s.io/api core/v1 NodeSpec.Taints carries no patchStrategy), so it merges as an
//! RFC 7386 patch. Patches with strategic directives (`$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList`, `$setElementOrder`) are refused rather than misapplied.

use serde_json::Value;

use super::api::KubeError;

pub fn apply(old: &Value, content_type: &str, body: &[u8]) -> Result<Value, KubeError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| KubeError::new(400, "BadRequest", format!("error decoding patch: {e}")))?;
    let mut new = old.clone();
    match media {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_value(parsed).map_err(|e| {
                KubeError::new(400, "BadRequest", format!("error decoding patch: {e}"))
            })?;
            json_patch::patch(&mut new, &p).map_err(|e| {
                KubeError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"))
            })?;
        }
        "application/merge-patch+json" => json_patch::merge(&mut new, &parsed),
        "application/strategic-merge-patch+json" => {
            if let Some(d) = directive(&parsed) {
                return Err(KubeError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("strategic merge patch directive `{d}` is not supported by this emulator; send a JSON or merge patch"),
                ));
            }
            json_patch::merge(&mut new, &parsed);
        }
        other => {
            return Err(KubeError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got `{other}`)"),
            ))
        }
    }
    Ok(new)
}

fn directive(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            if k.starts_with('$') {
                Some(k.clone())
            } else {
                directive(v)
            }
        }),
        Value::Array(a) => a.iter().find_map(directive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn cordon_and_taint_patches_apply() {
        let node = json!({"spec": {"providerID": "azure:///x"}, "status": {}});
        let sm = "application/strategic-merge-patch+json";
        let n = super::apply(&node, sm, br#"{"spec":{"unschedulable":true}}"#).unwrap();
        assert_eq!(n["spec"]["unschedulable"], true);
        let n = super::apply(&n, sm, br#"{"spec":{"unschedulable":null}}"#).unwrap();
        assert!(n["spec"].get("unschedulable").is_none());
        let jp =
            br#"[{"op":"add","path":"/spec/taints","value":[{"key":"k","effect":"NoExecute"}]}]"#;
        let n = super::apply(&n, "application/json-patch+json", jp).unwrap();
        assert_eq!(n["spec"]["taints"][0]["key"], "k");
        let bad = br#"{"spec":{"$retainKeys":["a"]}}"#;
        assert_eq!(super::apply(&n, sm, bad).err().unwrap().code, 415);
    }
}
