//! `rescue plan FILE`: what a workflow would do, without changing anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::settings::{InputArgs, OutputArgs, StateArgs, TargetArgs};
use super::{Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The workflow file.
    pub file: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl PlanArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { state: Some(&self.state), output: Some(&self.output), inputs: Some(&self.inputs), target: Some(&self.target), yes: None }
    }
}

pub fn run(args: &PlanArgs, settings: &Settings) -> ExitCode {
    show(&args.file, settings)
}

/// Prints the plan of `file` (also `rescue run --dry-run`).
pub fn show(file: &std::path::Path, _settings: &Settings) -> ExitCode {
    eprintln!("rescue plan {}: not implemented yet", file.display());
    ExitCode::from(exit::INVALID)
}
