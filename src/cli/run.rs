//! `rescue run FILE`: start a run. Also the part of `resume` that executes and reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::settings::{InputArgs, StateArgs, TargetArgs, YesArgs};
use super::status::show;
use super::target::{self, TargetRecord};
use super::{Failure, Flags, Settings};
use crate::actions::{Files, Registry};
use crate::engine::bind::{self, WorkflowResolver};
use crate::engine::executor::{Executor, Options, Outcome};
use crate::engine::files::RunFiles;
use crate::engine::interrupt::Interrupt;
use crate::engine::journal::{
    DamagedJournal, Journal, RunStatus, StepRecord, StoredFile, WorkflowRecord,
};
use crate::engine::recorder::Recorder;
use crate::engine::store::{HeldRun, RunStore};
use crate::exit;
use crate::report::evidence::Evidence;
use crate::report::{self, Style};
use crate::workflow::Workflow;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The workflow: a file, or the name of a built-in (`rescue workflows` lists them).
    pub file: PathBuf,
    /// Only show the plan (same as `rescue plan`); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Take over a VM lock held by run ID, or a rescue VM claimed by fleet ID, which died and
    /// will not be resumed.
    #[arg(long, value_name = "ID")]
    pub force_unlock: Option<String>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl RunArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            inputs: Some(&self.inputs),
            target: Some(&self.target),
            retarget: false,
            yes: Some(&self.yes),
        }
    }
}

pub fn run(args: &RunArgs, settings: &Settings) -> ExitCode {
    if args.dry_run {
        return super::plan::show(&args.file, settings, settings.verbose());
    }
    block_on(start(settings, &args.file, args.force_unlock.clone()))
}

/// The engine is async (actions wait on Azure); the CLI is not.
pub(crate) fn block_on(future: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(future);
            // A question's reader thread may still wait on stdin after a Ctrl-C: do not wait
            // for it (the process exits).
            runtime.shutdown_background();
            code
        }
        Err(e) => fatal(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    }
}

/// Whether a person can answer here (a terminal, and not structured output).
fn can_ask(settings: &Settings) -> bool {
    !settings.json() && report::interactive()
}

/// The workflow changes Azure: the run asks for a go-ahead first.
fn changes_azure(workflow: &Workflow) -> bool {
    let registry = Registry::builtin();
    workflow.steps.iter().any(|s| {
        s.uses.value.starts_with("azure.")
            && registry
                .get(&s.uses.value)
                .is_some_and(|a| a.spec().mutates)
    })
}

/// A run never stops midway for want of an answer: without a terminal and without `--yes`, a
/// run that would ask (the go-ahead, a `confirm:` step ahead) is refused before it starts.
pub(crate) fn refuse_unanswerable(
    settings: &Settings,
    asks: &[String],
    command: &str,
) -> Result<(), ExitCode> {
    if settings.yes || can_ask(settings) || asks.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        exit::INVALID,
        "needs_yes",
        format!(
            "this run would ask before {}, and there is no terminal to ask on (and no --yes); nothing was started or changed",
            asks.join(" and ")
        ),
    )
    .with_hint(format!("to go ahead without questions, add --yes: {command} --yes"))
    .report())
}

