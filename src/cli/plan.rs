//! `rescue plan FILE`: what a workflow would do, without changing anything.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::settings::{InputArgs, StateArgs, TargetArgs};
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
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl PlanArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            inputs: Some(&self.inputs),
            target: Some(&self.target),
            retarget: false,
            yes: None,
        }
    }
}

pub fn run(args: &PlanArgs, settings: &Settings) -> ExitCode {
    show(&args.file, settings, settings.verbose())
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
                    super::output::note(
                        "warning",
                        &format!(
                            "cannot read current state, so the plan shows the arguments only: {e}"
                        ),
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
            return super::Failure::new(
                exit::INVALID,
                "plan",
                format!("cannot plan {}: {e}", file.display()),
            )
            .report()
        }
    };
    let value = serde_json::to_value(&plan).expect("a plan is JSON");
    let text = || plan::render_text(&plan, &run_command(file, settings), verbose);
    match super::output::document(&value, text, None) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
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
pub(crate) fn run_command(file: &Path, settings: &Settings) -> String {
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
    let flags = &settings.flag_inputs;
    for (flag, value) in [
        ("-g", &flags.resource_group),
        ("-n", &flags.name),
        ("--rescue-vm", &flags.rescue_vm),
        ("--rescue-resource-group", &flags.rescue_resource_group),
        ("--cluster-name", &flags.cluster_name),
        ("--node", &flags.node),
    ] {
        if let Some(value) = value {
            words.push(format!("{flag} {}", quote(value)));
        }
    }
    for (flag, on) in [
        ("--allow-aks-node", flags.allow_aks_node),
        ("--force-healthy", flags.force_healthy),
        ("--keep-rescue-vm", flags.keep_rescue_vm),
    ] {
        if on {
            words.push(flag.to_string());
        }
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
