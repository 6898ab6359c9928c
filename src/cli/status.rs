//! `rescue status RUN_ID`: a run's steps, durations, outputs and errors. (Owned by the engine.)

use std::process::ExitCode;

use clap::Args;

use super::settings::{OutputArgs, StateArgs};
use super::{Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run to show (see `rescue runs`).
    pub run_id: String,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

impl StatusArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { state: Some(&self.state), output: Some(&self.output), ..Flags::default() }
    }
}

pub fn run(_args: &StatusArgs, _settings: &Settings) -> ExitCode {
    eprintln!("rescue status: not implemented yet");
    ExitCode::from(exit::INVALID)
}