async fn start(settings: &Settings, file: &Path, force_unlock: Option<String>) -> ExitCode {
    let loaded = match super::load_with_inputs(file, settings, &Registry::builtin()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Err(code) = refuse_unanswerable(
        settings,
        &questions(&loaded.workflow),
        &super::plan::run_command(file, settings),
    ) {
        return code;
    }
    let go_ahead = changes_azure(&loaded.workflow);
    let ex = match record_new(settings, loaded, |run_dir| {
        TargetRecord::for_new_run(&settings.target, run_dir)
    }) {
        Ok(ex) => ex,
        Err(e) => return fatal(&e),
    };
    execute(
        settings,
        Execution {
            go_ahead,
            force_unlock,
            ..ex
        },
    )
    .await
}

/// What a new run of `workflow` would ask before it ends: the go-ahead when it changes Azure,
/// then each `confirm:` step.
pub(crate) fn questions(workflow: &Workflow) -> Vec<String> {
    let mut asks = Vec::new();
    if changes_azure(workflow) {
        asks.push("its first change to Azure".to_string());
    }
    asks.extend(
        workflow
            .steps
            .iter()
            .filter(|s| s.confirm.is_some())
            .map(|s| format!("step {}", s.id.value)),
    );
    asks
}

/// A new run recorded in its store: its directory, lock, stored files and first journal,
/// acting where `target` says (given the run's directory). An error leaves no run behind.
pub(crate) fn record_new(
    settings: &Settings,
    loaded: super::Loaded,
    target: impl FnOnce(&Path) -> TargetRecord,
) -> anyhow::Result<Execution> {
    let store = super::state_store(settings)?;
    let run_id = store.create_run()?;
    let run_dir = store.run_dir(&run_id);
    let abandon = |e: anyhow::Error| {
        // A run that could not be recorded never started: it goes, so no run is listed that
        // cannot be resumed.
        store.discard(&run_id);
        e.context("cannot record the new run; it was not started and nothing was changed")
    };
    let lock = store.lock(&run_id, false).map_err(|e| abandon(e.into()))?;
    let target = target(&run_dir);
    let steps = loaded
        .workflow
        .steps
        .iter()
        .map(|s| StepRecord::pending(s.id.value.clone(), s.uses.value.clone()))
        .collect();
    let record = store_files(store.as_ref(), &run_id, &loaded).map_err(abandon)?;
    let mut journal = Journal::new(
        run_id.clone(),
        record,
        loaded.inputs,
        target.to_value(),
        steps,
    );
    journal.save(store.as_ref()).map_err(abandon)?;
    Ok(Execution {
        workflow: Arc::new(loaded.workflow),
        store: store.clone(),
        run_dir,
        journal,
        lock,
        target,
        resumed: false,
        go_ahead: false,
        force_unlock: None,
    })
}

/// The run keeps its workflow and the files its steps name, as they are now.
fn store_files(
    store: &dyn RunStore,
    run_id: &str,
    loaded: &super::Loaded,
) -> anyhow::Result<WorkflowRecord> {
    let text = &loaded.workflow.source.text;
    let mut record = WorkflowRecord::new(&loaded.origin, text);
    store.put_file(run_id, text.as_bytes())?;
    for file in &loaded.files {
        let sha256 = store.put_file(run_id, &file.bytes)?;
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

/// A run ready to execute: journaled, locked, workflow checked.
pub(crate) struct Execution {
    pub workflow: Arc<Workflow>,
    pub store: Arc<dyn RunStore>,
    pub run_dir: PathBuf,
    pub journal: Journal,
    pub lock: Box<dyn HeldRun>,
    pub target: TargetRecord,
    pub resumed: bool,
    /// Show the plan and ask before the first step (a new run that changes Azure).
    pub go_ahead: bool,
    /// `--force-unlock RUN_ID`.
    pub force_unlock: Option<String>,
}

/// Where the run acts, as the go-ahead names it: the cloud, the subscription with its name and
/// the identity, or the emulator and its URL.
pub(crate) async fn target_words(target: &TargetRecord, env: &crate::actions::Env) -> String {
    let Some(azure) = &env.azure else {
        return "nothing outside this machine (the workflow has no Azure steps)".into();
    };
    let subscription = azure.subscription().to_string();
    let name = match azure.subscription_details().await {
        Ok(s) => s
            .get("displayName")
            .and_then(serde_json::Value::as_str)
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let identity = match azure.identity().await {
        Ok(id) => id.to_string(),
        Err(e) => format!("(identity unknown: {e})"),
    };
    let place = match target {
        TargetRecord::Azure { .. } => format!("Azure ({})", azure.endpoint()),
        TargetRecord::InProcessEmulator { .. } => {
            format!("the emulator inside rescue at {}", azure.endpoint())
        }
        TargetRecord::Emulator { endpoint, .. } => format!("the emulator at {endpoint}"),
    };
    format!("{place}, subscription {subscription}{name}, as {identity}")
}

/// The go-ahead: the short plan and where it acts, then `yes`, or `--yes`. Ok(false): declined.
async fn ask_go_ahead(
    settings: &Settings,
    ex: &Execution,
    env: &crate::actions::Env,
    interrupt: &Interrupt,
) -> Result<Option<bool>, String> {
    let registry = Registry::builtin();
    let plan = crate::plan::build(
        &ex.workflow,
        ex.journal.inputs.clone(),
        &registry,
        env,
        &ex.journal.run_id,
    )
    .await
    .map_err(|e| format!("cannot plan the run: {e}"))?;
    let target = target_words(&ex.target, env).await;
    if settings.json() {
        let mut value = serde_json::to_value(&plan).expect("a plan is JSON");
        value["target"] = serde_json::json!(target);
        super::output::line(
            &serde_json::json!({"event": "plan", "run_id": ex.journal.run_id, "plan": value}),
        );
    } else if !settings.quiet() || !settings.yes {
        eprintln!("Target: {target}");
        eprint!("{}", crate::plan::render_short(&plan));
    }
    if settings.yes {
        return Ok(Some(true));
    }
    let answer = report::go_ahead("Do you want rescue to make these changes?", interrupt).await;
    // What the person saw may have changed while they read it.
    env.time_passes();
    Ok(answer)
}

/// What a run executed alongside others (a fleet) shares with them instead of making its own:
/// the connection to Azure (one token cache, one connection pool, one throttling gate), the
/// reporter, and Ctrl-C. Default: a run of its own.
#[derive(Clone, Default)]
pub(crate) struct Shared {
    pub azure: Option<Arc<crate::azure::Azure>>,
    pub sink: Option<Arc<dyn crate::engine::events::EventSink>>,
    pub interrupt: Option<Interrupt>,
    /// The rescue VMs it shares with the others.
    pub places: Option<Arc<dyn crate::actions::Places>>,
    /// The fleet it is one of: the rescue VMs that fleet claimed are its to use.
    pub fleet: Option<String>,
}

/// How an execution ended, before anything is said about it.
pub(crate) enum Ended {
    /// Ctrl-C could not be taken over: nothing ran.
    NoInterrupt(anyhow::Error),
    /// Could not connect to the target; the run is saved as failed.
    Unconnected(crate::actions::ActionError),
    /// Not gone ahead at the go-ahead: nothing was done and no run was kept.
    NotGoneAhead(Result<Option<bool>, String>),
    /// rescue itself failed (the journal could not be written).
    Stopped(anyhow::Error),
    Finished {
        outcome: Outcome,
        journal: Box<Journal>,
        evidence: Box<Evidence>,
    },
}

/// Executes the steps not yet done and says how it ended and what to do next.
pub(crate) async fn execute(settings: &Settings, ex: Execution) -> ExitCode {
    let run_id = ex.journal.run_id.clone();
    let ended = execute_shared(settings, ex, Shared::default()).await;
    if let (true, Ended::Finished { evidence, .. }) = (settings.json(), &ended) {
        super::output::line(
            &serde_json::json!({"event": "run_summary", "summary": evidence.to_json()}),
        );
    }
    match verdict(&run_id, &ended) {
        Ok(()) => {
            if let (
                false,
                Ended::Finished {
                    evidence, journal, ..
                },
            ) = (settings.json(), &ended)
            {
                print_summary(evidence, settings);
                // The workflow's outputs are the result, on stdout for scripts (even with -q).
                if !journal.outputs.is_empty() {
                    println!("outputs:");
                    for (key, value) in &journal.outputs {
                        println!("  {key}: {}", show(value));
                    }
                }
            }
            ExitCode::from(exit::SUCCESS)
        }
        Err(End::Interrupted) => {
            if !settings.json() {
                eprintln!("interrupted at the go-ahead: nothing was changed and no run was kept");
            }
            ExitCode::from(exit::INTERRUPTED)
        }
        Err(End::Failed(failure)) => failure.report(),
    }
}

/// How an execution's end is told: a failure with its exit code, message and next command.
pub(crate) enum End {
    /// Ctrl-C at the go-ahead: said in a line of its own.
    Interrupted,
    Failed(Failure),
}

/// [`execute`] without saying anything about the end.
pub(crate) async fn execute_shared(settings: &Settings, ex: Execution, shared: Shared) -> Ended {
    // Its requests stop if its lease is lost, and only its own (a fleet's other runs go on).
    let run_id = ex.journal.run_id.clone();
    crate::azure::halt::scope(run_id, execute_held(settings, ex, shared)).await
}

async fn execute_held(settings: &Settings, ex: Execution, shared: Shared) -> Ended {
    let origin = ex.journal.workflow.origin();
    let interrupt = match shared
        .interrupt
        .clone()
        .map(Ok)
        .unwrap_or_else(Interrupt::install)
    {
        Ok(i) => i,
        Err(e) => return Ended::NoInterrupt(anyhow::anyhow!("cannot handle Ctrl-C: {e}")),
    };
    let recorder = Arc::new(Recorder::new(ex.store.clone(), ex.journal.clone()));
    // Steps read the files their workflow names from the copies stored with the run.
    let files: Arc<dyn Files> = Arc::new(RunFiles::new(&ex.run_dir, origin, recorder.clone()));
    let needs_azure = ex
        .workflow
        .steps
        .iter()
        .any(|s| s.uses.value.starts_with("azure."));
    let connected = match &shared.azure {
        Some(azure) if needs_azure => Ok(target::Connected::with(azure.clone(), files)),
        _ => target::connect(&ex.target, needs_azure, Some(files), settings).await,
    };
    let connected = match connected {
        Ok(mut c) => {
            c.env.force_unlock = ex.force_unlock.clone();
            c.env.places = shared.places.clone();
            c.env.fleet = shared.fleet.clone();
            // Before any step: the port goes to the journal, so a restart can bind it again.
            let record = ex.target.clone().connected(&c).to_value();
            if let Err(e) = recorder.update(|j| j.target = record) {
                c.close().await;
                return Ended::Stopped(e);
            }
            c
        }
        Err(e) => {
            let _ = recorder.update(|j| j.status = RunStatus::Failed);
            write_report(&recorder.read(), &ex.run_dir);
            return Ended::Unconnected(e);
        }
    };

    if ex.go_ahead {
        let answer = ask_go_ahead(settings, &ex, &connected.env, &interrupt).await;
        if !matches!(answer, Ok(Some(true))) {
            connected.close().await;
            // Nothing was done: no run is kept to be resumed (a resume would not ask again).
            drop(ex.lock);
            ex.store.discard(&ex.journal.run_id);
            return Ended::NotGoneAhead(answer);
        }
    }

    let style = if settings.quiet() && !settings.json() {
        Style::Quiet
    } else {
        Style::detect(settings.json())
    };
    let executor = Executor {
        steps: bind::steps(&ex.workflow, &Registry::builtin()),
        resolver: Arc::new(WorkflowResolver::new(ex.workflow.clone())),
        recorder: recorder.clone(),
        sink: shared.sink.unwrap_or_else(|| report::reporter(style)),
        options: Options {
            yes: settings.yes,
            interactive: can_ask(settings),
            env: connected.env.clone(),
        },
        interrupt,
    };
    let outcome = executor.run(ex.resumed).await;
    connected.close().await;
    let journal = recorder.read().clone();
    let evidence = write_report(&journal, &ex.run_dir);
    drop(ex.lock);
    match outcome {
        Err(e) => Ended::Stopped(e),
        Ok(outcome) => Ended::Finished {
            outcome,
            journal: Box::new(journal),
            evidence: Box::new(evidence),
        },
    }
}

/// Whether the run `run_id` ended well, and if not, what is said: the exit code, what happened,
/// where things stand and the one command that continues it.
pub(crate) fn verdict(run_id: &str, ended: &Ended) -> Result<(), End> {
    let (outcome, journal, evidence) = match ended {
        Ended::NoInterrupt(e) | Ended::Stopped(e) => {
            return Err(End::Failed(stopped_failure(run_id, e, Next::Resume)))
        }
        Ended::Unconnected(e) => {
            return Err(End::Failed(
                Failure::new(exit::STEP_FAILED, "connect", e.to_string()).with_hint(format!(
                    "{}after fixing the cause, continue with: rescue resume {run_id}",
                    e.hint
                        .as_deref()
                        .map(|h| format!("{h}; "))
                        .unwrap_or_default()
                )),
            ))
        }
        Ended::NotGoneAhead(answer) => {
            return Err(match answer {
                Err(message) => End::Failed(Failure::new(exit::INVALID, "plan", message.clone())),
                Ok(None) => End::Interrupted,
                _ => End::Failed(Failure::new(
                    exit::DECLINED,
                    "declined",
                    "declined at the go-ahead: nothing was changed and no run was kept",
                )),
            })
        }
        Ended::Finished {
            outcome,
            journal,
            evidence,
        } => (outcome, journal, evidence),
    };
    let failed_step = |step: &str| step_error(journal, step).cloned();
    Err(End::Failed(match outcome {
        Outcome::Succeeded => return Ok(()),
        Outcome::Failed { step } if failed_step(step).is_some_and(|e| e.locked) => Failure::new(
            exit::LOCKED,
            "locked",
            format!("step {step}: someone else holds what it needs (see above); this run changes nothing more. It is saved as {run_id}."),
        )
        .with_hint(format!("a resumed run checks the VM again and stops by itself if it was repaired meanwhile: rescue resume {run_id}")),
        Outcome::Failed { step } if failed_step(step).is_some_and(|e| e.refused) => Failure::new(
            exit::INVALID,
            "refused",
            format!("step {step} refused the run before any change to Azure: {}", failed_step(step).map(|e| e.message).unwrap_or_default()),
        )
        .with_hint(format!("run {run_id} is saved; after fixing the inputs, start a new run")),
        Outcome::Failed { step } => {
            let error = failed_step(step);
            stop_message(
                evidence,
                exit::STEP_FAILED,
                "step_failed",
                format!(
                    "step {step} failed: {}",
                    error.map(|e| e.message).unwrap_or_else(|| "see above".into())
                ),
            )
        }
        Outcome::Interrupted => stop_message(
            evidence,
            exit::INTERRUPTED,
            "interrupted",
            "interrupted; the run is saved".to_string(),
        ),
        Outcome::NeedsConfirmation { step } => Failure::new(
            exit::INVALID,
            "needs_yes",
            format!("step {step} asks for confirmation and there is no terminal to ask on; it was not run"),
        )
        .with_hint(format!("to confirm it, pass --yes: rescue resume {run_id} --yes")),
        Outcome::Declined { step } => stop_message(
            evidence,
            exit::DECLINED,
            "declined",
            format!("step {step} was not confirmed; it was not run. The run is saved"),
        ),
    }))
}

/// A run that stopped before its end: what it leaves (the VM down, the lock held, the copy
/// attached: from the journal) and the one command that fits.
fn stop_message(evidence: &Evidence, code: u8, word: &'static str, message: String) -> Failure {
    let mut text = message;
    if !evidence.situation.is_empty() {
        text.push_str("\nwhere things stand:");
        for line in &evidence.situation {
            text.push_str(&format!("\n  - {line}"));
        }
    }
    text.push_str(&format!(
        "\nreport: {}",
        evidence
            .journal
            .with_file_name(crate::report::evidence::MARKDOWN)
            .display()
    ));
    let failure = Failure::new(code, word, text);
    match &evidence.next {
        Some(next) => failure.with_hint(format!("{} ({})", next.command, next.why)),
        None => failure,
    }
}

/// The end of a successful run, for the person at the terminal: result, total time, the VM's
/// downtime, which disk is which (ids with -v), where the journal and report are, what next.
fn print_summary(e: &Evidence, settings: &Settings) {
    let mut out = format!(
        "run {} {} in {}\n",
        e.run_id,
        e.status,
        crate::report::secs(e.total_ms)
    );
    if let (Some(d), Some(vm)) = (&e.downtime, &e.vm) {
        out.push_str(&format!(
            "  VM {vm} downtime: {}\n",
            crate::report::evidence::downtime_text(d)
        ));
    }
    if !e.disks.is_empty() {
        out.push_str("  disks:\n");
        let w = e.disks.iter().map(|d| d.name.len()).max().unwrap_or(0);
        for d in &e.disks {
            out.push_str(&format!("    {:<13} {:<w$}  {}\n", d.role, d.name, d.state));
            if settings.verbose() {
                out.push_str(&format!("    {:<13} {}\n", "", d.id));
            }
        }
    }
    for v in &e.verdicts {
        out.push_str(&format!(
            "  fsck verdict (step {}): {}\n",
            v.step, v.verdict
        ));
    }
    if let Some(log) = &e.fsck_log {
        out.push_str(&format!("  fsck log: {}\n", log.display()));
    }
    out.push_str(&format!("  journal: {}\n", e.journal.display()));
    out.push_str(&format!(
        "  report:  {}\n",
        e.journal
            .with_file_name(crate::report::evidence::MARKDOWN)
            .display()
    ));
    if let Some(next) = e.then.first() {
        out.push_str(&format!("next: {}   ({})\n", next.command, next.why));
    }
    eprint!("{out}");
}

/// Writes the run's `report.md` and `report.json` (every run leaves them, whatever its end);
/// a failure to write them is a warning, not the run's failure.
pub(crate) fn write_report(journal: &Journal, run_dir: &Path) -> Evidence {
    let evidence = super::report::evidence(journal, run_dir);
    if let Err(e) = evidence.write(run_dir) {
        super::output::note("warning", &format!("cannot write the run's report: {e:#}"));
    }
    evidence
}

/// How the step failed: held by another run (exit 3), refused up front (exit 2), or else (1).
fn step_error<'j>(
    journal: &'j Journal,
    step: &str,
) -> Option<&'j crate::engine::journal::StepError> {
    journal.step(step).and_then(|s| s.error.as_ref())
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
    stopped_failure(run_id, e, next).report()
}

/// [`stopped`]'s failure, unsaid.
fn stopped_failure(run_id: &str, e: &anyhow::Error, next: Next) -> Failure {
    if e.is::<DamagedJournal>() || e.is::<crate::engine::store::Fenced>() {
        return Failure::from_error(e);
    }
    let command = match next {
        Next::Resume => format!("rescue resume {run_id}"),
        Next::Rollback => format!("rescue rollback {run_id} --yes"),
    };
    Failure::new(
        exit::STEP_FAILED,
        "stopped",
        format!("{e:#}\nrun {run_id} stopped; its journal keeps everything up to the last step recorded"),
    )
    .with_hint(format!(
        "after fixing the cause (e.g. freeing disk space), continue with:\n  {command}"
    ))
}

/// An error that is not a step's: the journal or the state dir failed us.
pub(crate) fn fatal(e: &anyhow::Error) -> ExitCode {
    Failure::from_error(e).report()
}
