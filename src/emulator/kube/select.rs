//! Label and field selectors as the API server reads them from `labelSelector` /
//! `fieldSelector` (k8s.io/apimachinery pkg/labels and pkg/fields: `a=b`, `a==b`, `a!=b`,
//! `a`, `!a`, `a in (x,y)`, `a notin (x,y)`; fields only `=`, `==`, `!=`).

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Selectors {
    labels: Vec<Req>,
    fields: Vec<(String, bool, String)>,
}

#[derive(Debug)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl Selectors {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        let mut s = Selectors::default();
        for term in split_terms(labels.unwrap_or("")) {
            s.labels.push(label_req(&term)?);
        }
        for term in fields
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let (path, eq, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            s.fields
                .push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(s)
    }

    pub fn matches(&self, o: &Value) -> bool {
        let labels = &o["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            Req::Eq(k, v) => label(k) == Some(v),
            Req::Ne(k, v) => label(k) != Some(v),
            Req::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Req::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Req::Exists(k) => label(k).is_some(),
            Req::Absent(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, eq, want)| {
                let got = field(o, path);
                (got == *want) == *eq
            })
    }
}

/// A field's value as the field selector compares it (absent = "").
fn field(o: &Value, path: &str) -> String {
    let mut v = o;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn label_req(t: &str) -> Result<Req, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: '{t}'"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    if let Some((k, rest)) = t.split_once(" notin ") {
        return Ok(Req::NotIn(k.trim().into(), set(rest)?));
    }
    if let Some((k, rest)) = t.split_once(" in ") {
        return Ok(Req::In(k.trim().into(), set(rest)?));
    }
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(Req::Ne(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return Ok(Req::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some(k) = t.strip_prefix('!') {
        return Ok(Req::Absent(k.trim().into()));
    }
    if t.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
        return Err(format!("unable to parse requirement: '{t}'"));
    }
    Ok(Req::Exists(t.into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn selectors_match_as_drain_and_describe_use_them() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "pg", "tier": "db"}},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = |l, f| super::Selectors::parse(l, f).unwrap().matches(&pod);
        assert!(s(None, Some("spec.nodeName=n1")));
        assert!(!s(None, Some("spec.nodeName=n2")));
        assert!(s(
            None,
            Some("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed")
        ));
        assert!(s(Some("app=pg,tier in (db,web)"), None));
        assert!(!s(Some("app notin (pg)"), None));
        assert!(s(Some("!missing,app"), None));
        assert!(super::Selectors::parse(None, Some("nonsense")).is_err());
    }
}
