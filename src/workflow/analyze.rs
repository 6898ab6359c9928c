//! Semantic checks on a built workflow: actions exist, arguments fit their parameters, step
//! ids are unique, and every expression reads something that exists by the time it runs.

use std::collections::HashMap;

use serde_json::Value;

use super::diag::{did_you_mean, Diagnostics, Problem, Span};
use super::expr::{self, condition_source, expressions, has_expressions, mangle, references};
use super::graph;
use super::model::Workflow;
use crate::actions::Registry;

/// Which steps an expression may read: those before it (a step), or all (workflow outputs).
#[derive(Clone, Copy)]
enum Reader {
    Step(usize),
    Outputs,
}

pub fn analyze(wf: &Workflow, registry: &Registry) -> Diagnostics {
    let mut a = Analyzer {
        wf,
        registry,
        problems: Diagnostics::default(),
    };
    a.unique_ids();
    for (i, step) in wf.steps.iter().enumerate() {
        a.action(i);
        a.needs(i);
        for value in step.with.values() {
            a.expressions_in(&value.value, value.span, Reader::Step(i));
        }
        if let Some(condition) = &step.condition {
            match condition_source(&condition.value) {
                Ok(inner) => a.expression(inner, condition.span, Reader::Step(i)),
                Err(e) => a.problems.push(Problem::at(
                    &wf.source,
                    condition.span,
                    format!("invalid `if` of step `{}`: {e}", step.id.value),
                )),
            }
        }
    }
    for expr in wf.outputs.values() {
        a.expressions_in(
            &Value::String(expr.value.clone()),
            expr.span,
            Reader::Outputs,
        );
    }
    a.problems
}

struct Analyzer<'a> {
    wf: &'a Workflow,
    registry: &'a Registry,
    problems: Diagnostics,
}

