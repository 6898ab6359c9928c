//! `rescue resume RUN_ID`: continue a run from its first step not done.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::run::{block_on, execute, fatal, Execution};
use super::settings::{OutputArgs, StateArgs, TargetArgs, YesArgs};
use super::target::TargetRecord;
use super::{Flags, Settings};
use crate::actions::Registry;
use crate::engine::bind;
use crate::engine::journal::{Journal, RunStatus, WorkflowRecord};
use crate::engine::lock::RunLock;
use crate::engine::resume::{align_steps, first_unfinished, reset_from, workflow_changes};
use crate::engine::store::Store;
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
    /// Take over a VM lock held by this run, which died and will not be resumed.
    #[arg(long, value_name = "RUN_ID")]
    pub force_unlock: Option<String>,
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
        Flags {
            state: Some(&self.state),
            output: Some(&self.output),
            inputs: None,
            target: Some(&self.target),
            yes: Some(&self.yes),
        }
    }
}

pub fn run(args: &ResumeArgs, settings: &Settings) -> ExitCode {
    block_on(resume(settings, args))
}

async fn resume(settings: &Settings, args: &ResumeArgs) -> ExitCode {
    let (run_id, force, from_step) = (args.run_id.as_str(), args.force, args.from_step.as_deref());
    let store = Store::new(settings.state_dir.clone());
    let run_dir = match store.existing_run(run_id) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::INVALID);
        }
    };
    // Lock first: the journal may only be read once no other process can change it.
    let lock = match RunLock::acquire(&run_dir, run_id) {
        Ok(lock) => lock,
        Err(e) => return fatal(&anyhow::Error::new(e)),
    };
    let mut journal = match Journal::load(&run_dir) {
        Ok(j) => j,
        Err(e) => return fatal(&e),
    };

    if journal.rollback.is_some() {
        eprintln!("error: run {run_id} was rolled back; it cannot be resumed");
        eprintln!(
            "  hint: finish the rollback with `rescue rollback {run_id} --yes`, or start a new run"
        );
        return ExitCode::from(exit::INVALID);
    }
    let path = journal.workflow.path.clone();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!(
                "error: cannot read the run's workflow {}: {e}",
                path.display()
            );
            eprintln!("  hint: restore the file at that path, then resume again");
            return ExitCode::from(exit::INVALID);
        }
    };
    let changed = workflow_changes(&journal, &text);
    if let Some(diff) = &changed {
        if !force {
            eprintln!(
                "error: the workflow {} changed since run {run_id} started:",
                path.display()
            );
            eprintln!("{diff}");
            eprintln!("  hint: restore it, or resume anyway with --force (steps already done are not repeated)");
            return ExitCode::from(exit::INVALID);
        }
        eprintln!("warning: the workflow changed since the run started; going on because of --force:\n{diff}");
    }
    let registry = Registry::builtin();
    let workflow = match crate::workflow::load(&path, &registry) {
        Ok(wf) => wf,
        Err(problems) => return super::report_invalid(&problems),
    };
    if changed.is_some() {
        align_steps(&mut journal, &bind::step_ids(&workflow));
        journal.workflow = WorkflowRecord::new(path, text);
    }
    if let Some(step) = from_step {
        if let Err(e) = reset_from(&mut journal, step) {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INVALID);
        }
    }
    if first_unfinished(&journal).is_none() && journal.status == RunStatus::Succeeded {
        eprintln!("run {run_id} has already succeeded; nothing to do (use --from-step ID to run steps again)");
        return ExitCode::from(exit::SUCCESS);
    }
    if let Err(e) = journal.save(&run_dir) {
        return fatal(&e);
    }
    let target = TargetRecord::from_value(&journal.target);
    execute(
        settings,
        Execution {
            workflow: Arc::new(workflow),
            run_dir,
            journal,
            lock,
            target,
            resumed: true,
            force_unlock: args.force_unlock.clone(),
        },
    )
    .await
}
