//! Runs the steps of a run, each as soon as the steps it needs are done (in file order when
//! nothing says otherwise), journaling the intent before every side effect and the result right
//! after, so that a run killed at any point can be resumed without doing a step twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::events::{Event, EventSink, StepInfo};
use super::interrupt::Interrupt;
use super::journal::{Journal, RunStatus, StepError, StepStatus};
use super::recorder::Recorder;
use crate::actions::{
    Action, ActionError, Args, Env, Intent, Outputs, Reconciled, StepContext, StepHost,
};
use crate::workflow::Retry;

/// One step as the engine sees it: an action and how to run it. Arguments and conditions are
/// evaluated by the [`Resolver`], which knows the expression language.
pub struct StepDef {
    pub id: String,
    pub name: String,
    pub uses: String,
    pub action: Arc<dyn Action>,
    /// The `if:` text, shown when the step is skipped.
    pub condition: Option<String>,
    /// The question to ask before running the step, for `confirm` steps.
    pub confirm: Option<String>,
    pub retry: Retry,
    pub timeout: Option<Duration>,
    /// The steps (by index, all above this one) that must be done before it starts.
    pub needs: Vec<usize>,
}

/// Evaluates a step's expressions against what the run knows so far (inputs, run id, outputs of
/// earlier steps, all in the journal).
pub trait Resolver: Send + Sync {
    /// Whether the step runs (true when it has no `if:`).
    fn condition(&self, step: usize, journal: &Journal) -> Result<bool, ActionError>;
    fn args(&self, step: usize, journal: &Journal) -> Result<Args, ActionError>;
    /// The workflow's `outputs:`, once every step is done.
    fn outputs(&self, journal: &Journal) -> Result<Map<String, Value>, ActionError>;
}

pub struct Options {
    /// `--yes`: confirm steps run without asking.
    pub yes: bool,
    /// A person can answer questions on this terminal.
    pub interactive: bool,
    pub env: Env,
}

/// How a run (or this part of it) ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The step failed; the run is resumable.
    Failed {
        step: String,
    },
    /// Ctrl-C / SIGTERM; the run is resumable.
    Interrupted,
    /// A `confirm` step was reached without `--yes` and nobody could answer.
    NeedsConfirmation {
        step: String,
    },
    /// Somebody answered no.
    Declined {
        step: String,
    },
}

/// A step without `timeout:` gets this one: no step may hang a run forever. (Each Azure
/// operation also has its own, shorter deadline.)
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

pub struct Executor {
    pub steps: Vec<StepDef>,
    pub resolver: Arc<dyn Resolver>,
    pub recorder: Arc<Recorder>,
    pub sink: Arc<dyn EventSink>,
    pub options: Options,
    pub interrupt: Interrupt,
}

enum Attempt {
    Done(Result<Outputs, ActionError>),
    Interrupted,
}

impl Executor {
    /// Runs every step not yet done. Errors are failures to record (the journal could not be
    /// written); step failures are an [`Outcome`].
    pub async fn run(&self, resumed: bool) -> anyhow::Result<Outcome> {
        let (run_id, workflow) = {
            let j = self.recorder.read();
            (j.run_id.clone(), j.workflow.path.display().to_string())
        };
        let ids: Vec<(String, String)> = self
            .steps
            .iter()
            .map(|s| (s.id.clone(), s.uses.clone()))
            .collect();
        self.recorder.read().check_steps(&ids).map_err(|problem| {
            super::journal::DamagedJournal {
                path: self.recorder.journal_path(),
                problem,
            }
        })?;
        self.recorder.update(|j| j.status = RunStatus::Running)?;
        let steps = self
            .steps
            .iter()
            .map(|s| StepInfo {
                id: s.id.clone(),
                name: s.name.clone(),
                uses: s.uses.clone(),
            })
            .collect();
        self.sink.emit(Event::RunStarted {
            run_id: run_id.clone(),
            workflow,
            steps,
            resumed,
        });

        let resume = format!("rescue resume {run_id}");
        if let Some(outcome) = self.run_steps().await? {
            let status = match outcome {
                Outcome::Failed { .. } => RunStatus::Failed,
                Outcome::Interrupted => RunStatus::Interrupted,
                _ => RunStatus::AwaitingConfirmation,
            };
            self.recorder.update(|j| j.status = status)?;
            self.sink.emit(match outcome {
                Outcome::Interrupted => Event::RunInterrupted {
                    run_id,
                    resume_command: resume,
                },
                _ => Event::RunFinished {
                    run_id,
                    status,
                    outputs: Map::new(),
                    error: None,
                    resume_command: Some(resume),
                },
            });
            return Ok(outcome);
        }

        let outputs = match self.resolver.outputs(&self.recorder.read()) {
            Ok(outputs) => outputs,
            Err(e) => {
                // Every step is done; only the summary failed. Report it, keep the run resumable.
                let status = RunStatus::Failed;
                self.recorder.update(|j| j.status = status)?;
                let error = Some(e.to_string());
                self.sink.emit(Event::RunFinished {
                    run_id,
                    status,
                    outputs: Map::new(),
                    error,
                    resume_command: Some(resume),
                });
                return Ok(Outcome::Failed {
                    step: "outputs".into(),
                });
            }
        };
        let status = RunStatus::Succeeded;
        self.recorder.update(|j| {
            j.status = status;
            j.outputs = outputs.clone();
        })?;
        self.sink.emit(Event::RunFinished {
            run_id,
            status,
            outputs,
            error: None,
            resume_command: None,
        });
        Ok(Outcome::Succeeded)
    }

