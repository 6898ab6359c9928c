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
    let unknown = |name: &str| {
        let declared: Vec<&str> = names().collect();
        let listed = if declared.is_empty() {
            "it declares none".to_string()
        } else {
            format!("it declares: {}", declared.join(", "))
        };
        format!(
            "unknown input `{name}`: workflow `{}` has no such input; {listed}",
            wf.name
        )
    };

    if let Some(path) = file {
        match yaml::read_file(path, "inputs file", "check the path given to --inputs") {
            Err(d) => problems.extend(d),
            Ok(text) => {
                let source = Source::new(path.display().to_string(), text);
                match yaml::parse(&source) {
                    Err(d) => problems.extend(d),
                    Ok(root) => match &root.kind {
                        Kind::Map(entries) => {
                            for (key, node) in entries {
                                let name = key_text(key);
                                let Some(input) = wf.inputs.get(&name) else {
                                    problems.push(
                                        Problem::at(&source, key.span, unknown(&name))
                                            .suggest(&name, names()),
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
                                            &source,
                                            node.span,
                                            format!("bad value for input `{name}`: {e}"),
                                        )
                                        .label("this value"),
                                    ),
                                }
                            }
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
                problems.push(
                    Problem::plain(format!("missing required input `{name}`{about}")).help(
                        format!("pass it with `--input {name}=VALUE` or in an `--inputs` file"),
                    ),
                );
            }
            None => {}
        }
    }
    problems.into_result(values)
}
