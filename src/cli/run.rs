//! `rescue run FILE`: start a run. Also the part of `resume` that executes and reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::settings::{InputArgs, OutputArgs, StateArgs, TargetArgs, YesArgs};
use super::status::show;
use super::target::{self, TargetRecord};
use super::{Flags, Settings};
use crate::actions::{Files, Registry};
use crate::engine::bind::{self, WorkflowResolver};
use crate::engine::executor::{Executor, Options, Outcome};
use crate::engine::files::{FileStore, RunFiles};
use crate::engine::interrupt::Interrupt;
use crate::engine::journal::{
    DamagedJournal, Journal, RunStatus, StepRecord, StoredFile, WorkflowRecord,
};
use crate::engine::lock::RunLock;
use crate::engine::recorder::Recorder;
use crate::engine::store::Store;
use crate::exit;
use crate::report::{self, Style};
use crate::workflow::Workflow;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The workflow: a file, or the name of a built-in (`rescue workflows` lists them).
    pub file: PathBuf,
    /// Only show the plan (same as `rescue plan`); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Take over a VM lock held by this run, which died and will not be resumed.
    #[arg(long, value_name = "RUN_ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl RunArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            output: Some(&self.output),
            inputs: Some(&self.inputs),
            target: Some(&self.target),
            retarget: false,
            yes: Some(&self.yes),
        }
    }
}

pub fn run(args: &RunArgs, settings: &Settings) -> ExitCode {
    if args.dry_run {
        return super::plan::show(&args.file, settings, false);
    }
    block_on(start(settings, &args.file, args.force_unlock.clone()))
}

/// The engine is async (actions wait on Azure); the CLI is not.
pub(crate) fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => fatal(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    }
}

async fn start(settings: &Settings, file: &Path, force_unlock: Option<String>) -> ExitCode {
    let loaded = match super::load_with_inputs(file, settings, &Registry::builtin()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };

    let store = Store::new(settings.state_dir.clone());
    let (run_id, run_dir) = match store.create_run() {
        Ok(created) => created,
        Err(e) => return fatal(&e),
    };
    let lock = match RunLock::acquire(&run_dir, &run_id) {
        Ok(lock) => lock,
        Err(e) => return abandon(&run_dir, anyhow::Error::new(e)),
    };
    let target = TargetRecord::for_new_run(&settings.target, &run_dir);
    let steps = loaded
        .workflow
        .steps
        .iter()
        .map(|s| StepRecord::pending(s.id.value.clone(), s.uses.value.clone()))
        .collect();
    let record = match store_files(&run_dir, &loaded) {
        Ok(record) => record,
        Err(e) => return abandon(&run_dir, e),
    };
    let mut journal = Journal::new(run_id, record, loaded.inputs, target.to_value(), steps);
    if let Err(e) = journal.save(&run_dir) {
        return abandon(&run_dir, e);
    }
    execute(
        settings,
        Execution {
            workflow: Arc::new(loaded.workflow),
            run_dir,
            journal,
            lock,
            target,
            resumed: false,
            force_unlock,
        },
    )
    .await
}

/// The run keeps its workflow and the files its steps name, as they are now.
fn store_files(run_dir: &Path, loaded: &super::Loaded) -> anyhow::Result<WorkflowRecord> {
    let store = FileStore::new(run_dir);
    let text = &loaded.workflow.source.text;
    let mut record = WorkflowRecord::new(&loaded.origin, text);
    store.put(text.as_bytes())?;
    for file in &loaded.files {
        let sha256 = store.put(&file.bytes)?;
        record.files.insert(
            file.given.clone(),
            StoredFile {
                sha256,
                origin: file.shown.clone(),
            },
        );
    }
    Ok(record)
}

/// A run that could not be recorded never started: its directory goes, so no run is listed
/// that cannot be resumed.
fn abandon(run_dir: &Path, e: anyhow::Error) -> ExitCode {
    let _ = std::fs::remove_dir_all(run_dir);
    fatal(&e.context("cannot record the new run; it was not started and nothing was changed"))
}

/// A run ready to execute: journaled, locked, workflow checked.
pub(crate) struct Execution {
    pub workflow: Arc<Workflow>,
    pub run_dir: PathBuf,
    pub journal: Journal,
    pub lock: RunLock,
    pub target: TargetRecord,
    pub resumed: bool,
    /// `--force-unlock RUN_ID`.
    pub force_unlock: Option<String>,
}

