//! `rescue plan FILE`: what a workflow would do, without changing anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::settings::{InputArgs, OutputArgs, StateArgs, TargetArgs};
use super::target::{self, TargetRecord};
use super::{Flags, Settings, Target};
use crate::actions::{Env, Files, Registry};
use crate::exit;
use crate::plan;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The workflow: a file, or the name of a built-in (`rescue workflows` lists them).
    pub file: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also show each step's arguments, notes and the Azure calls it would make.
    #[arg(short, long)]
    pub verbose: bool,
}

impl PlanArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            output: Some(&self.output),
            inputs: Some(&self.inputs),
            target: Some(&self.target),
            retarget: false,
            yes: None,
        }
    }
}

pub fn run(args: &PlanArgs, settings: &Settings) -> ExitCode {
    show(&args.file, settings, args.verbose)
}

/// Prints the plan of `file` (also `rescue run --dry-run`). Creates nothing: no run dir.
pub fn show(file: &Path, settings: &Settings, verbose: bool) -> ExitCode {
    let registry = Registry::builtin();
    let super::Loaded {
        origin,
        workflow: wf,
        inputs,
        ..
    } = match super::load_with_inputs(file, settings, &registry) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let planned = runtime.block_on(async {
        // An in-process emulator started for a plan keeps its state in a scratch dir, never
        // in the state dir: a plan creates no run.
        let scratch =
            tempfile::tempdir().map_err(|e| format!("cannot create a scratch directory: {e}"))?;
        let record = TargetRecord::for_new_run(&settings.target, scratch.path());
        // A plan reads the workflow's files where they are now; a run reads its stored copies.
        let files: Arc<dyn Files> = Arc::new(origin);
        // Actions read current state through the connection to make the plan concrete;
        // without one they describe the step from its arguments alone.
        let connected =
            match target::connect(&record, wf.needs_azure(), Some(files.clone()), settings).await {
                Ok(connected) => Some(connected),
                Err(e) => {
                    eprintln!(
                    "warning: cannot read current state, so the plan shows the arguments only: {e}"
                );
                    None
                }
            };
        let env = connected.as_ref().map_or_else(
            || Env {
                files: Some(files),
                ..Env::default()
            },
            |c| c.env.clone(),
        );
        let planned = plan::build(&wf, inputs, &registry, &env, plan::PLACEHOLDER_RUN_ID)
            .await
            .map(|mut plan| {
                if wf.needs_azure() {
                    plan.target = Some(where_it_acts(&settings.target, &env));
                }
                plan
            })
            .map_err(|e| e.to_string());
        if let Some(connected) = connected {
            connected.close().await;
        }
        planned
    });
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: cannot plan {}: {e}", file.display());
            return ExitCode::from(exit::INVALID);
        }
    };
    let text = if settings.json() {
        serde_json::to_string_pretty(&plan).expect("a plan is JSON") + "\n"
    } else {
        plan::render_text(&plan, &run_command(file, settings), verbose)
    };
    // A closed pipe (`rescue plan ... | head`) is not worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::from(exit::SUCCESS)
}

/// Where the run would act, for the plan's header.
pub(crate) fn where_it_acts(target: &Target, env: &Env) -> String {
    let Some(azure) = &env.azure else {
        return "not connected: current state was not read".into();
    };
    let subscription = azure.subscription();
    match target {
        Target::Azure { cloud, .. } => format!(
            "Azure ({}), subscription {subscription}",
            cloud.as_deref().unwrap_or("AzureCloud")
        ),
        Target::InProcessEmulator { scenario, .. } => format!(
            "an emulator in this process ({}), subscription {subscription}",
            scenario
                .as_ref()
                .map(|p| format!("scenario {}", p.display()))
                .unwrap_or_else(|| "the incident scenario".into())
        ),
        Target::Emulator { endpoint, .. } => {
            format!("the emulator at {endpoint}, subscription {subscription}")
        }
    }
}

/// The `rescue run` command line with the same file and inputs.
fn run_command(file: &Path, settings: &Settings) -> String {
    let mut words = vec![
        "rescue".to_string(),
        "run".to_string(),
        quote(&file.display().to_string()),
    ];
    if let Some(inputs) = &settings.inputs_file {
        words.push(format!("--inputs {}", quote(&inputs.display().to_string())));
    }
    for pair in &settings.input_pairs {
        words.push(format!("--input {}", quote(pair)));
    }
    if let Target::InProcessEmulator { scenario, .. } = &settings.target {
        words.push(match scenario {
            Some(path) => format!("--emulator={}", quote(&path.display().to_string())),
            None => "--emulator".to_string(),
        });
    }
    words.join(" ")
}

/// Quotes a shell word only when it needs it.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
