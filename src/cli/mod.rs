//! Command-line interface: flags parsed once into settings, then dispatched.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::from(crate::exit::SUCCESS)
}

pub mod runs;
pub mod status;