impl Analyzer<'_> {
    fn at(&self, span: Span, message: String) -> Problem {
        Problem::at(&self.wf.source, span, message)
    }

    fn unique_ids(&mut self) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for step in &self.wf.steps {
            if let Some(first) = seen.get(&mangle(&step.id.value)) {
                let (line, _) = self.wf.source.line_col(first.start);
                let problem = self
                    .at(
                        step.id.span,
                        format!("duplicate step id `{}`", step.id.value),
                    )
                    .label("used again here")
                    .help(format!(
                        "the first step with this id is on line {line}; step ids must be unique"
                    ));
                self.problems.push(problem);
            } else {
                seen.insert(mangle(&step.id.value), step.id.span);
            }
        }
    }

    /// Each `needs` entry names a step above this one.
    fn needs(&mut self, i: usize) {
        let wf = self.wf;
        let step = &wf.steps[i];
        for need in step.needs.iter().flatten() {
            let Some(j) = graph::position(wf, &need.value) else {
                let ids = wf.steps.iter().map(|s| s.id.value.as_str());
                let problem = self
                    .at(
                        need.span,
                        format!(
                            "step `{}` needs `{}`, which is no step of this workflow",
                            step.id.value, need.value
                        ),
                    )
                    .label("no such step")
                    .suggest(&need.value, ids);
                self.problems.push(problem);
                continue;
            };
            if j < i {
                continue;
            }
            let (message, help) = if j == i {
                (
                    format!("step `{}` needs itself", step.id.value),
                    "remove it from its own `needs`".to_string(),
                )
            } else if let Some(cycle) = graph::path(wf, j, i) {
                let names: Vec<&str> = std::iter::once(i)
                    .chain(cycle)
                    .map(|k| wf.steps[k].id.value.as_str())
                    .collect();
                (
                    format!(
                        "step `{}` needs `{}`, which needs it: a cycle ({})",
                        step.id.value,
                        need.value,
                        names.join(" → ")
                    ),
                    "one of these steps must come first: drop its `needs` of the other".to_string(),
                )
            } else {
                (
                    format!(
                        "step `{}` needs `{}`, which comes after it",
                        step.id.value, need.value
                    ),
                    format!(
                        "move step `{}` above `{}`: steps run, are journaled and are rolled back in the file's order, so `needs` names only steps above",
                        need.value, step.id.value
                    ),
                )
            };
            let problem = self.at(need.span, message).label("here").help(help);
            self.problems.push(problem);
        }
    }

    fn action(&mut self, i: usize) {
        let step = &self.wf.steps[i];
        if step.uses.value.is_empty() {
            return; // reported as missing by the builder
        }
        let Some(action) = self.registry.get(&step.uses.value) else {
            let problem = self
                .at(
                    step.uses.span,
                    format!("unknown action `{}`", step.uses.value),
                )
                .label("no such action")
                .help("`rescue schema` lists the actions")
                .suggest(&step.uses.value, self.registry.names());
            self.problems.push(problem);
            return;
        };
        let spec = action.spec();
        let names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        for (name, value) in &step.with {
            match spec.params.iter().find(|p| p.name == name) {
                None => {
                    let listed = if names.is_empty() {
                        "it takes no arguments".to_string()
                    } else {
                        format!("it takes: {}", names.join(", "))
                    };
                    let span = step.with_keys.get(name).copied().unwrap_or(value.span);
                    let problem = self
                        .at(
                            span,
                            format!("unknown argument `{name}` for action `{}`", spec.name),
                        )
                        .label("unknown argument")
                        .help(listed)
                        .suggest(name, names.iter().copied());
                    self.problems.push(problem);
                }
                Some(param)
                    if !has_expressions(&value.value) && !param.ty.accepts(&value.value) =>
                {
                    let problem = self
                        .at(
                            value.span,
                            format!(
                                "argument `{name}` of `{}` must be {}, found {}",
                                spec.name,
                                param.ty,
                                super::build::json_type_name(&value.value)
                            ),
                        )
                        .label(format!("expected {}", param.ty))
                        .help(param.description);
                    self.problems.push(problem);
                }
                Some(_) => {}
            }
        }
        for param in spec
            .params
            .iter()
            .filter(|p| p.required && !step.with.contains_key(p.name))
        {
            let problem = self
                .at(
                    step.uses.span,
                    format!(
                        "step `{}` is missing the required argument `{}` of `{}`",
                        step.id.value, param.name, spec.name
                    ),
                )
                .help(format!(
                    "add `{}: ...` under `with:` ({})",
                    param.name, param.description
                ));
            self.problems.push(problem);
        }
    }

    fn expressions_in(&mut self, value: &Value, span: Span, reader: Reader) {
        for s in expr::strings(value) {
            match expressions(s) {
                Err(e) => self.problems.push(
                    Problem::at(&self.wf.source, span, format!("invalid expression: {e}"))
                        .help("write expressions as `${{ inputs.name }}`"),
                ),
                Ok(found) => {
                    for f in found {
                        let span = self.locate(span, f.text);
                        self.expression(f.inner, span, reader);
                    }
                }
            }
        }
    }

    /// Where `text` is in the file, searching from the value's start (falls back to the value).
    fn locate(&self, span: Span, text: &str) -> Span {
        let rest = &self.wf.source.text[span.start..];
        match rest.find(text) {
            Some(i) if i < 4096 => Span::new(span.start + i, text.len()),
            _ => span,
        }
    }

    fn expression(&mut self, inner: &str, span: Span, reader: Reader) {
        match references(inner) {
            Err(e) => {
                let problem = self
                    .at(span, format!("invalid expression `{}`: {e}", inner.trim()))
                    .label("does not compile")
                    .help("expressions use minijinja syntax, e.g. `${{ inputs.vm ~ '-copy' }}`");
                self.problems.push(problem);
            }
            Ok(paths) => {
                for path in paths {
                    if let Err((message, help)) = self.reference(&path, reader) {
                        let mut problem = self.at(span, message).label("this expression");
                        if let Some(help) = help {
                            problem = problem.help(help);
                        }
                        self.problems.push(problem);
                    }
                }
            }
        }
    }

    fn reference(&self, path: &[String], reader: Reader) -> Result<(), (String, Option<String>)> {
        let wf = self.wf;
        let shown = path.join(".");
        match path.first().map(String::as_str) {
            Some("inputs") => match path.get(1) {
                Some(name) if !wf.inputs.contains_key(name) => {
                    let help = match did_you_mean(name, wf.inputs.keys().map(String::as_str)) {
                        Some(best) => format!("did you mean `inputs.{best}`?"),
                        None => "declare it under `inputs:`".to_string(),
                    };
                    Err((format!("unknown input `{name}` in `{shown}`"), Some(help)))
                }
                _ => Ok(()),
            },
            Some("run") => match path.get(1).map(String::as_str) {
                None | Some("id") => Ok(()),
                Some(other) => Err((
                    format!("unknown `run.{other}`"),
                    Some("`run` has only `id`".to_string()),
                )),
            },
            Some("steps") => {
                let Some(id) = path.get(1) else { return Ok(()) };
                let Some(index) = wf.steps.iter().position(|s| mangle(&s.id.value) == *id) else {
                    let mut ids: Vec<&str> = wf.steps.iter().map(|s| s.id.value.as_str()).collect();
                    ids.dedup();
                    let help = match did_you_mean(id, ids.iter().copied()) {
                        Some(best) => format!("did you mean `steps.{best}`?"),
                        None => format!("the steps are: {}", ids.join(", ")),
                    };
                    return Err((
                        format!("unknown step `{}` in `{shown}`", id.replace("__", "-")),
                        Some(help),
                    ));
                };
                let step = &wf.steps[index];
                if let Reader::Step(current) = reader {
                    if index >= current {
                        let when = if index == current {
                            "is this step itself"
                        } else {
                            "runs later"
                        };
                        return Err((
                            format!("`{shown}` reads step `{}`, which {when}", step.id.value),
                            Some("a step can only read the outputs of steps before it".to_string()),
                        ));
                    }
                    if !graph::ancestors(wf, current).contains(&index) {
                        let reader = &wf.steps[current].id.value;
                        return Err((
                            format!(
                                "`{shown}` reads step `{}`, which step `{reader}` does not need: the two may run at the same time",
                                step.id.value
                            ),
                            Some(format!(
                                "add `{}` to the `needs` of step `{reader}`",
                                step.id.value
                            )),
                        ));
                    }
                }
                match path.get(2).map(String::as_str) {
                    None | Some("status") => Ok(()),
                    Some("outputs") => {
                        let (Some(name), Some(action)) =
                            (path.get(3), self.registry.get(&step.uses.value))
                        else {
                            return Ok(());
                        };
                        let outputs: Vec<&str> =
                            action.spec().outputs.iter().map(|o| o.name).collect();
                        if outputs.contains(&name.as_str()) {
                            return Ok(());
                        }
                        let listed = if outputs.is_empty() {
                            "it has no outputs".to_string()
                        } else {
                            format!("its outputs are: {}", outputs.join(", "))
                        };
                        let help = did_you_mean(name, outputs.iter().copied())
                            .map_or(listed.clone(), |b| format!("did you mean `{b}`? {listed}"));
                        Err((
                            format!(
                                "step `{}` (`{}`) has no output `{name}`",
                                step.id.value, step.uses.value
                            ),
                            Some(help),
                        ))
                    }
                    Some(other) => Err((
                        format!("unknown `{other}` in `{shown}`"),
                        Some(format!(
                            "use `steps.{}.outputs.NAME` or `steps.{}.status`",
                            step.id.value, step.id.value
                        )),
                    )),
                }
            }
            Some(other) => {
                let help = match did_you_mean(other, ["inputs", "steps", "run"]) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "expressions read `inputs.NAME`, `steps.ID.outputs.NAME`, `steps.ID.status` and `run.id`".to_string(),
                };
                Err((format!("unknown variable `{other}`"), Some(help)))
            }
            None => Ok(()),
        }
    }
}