    /// Runs every step once its needs are done, side by side where nothing orders them; the
    /// first outcome that is not success, once the steps already running have ended (a step is
    /// never abandoned mid-operation because another failed).
    async fn run_steps(&self) -> anyhow::Result<Option<Outcome>> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let n = self.steps.len();
        let (mut started, mut done) = (vec![false; n], vec![false; n]);
        let mut running = FuturesUnordered::new();
        // A step that asks a person runs alone, so its question is not lost among other steps'
        // progress.
        let mut alone = false;
        let mut stopped = None;
        loop {
            if stopped.is_none() && !alone {
                for (i, step) in self.steps.iter().enumerate() {
                    if started[i] || !step.needs.iter().all(|&j| done[j]) {
                        continue;
                    }
                    if step.confirm.is_some() {
                        if !running.is_empty() {
                            continue;
                        }
                        alone = true;
                    }
                    started[i] = true;
                    running.push(async move { (i, self.run_step(i).await) });
                    if alone {
                        break;
                    }
                }
            }
            let Some((i, outcome)) = running.next().await else {
                break;
            };
            if self.steps[i].confirm.is_some() {
                alone = false;
            }
            match outcome? {
                Outcome::Succeeded => done[i] = true,
                other => {
                    stopped.get_or_insert(other);
                }
            }
        }
        Ok(stopped)
    }

    async fn run_step(&self, index: usize) -> anyhow::Result<Outcome> {
        let step = &self.steps[index];
        let Some(record) = self.recorder.read().step(&step.id).cloned() else {
            // `run` checked the journal against the steps; this is a second line of defence.
            anyhow::bail!("the journal has no record of step `{}`", step.id);
        };
        if record.status.is_done() {
            if record.status == StepStatus::Succeeded {
                step.action
                    .resumed(&self.options.env, &record.args, &record.outputs);
            }
            return Ok(Outcome::Succeeded);
        }

        // Found running: the previous process died with the outcome unknown. Ask the action.
        if record.status == StepStatus::Running {
            let intent = record.intent.clone().unwrap_or_default();
            let ctx = self.context(step, record.attempts.max(1));
            let started = Instant::now();
            let reconciled = tokio::select! {
                r = step.action.reconcile(&ctx, &record.args, &intent) => r,
                _ = self.interrupt.wait() => return Ok(Outcome::Interrupted),
            };
            match reconciled {
                Ok(Reconciled::Adopt(outputs)) => {
                    self.sink.emit(Event::StepReconciled {
                        step: step.id.clone(),
                        adopted: true,
                    });
                    return self.succeed(step, outputs, started);
                }
                Ok(Reconciled::Redo) => {
                    self.sink.emit(Event::StepReconciled {
                        step: step.id.clone(),
                        adopted: false,
                    });
                    return self.attempts(step, record.args, intent).await;
                }
                Err(e) => return self.fail(step, &e, started),
            }
        }

        let evaluated = {
            let journal = self.recorder.read();
            self.resolver.condition(index, &journal)
        };
        match evaluated {
            Ok(true) => {}
            Ok(false) => {
                let reason = match &step.condition {
                    Some(c) => format!("condition `{c}` is false"),
                    None => "condition is false".into(),
                };
                self.recorder.update(|j| {
                    let s = j.step_mut(&step.id).expect("journal has every step");
                    s.status = StepStatus::Skipped;
                    s.ended = Some(OffsetDateTime::now_utc());
                })?;
                self.sink.emit(Event::StepSkipped {
                    step: step.id.clone(),
                    reason,
                });
                return Ok(Outcome::Succeeded);
            }
            Err(e) => return self.fail(step, &e, Instant::now()),
        }

        let resolved = {
            let journal = self.recorder.read();
            self.resolver.args(index, &journal)
        };
        if let (Some(prompt), Ok(args)) = (&step.confirm, &resolved) {
            if !self.options.yes {
                let details = self.confirmation(step, args).await;
                self.sink.emit(Event::AwaitingConfirmation {
                    step: step.id.clone(),
                    prompt: prompt.clone(),
                    details: details.clone(),
                });
                if !self.options.interactive {
                    return Ok(Outcome::NeedsConfirmation {
                        step: step.id.clone(),
                    });
                }
                let mut question = String::new();
                for line in &details {
                    question.push_str(&format!("  {line}\n"));
                }
                question.push_str(&format!("{}: {prompt}", step.id));
                let answered = tokio::select! {
                    yes = ask(self.sink.clone(), question) => Some(yes),
                    _ = self.interrupt.wait() => None,
                };
                self.options.env.time_passes();
                match answered {
                    None => return Ok(Outcome::Interrupted),
                    Some(false) => {
                        return Ok(Outcome::Declined {
                            step: step.id.clone(),
                        })
                    }
                    Some(true) => {}
                }
            }
        }

        let run_id = self.recorder.read().run_id.clone();
        let prepared = resolved.and_then(|args| {
            step.action
                .intent(&run_id, &step.id, &args)
                .map(|i| (args, i))
        });
        match prepared {
            Ok((args, intent)) => self.attempts(step, args, intent).await,
            Err(e) => self.fail(step, &e, Instant::now()),
        }
    }

    /// What a person confirming `step` must see: the changes it makes (as the plan shows them,
    /// read now: the VM, its current OS disk, the disk it gets) and the verdicts of the steps
    /// before it (fsck's). Reads only.
    async fn confirmation(&self, step: &StepDef, args: &Args) -> Vec<String> {
        let ctx = crate::actions::PlanContext {
            run_id: self.recorder.read().run_id.clone(),
            step_id: step.id.clone(),
            env: self.options.env.clone(),
            read: None,
        };
        let planned = crate::actions::PlanArgs {
            known: args.clone(),
            unknown: Default::default(),
        };
        let mut lines = Vec::new();
        if let Ok(description) = step.action.describe(&ctx, &planned).await {
            for c in &description.changes {
                let noun = match c.resource_type.rsplit('/').next() {
                    Some("virtualMachines") => "VM",
                    Some("disks") => "disk",
                    Some("snapshots") => "snapshot",
                    _ => c.resource_type.as_str(),
                };
                lines.push(format!("{} {noun} {}: {}", c.kind.mark(), c.name, c.what));
            }
        }
        for done in &self.recorder.read().steps {
            if let Some(verdict) = done.outputs.get("verdict").and_then(Value::as_str) {
                lines.push(format!("step {} verdict: {verdict}", done.id));
            }
        }
        lines
    }

    /// Executes the step, retrying retryable failures per its policy.
    async fn attempts(
        &self,
        step: &StepDef,
        args: Args,
        intent: Intent,
    ) -> anyhow::Result<Outcome> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            // The intent, and every resource it may create, is durable before anything happens.
            let total = self.recorder.update(|j| {
                j.record_resources(&step.id, &intent);
                let s = j.step_mut(&step.id).expect("journal has every step");
                s.status = StepStatus::Running;
                s.attempts += 1;
                s.started.get_or_insert_with(OffsetDateTime::now_utc);
                s.ended = None;
                s.args = args.clone();
                s.intent = Some(intent.clone());
                s.error = None;
                s.attempts
            })?;
            self.sink.emit(Event::StepStarted {
                step: step.id.clone(),
                name: step.name.clone(),
                attempt,
            });

            let ctx = self.context(step, total);
            let result = match self.execute(step, &ctx, &args, &intent).await {
                Attempt::Interrupted => return Ok(Outcome::Interrupted),
                Attempt::Done(result) => result,
            };
            self.recorder.crash_point();

            match result {
                Ok(outputs) => return self.succeed(step, outputs, started),
                Err(e) if e.retryable && attempt < step.retry.max_attempts => {
                    let delay = step.retry.delay(attempt);
                    self.recorder.update(|j| {
                        let s = j.step_mut(&step.id).expect("journal has every step");
                        s.status = StepStatus::Failed;
                        s.error = Some(StepError::from(&e));
                    })?;
                    self.sink.emit(Event::StepRetrying {
                        step: step.id.clone(),
                        attempt,
                        delay_ms: delay.as_millis() as u64,
                        error: e.message.clone(),
                    });
                    self.options.env.time_passes();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.interrupt.wait() => return Ok(Outcome::Interrupted),
                    }
                    attempt += 1;
                }
                Err(e) => return self.fail(step, &e, started),
            }
        }
    }

    async fn execute(
        &self,
        step: &StepDef,
        ctx: &StepContext,
        args: &Args,
        intent: &Intent,
    ) -> Attempt {
        let call = step.action.execute(ctx, args, intent);
        let limit = step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT);
        let bounded = async {
            tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(ActionError::retryable(format!(
                    "timed out after {}",
                    humantime::format_duration(limit)
                ))
                .with_hint("raise the step's `timeout`, or resume to try again"))
            })
        };
        // On Ctrl-C the call is abandoned where it waits; the step stays `running` in the
        // journal, so resume asks the action to reconcile it.
        tokio::select! {
            result = bounded => Attempt::Done(result),
            _ = self.interrupt.wait() => Attempt::Interrupted,
        }
    }

    fn succeed(
        &self,
        step: &StepDef,
        outputs: Outputs,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        self.recorder.update(|j| {
            let s = j.step_mut(&step.id).expect("journal has every step");
            s.status = StepStatus::Succeeded;
            s.outputs = outputs.clone();
            s.error = None;
            s.ended = Some(OffsetDateTime::now_utc());
        })?;
        self.sink.emit(Event::StepSucceeded {
            step: step.id.clone(),
            outputs,
            elapsed_ms: millis(started),
        });
        Ok(Outcome::Succeeded)
    }

    fn fail(
        &self,
        step: &StepDef,
        error: &ActionError,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        // Actions write `rescue resume RUN_ID`; what the engineer reads names this run.
        let run_id = self.recorder.read().run_id.clone();
        let mut error = error.clone();
        // ... and `--from-step STEP` this step: a hint never leaves a placeholder to fill in.
        error.hint = error.hint.map(|h| {
            h.replace("RUN_ID", &run_id)
                .replace("--from-step STEP", &format!("--from-step {}", step.id))
        });
        self.recorder.update(|j| {
            let s = j.step_mut(&step.id).expect("journal has every step");
            s.status = StepStatus::Failed;
            s.error = Some(StepError::from(&error));
            s.ended = Some(OffsetDateTime::now_utc());
        })?;
        self.sink.emit(Event::StepFailed {
            step: step.id.clone(),
            error: error.message.clone(),
            hint: error.hint.clone(),
            elapsed_ms: millis(started),
        });
        Ok(Outcome::Failed {
            step: step.id.clone(),
        })
    }

    fn context(&self, step: &StepDef, attempt: u32) -> StepContext {
        let journal = self.recorder.read();
        let checkpoints = journal
            .step(&step.id)
            .map(|s| s.checkpoints.clone())
            .unwrap_or_default();
        StepContext {
            run_id: journal.run_id.clone(),
            step_id: step.id.clone(),
            attempt,
            run_started: journal.created,
            env: self.options.env.clone(),
            checkpoints,
            host: Arc::new(Host {
                recorder: self.recorder.clone(),
                sink: self.sink.clone(),
                interactive: self.options.interactive,
            }),
        }
    }
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Reading the answer blocks; it runs on a thread of its own, not the runtime's blocking pool,
/// so that Ctrl-C is heard at once and the process can exit without waiting for a line that
/// never comes (a runtime waits for its blocking tasks when it shuts down).
async fn ask(sink: Arc<dyn EventSink>, question: String) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sink.confirm(&question));
    });
    rx.await.unwrap_or(false)
}

