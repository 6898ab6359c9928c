//! Command-line interface: flags parsed once into [`Settings`], then dispatched to one file
//! per subcommand.

mod cleanup;
mod plan;
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

pub use settings::{Flags, OutputFormat, Settings, Target};

use crate::exit;

#[derive(Parser, Debug)]
#[command(
    name = "rescue",
    version,
    about = "Repair broken Azure VMs by running resumable YAML workflows",
    long_about = "Repair broken Azure VMs by running resumable YAML workflows.\n\nPreview with `rescue plan`, run with `rescue run`; a run that was stopped or failed continues with `rescue resume RUN_ID`. Rehearse anything on the built-in emulator with `--emulator`.",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a workflow file without running anything.
    #[command(after_help = "Example:\n  rescue validate workflows/demo.yaml")]
    Validate(validate::ValidateArgs),
    /// Show what a workflow would do, step by step, without changing anything.
    #[command(
        after_help = "Examples:\n  rescue plan workflows/demo.yaml --input message=hello\n  rescue plan workflows/demo.yaml --inputs inputs.yaml --output json"
    )]
    Plan(plan::PlanArgs),
    /// Run a workflow, journaling every step so it can be resumed.
    #[command(
        after_help = "Examples:\n  rescue run workflows/demo.yaml --input message=hello\n  rescue run os-disk-swap --inputs examples/incident-inputs.yaml --emulator"
    )]
    Run(run::RunArgs),
    /// Continue a stopped or failed run from its first unfinished step.
    #[command(
        after_help = "Examples:\n  rescue resume 20261126-101500-ab12\n  rescue resume 20261126-101500-ab12 --from-step copy"
    )]
    Resume(resume::ResumeArgs),
    /// Undo a run in reverse (swap the original disk back, detach the copy, ...); preview first.
    #[command(
        after_help = "Examples:\n  rescue rollback 20261126-101500-ab12 --dry-run\n  rescue rollback 20261126-101500-ab12 --delete-created --yes"
    )]
    Rollback(rollback::RollbackArgs),
    /// After a successful repair: list what the run left (snapshot, old disk) and delete it.
    #[command(
        after_help = "Examples:\n  rescue cleanup 20261126-101500-ab12\n  rescue cleanup 20261126-101500-ab12 --yes --delete-old-disk aks-node-2_OsDisk_1_abc"
    )]
    Cleanup(cleanup::CleanupArgs),
    /// List runs (id, workflow, started, status).
    #[command(after_help = "Example:\n  rescue runs --output json")]
    Runs(runs::RunsArgs),
    /// Show a run's steps, durations, outputs and errors.
    #[command(after_help = "Example:\n  rescue status 20261126-101500-ab12")]
    Status(status::StatusArgs),
    /// List the built-in workflows with their inputs; `workflows show NAME` prints one.
    #[command(
        after_help = "Examples:\n  rescue workflows\n  rescue workflows --output json\n  rescue workflows show os-disk-swap > my-repair.yaml"
    )]
    Workflows(workflows::WorkflowsArgs),
    /// Print the JSON Schema of workflow files (for editors).
    #[command(after_help = "Example:\n  rescue schema > workflow.schema.json")]
    Schema(schema::SchemaArgs),
    /// The loopback Azure emulator (real disk images), for rehearsals and tests.
    #[command(subcommand)]
    Emulator(EmulatorCommand),
}

#[derive(Subcommand, Debug)]
pub enum EmulatorCommand {
    /// Serve the emulator until Ctrl-C; prints the `export` lines that point rescue at it.
    #[command(
        after_help = "Example (one terminal serves, another runs against it):\n  rescue emulator serve --port 8443 --time-scale 0.05\n  eval \"$(rescue emulator serve ... | tail -n +2)\"   # or paste its export lines\n  rescue run os-disk-swap --inputs examples/incident-inputs.yaml"
    )]
    Serve(crate::emulator::ServeArgs),
}

pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
            .map_err(|message| {
                eprintln!("error: {message}");
                ExitCode::from(exit::INVALID)
            })
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
        Command::Workflows(args) => settings(args.flags()).map(|s| workflows::run(args, &s)),
        Command::Schema(args) => Ok(schema::run(args)),
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
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(exit::STEP_FAILED)
        }
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
    let origin = crate::workflow::Origin::resolve(given).map_err(|p| report_invalid(&p))?;
    let workflow = crate::workflow::load(&origin, registry).map_err(|p| report_invalid(&p))?;
    let inputs = crate::workflow::resolve_inputs(
        &workflow,
        &settings.input_pairs,
        settings.inputs_file.as_deref(),
    )
    .map_err(|p| report_invalid(&p))?;
    let files = crate::workflow::referenced_files(&workflow, &origin, &inputs, registry)
        .map_err(|p| report_invalid(&p))?;
    Ok(Loaded {
        origin,
        workflow,
        inputs,
        files,
    })
}

/// A recorded run opened for changing: its directory, its lock (held until dropped) and its
/// journal, read under the lock. On problems, prints them and gives the exit code.
pub(crate) fn open_run(
    settings: &Settings,
    run_id: &str,
) -> Result<
    (
        std::path::PathBuf,
        crate::engine::lock::RunLock,
        crate::engine::journal::Journal,
    ),
    ExitCode,
> {
    let store = crate::engine::store::Store::new(settings.state_dir.clone());
    let run_dir = store.existing_run(run_id).map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(exit::INVALID)
    })?;
    let lock = crate::engine::lock::RunLock::acquire(&run_dir, run_id)
        .map_err(|e| run::fatal(&anyhow::Error::new(e)))?;
    let journal = crate::engine::journal::Journal::load(&run_dir).map_err(|e| run::fatal(&e))?;
    Ok((run_dir, lock, journal))
}

/// Connects to where a recorded run acted (the journal's target, with what the flags may
/// change), and records in the journal what the connection changed (the emulator's port).
/// Exit 2 when the flags ask for another target, 1 when connecting fails.
pub(crate) async fn connect_recorded(
    journal: &mut crate::engine::journal::Journal,
    run_dir: &std::path::Path,
    settings: &Settings,
) -> Result<target::Connected, ExitCode> {
    let record = retarget::recorded_target(journal, run_dir, settings).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::INVALID)
    })?;
    let needs_azure = journal.steps.iter().any(|s| s.uses.starts_with("azure."));
    // Undo and cleanup read no workflow files.
    let connected = target::connect(&record, needs_azure, None, settings)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(exit::STEP_FAILED)
        })?;
    journal.target = record.connected(&connected).to_value();
    Ok(connected)
}

/// Prints workflow/input problems to stderr (colored on a terminal) and returns exit 2.
pub fn report_invalid(problems: &crate::workflow::Diagnostics) -> ExitCode {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", problems.render(color));
    ExitCode::from(exit::INVALID)
}
