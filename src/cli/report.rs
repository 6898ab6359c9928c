//! `rescue report RUN_ID [--format md|json]`: the run's evidence report, rebuilt from its
//! journal (and written again into the run directory), whatever state the run is in.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::settings::StateArgs;
use super::{Failure, Flags, Settings};
use crate::engine::journal::Journal;
use crate::exit;
use crate::report::evidence::Evidence;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown, for the incident ticket.
    Md,
    /// JSON (the same as `-o json`).
    Json,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run (see `rescue runs`; `last` for the most recent).
    pub run_id: String,
    /// Markdown (default) or JSON.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub state: StateArgs,
}

impl ReportArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            ..Flags::default()
        }
    }
}

/// The evidence of the run in `run_dir`, rebuilt from its journal.
pub(crate) fn evidence(journal: &Journal, run_dir: &std::path::Path) -> Evidence {
    Evidence::build(
        journal,
        run_dir,
        super::status::target_line(&journal.target),
    )
}

pub fn run(args: &ReportArgs, settings: &Settings) -> ExitCode {
    let (_, run_dir) = match super::find_run(settings, &args.run_id) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let journal = match Journal::load(&run_dir) {
        Ok(j) => j,
        Err(e) => return Failure::from_error(&e).report(),
    };
    let evidence = evidence(&journal, &run_dir);
    // A report rebuilt is also kept: the run directory is what gets attached to a ticket.
    if let Err(e) = evidence.write(&run_dir) {
        super::output::note("warning", &format!("cannot write the report files: {e:#}"));
    }
    let value = evidence.to_json();
    let shown = if args.format == Some(Format::Json) && !settings.json() {
        super::output::document_as_json(&value)
    } else {
        super::output::document(&value, || evidence.markdown(), None)
    };
    match shown {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
}
