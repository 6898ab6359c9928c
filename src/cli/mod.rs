//! Command-line interface: flags parsed once into [`Settings`], then dispatched to one file
//! per subcommand.

mod cleanup;
mod docs;
mod doctor;
mod fleet;
pub mod output;
mod plan;
mod report;
mod resume;
mod retarget;
mod rollback;
mod run;
mod runs;
mod schema;
pub mod settings;
mod status;
mod target;
mod validate;
mod workflows;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::Failure;
pub use settings::{Flags, OutputFormat, Settings, Target};

use crate::exit;

/// Shown under every `--help`: what scripts and shells need to know.
const AFTER_HELP: &str = concat!(
    "Environment:\n",
    "  RESCUE_STATE_DIR        where runs are journaled (--state-dir)\n",
    "  AZURE_SUBSCRIPTION_ID   the subscription (--subscription)\n",
    "  AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE\n",
    "                          a service principal or workload identity (else managed identity, then `az login`)\n",
    "  AZURE_AUTHORITY_HOST    where to sign in (an emulator's URL)\n",
    "  RESCUE_EMULATOR_URL, RESCUE_EMULATOR_CA   a running `rescue emulator serve` (--emulator-url, --emulator-ca)\n",
    "  RESCUE_TIME_SCALE       the emulator's latency scale (--time-scale)\n",
    "  NO_COLOR                no colours\n",
    "\n",
);

/// The version line: the package's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("RESCUE_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "rescue",
    version = VERSION,
    about = "Repair broken Azure VMs by running resumable YAML workflows",
    long_about = "Repair broken Azure VMs by running resumable YAML workflows.\n\nPreview with `rescue plan`, run with `rescue run` (it shows the plan and asks before the first change); a run that was stopped or failed continues with `rescue resume RUN_ID`. Rehearse anything on the built-in emulator with `--emulator`. RUN_ID may be `last`: the most recent run.",
    after_help = concat!(
        "Example (the incident, on the emulator):\n",
        "  rescue run os-disk-swap -g MC_prod-rg_prod-aks_westeurope -n aks-nodepool1-31415926-vm2 --rescue-vm rescue-vm --allow-aks-node --emulator --yes\n",
        "\n",
    ),
    after_long_help = None::<&str>,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: output::GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a workflow file without running anything.
    #[command(
        after_help = "Examples:\n  rescue validate os-disk-swap\n  rescue validate demo -o json"
    )]
    Validate(validate::ValidateArgs),
    /// Show what a workflow would do, step by step, without changing anything.
    #[command(
        after_help = "Examples:\n  rescue plan os-disk-swap -g MC_prod-rg_prod-aks_westeurope -n aks-nodepool1-31415926-vm2 --rescue-vm rescue-vm --allow-aks-node --emulator\n  rescue plan demo --input patient=vm2 -v\n  rescue plan demo --input patient=vm2 -o json --query totals"
    )]
    Plan(plan::PlanArgs),
    /// Run a workflow: show the plan, ask for a go-ahead, then run it step by step, journaling
    /// every step so it can be resumed.
    #[command(
        after_help = "Examples:\n  rescue run demo --input patient=vm2 --yes\n  rescue run os-disk-swap -g MC_prod-rg_prod-aks_westeurope -n aks-nodepool1-31415926-vm2 --rescue-vm rescue-vm --allow-aks-node --emulator --yes"
    )]
    Run(run::RunArgs),
    /// Continue a stopped or failed run from its first unfinished step.
    #[command(after_help = "Examples:\n  rescue resume last\n  rescue resume last --yes -o json")]
    Resume(resume::ResumeArgs),
    /// Undo a run in reverse (swap the original disk back, detach the copy, ...); preview first.
    #[command(
        after_help = "Examples:\n  rescue rollback last --dry-run\n  rescue rollback last --delete-created --yes"
    )]
    Rollback(rollback::RollbackArgs),
    /// After a successful repair: list what the run left (snapshot, old disk) and delete it.
    #[command(
        after_help = "Examples:\n  rescue cleanup last --yes -o json\n  rescue cleanup last --yes --delete-old-disk aks-nodepool1-31415926-vm2_OsDisk_1_3a9f5c7e1d2b4a68e0f4b6d8c1a5e927"
    )]
    Cleanup(cleanup::CleanupArgs),
    /// List runs (id, workflow, started, status).
    #[command(
        after_help = "Examples:\n  rescue runs\n  rescue runs -o json --query \"runs[?status=='succeeded'].id\""
    )]
    Runs(runs::RunsArgs),
    /// Show a run: where it acts, its steps, durations, outputs and errors, whether it is running.
    #[command(after_help = "Examples:\n  rescue status last\n  rescue status last -o yaml")]
    Status(status::StatusArgs),
    /// The evidence report of a run (timeline, downtime, disks, fsck verdicts, next commands).
    #[command(
        after_help = "Examples:\n  rescue report last\n  rescue report last --format json > report.json"
    )]
    Report(report::ReportArgs),
    /// List the built-in workflows with their inputs; `workflows show NAME` prints one.
    #[command(
        after_help = "Examples:\n  rescue workflows\n  rescue workflows -o table\n  rescue workflows show os-disk-swap > my-repair.yaml"
    )]
    Workflows(workflows::WorkflowsArgs),
    /// Check what rescue would act on and whether it can: credential, subscription,
    /// permissions, and the emulator's local prerequisites.
    #[command(
        after_help = "Examples:\n  rescue doctor --emulator\n  rescue doctor --emulator -g MC_prod-rg_prod-aks_westeurope -o json"
    )]
    Doctor(doctor::DoctorArgs),
    /// Print the JSON Schema of workflow files (for editors).
    #[command(after_help = "Example:\n  rescue schema > workflow.schema.json")]
    Schema(schema::SchemaArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  rescue completions bash > rescue.bash\n  rescue completions zsh > _rescue"
    )]
    Completions(docs::CompletionsArgs),
    /// Write man pages (rescue.1 and one per subcommand) into a directory.
    #[command(after_help = "Example:\n  rescue man ./man")]
    Man(docs::ManArgs),
    /// Repair many VMs at once: one run per target of a targets file, in one process, a few at a
    /// time, sharing one Azure connection and a pool of rescue VMs.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// The loopback Azure emulator (real disk images), for rehearsals and tests.
    #[command(subcommand)]
    Emulator(EmulatorCommand),
}

