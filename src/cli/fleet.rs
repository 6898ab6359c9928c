//! `rescue fleet run|status|resume`: one run per target of a targets file, in one process, at
//! most `--concurrency` at once. Every run is an ordinary one (`rescue run`'s own code path,
//! its own id and journal), so `rescue resume RUN_ID` and `rescue status RUN_ID` work on each;
//! the fleet shares what one process can: one Azure connection (one token cache, one connection
//! pool, one throttling gate), Ctrl-C, the reporter, and a pool of rescue VMs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::run::{self, End, Ended, Execution, Shared};
use super::settings::{StateArgs, TargetArgs, YesArgs};
use super::target::{self, TargetRecord};
use super::{Failure, Flags, Settings};
use crate::actions::Registry;
use crate::engine::fleet::{FleetLog, FleetRecord, Place, Pool, TargetStatus};
use crate::engine::interrupt::Interrupt;
use crate::engine::journal::{Journal, StepStatus};
use crate::exit;
use crate::report::fleet::FleetReporter;
use crate::report::Style;
use crate::workflow::{Origin, Workflow};

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Run a workflow once per target of a targets file, a few at a time; a target that fails
    /// never stops the others.
    #[command(
        after_help = "Targets file (each target a mapping of the workflow's inputs, `id` optional):\n  defaults: { resource_group: MC_prod-rg_prod-aks_westeurope, allow_aks_node: true }\n  targets:\n    - vm: aks-nodepool1-31415926-vm2\n    - { id: vm3, vm: aks-nodepool1-31415926-vm3 }\n\nExample:\n  rescue fleet run os-disk-swap --targets targets.yaml --rescue-vm rescue-vm --concurrency 8 --yes"
    )]
    Run(FleetRunArgs),
    /// Show a fleet: each target's run, state, current step and elapsed time.
    #[command(
        after_help = "Examples:\n  rescue fleet status last\n  rescue fleet status last -o json"
    )]
    Status(FleetStatusArgs),
    /// Continue a fleet: resume each run not finished (and start those that never started).
    #[command(after_help = "Example:\n  rescue fleet resume last --yes")]
    Resume(FleetResumeArgs),
}

#[derive(Args, Debug)]
pub struct FleetRunArgs {
    /// The workflow: a file, or the name of a built-in (`rescue workflows` lists them).
    pub file: PathBuf,
    /// The targets: a YAML list of input mappings, or `{defaults: {...}, targets: [...]}`.
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// How many runs at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Rescue VMs to share out to targets that name none (repeatable or comma-separated;
    /// `NAME` or `RESOURCE_GROUP/NAME`). Each takes as many copies at once as it has free
    /// data-disk slots.
    #[arg(long = "rescue-vm", value_name = "VM", value_delimiter = ',')]
    pub rescue_vm: Vec<String>,
    #[command(flatten)]
    pub take_over: TakeOverArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// A fleet claims its rescue VMs in Azure (a `rescue-pool` tag) before any run starts, and
/// lets go at its end; an interrupted one keeps them for its resume.
#[derive(Args, Debug)]
pub struct TakeOverArgs {
    /// Take the rescue VMs over from fleet FLEET_ID, which claimed them and died (check with
    /// `rescue fleet status FLEET_ID` on its host first).
    #[arg(long = "force-unlock", value_name = "FLEET_ID")]
    pub force_unlock: Option<String>,
}

#[derive(Args, Debug)]
pub struct FleetStatusArgs {
    /// The fleet (`last`: the most recent).
    #[arg(default_value = "last")]
    pub fleet_id: String,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct FleetResumeArgs {
    /// The fleet (`last`: the most recent).
    pub fleet_id: String,
    /// How many runs at once [default: the fleet's]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    #[command(flatten)]
    pub take_over: TakeOverArgs,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl FleetCommand {
    pub fn flags(&self) -> Flags<'_> {
        match self {
            FleetCommand::Run(a) => Flags {
                state: Some(&a.state),
                target: Some(&a.target),
                yes: Some(&a.yes),
                ..Flags::default()
            },
            FleetCommand::Status(a) => Flags {
                state: Some(&a.state),
                ..Flags::default()
            },
            FleetCommand::Resume(a) => Flags {
                state: Some(&a.state),
                target: Some(&a.target),
                retarget: true,
                yes: Some(&a.yes),
                ..Flags::default()
            },
        }
    }
}

pub fn run(command: &FleetCommand, settings: &Settings) -> ExitCode {
    match command {
        FleetCommand::Run(args) => run::block_on(start(args, settings)),
        FleetCommand::Status(args) => status(&args.fleet_id, settings),
        FleetCommand::Resume(args) => run::block_on(resume(args, settings)),
    }
}

/// A fleet never asks per run: one terminal cannot answer many runs at once, so `--yes` is its
/// go-ahead for every question its runs would ask.
fn refuse_questions(
    settings: &Settings,
    workflow: &Workflow,
    command: &str,
) -> Result<(), ExitCode> {
    let asks = run::questions(workflow);
    if settings.yes || asks.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        exit::INVALID,
        "needs_yes",
        format!(
            "each run of this fleet would ask before {}; a fleet asks nothing of its runs, so it needs --yes; nothing was started or changed",
            asks.join(" and ")
        ),
    )
    .with_hint(format!("preview one target with `rescue plan`, then: {command} --yes"))
    .report())
}

