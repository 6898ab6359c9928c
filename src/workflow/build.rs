//! From the positioned YAML tree to the typed model, collecting every structural problem
//! (unknown or missing fields, wrong types, bad durations and patterns) instead of stopping.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::diag::{Diagnostics, Problem, Source};
use super::model::{Input, InputType, Retry, Spanned, Step, Workflow};
use super::yaml::{key_text, Kind, Node};

const WORKFLOW_FIELDS: &[&str] = &["name", "description", "inputs", "steps", "outputs"];
const INPUT_FIELDS: &[&str] = &[
    "type",
    "description",
    "required",
    "default",
    "pattern",
    "values",
];
const STEP_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "uses",
    "with",
    "if",
    "retry",
    "timeout",
    "confirm",
    "needs",
];
const RETRY_FIELDS: &[&str] = &["max_attempts", "backoff", "max_backoff"];

/// Reads the fields of one mapping and reports those nobody asked for.
struct Fields<'a> {
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
    node: &'a Node,
}

impl<'a> Fields<'a> {
    fn get(&mut self, name: &str) -> Option<&'a Node> {
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.as_str() == Some(name))?;
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    fn finish(self, what: &str, known: &[&str], cx: &mut Cx) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                let name = key_text(key);
                let problem = Problem::at(
                    cx.source,
                    key.span,
                    format!("unknown field `{name}` in {what}"),
                )
                .label("unknown field")
                .help(format!("the fields of {what} are: {}", known.join(", ")))
                .suggest(&name, known.iter().copied());
                cx.problems.push(problem);
            }
        }
    }
}

struct Cx<'a> {
    source: &'a Source,
    problems: Diagnostics,
}

impl<'a> Cx<'a> {
    fn error(&mut self, node: &Node, message: String, help: &str) {
        let mut problem = Problem::at(self.source, node.span, message);
        if !help.is_empty() {
            problem = problem.help(help);
        }
        self.problems.push(problem);
    }

    fn fields<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        match &node.kind {
            Kind::Map(entries) => Some(Fields {
                entries,
                used: vec![false; entries.len()],
                node,
            }),
            _ => {
                self.error(
                    node,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                    "",
                );
                None
            }
        }
    }

    fn missing(&mut self, fields: &Fields, what: &str, field: &str, example: &str) {
        let problem = Problem::at(
            self.source,
            fields.node.span,
            format!("{what} has no `{field}`"),
        )
        .label(format!("`{field}` missing"))
        .help(format!("add it, e.g. `{field}: {example}`"));
        self.problems.push(problem);
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.kind {
            Kind::Str(s) => Some(Spanned::new(s.clone(), node.span)),
            _ => {
                self.error(
                    node,
                    format!("{what} must be a string, found {}", node.type_name()),
                    "quote the value if it is meant as text",
                );
                None
            }
        }
    }

    fn opt_string(&mut self, fields: &mut Fields, name: &str, what: &str) -> Option<String> {
        let node = fields.get(name)?;
        self.string(node, &format!("`{name}` of {what}"))
            .map(|s| s.value)
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match humantime::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(_) => {
                self.error(
                    node,
                    format!("{what}: `{}` is not a duration", text.value),
                    "write a number and a unit, e.g. `30s`, `5m` or `1h 30m`",
                );
                None
            }
        }
    }

    /// A mapping from names to nodes; `None` or a non-mapping is reported.
    fn map<'n>(&mut self, node: &'n Node, what: &str) -> &'n [(Node, Node)] {
        match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Null => &[],
            _ => {
                self.error(
                    node,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                    "",
                );
                &[]
            }
        }
    }
}

