//! `rescue run FILE`: execute a workflow with a journal. (Owned by the engine.)

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::settings::{InputArgs, OutputArgs, StateArgs, TargetArgs, YesArgs};
use super::{Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// Only show the plan (same as `rescue plan`); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl RunArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { state: Some(&self.state), output: Some(&self.output), inputs: Some(&self.inputs), target: Some(&self.target), yes: Some(&self.yes) }
    }
}

pub fn run(args: &RunArgs, settings: &Settings) -> ExitCode {
    if args.dry_run {
        return super::plan::show(&args.file, settings);
    }
    eprintln!("rescue run: not implemented yet");
    ExitCode::from(exit::INVALID)
}
