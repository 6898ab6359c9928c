//! Workflow documents: parse (positioned YAML tree), build the typed model, analyze
//! references, types and actions; evaluate `${{ }}` expressions; resolve inputs.

mod analyze;
mod build;
pub mod diag;
pub mod expr;
mod inputs;
pub mod model;
pub mod schema;
pub mod yaml;

use std::path::Path;

pub use diag::{Diagnostics, Problem, Source, Span};
pub use expr::{eval_args, eval_condition, eval_outputs, plan_args, EvalError, Scope, StepScope};
pub use inputs::resolve_inputs;
pub use model::{Input, InputType, Retry, Spanned, Step, Workflow};

use crate::actions::Registry;

/// Reads, parses and checks a workflow file. Every problem found is returned, each with its
/// file, line and column.
pub fn load(path: &Path, registry: &Registry) -> Result<Workflow, Diagnostics> {
    let text = yaml::read_file(path, "workflow")
        .map_err(|p| p.help("check the path; `rescue validate FILE` takes a workflow YAML file"))?;
    parse(Source::new(path.display().to_string(), text), registry)
}

/// Parses and checks a workflow already in memory.
pub fn parse(source: Source, registry: &Registry) -> Result<Workflow, Diagnostics> {
    let root = yaml::parse(&source)?;
    let (workflow, mut problems) = build::build(&root, &source);
    problems.extend(analyze::analyze(&workflow, registry));
    problems.into_result(workflow)
}
