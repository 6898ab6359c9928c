//! `rescue resume RUN_ID`: continue a run from its first unfinished step. (Owned by the engine.)

use std::process::ExitCode;

use clap::Args;

use super::settings::{OutputArgs, StateArgs, TargetArgs, YesArgs};
use super::{Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The run to continue (see `rescue runs`).
    pub run_id: String,
    /// Resume even though the workflow file changed since the run started.
    #[arg(long)]
    pub force: bool,
    /// Re-run from this step (and everything after it).
    #[arg(long, value_name = "ID")]
    pub from_step: Option<String>,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl ResumeArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { state: Some(&self.state), output: Some(&self.output), inputs: None, target: Some(&self.target), yes: Some(&self.yes) }
    }
}

pub fn run(_args: &ResumeArgs, _settings: &Settings) -> ExitCode {
    eprintln!("rescue resume: not implemented yet");
    ExitCode::from(exit::INVALID)
}
