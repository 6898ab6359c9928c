//! `rescue completions SHELL` and `rescue man DIR`: generated from the same clap declarations
//! as `--help` (clap_complete, clap_mangen), so they never drift from the flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Failure;
use crate::exit;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Where to write the pages (created if missing).
    pub dir: PathBuf,
}

pub fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut cmd = super::command();
    clap_complete::generate(args.shell, &mut cmd, "rescue", &mut std::io::stdout());
    ExitCode::from(exit::SUCCESS)
}

pub fn man(args: &ManArgs) -> ExitCode {
    let written = std::fs::create_dir_all(&args.dir)
        .and_then(|()| clap_mangen::generate_to(super::command(), &args.dir));
    match written {
        Ok(()) => {
            if !super::output::get().quiet {
                eprintln!(
                    "wrote man pages to {} (try `man -l {}/rescue.1`)",
                    args.dir.display(),
                    args.dir.display()
                );
            }
            ExitCode::from(exit::SUCCESS)
        }
        Err(e) => Failure::new(
            exit::STEP_FAILED,
            "io",
            format!("cannot write man pages to {}: {e}", args.dir.display()),
        )
        .report(),
    }
}