async fn start(args: &FleetRunArgs, settings: &Settings) -> ExitCode {
    let registry = Registry::builtin();
    let (origin, workflow) = match super::load_workflow(&args.file, &registry) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let targets = match crate::workflow::resolve_targets(&workflow, &args.targets, &Map::new()) {
        Ok(t) => t,
        Err(problems) => return super::report_invalid(&problems),
    };
    // Every target's files are read before any run starts: a bad one refuses the fleet.
    for t in &targets {
        if let Err(code) = super::with_files(
            origin.clone(),
            workflow.clone(),
            t.inputs.clone(),
            &registry,
        ) {
            return code;
        }
    }
    if !args.rescue_vm.is_empty() && !workflow.inputs.contains_key("rescue_vm") {
        return Failure::usage(format!(
            "--rescue-vm: workflow `{}` has no input `rescue_vm`",
            workflow.name
        ))
        .report();
    }
    let command = format!(
        "rescue fleet run {} --targets {}",
        args.file.display(),
        args.targets.display()
    );
    if let Err(code) = refuse_questions(settings, &workflow, &command) {
        return code;
    }
    let mut record = FleetRecord::new(
        args.file.display().to_string(),
        usize::from(args.concurrency),
        args.rescue_vm.clone(),
        Value::Null,
        targets.into_iter().map(|t| (t.id, t.inputs)).collect(),
    );
    // An in-process emulator is the fleet's, in its own directory: all its runs act on it.
    let fleet_dir = FleetRecord::dir(&settings.state_dir).join(&record.fleet_id);
    let target = TargetRecord::for_new_run(&settings.target, &fleet_dir);
    record.target = target.to_value();
    if let Err(e) = record.save(&settings.state_dir) {
        return run::fatal(&e.context("cannot record the fleet; nothing was started"));
    }
    let plan = Plan {
        workflow: Arc::new((origin, workflow)),
        resumed: Vec::new(),
        take_over: args.take_over.force_unlock.clone(),
    };
    go(settings, record, target, plan).await
}

