//! Workflow documents: parse (positioned YAML tree), build the typed model, analyze
//! references, types and actions; evaluate `${{ }}` expressions; resolve inputs.

mod analyze;
mod build;
pub mod builtin;
pub mod diag;
pub mod expr;
pub mod graph;
mod inputs;
pub mod model;
pub mod origin;
pub mod schema;
pub mod yaml;

pub use diag::{Diagnostics, Problem, Source, Span};
pub use expr::{eval_args, eval_condition, eval_outputs, plan_args, EvalError, Scope, StepScope};
pub use inputs::{resolve_inputs, resolve_targets};
pub use model::{Input, InputType, Retry, Spanned, Step, Workflow};
pub use origin::{referenced_files, FileRead, Origin};

use crate::actions::Registry;

/// Reads, parses and checks a workflow file or built-in. Every problem found is returned, each
/// with its file, line and column.
pub fn load(origin: &Origin, registry: &Registry) -> Result<Workflow, Diagnostics> {
    parse(origin.read()?, registry)
}

/// Parses and checks a workflow already in memory.
pub fn parse(source: Source, registry: &Registry) -> Result<Workflow, Diagnostics> {
    let root = yaml::parse(&source)?;
    let (workflow, mut problems) = build::build(&root, &source);
    problems.extend(analyze::analyze(&workflow, registry));
    problems.into_result(workflow)
}
