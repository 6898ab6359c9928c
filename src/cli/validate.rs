//! `rescue validate FILE`: every problem with file, line and column, or "valid".

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::actions::Registry;
use crate::exit;
use crate::workflow::{referenced_files, Origin};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The workflow: a file, or the name of a built-in (`rescue workflows` lists them).
    pub file: PathBuf,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let registry = Registry::builtin();
    let origin = match Origin::resolve(&args.file) {
        Ok(origin) => origin,
        Err(problems) => return super::report_invalid(&problems),
    };
    // Files named outright must be there; those that depend on inputs are checked by plan and run.
    let checked = crate::workflow::load(&origin, &registry)
        .and_then(|wf| referenced_files(&wf, &origin, &Default::default(), &registry).map(|_| wf));
    match checked {
        Ok(wf) => {
            let n = wf.steps.len();
            let doc = serde_json::json!({
                "workflow": args.file.display().to_string(),
                "valid": true,
                "steps": n,
            });
            let text = || {
                format!(
                    "{}: valid ({n} step{})\n",
                    args.file.display(),
                    if n == 1 { "" } else { "s" }
                )
            };
            match super::output::document(&doc, text, None) {
                Ok(()) => ExitCode::from(exit::SUCCESS),
                Err(f) => f.report(),
            }
        }
        Err(problems) => super::report_invalid(&problems),
    }
}
