//! `${{ expr }}` expressions, evaluated by minijinja. A string that is exactly one expression
//! keeps the value's type (integer, boolean, object); otherwise expressions are interpolated.
//!
//! The context: `inputs.NAME`, `steps.ID.outputs.NAME`, `steps.ID.status`, `run.id`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;
use serde_json::{json, Map, Value};

use super::model::{Step, Workflow};
use crate::actions::{Args, PlanArgs};

/// What expressions can see.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub run_id: String,
    pub inputs: Map<String, Value>,
    /// Steps that have finished (succeeded, failed or skipped), by id.
    pub steps: BTreeMap<String, StepScope>,
}

#[derive(Clone, Debug, Default)]
pub struct StepScope {
    pub status: String,
    pub outputs: Map<String, Value>,
}

/// An expression that could not be evaluated; `place` says where (e.g. "step `copy`, with.disk").
#[derive(Clone, Debug, thiserror::Error)]
#[error("{place}: {message}")]
pub struct EvalError {
    pub place: String,
    pub message: String,
}

/// One `${{ ... }}` inside a string.
#[derive(Clone, Copy, Debug)]
pub struct Found<'a> {
    /// `${{ ... }}` as written.
    pub text: &'a str,
    /// The expression between the braces.
    pub inner: &'a str,
    /// Byte offset of `text` in the string.
    pub offset: usize,
}

/// Every `${{ }}` in `s`; an opening `${{` without its `}}` is an error.
pub fn expressions(s: &str) -> Result<Vec<Found<'_>>, String> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(start) = s[rest..].find("${{").map(|i| rest + i) {
        let Some(end) = s[start + 3..].find("}}").map(|i| start + 3 + i + 2) else {
            return Err("`${{` is not closed by `}}`".to_string());
        };
        found.push(Found {
            text: &s[start..end],
            inner: &s[start + 3..end - 2],
            offset: start,
        });
        rest = end;
    }
    Ok(found)
}

/// Whether a value contains an expression anywhere (then its type is only known at run time).
pub fn has_expressions(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("${{"),
        Value::Array(items) => items.iter().any(has_expressions),
        Value::Object(map) => map.values().any(has_expressions),
        _ => false,
    }
}

/// Every string inside a value (where expressions can be).
pub fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The expression of an `if`: with or without `${{ }}`.
pub fn condition_source(text: &str) -> Result<&str, String> {
    let found = expressions(text)?;
    match found.as_slice() {
        [] => Ok(text),
        [one] if one.text == text.trim() => Ok(one.inner),
        _ => Err(
            "an `if` is one expression: write `${{ a and b }}`, not several `${{ }}` with text"
                .to_string(),
        ),
    }
}

/// Step ids may contain `-`, which an expression would read as a minus: `steps.copy-disk`
/// becomes `steps.copy__disk`, and the context uses the same key.
pub fn mangle(id: &str) -> String {
    id.replace('-', "__")
}

fn prepare(expr: &str) -> Cow<'_, str> {
    static DASHED: OnceLock<Regex> = OnceLock::new();
    let re = DASHED.get_or_init(|| Regex::new(r"\bsteps\.([a-z0-9_]+(?:-[a-z0-9_]+)+)").unwrap());
    re.replace_all(expr, |c: &regex::Captures| {
        format!("steps.{}", mangle(&c[1]))
    })
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env
    })
}