/// The engine's side of a running step.
struct Host {
    recorder: Arc<Recorder>,
    sink: Arc<dyn EventSink>,
    interactive: bool,
}

#[async_trait]
impl StepHost for Host {
    fn status(&self, step_id: &str, message: String) {
        self.sink.emit(Event::StepStatus {
            step: step_id.to_string(),
            message,
        });
    }

    async fn checkpoint(&self, step_id: &str, key: &str, value: Value) -> Result<(), ActionError> {
        self.recorder
            .update(|j| {
                if let Some(s) = j.step_mut(step_id) {
                    s.checkpoints.insert(key.to_string(), value);
                }
            })
            .map_err(|e| {
                ActionError::fatal(format!("cannot record a checkpoint in the journal: {e:#}"))
            })
    }

    fn artifact(
        &self,
        _step_id: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<Option<std::path::PathBuf>, ActionError> {
        // A plain file name only: a step never writes outside its run's directory.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(ActionError::fatal(format!(
                "`{name}` is not a file name for the run directory"
            )));
        }
        let run_id = self.recorder.read().run_id.clone();
        let path = self
            .recorder
            .store()
            .keep(&run_id, name, bytes)
            .map_err(|e| ActionError::fatal(format!("cannot keep {name}: {e:#}")))?;
        Ok(Some(path))
    }

    fn ask(&self, step_id: &str, question: &str) -> Option<bool> {
        self.interactive
            .then(|| self.sink.confirm(&format!("{step_id}: {question}")))
    }
    fn call(&self, step_id: &str, call: Value) {
        self.recorder.stage(|j| {
            if let Some(s) = j.step_mut(step_id) {
                s.calls.push(call);
            }
        });
    }
}