async fn resume(args: &FleetResumeArgs, settings: &Settings) -> ExitCode {
    let mut record = match FleetRecord::load(&settings.state_dir, &args.fleet_id) {
        Ok(r) => r,
        Err(e) => return Failure::new(exit::INVALID, "no_such_fleet", format!("{e:#}")).report(),
    };
    let target = match TargetRecord::from_value(&record.target) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Failure::new(exit::INVALID, "target", "the fleet records no target").report()
        }
        Err(e) => return Failure::new(exit::INVALID, "target", e).report(),
    };
    if let Some(n) = args.concurrency {
        record.concurrency = usize::from(n);
    }
    let registry = Registry::builtin();
    let (origin, workflow) = match super::load_workflow(Path::new(&record.workflow), &registry) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Err(code) = refuse_questions(
        settings,
        &workflow,
        &format!("rescue fleet resume {}", record.fleet_id),
    ) {
        return code;
    }
    // Each started run is checked and locked as `rescue resume` does, before any goes on.
    let mut resumed = Vec::new();
    for t in record.targets.iter_mut() {
        let Some(run_id) = t.run_id.clone() else {
            continue;
        };
        if t.status == TargetStatus::Succeeded {
            continue;
        }
        match super::resume::prepare(settings, &run_id, false, None, None) {
            Ok(Some(ex)) => resumed.push((t.id.clone(), ex)),
            Ok(None) => {
                t.status = TargetStatus::Succeeded;
                t.exit = Some(exit::SUCCESS);
                t.error = None;
            }
            Err(_) => {
                t.status = TargetStatus::Failed;
                t.error = Some(format!("cannot resume run {run_id} (see above)"));
            }
        }
    }
    let plan = Plan {
        workflow: Arc::new((origin, workflow)),
        resumed,
        take_over: args.take_over.force_unlock.clone(),
    };
    go(settings, record, target, plan).await
}

/// What a fleet executes: its workflow (for targets without a run yet) and the runs made ready
/// to resume, by target.
struct Plan {
    workflow: Arc<(Origin, Workflow)>,
    resumed: Vec<(String, Execution)>,
    /// `--force-unlock FLEET_ID`: the dead fleet whose rescue VMs this one takes over.
    take_over: Option<String>,
}

/// One target's turn.
enum Work {
    New {
        id: String,
        inputs: Map<String, Value>,
    },
    Resume {
        id: String,
        ex: Box<Execution>,
    },
}

/// Connects once, builds the rescue-VM pool, runs every target not done and says how the
/// fleet ended.
async fn go(
    settings: &Settings,
    record: FleetRecord,
    target: TargetRecord,
    plan: Plan,
) -> ExitCode {
    // The fleet's own requests (its claim on the rescue VMs) are no run's: a run taken over by
    // someone else stops its own requests only, and the fleet still lets go of its pool.
    let key = format!("fleet {}", record.fleet_id);
    crate::azure::halt::scope(key, drive(settings, record, target, plan)).await
}