#[derive(Subcommand, Debug)]
pub enum EmulatorCommand {
    /// Serve the emulator until Ctrl-C; prints the `export` lines that point rescue at it
    /// (`eval "$(rescue emulator serve | tail -n +2)"` in a script that runs it in the background).
    #[command(
        after_help = "Example:\n  rescue emulator serve --data-dir ./emulator --time-scale 0.05"
    )]
    Serve(crate::emulator::ServeArgs),
}

/// The command as clap knows it, with the exit codes under every help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn with_help(cmd: clap::Command) -> clap::Command {
        let after = cmd
            .get_after_help()
            .map(|h| format!("{h}\n\n"))
            .unwrap_or_default();
        let cmd = cmd.after_help(format!("{after}{AFTER_HELP}{}", exit::HELP));
        cmd.mut_subcommands(with_help)
    }
    with_help(Cli::command())
}

pub fn main() -> ExitCode {
    use clap::FromArgMatches;
    let args: Vec<String> = std::env::args().collect();
    let matches = match command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) if output::asks_structured(&args) && e.use_stderr() => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            output::init(
                output::Output::from_args(&output::GlobalArgs {
                    output: OutputFormat::Json,
                    ..Default::default()
                })
                .unwrap_or_else(|_| unreachable!("no query to check")),
            );
            return Failure::usage(message)
                .with_hint("`rescue --help` lists the commands and flags")
                .report();
        }
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match output::Output::from_args(&cli.global) {
        Ok(o) => output::init(o),
        Err(f) => {
            // The bad flag is --query: the rest of the contract (the format) still holds.
            let global = output::GlobalArgs {
                query: None,
                ..cli.global.clone()
            };
            if let Ok(o) = output::Output::from_args(&global) {
                output::init(o);
            }
            return f.report();
        }
    }
    dispatch(cli.command, &on_command_line(&matches))
}

