//! Workflow inputs: checking values against their declaration and resolving `--input`,
//! `--inputs FILE` and defaults into the values a run uses.

use std::path::Path;

use serde_json::{Map, Value};

use super::build::json_type_name;
use super::diag::{Diagnostics, Problem, Source};
use super::model::{Input, InputType, Workflow};
use super::yaml::{self, key_text, Kind};

impl Input {
    /// Whether `value` is acceptable; the error says why not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match (self.ty, value) {
            (InputType::String, Value::String(s)) => self.check_pattern(s),
            (InputType::Integer, v) if v.is_i64() || v.is_u64() => Ok(()),
            (InputType::Boolean, Value::Bool(_)) => Ok(()),
            (InputType::Enum, Value::String(s)) if self.values.contains(s) => Ok(()),
            (InputType::Enum, v) => Err(format!(
                "{} is not one of: {}",
                show(v),
                self.values.join(", ")
            )),
            (ty, v) => Err(format!(
                "expected {ty}, found {} {}",
                json_type_name(v),
                show(v)
            )),
        }
    }

    fn check_pattern(&self, s: &str) -> Result<(), String> {
        match (&self.regex, &self.pattern) {
            (Some(re), Some(pattern)) if !re.is_match(s) => Err(format!(
                "`{s}` does not match the pattern `{}`",
                pattern.value
            )),
            _ => Ok(()),
        }
    }

    /// The typed value of a `--input NAME=TEXT` argument.
    pub fn parse_text(&self, text: &str) -> Result<Value, String> {
        let value = match self.ty {
            InputType::String | InputType::Enum => Value::String(text.to_string()),
            InputType::Integer => text
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("`{text}` is not an integer"))?,
            InputType::Boolean => match text.trim() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => return Err(format!("`{text}` is not a boolean (use true or false)")),
            },
        };
        self.check(&value)?;
        Ok(value)
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The inputs of a run: `--inputs FILE` values, overridden by `--input NAME=VALUE` pairs,
/// then defaults. Every problem is reported, naming the offending value.
pub fn resolve_inputs(
    wf: &Workflow,
    pairs: &[String],
    file: Option<&Path>,
) -> Result<Map<String, Value>, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut values = Map::new();
    let names = || wf.inputs.keys().map(String::as_str);
    let unknown = |name: &str| unknown_input(wf, name);

    if let Some(path) = file {
        match yaml::read_file(path, "inputs file", "check the path given to --inputs") {
            Err(d) => problems.extend(d),
            Ok(text) => {
                let source = Source::new(path.display().to_string(), text);
                match yaml::parse(&source) {
                    Err(d) => problems.extend(d),
                    Ok(root) => match &root.kind {
                        Kind::Map(entries) => {
                            check_entries(wf, &source, entries, &mut values, &mut problems)
                        }
                        Kind::Null => {}
                        _ => problems.push(
                            Problem::at(
                                &source,
                                root.span,
                                "an inputs file must be a mapping of input names to values",
                            )
                            .help("e.g. `vm: aks-nodepool1-31415926-vm2`"),
                        ),
                    },
                }
            }
        }
    }

    for pair in pairs {
        let Some((name, text)) = pair.split_once('=') else {
            problems.push(
                Problem::plain(format!("--input `{pair}` is not NAME=VALUE"))
                    .help("write e.g. `--input vm=aks-nodepool1-31415926-vm2`"),
            );
            continue;
        };
        let name = name.trim();
        let Some(input) = wf.inputs.get(name) else {
            problems.push(
                Problem::plain(format!("--input {pair}: {}", unknown(name))).suggest(name, names()),
            );
            continue;
        };
        match input.parse_text(text) {
            Ok(value) => {
                values.insert(name.to_string(), value);
            }
            Err(e) => problems.push(Problem::plain(format!(
                "--input {pair}: bad value for input `{name}`: {e}"
            ))),
        }
    }

    for (name, missing) in fill_defaults(wf, &mut values) {
        problems.push(Problem::plain(missing).help(format!(
            "pass it with `--input {name}=VALUE` or in an `--inputs` file"
        )));
    }
    problems.into_result(values)
}

/// Checks the entries of an inputs mapping against the workflow's declarations and adds the
/// good ones to `values`, each problem at its key or value.
fn check_entries(
    wf: &Workflow,
    source: &Source,
    entries: &[(yaml::Node, yaml::Node)],
    values: &mut Map<String, Value>,
    problems: &mut Diagnostics,
) {
    let names = || wf.inputs.keys().map(String::as_str);
    for (key, node) in entries {
        let name = key_text(key);
        let Some(input) = wf.inputs.get(&name) else {
            problems.push(
                Problem::at(source, key.span, unknown_input(wf, &name)).suggest(&name, names()),
            );
            continue;
        };
        let value = node.to_json();
        match input.check(&value) {
            Ok(()) => {
                values.insert(name, value);
            }
            Err(e) => problems.push(
                Problem::at(
                    source,
                    node.span,
                    format!("bad value for input `{name}`: {e}"),
                )
                .label("this value"),
            ),
        }
    }
}

/// Inputs not given take their defaults; the required ones without a value, with what the
/// message says of them.
fn fill_defaults(wf: &Workflow, values: &mut Map<String, Value>) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for (name, input) in &wf.inputs {
        if values.contains_key(name) {
            continue;
        }
        match &input.default {
            Some(default) => {
                values.insert(name.clone(), default.value.clone());
            }
            None if input.required => {
                let about = input
                    .description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                missing.push((
                    name.clone(),
                    format!("missing required input `{name}`{about}"),
                ));
            }
            None => {}
        }
    }
    missing
}

