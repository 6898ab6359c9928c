//! `rescue rollback RUN_ID`: preview, confirm, then undo the run in reverse (engine::rollback).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::run::{block_on, stopped, Next};
use super::settings::{StateArgs, TargetArgs, YesArgs};
use super::{Failure, Flags, Settings};
use crate::actions::Registry;
use crate::engine::journal::Journal;
use crate::engine::recorder::Recorder;
use crate::engine::rollback::{self, Options, Outcome, UndoRecord, UndoStatus};
use crate::exit;

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The run to undo (see `rescue runs`).
    pub run_id: String,
    /// Only show what would be undone; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete the disk copy the run created (never the original disk).
    #[arg(long)]
    pub delete_created: bool,
    /// With --delete-created: delete the snapshot too (it is the safety copy, kept otherwise).
    #[arg(long, requires = "delete_created")]
    pub include_snapshot: bool,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Where the run acted is its journal's; these may only give a moved emulator's endpoint
    /// and the secrets that are never journaled.
    #[command(flatten)]
    pub target: TargetArgs,
}

impl RollbackArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            yes: Some(&self.yes),
            target: Some(&self.target),
            retarget: true,
            ..Flags::default()
        }
    }
}

pub fn run(args: &RollbackArgs, settings: &Settings) -> ExitCode {
    block_on(rollback(args, settings))
}

/// The preview: what is undone, in order, and what is kept.
fn preview(journal: &Journal, undos: &[UndoRecord]) -> String {
    let mut text = format!(
        "rollback of run {} ({}, {}):\n",
        journal.run_id,
        journal.workflow.path.display(),
        journal.status.as_str()
    );
    if undos.is_empty() {
        text.push_str("  nothing to undo: no step of this run changed anything\n");
    }
    for u in undos {
        let mark = match u.status {
            UndoStatus::Done => "done",
            UndoStatus::Kept => "keep",
            UndoStatus::Failed => "retry",
            UndoStatus::Pending | UndoStatus::Running => "undo",
        };
        text.push_str(&format!("  {mark:<5} {:<12} {}\n", u.step, u.description));
    }
    text.push_str("  the original disk is never deleted or modified\n");
    text
}

async fn rollback(args: &RollbackArgs, settings: &Settings) -> ExitCode {
    let (run_id, run_dir, lock, mut journal) = match super::open_run(settings, &args.run_id) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let registry = Registry::builtin();
    let options = Options {
        delete_created: args.delete_created,
        include_snapshot: args.include_snapshot,
    };
    let undos = rollback::plan(&journal, &registry, options);
    if settings.json() {
        let steps: Vec<serde_json::Value> = undos
            .iter()
            .map(|u| serde_json::json!({"step": u.step, "status": u.status, "undo": u.description}))
            .collect();
        let doc = serde_json::json!({
            "format_version": 1,
            "run_id": run_id,
            "dry_run": args.dry_run,
            "undo": steps,
        });
        if args.dry_run {
            return match super::output::document(&doc, String::new, None) {
                Ok(()) => ExitCode::SUCCESS,
                Err(f) => f.report(),
            };
        }
        super::output::line(&serde_json::json!({"event": "rollback_planned", "plan": doc}));
    } else {
        print!("{}", preview(&journal, &undos));
    }
    if args.dry_run {
        return ExitCode::from(exit::SUCCESS);
    }
    if !confirmed(settings.yes, &run_id) {
        return ExitCode::from(exit::INVALID);
    }

    let connected = match super::connect_recorded(&mut journal, &run_dir, settings).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match super::run_store(settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let recorder = Arc::new(Recorder::new(store, journal));
    let structured = settings.json();
    let report: rollback::Report = Arc::new(move |line| {
        if structured {
            super::output::line(&serde_json::json!({"event": "rollback_step", "message": line}));
        } else {
            eprintln!("{line}")
        }
    });
    let outcome = rollback::execute(
        recorder.clone(),
        &registry,
        connected.env.clone(),
        options,
        report,
    )
    .await;
    connected.close().await;
    super::run::write_report(&recorder.read(), &run_dir);
    drop(lock);
    match outcome {
        Err(e) => stopped(&run_id, &e, Next::Rollback),
        Ok(Outcome::Succeeded) => {
            if structured {
                super::output::line(
                    &serde_json::json!({"event": "rollback_finished", "run_id": run_id, "status": "rolled_back"}),
                );
            } else {
                eprintln!("run {run_id} rolled back");
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Failed { step, error }) => Failure::new(
            if error.locked {
                exit::LOCKED
            } else {
                exit::STEP_FAILED
            },
            "undo_failed",
            format!("undo of step {step} failed: {error}"),
        )
        .with_hint(format!(
            "after fixing the cause, continue the rollback with: rescue rollback {run_id} --yes"
        ))
        .report(),
    }
}

/// `--yes`, or a yes on the terminal; without either nothing is done (exit 2, not a hang).
fn confirmed(yes: bool, run_id: &str) -> bool {
    if yes {
        return true;
    }
    if !crate::report::interactive() {
        Failure::new(
            exit::INVALID,
            "needs_yes",
            "nothing was changed: there is no terminal to confirm on",
        )
        .with_hint(format!(
            "to roll back, pass --yes: rescue rollback {run_id} --yes"
        ))
        .report();
        return false;
    }
    crate::report::ask("Roll back as shown?")
}