/// Executes the steps not yet done and says how it ended and what to do next.
pub(crate) async fn execute(settings: &Settings, ex: Execution) -> ExitCode {
    let run_id = ex.journal.run_id.clone();
    let origin = ex.journal.workflow.origin();
    let recorder = Arc::new(Recorder::new(ex.run_dir.clone(), ex.journal));
    // Steps read the files their workflow names from the copies stored with the run.
    let files: Arc<dyn Files> = Arc::new(RunFiles::new(&ex.run_dir, origin, recorder.clone()));
    let interrupt = match Interrupt::install() {
        Ok(i) => i,
        Err(e) => {
            return stopped(
                &run_id,
                &anyhow::anyhow!("cannot handle Ctrl-C: {e}"),
                Next::Resume,
            )
        }
    };
    let needs_azure = ex
        .workflow
        .steps
        .iter()
        .any(|s| s.uses.value.starts_with("azure."));
    let connected = match target::connect(&ex.target, needs_azure, Some(files), settings).await {
        Ok(mut c) => {
            c.env.force_unlock = ex.force_unlock.clone();
            // Before any step: the port goes to the journal, so a restart can bind it again.
            let record = ex.target.clone().connected(&c).to_value();
            if let Err(e) = recorder.update(|j| j.target = record) {
                c.close().await;
                return stopped(&run_id, &e, Next::Resume);
            }
            c
        }
        Err(e) => {
            let _ = recorder.update(|j| j.status = RunStatus::Failed);
            eprintln!("error: {e}");
            print_resume(&run_id, "after fixing the cause, continue with");
            return ExitCode::from(exit::STEP_FAILED);
        }
    };

    let style = Style::detect(settings.json());
    let executor = Executor {
        steps: bind::steps(&ex.workflow, &Registry::builtin()),
        resolver: Arc::new(WorkflowResolver::new(ex.workflow.clone())),
        recorder: recorder.clone(),
        sink: report::reporter(style),
        options: Options {
            yes: settings.yes,
            interactive: style != Style::Json && report::interactive(),
            env: connected.env.clone(),
        },
        interrupt,
    };
    let outcome = executor.run(ex.resumed).await;
    connected.close().await;
    drop(ex.lock);

    match outcome {
        Err(e) => stopped(&run_id, &e, Next::Resume),
        Ok(Outcome::Succeeded) => {
            if !settings.json() {
                let journal = recorder.read();
                eprintln!("run {run_id} succeeded");
                if !journal.outputs.is_empty() {
                    println!("outputs:");
                    for (key, value) in &journal.outputs {
                        println!("  {key}: {}", show(value));
                    }
                }
            }
            ExitCode::from(exit::SUCCESS)
        }
        Ok(Outcome::Failed { step })
            if step_error(&recorder.read(), &step).is_some_and(|e| e.locked) =>
        {
            eprintln!("step {step}: the VM is another run's (see above); this run changes nothing more. It is saved as {run_id}.");
            eprintln!("a resumed run checks the VM again and stops by itself if it was repaired meanwhile:\n  rescue resume {run_id}");
            ExitCode::from(exit::LOCKED)
        }
        Ok(Outcome::Failed { step })
            if step_error(&recorder.read(), &step).is_some_and(|e| e.refused) =>
        {
            eprintln!("step {step} refused the run before any change to Azure (see above). Run {run_id} is saved; after fixing the inputs, start a new run.");
            ExitCode::from(exit::INVALID)
        }
        Ok(Outcome::Failed { step }) => {
            eprintln!("step {step} failed; the run is saved.");
            if advises_rollback(&recorder.read(), &step) {
                eprintln!("undo it with:\n  rescue rollback {run_id}");
            } else {
                print_resume(&run_id, "after fixing the cause, continue with");
            }
            ExitCode::from(exit::STEP_FAILED)
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("interrupted; the run is saved.");
            print_resume(&run_id, "continue with");
            ExitCode::from(exit::INTERRUPTED)
        }
        Ok(Outcome::NeedsConfirmation { step }) => {
            eprintln!("step {step} asks for confirmation and there is no terminal to ask on; it was not run.");
            eprintln!("to confirm it, pass --yes:\n  rescue resume {run_id} --yes");
            ExitCode::from(exit::INVALID)
        }
        Ok(Outcome::Declined { step }) => {
            eprintln!("step {step} was not confirmed; it was not run. The run is saved.");
            print_resume(&run_id, "when ready, continue with");
            ExitCode::from(exit::INTERRUPTED)
        }
    }
}

/// How the step failed: held by another run (exit 3), refused up front (exit 2), or else (1).
fn step_error<'j>(
    journal: &'j Journal,
    step: &str,
) -> Option<&'j crate::engine::journal::StepError> {
    journal.step(step).and_then(|s| s.error.as_ref())
}

/// The failed step's own advice is to undo the run (e.g. the disk cannot be repaired).
fn advises_rollback(journal: &Journal, step: &str) -> bool {
    journal
        .step(step)
        .and_then(|s| s.error.as_ref())
        .and_then(|e| e.hint.as_deref())
        .is_some_and(|h| h.contains("rescue rollback"))
}

fn print_resume(run_id: &str, lead: &str) {
    eprintln!("{lead}:\n  rescue resume {run_id}");
}

/// What continues a run that stopped on an error of rescue's own (not a step's).
#[derive(Clone, Copy)]
pub(crate) enum Next {
    Resume,
    Rollback,
}

/// A run that had started stopped because rescue itself failed (the journal could not be
/// written: a full disk, a read-only state dir). The journal on disk is its last good write,
/// so the run continues from there once the cause is fixed; say how, with the run id.
pub(crate) fn stopped(run_id: &str, e: &anyhow::Error, next: Next) -> ExitCode {
    eprintln!("error: {e:#}");
    if e.is::<DamagedJournal>() {
        return ExitCode::from(exit::INVALID);
    }
    let command = match next {
        Next::Resume => format!("rescue resume {run_id}"),
        Next::Rollback => format!("rescue rollback {run_id} --yes"),
    };
    eprintln!(
        "run {run_id} stopped; its journal keeps everything up to the last step recorded.\nafter fixing the cause (e.g. freeing disk space), continue with:\n  {command}"
    );
    ExitCode::from(exit::STEP_FAILED)
}

/// An error that is not a step's: the journal or the state dir failed us.
pub(crate) fn fatal(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    let code = match e.downcast_ref::<crate::engine::lock::LockError>() {
        Some(crate::engine::lock::LockError::Held { .. }) => exit::LOCKED,
        _ if e.is::<DamagedJournal>() => exit::INVALID,
        _ => exit::STEP_FAILED,
    };
    ExitCode::from(code)
}