/// "unknown input `x`: workflow `w` has no such input; it declares: a, b".
fn unknown_input(wf: &Workflow, name: &str) -> String {
    let declared: Vec<&str> = wf.inputs.keys().map(String::as_str).collect();
    let listed = if declared.is_empty() {
        "it declares none".to_string()
    } else {
        format!("it declares: {}", declared.join(", "))
    };
    format!(
        "unknown input `{name}`: workflow `{}` has no such input; {listed}",
        wf.name
    )
}

/// One target of a fleet: its id and the inputs of its run.
#[derive(Clone, Debug)]
pub struct Target {
    pub id: String,
    pub inputs: Map<String, Value>,
}

/// The targets of a fleet from a targets file: a list of input mappings (each may name its
/// `id`; else it is the `vm`, `node` or `cluster` input), or a mapping with that list under
/// `targets:` and the inputs all share under `defaults:`. `shared` (from the command line)
/// comes below both. Every problem is reported at its line and column; none is run on.
pub fn resolve_targets(
    wf: &Workflow,
    path: &Path,
    shared: &Map<String, Value>,
) -> Result<Vec<Target>, Diagnostics> {
    let text = yaml::read_file(path, "targets file", "check the path given to --targets")?;
    let source = Source::new(path.display().to_string(), text);
    let root = yaml::parse(&source)?;
    let mut problems = Diagnostics::default();
    let shape = |at| {
        Problem::at(
            &source,
            at,
            "a targets file is a list of targets (input mappings), or a mapping with `targets:` (that list) and optional `defaults:` (inputs they share)",
        )
        .help("e.g. `targets: [{vm: vm1}, {vm: vm2}]`")
    };
    let (defaults, list) = match &root.kind {
        Kind::Seq(items) => (None, items.as_slice()),
        Kind::Map(entries) => {
            let mut defaults = None;
            let mut list = None;
            for (key, node) in entries {
                match (key_text(key).as_str(), &node.kind) {
                    ("defaults", Kind::Map(d)) => defaults = Some(d.as_slice()),
                    ("defaults", Kind::Null) => {}
                    ("targets", Kind::Seq(items)) => list = Some(items.as_slice()),
                    ("defaults" | "targets", _) => problems.push(
                        Problem::at(
                            &source,
                            node.span,
                            format!(
                                "`{}` must be {}, found {}",
                                key_text(key),
                                if key_text(key) == "defaults" {
                                    "a mapping of inputs"
                                } else {
                                    "a list of targets"
                                },
                                node.type_name()
                            ),
                        )
                        .label("this value"),
                    ),
                    (other, _) => problems.push(
                        Problem::at(
                            &source,
                            key.span,
                            format!("unknown key `{other}`: a targets file has `targets` and `defaults`"),
                        )
                        .suggest(other, ["targets", "defaults"]),
                    ),
                }
            }
            match list {
                Some(list) => (defaults, list),
                None => {
                    problems.push(shape(root.span));
                    return Err(problems);
                }
            }
        }
        _ => return Err(Diagnostics(vec![shape(root.span)])),
    };
    if list.is_empty() {
        problems.push(Problem::at(
            &source,
            root.span,
            "the targets file lists no target",
        ));
    }
    let mut base = shared.clone();
    if let Some(entries) = defaults {
        check_entries(wf, &source, entries, &mut base, &mut problems);
    }
    let mut targets: Vec<Target> = Vec::new();
    for (n, item) in list.iter().enumerate() {
        let Kind::Map(entries) = &item.kind else {
            problems.push(
                Problem::at(
                    &source,
                    item.span,
                    format!(
                        "target {}: expected a mapping of inputs, found {}",
                        n + 1,
                        item.type_name()
                    ),
                )
                .label("this target"),
            );
            continue;
        };
        let mut id = None;
        let inputs: Vec<(yaml::Node, yaml::Node)> = entries
            .iter()
            .filter(|(k, v)| {
                let is_id = key_text(k) == "id";
                if is_id {
                    id = Some(v);
                }
                !is_id
            })
            .cloned()
            .collect();
        let mut values = base.clone();
        let before = problems.len();
        check_entries(wf, &source, &inputs, &mut values, &mut problems);
        for (_, missing) in fill_defaults(wf, &mut values) {
            problems.push(
                Problem::at(&source, item.span, format!("target {}: {missing}", n + 1))
                    .label("this target")
                    .help("give it in the target or under `defaults:`"),
            );
        }
        let named = |key: &str| {
            values
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let id = match id {
            Some(node) => match node.as_str().filter(|s| is_target_id(s)) {
                Some(s) => s.to_string(),
                None => {
                    problems.push(
                        Problem::at(
                            &source,
                            node.span,
                            "a target's `id` is a word of letters, digits, `-`, `_` and `.`",
                        )
                        .label("this id"),
                    );
                    continue;
                }
            },
            None => match named("vm")
                .or_else(|| named("node"))
                .or_else(|| named("cluster"))
            {
                Some(s) => s.to_string(),
                None => format!("target-{}", n + 1),
            },
        };
        if problems.len() > before {
            continue;
        }
        if targets.iter().any(|t| t.id == id) {
            problems.push(
                Problem::at(
                    &source,
                    item.span,
                    format!("target {}: id `{id}` is another target's too", n + 1),
                )
                .help("give each target its own `id:`"),
            );
            continue;
        }
        targets.push(Target { id, inputs: values });
    }
    problems.into_result(targets)
}

fn is_target_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
