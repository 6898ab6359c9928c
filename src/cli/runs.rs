//! `rescue runs`: the runs in the state directory, oldest first.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::settings::StateArgs;
use super::{Flags, Settings};
use crate::engine::store::Store;
use crate::exit;

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub state: StateArgs,
}

impl RunsArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            ..Flags::default()
        }
    }
}

pub fn run(_args: &RunsArgs, settings: &Settings) -> ExitCode {
    let opened = match super::run_store(settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let location = opened.location();
    let runs = match Store::new(opened).list() {
        Ok(runs) => runs,
        Err(e) => return super::Failure::from_error(&e).report(),
    };
    let list: Vec<_> = runs
        .iter()
        .map(|(id, journal)| match journal {
            Ok(j) => json!({
                "id": id,
                "workflow": j.workflow.path,
                "started": super::status::rfc3339(j.created),
                "updated": super::status::rfc3339(j.updated),
                "status": j.status,
            }),
            Err(e) => json!({ "id": id, "error": format!("{e:#}") }),
        })
        .collect();
    let doc = json!({ "format_version": 1, "runs": list });
    let table = || {
        if runs.is_empty() {
            return format!("no runs in {location}\n");
        }
        let mut out = format!(
            "{:<22} {:<21} {:<22} WORKFLOW\n",
            "RUN", "STARTED", "STATUS"
        );
        for (id, journal) in &runs {
            out.push_str(&match journal {
                Ok(j) => format!(
                    "{id:<22} {:<21} {:<22} {}\n",
                    super::status::utc_time(j.created),
                    j.status.as_str(),
                    j.workflow.path.display()
                ),
                Err(e) => {
                    // The hint is for `status` or `resume`; the table keeps one line per run.
                    let reason = format!("{e:#}");
                    let first = reason.lines().next().unwrap_or_default().to_string();
                    format!("{id:<22} {:<21} {:<22} {first}\n", "?", "unreadable")
                }
            });
        }
        out
    };
    match super::output::document(&doc, table, Some(&table)) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
}
