//! `rescue validate FILE`: every problem with file, line and column, or "valid".

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::actions::Registry;
use crate::exit;

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The workflow file.
    pub file: PathBuf,
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    match crate::workflow::load(&args.file, &Registry::builtin()) {
        Ok(wf) => {
            let n = wf.steps.len();
            println!(
                "{}: valid ({n} step{})",
                args.file.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::from(exit::SUCCESS)
        }
        Err(problems) => super::report_invalid(&problems),
    }
}
