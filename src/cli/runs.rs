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
    let json = settings.json();
    let store = Store::new(settings.state_dir.clone());
    let runs = store.list();
    if json {
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
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "format_version": 1, "runs": list }))
                .expect("json")
        );
        return ExitCode::from(exit::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no runs in {}", store.root().display());
        return ExitCode::from(exit::SUCCESS);
    }
    println!("{:<22} {:<21} {:<22} WORKFLOW", "RUN", "STARTED", "STATUS");
    for (id, journal) in &runs {
        match journal {
            Ok(j) => println!(
                "{id:<22} {:<21} {:<22} {}",
                super::status::utc_time(j.created),
                j.status.as_str(),
                j.workflow.path.display()
            ),
            Err(e) => {
                // The hint is for `status` or `resume`; the table keeps one line per run.
                let reason = format!("{e:#}");
                let first = reason.lines().next().unwrap_or_default();
                println!("{id:<22} {:<21} {:<22} {first}", "?", "unreadable")
            }
        }
    }
    ExitCode::from(exit::SUCCESS)
}
