//! `rescue resume RUN_ID`: continue a run from its first step not done.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::retarget::recorded_target;
use super::run::{block_on, execute, fatal, Execution};
use super::settings::{StateArgs, TargetArgs, YesArgs};
use super::{Failure, Flags, Settings};
use crate::actions::Registry;
use crate::engine::bind;
use crate::engine::files::FileStore;
use crate::engine::journal::{
    sha256_hex, DamagedJournal, Journal, RunStatus, StoredFile, WorkflowRecord,
};
use crate::engine::resume::{align_steps, first_unfinished, reset_from, workflow_changes};
use crate::exit;
use crate::workflow::{Origin, Source, Workflow};

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
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl ResumeArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            inputs: None,
            target: Some(&self.target),
            retarget: true,
            yes: Some(&self.yes),
        }
    }
}

pub fn run(args: &ResumeArgs, settings: &Settings) -> ExitCode {
    block_on(resume(settings, args))
}

async fn resume(settings: &Settings, args: &ResumeArgs) -> ExitCode {
    let ex = prepare(
        settings,
        &args.run_id,
        args.force,
        args.from_step.as_deref(),
        args.force_unlock.clone(),
    );
    match ex {
        Ok(Some(ex)) => execute(settings, ex).await,
        Ok(None) => ExitCode::from(exit::SUCCESS),
        Err(code) => code,
    }
}

/// The run `given` names, locked and checked, ready to continue from its first step not done.
/// None: it has already succeeded (and that was said). On problems, prints them and gives the
/// exit code.
pub(crate) fn prepare(
    settings: &Settings,
    given: &str,
    force: bool,
    from_step: Option<&str>,
    force_unlock: Option<String>,
) -> Result<Option<Execution>, ExitCode> {
    let (run_id, run_dir) = super::find_run(settings, given)?;
    let run_id = run_id.as_str();
    let store = super::run_store(settings)?;
    // Lock first: the journal may only be read once no other process can change it.
    // `--force-unlock` naming this very run: its last holder died and will not come back.
    let take_over = force_unlock.as_deref() == Some(run_id);
    let lock = store
        .lock(run_id, take_over)
        .map_err(|e| fatal(&anyhow::Error::new(e)))?;
    // What the lock's previous holder saved last (a shared store's copy may be newer).
    store.fetch(run_id).map_err(|e| fatal(&e))?;
    let mut journal = Journal::load(&run_dir).map_err(|e| fatal(&e))?;

    if journal.rollback.is_some() {
        return Err(Failure::new(
            exit::INVALID,
            "rolled_back",
            format!("run {run_id} was rolled back; it cannot be resumed"),
        )
        .with_hint(format!(
            "finish the rollback with `rescue rollback {run_id} --yes`, or start a new run"
        ))
        .report());
    }
    let workflow = workflow_to_resume(&mut journal, &run_dir, force)?;
    if let Some(step) = from_step {
        reset_from(&mut journal, step).map_err(|e| Failure::usage(e.to_string()).report())?;
    }
    if first_unfinished(&journal).is_none() && journal.status == RunStatus::Succeeded {
        super::output::note("note", &format!("run {run_id} has already succeeded; nothing to do (use --from-step ID to run steps again)"));
        return Ok(None);
    }
    // The questions still ahead (steps not done that confirm first).
    let asks: Vec<String> = workflow
        .steps
        .iter()
        .filter(|s| s.confirm.is_some())
        .filter(|s| {
            !journal
                .step(&s.id.value)
                .is_some_and(|r| r.status.is_done())
        })
        .map(|s| format!("step {}", s.id.value))
        .collect();
    super::run::refuse_unanswerable(settings, &asks, &format!("rescue resume {run_id}"))?;
    let target = recorded_target(&journal, &run_dir, settings)
        .map_err(|e| Failure::new(exit::INVALID, "target", e).report())?;
    journal.target = target.to_value();
    journal.save(store.as_ref()).map_err(|e| fatal(&e))?;
    Ok(Some(Execution {
        workflow: Arc::new(workflow),
        store,
        run_dir,
        journal,
        lock,
        target,
        resumed: true,
        go_ahead: false,
        force_unlock,
    }))
}