async fn drive(
    settings: &Settings,
    record: FleetRecord,
    target: TargetRecord,
    mut plan: Plan,
) -> ExitCode {
    let began = Instant::now();
    let fleet_id = record.fleet_id.clone();
    let interrupt = match Interrupt::install() {
        Ok(i) => i,
        Err(e) => return run::fatal(&anyhow::anyhow!("cannot handle Ctrl-C: {e}")),
    };
    let needs_azure = plan
        .workflow
        .1
        .steps
        .iter()
        .any(|s| s.uses.value.starts_with("azure."));
    let connected =
        match target::connect(&target, needs_azure, None, settings).await {
            Ok(c) => c,
            Err(e) => {
                return Failure::new(exit::STEP_FAILED, "connect", e.to_string())
                    .with_hint(format!(
                    "{}nothing was started; after fixing the cause: rescue fleet resume {fleet_id}",
                    e.hint.as_deref().map(|h| format!("{h}; ")).unwrap_or_default()
                ))
                    .report()
            }
        };
    let target = target.connected(&connected);
    let log = FleetLog::new(settings.state_dir.clone(), record);
    if let Err(e) = log.update(|r| r.target = target.to_value()) {
        connected.close().await;
        return run::fatal(&e);
    }
    let record = log.read();
    let pool = match pool(&connected, &record, &plan).await {
        Ok(pool) => pool,
        Err(failure) => {
            connected.close().await;
            return failure.report();
        }
    };

    let ids: Vec<String> = record.targets.iter().map(|t| t.id.clone()).collect();
    let style = if settings.quiet() && !settings.json() {
        Style::Quiet
    } else {
        Style::detect(settings.json())
    };
    let reporter = FleetReporter::new(style, &ids);
    let mut work = Vec::new();
    for t in &record.targets {
        if t.status == TargetStatus::Succeeded {
            continue;
        }
        if let Some(i) = plan.resumed.iter().position(|(id, _)| *id == t.id) {
            let (id, ex) = plan.resumed.swap_remove(i);
            work.push(Work::Resume {
                id,
                ex: Box::new(ex),
            });
        } else if t.run_id.is_none() {
            work.push(Work::New {
                id: t.id.clone(),
                inputs: t.inputs.clone(),
            });
        }
    }
    if settings.json() {
        super::output::line(&json!({
            "event": "fleet_started", "fleet_id": fleet_id, "workflow": record.workflow,
            "targets": ids, "concurrency": record.concurrency,
        }));
    }
    let shared = Shared {
        azure: connected.env.azure.clone(),
        sink: None,
        interrupt: Some(interrupt.clone()),
        places: None,
        fleet: Some(fleet_id.clone()),
    };
    let each = Arc::new(Each {
        settings: settings.clone(),
        log: log.clone(),
        pool: pool.clone(),
        shared,
        reporter: reporter.clone(),
        workflow: plan.workflow.clone(),
        target: target.clone(),
        interrupt: interrupt.clone(),
        share_out: !record.rescue_vms.is_empty(),
    });
    // A task per run, not one task polling them all: a run that blocks its thread (a journal
    // saved to disk or to Blob Storage) would otherwise hold up every other run meanwhile.
    // The semaphore is fair, so runs start in the targets' order.
    let gate = Arc::new(tokio::sync::Semaphore::new(record.concurrency.max(1)));
    let mut runs = tokio::task::JoinSet::new();
    for w in work {
        let (each, gate) = (each.clone(), gate.clone());
        runs.spawn(async move {
            let _turn = gate.acquire_owned().await;
            each.run(w).await
        });
    }
    while let Some(ended) = runs.join_next().await {
        if let Err(e) = ended {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    // An interrupted fleet keeps its rescue VMs: its copies may still be attached, and its
    // resume counts their slots as its own again.
    if !interrupt.is_set() {
        release_pool(&connected, &pool, &fleet_id, &reporter).await;
    }
    connected.close().await;
    summary(settings, &log.read(), &reporter, began)
}

/// What every target's turn shares.
struct Each {
    settings: Settings,
    log: FleetLog,
    pool: Pool,
    shared: Shared,
    reporter: Arc<FleetReporter>,
    workflow: Arc<(Origin, Workflow)>,
    target: TargetRecord,
    interrupt: Interrupt,
    /// `--rescue-vm` was given: targets that name no rescue VM get one of the pool's.
    share_out: bool,
}

impl Each {
    async fn run(&self, work: Work) {
        let (id, mut inputs) = match &work {
            Work::New { id, inputs } => (id.clone(), Some(inputs.clone())),
            Work::Resume { id, .. } => (id.clone(), None),
        };
        if self.interrupt.is_set() {
            // Not started: `rescue fleet resume` starts it.
            return;
        }
        // A new run without a rescue VM of its own goes to the pool's least loaded one.
        let assigned = match inputs.as_mut() {
            Some(inputs) if self.share_out && pool_key(inputs).is_none() => {
                self.pool.assign().inspect(|key| {
                    let (rg, vm) = key.split_once('/').expect("pool keys are RG/NAME");
                    inputs.insert("rescue_vm".into(), json!(vm));
                    inputs.insert("rescue_resource_group".into(), json!(rg));
                })
            }
            _ => None,
        };
        let sink = self.reporter.target(&id);
        let ex = match work {
            Work::Resume { ex, .. } => *ex,
            Work::New { .. } => {
                let (origin, workflow) = (*self.workflow).clone();
                let inputs = inputs.unwrap_or_default();
                let loaded = super::with_files(origin, workflow, inputs, &Registry::builtin())
                    .map_err(|_| anyhow::anyhow!("cannot read the workflow's files (see above)"))
                    .and_then(|loaded| {
                        run::record_new(&self.settings, loaded, |_| self.target.clone())
                    });
                match loaded {
                    Ok(ex) => ex,
                    Err(e) => {
                        self.ended(&id, None, Err((exit::STEP_FAILED, format!("{e:#}"), None)));
                        return;
                    }
                }
            }
        };
        let run_id = ex.journal.run_id.clone();
        let _ = self.log.update(|r| {
            if let Some(t) = r.targets.iter_mut().find(|t| t.id == id) {
                t.run_id = Some(run_id.clone());
                t.status = TargetStatus::Running;
            }
        });
        if self.settings.json() {
            super::output::line(
                &json!({"event": "target_started", "target": id, "run_id": run_id}),
            );
        }
        let shared = Shared {
            sink: Some(sink),
            places: Some(Arc::new(RunPlaces {
                pool: self.pool.clone(),
                held: Default::default(),
            })),
            ..self.shared.clone()
        };
        let ended = run::execute_shared(&self.settings, ex, shared).await;
        if let Some(vm) = assigned {
            self.pool.unassign(&vm);
        }
        if let (true, Ended::Finished { evidence, .. }) = (self.settings.json(), &ended) {
            super::output::line(
                &json!({"event": "run_summary", "target": id, "summary": evidence.to_json()}),
            );
        }
        let verdict = run::verdict(&run_id, &ended).map_err(|end| match end {
            End::Interrupted => (exit::INTERRUPTED, "interrupted".to_string(), None),
            End::Failed(f) => (f.exit, f.message.clone(), f.hint.clone()),
        });
        self.ended(&id, Some(&run_id), verdict);
    }

    /// Records how the target's run ended (Err: its exit code, message and hint).
    fn ended(
        &self,
        id: &str,
        run_id: Option<&str>,
        result: Result<(), (u8, String, Option<String>)>,
    ) {
        let (status, code, error) = match &result {
            Ok(()) => (TargetStatus::Succeeded, exit::SUCCESS, None),
            Err((code, message, _)) => (
                TargetStatus::Failed,
                *code,
                Some(message.lines().next().unwrap_or_default().to_string()),
            ),
        };
        if let Err(e) = self.log.update(|r| {
            if let Some(t) = r.targets.iter_mut().find(|t| t.id == id) {
                t.status = status;
                t.exit = Some(code);
                t.error = error.clone();
            }
        }) {
            self.reporter.say(&format!(
                "warning: cannot record target {id} in the fleet's record: {e:#}"
            ));
        }
        if self.settings.json() {
            super::output::line(&json!({
                "event": "target_finished", "target": id, "run_id": run_id,
                "status": status.as_str(), "exit_code": code, "error": error,
                "resume_command": run_id.filter(|_| code != exit::SUCCESS).map(|r| format!("rescue resume {r}")),
            }));
        } else if let Err((_, message, hint)) = &result {
            // The whole story of a failed run, in one piece, as `rescue run` would tell it.
            let mut text = format!("{id}: {message}");
            if let Some(hint) = hint {
                text.push_str(&format!("\n  hint: {hint}"));
            }
            self.reporter.say(&text);
        }
    }
}

/// The pool key of the rescue VM a target's inputs name; None when they name none.
fn pool_key(inputs: &Map<String, Value>) -> Option<String> {
    let text = |k: &str| {
        inputs
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let vm = text("rescue_vm")?;
    let rg = text("rescue_resource_group").or_else(|| text("resource_group"))?;
    Some(crate::actions::place_key(rg, vm))
}

/// One run's places on the fleet's rescue VMs.
struct RunPlaces {
    pool: Pool,
    held: std::sync::Mutex<std::collections::HashMap<String, Place>>,
}

#[async_trait::async_trait]
impl crate::actions::Places for RunPlaces {
    async fn enter(&self, vm: &str) {
        if !self.pool.contains(vm) || self.held().contains_key(vm) {
            return;
        }
        if let Some(place) = self.pool.take(vm).await {
            self.held().insert(vm.to_string(), place);
        }
    }

    fn leave(&self, vm: &str) {
        // A copy attached before this process (a resumed run's) held no place: its slot, counted
        // as taken when the pool was read, is free now.
        if self.held().remove(vm).is_none() && self.pool.contains(vm) {
            self.pool.give_back(vm);
        }
    }
}

impl RunPlaces {
    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Place>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The rescue VMs the fleet shares: `--rescue-vm` and those targets name, each with as many
/// places as it has free data-disk slots (its size's maximum, less the disks attached now).
/// Read once, before any run starts.
async fn pool(
    connected: &target::Connected,
    record: &FleetRecord,
    plan: &Plan,
) -> Result<Pool, Failure> {
    let default_rg = record.targets.iter().find_map(|t| {
        let text = |k: &str| {
            t.inputs
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        text("rescue_resource_group")
            .or_else(|| text("resource_group"))
            .map(str::to_string)
    });
    let mut keys: Vec<String> = Vec::new();
    for given in &record.rescue_vms {
        let key = match (given.split_once('/'), &default_rg) {
            (Some(_), _) => given.to_ascii_lowercase(),
            (None, Some(rg)) => format!("{rg}/{given}").to_ascii_lowercase(),
            (None, None) => {
                return Err(Failure::usage(format!(
                    "--rescue-vm {given}: no resource group for it; write RESOURCE_GROUP/{given}"
                )))
            }
        };
        keys.push(key);
    }
    keys.extend(record.targets.iter().filter_map(|t| pool_key(&t.inputs)));
    keys.extend(
        plan.resumed
            .iter()
            .filter_map(|(_, ex)| pool_key(&ex.journal.inputs)),
    );
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Pool::default());
    }
    let azure = connected
        .env
        .azure()
        .map_err(|e| Failure::new(exit::INVALID, "rescue_vm", e.to_string()))?;
    // The fleet's runs name their copies after themselves (`...-fixed-RUN_ID`).
    let ours: Vec<String> = record
        .targets
        .iter()
        .filter_map(|t| t.run_id.clone())
        .collect();
    let ids: Vec<_> = keys.iter().map(|k| vm_id(azure, k)).collect();
    // The claims' own reads count the slots: the VMs are this fleet's from then on.
    let claimed = claim_pool(azure, &ids, &record.fleet_id, plan.take_over.as_deref()).await?;
    let mut room = Vec::new();
    for (key, vm) in keys.into_iter().zip(claimed) {
        let vm = crate::azure::model::Vm::parse(vm);
        let size = vm
            .resource
            .raw
            .pointer("/properties/hardwareProfile/vmSize")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let max = crate::azure::model::max_data_disks(&size).unwrap_or(1) as usize;
        // Copies of this fleet's earlier runs, still attached, give their slot back when their
        // resumed runs detach them.
        let ours = vm
            .data_disks
            .iter()
            .filter(|d| ours.iter().any(|run| d.disk_id.contains(run.as_str())))
            .count();
        let (free, size) = (
            max.saturating_sub(vm.data_disks.len()),
            max.saturating_sub(vm.data_disks.len() - ours),
        );
        room.push((key, free, size));
    }
    Ok(Pool::new(room))
}

fn vm_id(azure: &crate::azure::Azure, key: &str) -> crate::azure::ids::ResourceId {
    let (rg, name) = key.split_once('/').expect("pool keys are RG/NAME");
    crate::azure::ids::ResourceId::new(
        azure.subscription(),
        rg,
        crate::azure::ids::Kind::VirtualMachine,
        name,
    )
}

/// Claims every rescue VM of the pool for this fleet, all at once, before any run starts. One
/// that another fleet holds refuses the fleet (exit 3); the claims made meanwhile are let go.
async fn claim_pool(
    azure: &crate::azure::Azure,
    ids: &[crate::azure::ids::ResourceId],
    fleet_id: &str,
    take_over: Option<&str>,
) -> Result<Vec<crate::azure::model::Resource>, Failure> {
    use crate::actions::azure::pool;
    let claims = futures::future::join_all(
        ids.iter()
            .map(|id| pool::claim(azure, id, fleet_id, take_over)),
    )
    .await;
    let Some(e) = claims.iter().find_map(|c| c.as_ref().err()).cloned() else {
        return Ok(claims.into_iter().flatten().collect());
    };
    // A VM another fleet holds stays its; ours were taken only now and go back.
    futures::future::join_all(
        ids.iter()
            .zip(&claims)
            .filter(|(_, c)| c.is_ok())
            .map(|(id, _)| pool::release(azure, id, fleet_id)),
    )
    .await;
    let code = if e.locked {
        exit::LOCKED
    } else {
        exit::STEP_FAILED
    };
    let hint = e.hint.clone().unwrap_or_default();
    Err(Failure::new(code, "rescue_vm", e.message.clone()).with_hint(format!(
        "no run was started and nothing was changed; {hint} (this fleet, {fleet_id}, goes on with `rescue fleet resume {fleet_id}`)"
    )))
}

/// Lets go of the fleet's rescue VMs at its end. A claim that cannot be released is said, with
/// the one command that removes it.
async fn release_pool(
    connected: &target::Connected,
    pool: &Pool,
    fleet_id: &str,
    reporter: &FleetReporter,
) {
    let Ok(azure) = connected.env.azure() else {
        return;
    };
    let names = pool.names();
    let released = futures::future::join_all(names.iter().map(|key| async move {
        let id = vm_id(azure, key);
        (
            crate::actions::azure::pool::release(azure, &id, fleet_id).await,
            id,
        )
    }))
    .await;
    for (result, id) in released {
        if let Err(e) = result {
            reporter.say(&format!(
                "warning: cannot let go of rescue VM {} ({}): {}\n  hint: az vm update -g {} -n {} --remove tags.{}",
                id.name,
                fleet_id,
                e.message,
                id.resource_group,
                id.name,
                crate::actions::azure::pool::POOL_TAG
            ));
        }
    }
}

/// The fleet's exit code from its targets' (as `rescue run` would have exited for each): an
/// interruption first, then a target that failed (1). A target refused or declined also failed
/// the fleet, which went on changing Azure for the others: its "nothing was changed" (2, 4)
/// would not be true of the fleet. Then a target whose VM another run holds (3).
fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    let fleet = |c: u8| match c {
        exit::INVALID | exit::DECLINED => exit::STEP_FAILED,
        other => other,
    };
    let rank = |c: u8| match c {
        exit::SUCCESS => 0,
        exit::LOCKED => 1,
        exit::INTERRUPTED => 3,
        _ => 2,
    };
    codes
        .into_iter()
        .map(fleet)
        .max_by_key(|c| rank(*c))
        .unwrap_or(exit::SUCCESS)
}

/// The fleet's end: one line per target that did not succeed, with the command that continues
/// it, then the fleet's own.
fn summary(
    settings: &Settings,
    record: &FleetRecord,
    reporter: &FleetReporter,
    began: Instant,
) -> ExitCode {
    let code = worst(record.targets.iter().map(|t| match t.status {
        TargetStatus::Succeeded => exit::SUCCESS,
        TargetStatus::Pending | TargetStatus::Running => exit::INTERRUPTED,
        TargetStatus::Failed => t.exit.unwrap_or(exit::STEP_FAILED),
    }));
    let succeeded = record
        .targets
        .iter()
        .filter(|t| t.status == TargetStatus::Succeeded)
        .count();
    let resume = format!("rescue fleet resume {}", record.fleet_id);
    if settings.json() {
        super::output::line(&json!({
            "event": "fleet_summary",
            "fleet_id": record.fleet_id,
            "succeeded": succeeded,
            "targets": record.targets.iter().map(|t| json!({
                "target": t.id, "run_id": t.run_id, "status": t.status.as_str(), "exit_code": t.exit,
                "error": t.error,
                "resume_command": t.run_id.as_ref().filter(|_| t.status != TargetStatus::Succeeded).map(|r| format!("rescue resume {r}")),
            })).collect::<Vec<_>>(),
            "exit_code": code,
            "resume_command": (code != exit::SUCCESS).then_some(&resume),
        }));
        return ExitCode::from(code);
    }
    let mut text = format!(
        "fleet {}: {succeeded} of {} targets succeeded in {}",
        record.fleet_id,
        record.targets.len(),
        crate::report::secs(began.elapsed().as_millis() as u64)
    );
    for t in record
        .targets
        .iter()
        .filter(|t| t.status != TargetStatus::Succeeded)
    {
        let why = t.error.as_deref().unwrap_or(match t.status {
            TargetStatus::Pending => "not started",
            _ => "stopped",
        });
        text.push_str(&format!("\n  {} {}: {why}", t.status.as_str(), t.id));
        match &t.run_id {
            Some(run_id) => text.push_str(&format!("\n    continue it: rescue resume {run_id}")),
            None => text.push_str("\n    (no run yet: the fleet's resume starts it)"),
        }
    }
    if code != exit::SUCCESS {
        text.push_str(&format!("\ncontinue the fleet: {resume}"));
    }
    reporter.say(&text);
    ExitCode::from(code)
}

/// One target as `fleet status` shows it: the record's entry and, from its run's journal, the
/// state, the steps running and how long it has taken.
fn target_view(settings: &Settings, t: &crate::engine::fleet::FleetTarget) -> Value {
    let mut view = serde_json::to_value(t).expect("a record serializes");
    view.as_object_mut().map(|o| o.remove("inputs"));
    let Some(run_id) = &t.run_id else {
        return view;
    };
    let Ok(store) = super::state_store(settings) else {
        return view;
    };
    let dir = store.run_dir(run_id);
    let Ok(journal) = Journal::load(&dir) else {
        return view;
    };
    let running = store.holder(run_id).is_some();
    let steps: Vec<&str> = journal
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .map(|s| s.id.as_str())
        .collect();
    let failed: Vec<&str> = journal
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| s.id.as_str())
        .collect();
    let end = if running {
        time::OffsetDateTime::now_utc()
    } else {
        journal.updated
    };
    view["run_status"] = json!(journal.status.as_str());
    view["running"] = json!(running);
    view["steps_running"] = json!(steps);
    view["steps_failed"] = json!(failed);
    view["elapsed_ms"] = json!((end - journal.created).whole_milliseconds().max(0) as u64);
    view
}

fn status(given: &str, settings: &Settings) -> ExitCode {
    let record = match FleetRecord::load(&settings.state_dir, given) {
        Ok(r) => r,
        Err(e) => return Failure::new(exit::INVALID, "no_such_fleet", format!("{e:#}")).report(),
    };
    let views: Vec<Value> = record
        .targets
        .iter()
        .map(|t| target_view(settings, t))
        .collect();
    let mut value = serde_json::to_value(&record).expect("a record serializes");
    value["targets"] = json!(views);
    let text = || {
        let w = record
            .targets
            .iter()
            .map(|t| t.id.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let mut out = format!(
            "fleet {}  {}  {} targets, at most {} at once\n",
            record.fleet_id,
            record.workflow,
            record.targets.len(),
            record.concurrency
        );
        out.push_str(&format!(
            "  {:<w$}  {:<20}  {:<12}  {:>9}  STEP\n",
            "TARGET", "RUN", "STATE", "ELAPSED"
        ));
        for v in &views {
            let state = v["run_status"]
                .as_str()
                .or_else(|| v["status"].as_str())
                .unwrap_or_default();
            let step = v["steps_running"]
                .as_array()
                .filter(|a| !a.is_empty())
                .or_else(|| v["steps_failed"].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<w$}  {:<20}  {:<12}  {:>9}  {}\n",
                v["id"].as_str().unwrap_or_default(),
                v["run_id"].as_str().unwrap_or("-"),
                state,
                v["elapsed_ms"]
                    .as_u64()
                    .map(crate::report::secs)
                    .unwrap_or_else(|| "-".into()),
                if step.is_empty() {
                    "-".to_string()
                } else {
                    step
                },
            ));
        }
        for t in record
            .targets
            .iter()
            .filter(|t| t.status == TargetStatus::Failed)
        {
            if let (Some(run_id), Some(error)) = (&t.run_id, &t.error) {
                out.push_str(&format!(
                    "{}: {error}\n  continue it: rescue resume {run_id}\n",
                    t.id
                ));
            }
        }
        out
    };
    match super::output::document(&value, text, None) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_end_is_an_interruption_then_a_failure_then_a_lock() {
        assert_eq!(worst([0, 0]), exit::SUCCESS);
        assert_eq!(worst([0, exit::INVALID]), exit::STEP_FAILED);
        assert_eq!(worst([exit::LOCKED, exit::INVALID]), exit::STEP_FAILED);
        assert_eq!(worst([exit::LOCKED, 0]), exit::LOCKED);
        assert_eq!(
            worst([exit::STEP_FAILED, exit::INTERRUPTED]),
            exit::INTERRUPTED
        );
    }
}