/// The ids of the arguments typed on the command line (not taken from the environment or a
/// default) of the subcommand that runs: a command continuing a recorded run refuses a flag
/// typed for another target, but only notes an environment variable that does not apply.
fn on_command_line(matches: &clap::ArgMatches) -> std::collections::BTreeSet<String> {
    let mut innermost = matches;
    while let Some((_, sub)) = innermost.subcommand() {
        innermost = sub;
    }
    innermost
        .ids()
        .filter(|id| {
            innermost.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|id| id.to_string())
        .collect()
}

fn dispatch(command: Command, explicit: &std::collections::BTreeSet<String>) -> ExitCode {
    let settings = |flags: Flags| {
        Settings::resolve(flags)
            .map(|mut s| {
                s.on_command_line = explicit.clone();
                s
            })
            .map_err(|message| Failure::usage(message).report())
    };
    let result = match &command {
        Command::Validate(args) => Ok(validate::run(args)),
        Command::Plan(args) => settings(args.flags()).map(|s| plan::run(args, &s)),
        Command::Run(args) => settings(args.flags()).map(|s| run::run(args, &s)),
        Command::Resume(args) => settings(args.flags()).map(|s| resume::run(args, &s)),
        Command::Rollback(args) => settings(args.flags()).map(|s| rollback::run(args, &s)),
        Command::Cleanup(args) => settings(args.flags()).map(|s| cleanup::run(args, &s)),
        Command::Runs(args) => settings(args.flags()).map(|s| runs::run(args, &s)),
        Command::Status(args) => settings(args.flags()).map(|s| status::run(args, &s)),
        Command::Report(args) => settings(args.flags()).map(|s| report::run(args, &s)),
        Command::Workflows(args) => settings(args.flags()).map(|s| workflows::run(args, &s)),
        Command::Doctor(args) => settings(args.flags()).map(|s| doctor::run(args, &s)),
        Command::Fleet(fleet) => settings(fleet.flags()).map(|s| fleet::run(fleet, &s)),
        Command::Schema(args) => Ok(schema::run(args)),
        Command::Completions(args) => Ok(docs::completions(args)),
        Command::Man(args) => Ok(docs::man(args)),
        Command::Emulator(EmulatorCommand::Serve(args)) => Ok(serve_emulator(args.clone())),
    };
    result.unwrap_or_else(|code| code)
}

fn serve_emulator(args: crate::emulator::ServeArgs) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(crate::emulator::serve(args)),
        Err(e) => Failure::new(
            exit::STEP_FAILED,
            "runtime",
            format!("cannot start the async runtime: {e}"),
        )
        .report(),
    }
}

/// A workflow checked with its inputs and the files its steps name: what plan and run start
/// from.
pub(crate) struct Loaded {
    pub origin: crate::workflow::Origin,
    pub workflow: crate::workflow::Workflow,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    pub files: Vec<crate::workflow::FileRead>,
}

/// Finds `given` (a file, or a built-in's name), checks it, resolves the inputs the flags give
/// and reads the files its steps name. On problems, prints them and gives exit 2.
pub(crate) fn load_with_inputs(
    given: &std::path::Path,
    settings: &Settings,
    registry: &crate::actions::Registry,
) -> Result<Loaded, ExitCode> {
    let (origin, workflow) = load_workflow(given, registry)?;
    let mut pairs = settings.input_pairs.clone();
    pairs.extend(settings::flag_inputs(settings, &workflow).map_err(|f| f.report())?);
    let inputs =
        crate::workflow::resolve_inputs(&workflow, &pairs, settings.inputs_file.as_deref())
            .map_err(|p| report_invalid(&p))?;
    with_files(origin, workflow, inputs, registry)
}

/// Finds `given` (a file, or a built-in's name) and checks it; exit 2 on problems.
pub(crate) fn load_workflow(
    given: &std::path::Path,
    registry: &crate::actions::Registry,
) -> Result<(crate::workflow::Origin, crate::workflow::Workflow), ExitCode> {
    let origin = crate::workflow::Origin::resolve(given).map_err(|p| report_invalid(&p))?;
    let workflow = crate::workflow::load(&origin, registry).map_err(|p| report_invalid(&p))?;
    Ok((origin, workflow))
}

/// A checked workflow with its inputs, and the files its steps name read; exit 2 on problems.
pub(crate) fn with_files(
    origin: crate::workflow::Origin,
    workflow: crate::workflow::Workflow,
    inputs: serde_json::Map<String, serde_json::Value>,
    registry: &crate::actions::Registry,
) -> Result<Loaded, ExitCode> {
    let files = crate::workflow::referenced_files(&workflow, &origin, &inputs, registry)
        .map_err(|p| report_invalid(&p))?;
    Ok(Loaded {
        origin,
        workflow,
        inputs,
        files,
    })
}