/// The workflow a resume runs: the text the run started with, from its file store (or, for old
/// journals, the copy in the journal or the file). The workflow file edited since is refused
/// unless `--force` adopts the edit; a deleted one does not matter.
fn workflow_to_resume(
    journal: &mut Journal,
    run_dir: &Path,
    force: bool,
) -> Result<Workflow, ExitCode> {
    let refused = || ExitCode::from(exit::INVALID);
    let run_id = journal.run_id.clone();
    let origin = journal.workflow.origin();
    let store = FileStore::new(run_dir);
    // Format 1 kept no copy; without one, only the very same text at the origin will do.
    let stored = if journal.workflow.text.is_empty() {
        store
            .get_text_if_present(&journal.workflow.sha256)
            .map_err(|e| fatal(&e))?
    } else {
        Some(journal.workflow.text.clone())
    };
    let current = origin.read().ok().map(|source| source.text.to_string());
    let mut adopt = false;
    let text = match (&origin, stored, current) {
        (_, None, None) => {
            eprintln!(
                "error: cannot read the run's workflow {}, and this run (started by an older rescue) keeps no copy of it",
                origin.display()
            );
            eprintln!("  hint: restore the file at that path, then resume again");
            return Err(refused());
        }
        (_, Some(stored), None) => {
            eprintln!(
                "note: {} is gone; resuming from the copy stored with run {run_id}",
                origin.display()
            );
            stored
        }
        (Origin::Builtin(name), Some(stored), Some(current)) => {
            if current != stored {
                eprintln!("note: this rescue's built-in workflow `{name}` differs from the one run {run_id} started with; the run goes on with its own copy");
            }
            stored
        }
        (_, stored, Some(current)) => {
            let mut changes: Vec<String> =
                workflow_changes(&journal.workflow.sha256, stored.as_deref(), &current)
                    .into_iter()
                    .collect();
            changes.extend(changed_files(journal, &origin));
            if changes.is_empty() {
                current
            } else if !force {
                eprintln!(
                    "error: the workflow {} changed since run {run_id} started:",
                    origin.display()
                );
                eprintln!("{}", changes.join("\n"));
                eprintln!("  hint: restore it, or resume anyway with --force to run the changed workflow (steps already done are not repeated)");
                return Err(refused());
            } else {
                eprintln!("warning: the workflow changed since the run started; going on with the changed one because of --force:\n{}", changes.join("\n"));
                adopt = true;
                current
            }
        }
    };
    let registry = Registry::builtin();
    let workflow = crate::workflow::parse(Source::new(origin.display(), text), &registry)
        .map_err(|problems| super::report_invalid(&problems))?;
    if adopt {
        adopt_changes(journal, &workflow, &origin, &store).map_err(|e| fatal(&e))?;
    } else if let Err(problem) = journal
        .check_steps(&bind::step_ids(&workflow))
        .and_then(|()| check_inputs(journal, &workflow))
    {
        let damaged = DamagedJournal {
            path: Journal::path(run_dir),
            problem,
        };
        return Err(fatal(&damaged.into()));
    }
    Ok(workflow)
}

/// The files the run stored whose original now reads differently, one line each.
fn changed_files(journal: &Journal, origin: &Origin) -> Vec<String> {
    journal
        .workflow
        .files
        .iter()
        .filter_map(|(given, file)| {
            let (shown, now) = origin.read_relative(given).ok()?;
            (sha256_hex(&now) != file.sha256)
                .then(|| format!("  ~ {shown} (named by the workflow as `{given}`) changed"))
        })
        .collect()
}

/// `--force`: the run goes on with the workflow and files as they are now; steps whose id and
/// action are unchanged keep their record.
fn adopt_changes(
    journal: &mut Journal,
    workflow: &Workflow,
    origin: &Origin,
    store: &FileStore,
) -> anyhow::Result<()> {
    align_steps(journal, &bind::step_ids(workflow));
    let text = &workflow.source.text;
    store.put(text.as_bytes())?;
    let mut record = WorkflowRecord::new(origin, text);
    record.files = std::mem::take(&mut journal.workflow.files);
    for (given, file) in record.files.iter_mut() {
        // A file gone since keeps its stored copy; one that changed is stored anew.
        if let Ok((shown, now)) = origin.read_relative(given) {
            if sha256_hex(&now) != file.sha256 {
                *file = StoredFile {
                    sha256: store.put(&now)?,
                    origin: shown,
                };
            }
        }
    }
    journal.workflow = record;
    Ok(())
}

/// The journal's inputs fit the workflow's declarations (an edited journal may not).
fn check_inputs(journal: &Journal, workflow: &Workflow) -> Result<(), String> {
    for (name, value) in &journal.inputs {
        let Some(input) = workflow.inputs.get(name) else {
            return Err(format!(
                "input `{name}` is recorded, but the workflow declares no such input"
            ));
        };
        input
            .check(value)
            .map_err(|e| format!("recorded input `{name}`: {e}"))?;
    }
    Ok(())
}