/// Builds the model; on problems returns them together with the best-effort model, so that
/// the analyzer can still report reference errors in the parts that were readable.
pub fn build(root: &Node, source: &Source) -> (Workflow, Diagnostics) {
    let mut cx = Cx {
        source,
        problems: Diagnostics::default(),
    };
    let mut wf = Workflow {
        name: String::new(),
        description: None,
        inputs: BTreeMap::new(),
        steps: Vec::new(),
        outputs: BTreeMap::new(),
        source: source.clone(),
    };
    let Some(mut fields) = cx.fields(root, "a workflow") else {
        return (wf, cx.problems);
    };

    match fields.get("name") {
        Some(node) => {
            wf.name = cx
                .string(node, "`name`")
                .map(|s| s.value)
                .unwrap_or_default()
        }
        None => cx.missing(&fields, "the workflow", "name", "repair-os-disk"),
    }
    wf.description = cx.opt_string(&mut fields, "description", "the workflow");
    if let Some(node) = fields.get("inputs") {
        for (key, value) in cx.map(node, "`inputs`") {
            if let Some(input) = input(&mut cx, &key_text(key), value) {
                wf.inputs.insert(key_text(key), input);
            }
        }
    }
    match fields.get("steps") {
        Some(node) => match &node.kind {
            Kind::Seq(items) if !items.is_empty() => {
                wf.steps = items.iter().filter_map(|n| step(&mut cx, n)).collect()
            }
            Kind::Seq(_) | Kind::Null => cx.error(
                node,
                "`steps` is empty".into(),
                "a workflow needs at least one step",
            ),
            _ => cx.error(
                node,
                format!("`steps` must be a list, found {}", node.type_name()),
                "write each step as `- id: ...`",
            ),
        },
        None => cx.missing(&fields, "the workflow", "steps", "[ ... ]"),
    }
    if let Some(node) = fields.get("outputs") {
        for (key, value) in cx.map(node, "`outputs`") {
            let what = format!("output `{}`", key_text(key));
            if let Some(expr) = cx.string(value, &what) {
                wf.outputs.insert(key_text(key), expr);
            }
        }
    }
    fields.finish("a workflow", WORKFLOW_FIELDS, &mut cx);
    (wf, cx.problems)
}

