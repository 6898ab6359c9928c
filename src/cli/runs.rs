//! `rescue runs`: list runs. (Owned by the engine.)

use std::process::ExitCode;

use clap::Args;

use super::settings::{OutputArgs, StateArgs};
use super::{Flags, Settings};
use crate::exit;

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

impl RunsArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { state: Some(&self.state), output: Some(&self.output), ..Flags::default() }
    }
}

pub fn run(_args: &RunsArgs, _settings: &Settings) -> ExitCode {
    eprintln!("rescue runs: not implemented yet");
    ExitCode::from(exit::INVALID)
}