/// The variables an expression reads, as dotted paths (`steps.copy__disk.outputs.id`,
/// with step ids mangled), or the compile error.
pub fn references(inner: &str) -> Result<Vec<Vec<String>>, String> {
    let source = prepare(inner);
    let expr = env()
        .compile_expression(&source)
        .map_err(|e| describe(&e))?;
    let mut paths: Vec<Vec<String>> = expr
        .undeclared_variables(true)
        .into_iter()
        .map(|p| p.split('.').map(String::from).collect::<Vec<_>>())
        // minijinja's functions (`range`, `dict`, ...) are globals, not workflow variables.
        .filter(|p| !env().globals().any(|(name, _)| name == p[0]))
        .collect();
    paths.sort();
    Ok(paths)
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn context(scope: &Scope) -> minijinja::Value {
    let steps: Map<String, Value> = scope
        .steps
        .iter()
        .map(|(id, s)| {
            (
                mangle(id),
                json!({"status": s.status, "outputs": s.outputs}),
            )
        })
        .collect();
    minijinja::Value::from_serialize(
        json!({"inputs": scope.inputs, "steps": steps, "run": {"id": scope.run_id}}),
    )
}

fn eval_inner(inner: &str, ctx: &minijinja::Value) -> Result<minijinja::Value, String> {
    let source = prepare(inner);
    let expr = env()
        .compile_expression(&source)
        .map_err(|e| describe(&e))?;
    let value = expr
        .eval(ctx)
        .map_err(|e| format!("`{}`: {}", inner.trim(), describe(&e)))?;
    if value.is_undefined() {
        return Err(format!("`{}` is undefined", inner.trim()));
    }
    Ok(value)
}

/// Evaluates the expressions in a string: exactly one expression keeps its type.
fn eval_string(s: &str, ctx: &minijinja::Value) -> Result<Value, String> {
    let found = expressions(s)?;
    if let [one] = found.as_slice() {
        if one.text.len() == s.len() {
            let value = eval_inner(one.inner, ctx)?;
            return serde_json::to_value(&value).map_err(|e| e.to_string());
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    for f in &found {
        out.push_str(&s[rest..f.offset]);
        let value = eval_inner(f.inner, ctx)?;
        match value.as_str() {
            Some(text) => out.push_str(text),
            None => out.push_str(&value.to_string()),
        }
        rest = f.offset + f.text.len();
    }
    out.push_str(&s[rest..]);
    Ok(Value::String(out))
}

fn eval_value(value: &Value, ctx: &minijinja::Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.contains("${{") => eval_string(s, ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| eval_value(v, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), eval_value(v, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The step's `with:` arguments, evaluated.
pub fn eval_args(step: &Step, scope: &Scope) -> Result<Args, EvalError> {
    let ctx = context(scope);
    step.with
        .iter()
        .map(|(name, value)| {
            let v = eval_value(&value.value, &ctx).map_err(|message| EvalError {
                place: format!("step `{}`, with.{name}", step.id.value),
                message,
            })?;
            Ok((name.clone(), v))
        })
        .collect()
}

/// Whether the step runs: its `if` evaluated (true when it has none).
pub fn eval_condition(step: &Step, scope: &Scope) -> Result<bool, EvalError> {
    let Some(condition) = &step.condition else {
        return Ok(true);
    };
    let err = |message| EvalError {
        place: format!("step `{}`, if", step.id.value),
        message,
    };
    let inner = condition_source(&condition.value).map_err(err)?;
    let value = eval_inner(inner, &context(scope)).map_err(err)?;
    Ok(value.is_true())
}

/// The step ids (demangled) an expression string waits for that are not in `scope`.
fn waits_for(value: &Value, scope: &Scope) -> Option<String> {
    let known: Vec<String> = scope.steps.keys().map(|k| mangle(k)).collect();
    for s in strings(value) {
        for found in expressions(s).unwrap_or_default() {
            for path in references(found.inner).unwrap_or_default() {
                if let [root, id, ..] = path.as_slice() {
                    if root == "steps" && !known.contains(id) {
                        return Some(id.replace("__", "-"));
                    }
                }
            }
        }
    }
    None
}

/// The step's arguments at plan time: evaluated where possible, else "known after step X".
pub fn plan_args(step: &Step, scope: &Scope) -> Result<PlanArgs, EvalError> {
    let ctx = context(scope);
    let mut plan = PlanArgs::default();
    for (name, value) in &step.with {
        match waits_for(&value.value, scope) {
            Some(id) => {
                plan.unknown.insert(name.clone(), id);
            }
            None => {
                let v = eval_value(&value.value, &ctx).map_err(|message| EvalError {
                    place: format!("step `{}`, with.{name}", step.id.value),
                    message,
                })?;
                plan.known.insert(name.clone(), v);
            }
        }
    }
    Ok(plan)
}

/// The step a condition waits for, if it reads a step not yet in `scope`.
pub fn condition_waits_for(step: &Step, scope: &Scope) -> Option<String> {
    let condition = step.condition.as_ref()?;
    waits_for(
        &Value::String(format!(
            "${{{{ {} }}}}",
            condition_source(&condition.value).ok()?
        )),
        scope,
    )
}

/// The workflow's `outputs:` at plan time: each value, or the step it waits for.
pub fn plan_outputs(wf: &Workflow, scope: &Scope) -> BTreeMap<String, Result<Value, String>> {
    let ctx = context(scope);
    wf.outputs
        .iter()
        .map(|(name, expr)| {
            let value = Value::String(expr.value.clone());
            let planned = match waits_for(&value, scope) {
                Some(step) => Err(step),
                None => eval_string(&expr.value, &ctx).map_err(|_| String::new()),
            };
            (name.clone(), planned)
        })
        .collect()
}

/// The workflow's `outputs:`, evaluated after the run.
pub fn eval_outputs(wf: &Workflow, scope: &Scope) -> Result<Map<String, Value>, EvalError> {
    let ctx = context(scope);
    wf.outputs
        .iter()
        .map(|(name, expr)| {
            let v = eval_string(&expr.value, &ctx).map_err(|message| EvalError {
                place: format!("output `{name}`"),
                message,
            })?;
            Ok((name.clone(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let mut s = Scope {
            run_id: "20261126-101500-ab12".into(),
            ..Default::default()
        };
        s.inputs.insert("vm".into(), json!("vm2"));
        s.inputs.insert("count".into(), json!(3));
        s.steps.insert(
            "copy-disk".into(),
            StepScope {
                status: "succeeded".into(),
                outputs: json!({"id": "/d/1", "size": 30})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
        );
        s
    }

    #[test]
    fn single_expression_keeps_type_and_text_interpolates() {
        let ctx = context(&scope());
        assert_eq!(eval_string("${{ inputs.count }}", &ctx).unwrap(), json!(3));
        assert_eq!(
            eval_string("${{ steps.copy-disk.outputs }}", &ctx).unwrap(),
            json!({"id": "/d/1", "size": 30})
        );
        assert_eq!(
            eval_string("snap-${{ inputs.vm }}-${{ run.id }}", &ctx).unwrap(),
            json!("snap-vm2-20261126-101500-ab12")
        );
        assert_eq!(
            eval_string("n=${{ inputs.count + 1 }}", &ctx).unwrap(),
            json!("n=4")
        );
    }

    #[test]
    fn undefined_is_an_error() {
        let err = eval_string("${{ inputs.nope }}", &context(&scope())).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn references_are_dotted_paths() {
        let refs =
            references(" steps.copy-disk.outputs.id ~ inputs.vm ~ range(2) | join ").unwrap();
        assert_eq!(
            refs,
            vec![
                vec!["inputs", "vm"],
                vec!["steps", "copy__disk", "outputs", "id"]
            ]
        );
        assert!(references("inputs.vm ==").is_err());
    }

    #[test]
    fn condition_with_or_without_braces() {
        assert_eq!(condition_source("${{ inputs.x }}").unwrap(), " inputs.x ");
        assert_eq!(condition_source("inputs.x").unwrap(), "inputs.x");
        assert!(condition_source("a ${{ b }}").is_err());
        assert!(expressions("${{ open").is_err());
    }
}