fn input(cx: &mut Cx, name: &str, node: &Node) -> Option<Input> {
    let what = format!("input `{name}`");
    let mut fields = cx.fields(node, &what)?;
    let ty = match fields.get("type") {
        None => {
            cx.missing(&fields, &what, "type", "string");
            None
        }
        Some(t) => match t.as_str().and_then(InputType::parse) {
            Some(ty) => Some(ty),
            None => {
                let found = t
                    .as_str()
                    .map_or_else(|| t.type_name().to_string(), |s| format!("`{s}`"));
                let problem =
                    Problem::at(cx.source, t.span, format!("unknown type {found} of {what}"))
                        .help(format!("use one of: {}", InputType::NAMES.join(", ")))
                        .suggest(t.as_str().unwrap_or(""), InputType::NAMES.iter().copied());
                cx.problems.push(problem);
                None
            }
        },
    };
    let description = cx.opt_string(&mut fields, "description", &what);
    let default = fields
        .get("default")
        .map(|n| Spanned::new(n.to_json(), n.span));
    let required = match fields.get("required") {
        Some(Node {
            kind: Kind::Bool(b),
            ..
        }) => *b,
        Some(other) => {
            cx.error(
                other,
                format!(
                    "`required` of {what} must be true or false, found {}",
                    other.type_name()
                ),
                "",
            );
            true
        }
        None => default.is_none(),
    };
    let pattern = match fields.get("pattern") {
        Some(n) => cx.string(n, &format!("`pattern` of {what}")),
        None => None,
    };
    let regex = pattern
        .as_ref()
        .and_then(|p| match Regex::new(&format!("^(?:{})$", p.value)) {
            Ok(re) => Some(re),
            Err(e) => {
                let message = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                cx.problems.push(
                    Problem::at(
                        cx.source,
                        p.span,
                        format!("`pattern` of {what} is not a valid regular expression: {message}"),
                    )
                    .help("the pattern uses Rust regex syntax and must match the whole value"),
                );
                None
            }
        });
    let values: Vec<String> = match fields.get("values") {
        Some(
            n @ Node {
                kind: Kind::Seq(items),
                ..
            },
        ) => {
            let vals: Vec<String> = items
                .iter()
                .filter_map(|i| cx.string(i, &format!("a value of {what}")).map(|s| s.value))
                .collect();
            if vals.is_empty() {
                cx.error(
                    n,
                    format!("`values` of {what} is empty"),
                    "list the allowed values",
                );
            }
            vals
        }
        Some(other) => {
            cx.error(
                other,
                format!(
                    "`values` of {what} must be a list, found {}",
                    other.type_name()
                ),
                "e.g. `values: [ext4, xfs]`",
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    if ty == Some(InputType::Enum) && values.is_empty() && fields.get("values").is_none() {
        cx.missing(&fields, &format!("enum {what}"), "values", "[a, b]");
    }
    fields.finish(&what, INPUT_FIELDS, cx);
    // A bad type is reported above; the input still exists for the reference checks.
    let input = Input {
        ty: ty.unwrap_or(InputType::String),
        description,
        required,
        default,
        pattern,
        values,
        regex,
        span: node.span,
    };
    if let (Some(default), Some(_)) = (&input.default, ty) {
        if let Err(message) = input.check(&default.value) {
            cx.problems.push(
                Problem::at(
                    cx.source,
                    default.span,
                    format!("default of {what} is invalid: {message}"),
                )
                .label("this default"),
            );
        }
    }
    Some(input)
}

fn step(cx: &mut Cx, node: &Node) -> Option<Step> {
    let mut fields = cx.fields(node, "a step")?;
    let id = match fields.get("id") {
        Some(n) => cx.string(n, "a step's `id`"),
        None => {
            cx.missing(&fields, "a step", "id", "snapshot");
            None
        }
    };
    let what = id
        .as_ref()
        .map_or_else(|| "a step".to_string(), |id| format!("step `{}`", id.value));
    if let Some(id) = &id {
        if id.value.is_empty()
            || !id
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            cx.problems.push(
                Problem::at(
                    cx.source,
                    id.span,
                    format!(
                        "step id `{}` has characters other than a-z 0-9 _ -",
                        id.value
                    ),
                )
                .help("use lowercase letters, digits, `_` and `-`, e.g. `copy_disk`"),
            );
        }
    }
    let uses = match fields.get("uses") {
        Some(n) => cx.string(n, &format!("`uses` of {what}")),
        None => {
            cx.missing(&fields, &what, "uses", "core.echo");
            None
        }
    };
    let name = cx.opt_string(&mut fields, "name", &what);
    let description = cx.opt_string(&mut fields, "description", &what);
    let with_entries = match fields.get("with") {
        Some(n) => cx.map(n, &format!("`with` of {what}")),
        None => &[],
    };
    let with = with_entries
        .iter()
        .map(|(k, v)| (key_text(k), Spanned::new(v.to_json(), v.span)))
        .collect();
    let with_keys = with_entries
        .iter()
        .map(|(k, _)| (key_text(k), k.span))
        .collect();
    let condition = match fields.get("if") {
        Some(
            n @ Node {
                kind: Kind::Bool(b),
                ..
            },
        ) => Some(Spanned::new(b.to_string(), n.span)),
        Some(n) => cx.string(n, &format!("`if` of {what}")),
        None => None,
    };
    let retry = fields.get("retry").and_then(|n| retry(cx, n, &what));
    let timeout = fields
        .get("timeout")
        .and_then(|n| cx.duration(n, &format!("`timeout` of {what}")));
    let confirm = match fields.get("confirm") {
        None
        | Some(Node {
            kind: Kind::Bool(false),
            ..
        }) => None,
        Some(Node {
            kind: Kind::Bool(true),
            ..
        }) => Some(format!(
            "Run step `{}`?",
            id.as_ref().map_or("", |i| &i.value)
        )),
        Some(Node {
            kind: Kind::Str(s), ..
        }) => Some(s.clone()),
        Some(other) => {
            cx.error(
                other,
                format!(
                    "`confirm` of {what} must be true, false or a question, found {}",
                    other.type_name()
                ),
                "e.g. `confirm: \"Swap the OS disk now?\"`",
            );
            None
        }
    };
    let needs = fields.get("needs").map(|n| needs(cx, n, &what));
    fields.finish(&what, STEP_FIELDS, cx);
    Some(Step {
        id: id?,
        name,
        description,
        uses: uses.unwrap_or_else(|| Spanned::new(String::new(), node.span)),
        with,
        with_keys,
        condition,
        retry,
        timeout,
        confirm,
        needs,
        span: node.span,
    })
}

/// `needs: other` or `needs: [a, b]` (or `[]`): step ids, checked by the analyzer.
fn needs(cx: &mut Cx, node: &Node, step: &str) -> Vec<Spanned<String>> {
    let what = format!("`needs` of {step}");
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| cx.string(item, &format!("an entry of {what}")))
            .collect(),
        _ => cx.string(node, &what).into_iter().collect(),
    }
}

fn retry(cx: &mut Cx, node: &Node, step: &str) -> Option<Retry> {
    let what = format!("`retry` of {step}");
    let mut fields = cx.fields(node, &what)?;
    let mut retry = Retry::default();
    match fields.get("max_attempts") {
        Some(Node {
            kind: Kind::Int(n), ..
        }) if *n >= 1 && *n <= u32::MAX as i64 => retry.max_attempts = *n as u32,
        Some(n) => cx.error(
            n,
            format!("`max_attempts` of {what} must be a whole number of at least 1"),
            "e.g. `max_attempts: 3`",
        ),
        None => {}
    }
    if let Some(d) = fields
        .get("backoff")
        .and_then(|n| cx.duration(n, &format!("`backoff` of {what}")))
    {
        retry.backoff = d;
    }
    if let Some(d) = fields
        .get("max_backoff")
        .and_then(|n| cx.duration(n, &format!("`max_backoff` of {what}")))
    {
        retry.max_backoff = d;
    }
    fields.finish(&what, RETRY_FIELDS, cx);
    Some(retry)
}

/// Used by the `Value` conversions of inputs.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