/// The run `given` names (`last`: the most recent), with its directory; exit 2 if none.
pub(crate) fn find_run(
    settings: &Settings,
    given: &str,
) -> Result<(String, std::path::PathBuf), ExitCode> {
    let store = crate::engine::store::Store::new(run_store(settings)?);
    store
        .resolve(given)
        .and_then(|id| store.existing_run(&id).map(|dir| (id, dir)))
        .map_err(|e| Failure::new(exit::INVALID, "no_such_run", format!("{e:#}")).report())
}

/// Where this process keeps runs (`--state-dir`, and `--state` when shared), opened once.
pub(crate) fn state_store(
    settings: &Settings,
) -> anyhow::Result<std::sync::Arc<dyn crate::engine::store::RunStore>> {
    static OPENED: std::sync::OnceLock<std::sync::Arc<dyn crate::engine::store::RunStore>> =
        std::sync::OnceLock::new();
    if let Some(store) = OPENED.get() {
        return Ok(store.clone());
    }
    let store = crate::shared_state::open(
        &settings.state_dir,
        settings.shared_state.as_ref(),
        settings.auth,
    )?;
    Ok(OPENED.get_or_init(|| store).clone())
}

/// [`state_store`], its failure reported (exit 1).
pub(crate) fn run_store(
    settings: &Settings,
) -> Result<std::sync::Arc<dyn crate::engine::store::RunStore>, ExitCode> {
    state_store(settings)
        .map_err(|e| Failure::new(exit::STEP_FAILED, "state", format!("{e:#}")).report())
}

/// A recorded run opened for changing: its id, directory, lock (held until dropped) and
/// journal, read under the lock. On problems, prints them and gives the exit code.
pub(crate) fn open_run(
    settings: &Settings,
    given: &str,
) -> Result<
    (
        String,
        std::path::PathBuf,
        Box<dyn crate::engine::store::HeldRun>,
        crate::engine::journal::Journal,
    ),
    ExitCode,
> {
    let (run_id, run_dir) = find_run(settings, given)?;
    let store = run_store(settings)?;
    let lock = store
        .lock(&run_id, false)
        .map_err(|e| run::fatal(&anyhow::Error::new(e)))?;
    // Read under the lock: what its previous holder saved last.
    store.fetch(&run_id).map_err(|e| run::fatal(&e))?;
    let journal = crate::engine::journal::Journal::load(&run_dir).map_err(|e| run::fatal(&e))?;
    Ok((run_id, run_dir, lock, journal))
}

/// Connects to where a recorded run acted (the journal's target, with what the flags may
/// change), and records in the journal what the connection changed (the emulator's port).
/// Exit 2 when the flags ask for another target, 1 when connecting fails.
pub(crate) async fn connect_recorded(
    journal: &mut crate::engine::journal::Journal,
    run_dir: &std::path::Path,
    settings: &Settings,
) -> Result<target::Connected, ExitCode> {
    let record = retarget::recorded_target(journal, run_dir, settings)
        .map_err(|e| Failure::new(exit::INVALID, "target", e).report())?;
    let needs_azure = journal.steps.iter().any(|s| s.uses.starts_with("azure."));
    // Undo and cleanup read no workflow files.
    let connected = target::connect(&record, needs_azure, None, settings)
        .await
        .map_err(|e| Failure::new(exit::STEP_FAILED, "connect", e.to_string()).report())?;
    journal.target = record.connected(&connected).to_value();
    Ok(connected)
}

/// Prints workflow/input problems to stderr (colored on a terminal; one JSON object under
/// `-o json`, each problem with its place) and returns exit 2.
pub fn report_invalid(problems: &crate::workflow::Diagnostics) -> ExitCode {
    if output::get().structured() {
        let text = problems.render(false);
        let first = problems
            .0
            .first()
            .map(|p| match &p.location {
                Some(at) => format!("{at}: {}", p.message),
                None => p.message.clone(),
            })
            .unwrap_or_else(|| text.clone());
        let mut failure = Failure::new(exit::INVALID, "invalid", first).to_json();
        let each: Vec<serde_json::Value> = problems
            .0
            .iter()
            .map(|p| serde_json::json!({"message": p.message, "location": p.location, "help": p.help}))
            .collect();
        failure["problems"] = serde_json::json!(each);
        failure["rendered"] = serde_json::json!(text);
        eprintln!("{failure}");
        return ExitCode::from(exit::INVALID);
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", problems.render(color));
    ExitCode::from(exit::INVALID)
}
