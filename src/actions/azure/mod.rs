//! Azure actions (`azure.*`): each states the desired state of one resource and lets
//! [`crate::azure::converge`] bring it about. What every action shares lives here:
//! - [`StepHooks`]: the journal checkpoint of the operation in flight, and the VM-lock fence
//!   checked before every write ([`fence`]);
//! - what a step creates has a deterministic name from the run id and a `rescue-run` tag, and
//!   only resources carrying this run's tag are ever adopted or deleted;
//! - errors of the Azure layer become step errors with hints ([`hints`]).

mod copy;
mod data_disks;
mod disk;
mod fence;
mod health;
mod hints;
mod inspect;
mod lock;
pub mod pool;
mod power;
mod rescue_vm;
mod run_command;
mod snapshot;
mod swap;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{
    Action, ActionError, ActionSpec, Args, Change, ChangeKind, Description, Env, Intent,
    OutputSpec, Outputs, Param, ParamType, PlanArgs, PlanContext, ResourceRef, StepContext,
};
use crate::azure::converge::{self, Desired, Hooks, Next};
use crate::azure::ids::{derived_name, Kind, ResourceId};
use crate::azure::model::{same_id, Provisioning, Resource};
use crate::azure::{progress, Azure, Operation, VmAction, Write};

pub use lock::HeldLocks;

pub fn all() -> Vec<Arc<dyn Action>> {
    fn step<T: AzureStep>(action: T) -> Arc<dyn Action> {
        Arc::new(Step(action))
    }
    vec![
        step(inspect::Inspect),
        step(inspect::CheckCompatible),
        step(lock::Lock),
        step(lock::Unlock),
        step(power::SetPower {
            to: VmAction::Deallocate,
        }),
        step(power::SetPower {
            to: VmAction::Start,
        }),
        step(power::PowerOff),
        step(snapshot::CreateSnapshot),
        step(disk::CreateFromSnapshot),
        step(data_disks::Attach),
        step(data_disks::Detach),
        step(run_command::RunCommand),
        step(swap::SwapOsDisk),
        step(health::WaitHealthy),
        step(rescue_vm::CreateRescue),
        step(rescue_vm::DeleteRescue),
    ]
}

/// What an Azure step is planned with.
#[derive(Clone, Copy)]
pub(crate) struct Plan<'a> {
    pub ctx: &'a PlanContext,
    pub args: &'a PlanArgs,
}

impl Plan<'_> {
    /// The VM of the step's `resource_group` and `vm` arguments, when they are known.
    pub fn vm(&self) -> Option<ResourceId> {
        plan_vm_id(self.ctx, self.args, "resource_group", "vm")
    }

    /// The plan of a step that makes one change to its VM: `what` on the change line,
    /// `summary` for the step, `calls` the ARM requests (`{vm}` stands for the VM's id).
    pub fn vm_change(
        &self,
        kind: ChangeKind,
        what: String,
        summary: String,
        calls: &[&str],
    ) -> Description {
        let change = change(
            kind,
            Kind::VirtualMachine,
            self.vm().as_ref(),
            &self.args.display("vm"),
            what,
        );
        Description {
            changes: vec![change],
            ..self.vm_calls(summary, calls)
        }
    }

    /// The plan of a step that only reads its VM.
    pub fn vm_calls(&self, summary: String, calls: &[&str]) -> Description {
        let vm = self
            .vm()
            .map(|id| id.to_string())
            .unwrap_or_else(|| ".../virtualMachines/VM".into());
        Description {
            summary,
            calls: calls.iter().map(|c| c.replace("{vm}", &vm)).collect(),
            ..Default::default()
        }
    }
}

/// What a step's outputs are read (or predicted) with at plan time.
#[derive(Clone, Copy)]
pub(crate) struct Known<'a> {
    pub ctx: &'a PlanContext,
    pub args: &'a Args,
}

/// What an Azure step runs with.
#[derive(Clone, Copy)]
pub(crate) struct Run<'a> {
    pub ctx: &'a StepContext,
    pub args: &'a Args,
    pub intent: &'a Intent,
}

/// What an Azure step's undo runs with.
#[derive(Clone, Copy)]
pub(crate) struct Undo<'a> {
    pub ctx: &'a StepContext,
    pub args: &'a Args,
    pub outputs: &'a Outputs,
}

/// An Azure step: [`Action`] in the shape every `azure.*` action shares. [`Step`] adapts it,
/// sending the Azure layer's progress (polls, throttling) to the step's status line.
#[async_trait]
pub(crate) trait AzureStep: Send + Sync + 'static {
    const SPEC: &'static ActionSpec;
    /// The arguments the intent records (journaled before the step acts).
    const INTENT: &'static [&'static str] = &[];
    fn spec(&self) -> &'static ActionSpec {
        Self::SPEC
    }
    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError>;
    async fn read_now(&self, _k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        None
    }
    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: detail_of(args, Self::INTENT),
            creates: Vec::new(),
            scaffolding: false,
        })
    }
    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError>;
    fn resumed(&self, _env: &Env, _args: &Args, _outputs: &Outputs) {}
    fn describe_undo(&self, _args: &Args, _outputs: &Outputs) -> Option<String> {
        None
    }
    async fn undo(&self, _u: &Undo<'_>) -> Result<(), ActionError> {
        Ok(())
    }
}

/// An [`AzureStep`] as the engine's [`Action`]. Reconcile is the default (run again): every
/// Azure step converges, so running it again after a crash adopts what is already done.
pub(crate) struct Step<T>(pub T);

#[async_trait]
impl<T: AzureStep> Action for Step<T> {
    fn spec(&self) -> &'static ActionSpec {
        self.0.spec()
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        self.0.plan(&Plan { ctx, args }).await
    }

    async fn read_for_plan(
        &self,
        ctx: &PlanContext,
        args: &Args,
    ) -> Option<Result<Outputs, ActionError>> {
        self.0.read_now(&Known { ctx, args }).await
    }

    fn intent(&self, run_id: &str, step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        self.0.intent(run_id, step_id, args)
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        with_progress(ctx, self.0.run(&Run { ctx, args, intent })).await
    }

    fn resumed(&self, env: &Env, args: &Args, outputs: &Outputs) {
        self.0.resumed(env, args, outputs)
    }

    fn describe_undo(&self, args: &Args, outputs: &Outputs) -> Option<String> {
        self.0.describe_undo(args, outputs)
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        outputs: &Outputs,
    ) -> Result<(), ActionError> {
        with_progress(ctx, self.0.undo(&Undo { ctx, args, outputs })).await
    }
}

/// The undo of a step that created a resource: delete it (only ever this run's own).
pub(crate) async fn undo_created(u: &Undo<'_>) -> Result<(), ActionError> {
    delete_created(u.ctx, &output_id(u.outputs, "id")?).await
}

/// The undo's line for `rescue rollback --dry-run`: "delete disk NAME".
pub(crate) fn deletes(noun: &str, outputs: &Outputs) -> Option<String> {
    Some(format!(
        "delete {noun} {} (this run's; never the original)",
        outputs.get("name").and_then(Value::as_str).unwrap_or("?")
    ))
}

/// The outputs every creating step has: the resource's `id` (as Azure returned it) and `name`.
pub(crate) fn created_outputs(created: Option<&Resource>, id: &ResourceId) -> Outputs {
    let mut out = Outputs::new();
    let returned = created
        .map(|r| r.id().to_string())
        .filter(|i| !i.is_empty());
    out.insert(
        "id".into(),
        json!(returned.unwrap_or_else(|| id.to_string())),
    );
    out.insert("name".into(), json!(id.name));
    out
}

/// The spec of a step on one VM (`resource_group`, `vm`, `subscription`) that changes it.
pub(crate) const fn vm_spec(
    name: &'static str,
    summary: &'static str,
    outputs: &'static [OutputSpec],
) -> ActionSpec {
    ActionSpec {
        name,
        summary,
        params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
        outputs,
        mutates: true,
    }
}

/// One output: `{name: value}`.
pub(crate) fn output(name: &str, value: Value) -> Outputs {
    let mut out = Outputs::new();
    out.insert(name.into(), value);
    out
}

/// The intent's detail: the named arguments as given.
pub(crate) fn detail_of(args: &Args, names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_string(),
                    args.get(*n).cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
    )
}

/// The VM named by a step's `resource_group` and `vm` arguments, outside a run (resume,
/// rollback): None without an Azure target.
pub(crate) fn env_vm(env: &Env, args: &Args) -> Option<ResourceId> {
    vm_id(env.azure.as_ref()?, args, "resource_group", "vm").ok()
}

/// The tag every created resource carries: its value is the run id.
pub const RUN_TAG: &str = "rescue-run";

// Parameters most actions share.
pub(crate) const P_SUBSCRIPTION: Param = Param {
    name: "subscription",
    ty: ParamType::String,
    required: false,
    description:
        "subscription id (default: --subscription / AZURE_SUBSCRIPTION_ID / the emulator's)",
};
pub(crate) const P_RESOURCE_GROUP: Param = Param {
    name: "resource_group",
    ty: ParamType::String,
    required: true,
    description: "resource group of the VM",
};
pub(crate) const P_VM: Param = Param {
    name: "vm",
    ty: ParamType::String,
    required: true,
    description: "VM name",
};

pub(crate) fn str_arg<'a>(args: &'a Args, name: &str) -> Result<&'a str, ActionError> {
    match args.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(other) => Err(ActionError::fatal(format!(
            "argument `{name}` must be a non-empty string, got {other}"
        ))),
        None => Err(ActionError::fatal(format!("argument `{name}` is required"))),
    }
}

pub(crate) fn opt_str<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(crate) fn azure(ctx: &StepContext) -> Result<&Arc<Azure>, ActionError> {
    ctx.env.azure()
}

pub(crate) fn subscription(azure: &Azure, args: &Args) -> String {
    opt_str(args, "subscription")
        .unwrap_or(azure.subscription())
        .to_string()
}

/// The VM named by `{prefix}resource_group` and `{prefix}vm`.
pub(crate) fn vm_id(
    azure: &Azure,
    args: &Args,
    rg_key: &str,
    vm_key: &str,
) -> Result<ResourceId, ActionError> {
    Ok(ResourceId::new(
        &subscription(azure, args),
        str_arg(args, rg_key)?,
        Kind::VirtualMachine,
        str_arg(args, vm_key)?,
    ))
}

/// A resource id argument of the expected kind.
pub(crate) fn id_arg(args: &Args, name: &str, kind: Kind) -> Result<ResourceId, ActionError> {
    let id = ResourceId::parse(str_arg(args, name)?)?;
    if id.kind != kind {
        return Err(ActionError::fatal(format!(
            "argument `{name}` must be a {} id, got a {} id",
            kind.noun(),
            id.kind.noun()
        )));
    }
    Ok(id)
}

/// A resource id found in an earlier step's outputs.
pub(crate) fn output_id(outputs: &Outputs, name: &str) -> Result<ResourceId, ActionError> {
    Ok(ResourceId::parse(
        outputs
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )?)
}

/// Run `fut` with the Azure layer's progress (polls, throttling) going to this step's status
/// line, and its mutating requests to the step's evidence.
pub(crate) async fn with_progress<F: Future>(ctx: &StepContext, fut: F) -> F::Output {
    let (host, step) = (ctx.host.clone(), ctx.step_id.clone());
    let (calls_host, calls_step) = (host.clone(), step.clone());
    let recorder: crate::azure::calls::Recorder = Arc::new(move |call| {
        let value = serde_json::to_value(call).expect("a call serializes");
        calls_host.call(&calls_step, value)
    });
    let fut = crate::azure::calls::scope(recorder, fut);
    progress::scope(Arc::new(move |m| host.status(&step, m)), fut).await
}

/// A step's side of the converge loop: the operation in flight is checkpointed under `key` in
/// the step's journal entry, and every write first checks the run still holds its VM locks.
pub(crate) struct StepHooks<'a> {
    ctx: &'a StepContext,
    key: String,
    writing: ResourceId,
    pending: Mutex<Option<Operation>>,
}

impl<'a> StepHooks<'a> {
    pub(crate) fn new(ctx: &'a StepContext, key: &str, writing: &ResourceId) -> Self {
        let pending = ctx
            .checkpoints
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        StepHooks {
            ctx,
            key: key.to_string(),
            writing: writing.clone(),
            pending: Mutex::new(pending),
        }
    }
}

#[async_trait]
impl Hooks<ActionError> for StepHooks<'_> {
    fn pending(&self) -> Option<Operation> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn checkpoint(&self, op: Option<&Operation>) -> Result<(), ActionError> {
        let value = op
            .map(|o| serde_json::to_value(o).expect("an operation serializes"))
            .unwrap_or(Value::Null);
        self.ctx.checkpoint(&self.key, value).await?;
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = op.cloned();
        Ok(())
    }

    async fn before_write(&self, now: Option<&Resource>) -> Result<(), ActionError> {
        fence::check(self.ctx, &self.writing, now).await
    }
}

/// Checkpoint key of a step's operation in flight.
pub(crate) const OPERATION: &str = "operation";

/// Bring `desired` about for this step (its operation checkpointed under `key`).
pub(crate) async fn ensure(
    ctx: &StepContext,
    desired: &dyn Desired<ActionError>,
    key: &str,
) -> Result<Option<Resource>, ActionError> {
    let azure = azure(ctx)?;
    let hooks = StepHooks::new(ctx, key, desired.id());
    converge::converge(azure, desired, &hooks).await
}

/// A desired state given by a function of the resource as it is now: most steps need no more
/// than that (which resource, how to say it, how long it may take, what comes next).
pub(crate) struct Want<'a, F> {
    id: &'a ResourceId,
    label: String,
    deadline: Duration,
    instance_view: bool,
    next: F,
}

impl<'a, F> Want<'a, F>
where
    F: Fn(Option<&Resource>) -> Result<Next, ActionError> + Send + Sync,
{
    pub(crate) fn new(id: &'a ResourceId, label: String, deadline: Duration, next: F) -> Self {
        Want {
            id,
            label,
            deadline,
            instance_view: false,
            next,
        }
    }

    /// Read VMs with their instance view (power state, agent).
    pub(crate) fn with_instance_view(mut self) -> Self {
        self.instance_view = true;
        self
    }
}

impl<F> Desired<ActionError> for Want<'_, F>
where
    F: Fn(Option<&Resource>) -> Result<Next, ActionError> + Send + Sync,
{
    fn id(&self) -> &ResourceId {
        self.id
    }

    fn label(&self) -> String {
        self.label.clone()
    }

    fn instance_view(&self) -> bool {
        self.instance_view
    }

    fn next(&self, now: Option<&Resource>) -> Result<Next, ActionError> {
        (self.next)(now)
    }

    fn deadline(&self) -> Duration {
        self.deadline
    }
}

/// The VM as read, or the error of a VM that is gone.
pub(crate) fn existing_vm(
    now: Option<&Resource>,
    id: &ResourceId,
) -> Result<crate::azure::model::Vm, ActionError> {
    now.cloned()
        .map(crate::azure::model::Vm::parse)
        .ok_or_else(|| ActionError::from(crate::azure::requests::not_found(id)))
}

/// Deadlines of the operation kinds, waits included (Azure's own operations take minutes; these
/// are for operations that are stuck, not slow).
pub(crate) const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(2 * 3600);
pub(crate) const DISK_DEADLINE: Duration = Duration::from_secs(2 * 3600);
pub(crate) const VM_UPDATE_DEADLINE: Duration = Duration::from_secs(30 * 60);
pub(crate) const POWER_DEADLINE: Duration = Duration::from_secs(30 * 60);
pub(crate) const DELETE_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// `{"rescue-run": run_id}` plus extra tags.
pub(crate) fn run_tags(run_id: &str, extra: &[(&str, &str)]) -> Value {
    let mut tags = Map::new();
    tags.insert(RUN_TAG.into(), json!(run_id));
    for (k, v) in extra {
        tags.insert((*k).into(), json!(v));
    }
    Value::Object(tags)
}

/// A resource found under our deterministic name must be ours (this run's tag), never adopted
/// blindly: a name collision with someone else's resource stops the step.
pub(crate) fn ensure_ours(
    resource: &Resource,
    id: &ResourceId,
    run_id: &str,
) -> Result<(), ActionError> {
    match resource.tag(RUN_TAG) {
        Some(tag) if tag == run_id => Ok(()),
        other => Err(ActionError::fatal(format!(
            "{} {} already exists and was not created by this run (its {RUN_TAG} tag is {})",
            id.kind.noun(),
            id.name,
            other
                .map(|t| format!("`{t}`"))
                .unwrap_or_else(|| "missing".into())
        ))
        .with_hint("delete or rename it, or give the step an explicit `name`")),
    }
}

/// "This run's resource `id` exists, with `body`": created if absent, adopted if ours and
/// settled, deleted and created again if its creation failed (Azure does not update a resource
/// whose creation failed).
pub(crate) async fn create(
    ctx: &StepContext,
    id: &ResourceId,
    body: Value,
    deadline: Duration,
) -> Result<Option<Resource>, ActionError> {
    create_keyed(ctx, id, body, deadline, OPERATION).await
}

/// [`create`] for a step that creates several resources: each checkpoints its operation under
/// its own `key`.
pub(crate) async fn create_keyed(
    ctx: &StepContext,
    id: &ResourceId,
    body: Value,
    deadline: Duration,
    key: &str,
) -> Result<Option<Resource>, ActionError> {
    let run_id = ctx.run_id.clone();
    let desired = Want::new(
        id,
        format!("{} {}", id.kind.noun(), id.name),
        deadline,
        move |now| {
            let Some(now) = now else {
                return Ok(Next::Write(Write::Put(body.clone())));
            };
            ensure_ours(now, id, &run_id)?;
            Ok(match now.provisioning {
                Provisioning::Failed | Provisioning::Canceled => Next::Write(Write::Delete),
                _ => Next::Done,
            })
        },
    );
    ensure(ctx, &desired, key).await
}

/// Delete a resource this run created (undo, cleanup); anything without this run's tag is
/// refused (so never the original disk).
pub(crate) async fn delete_created(ctx: &StepContext, id: &ResourceId) -> Result<(), ActionError> {
    delete_created_keyed(ctx, id, "undo_operation").await
}

/// [`delete_created`], its operation checkpointed under `key`.
pub(crate) async fn delete_created_keyed(
    ctx: &StepContext,
    id: &ResourceId,
    key: &str,
) -> Result<(), ActionError> {
    let run_id = ctx.run_id.clone();
    let desired = Want::new(
        id,
        format!("delete {} {}", id.kind.noun(), id.name),
        DELETE_DEADLINE,
        move |now| {
            let Some(now) = now else {
                return Ok(Next::Done);
            };
            ensure_ours(now, id, &run_id).map_err(|e| {
                ActionError::fatal(format!(
                    "refusing to delete {} {}: {}",
                    id.kind.noun(),
                    id.name,
                    e.message
                ))
            })?;
            Ok(Next::Write(Write::Delete))
        },
    );
    ensure(ctx, &desired, key).await.map(|_| ())
}

pub(crate) fn resource_ref(id: &ResourceId) -> ResourceRef {
    ResourceRef {
        kind: id.kind.noun().to_string(),
        id: id.to_string(),
    }
}

/// Read-only state for `describe`, when an Azure target is configured; errors become notes.
pub(crate) async fn plan_read(
    ctx: &PlanContext,
    id: &ResourceId,
) -> Result<Option<Resource>, String> {
    match &ctx.env.azure {
        Some(azure) => azure.read(id).await.map_err(|e| e.to_string()),
        None => Err("no Azure target: current state not read".into()),
    }
}

/// The subscription for planning: the argument, else the target's, else a placeholder.
pub(crate) fn plan_subscription(ctx: &PlanContext, args: &PlanArgs) -> String {
    args.str("subscription")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| ctx.env.azure.as_ref().map(|a| a.subscription().to_string()))
        .unwrap_or_else(|| "<subscription>".into())
}

/// The VM id for planning, if its arguments are known.
pub(crate) fn plan_vm_id(
    ctx: &PlanContext,
    args: &PlanArgs,
    rg_key: &str,
    vm_key: &str,
) -> Option<ResourceId> {
    Some(ResourceId::new(
        &plan_subscription(ctx, args),
        args.str(rg_key)?,
        Kind::VirtualMachine,
        args.str(vm_key)?,
    ))
}

/// An ARM id as a person reads it in a plan line: its last segment (the name).
pub(crate) fn short(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// A change for the plan: `id` when known, else `name` says when it will be.
pub(crate) fn change(
    kind: ChangeKind,
    resource: Kind,
    id: Option<&ResourceId>,
    name: &str,
    what: impl Into<String>,
) -> Change {
    Change {
        kind,
        resource_type: id
            .map(ResourceId::resource_type)
            .unwrap_or_else(|| format!("{}/{}", resource.provider(), resource.segment())),
        name: id
            .map(ResourceId::display_name)
            .unwrap_or_else(|| name.to_string()),
        id: id.map(ResourceId::to_string),
        what: what.into(),
    }
}

/// "GET .../virtualMachines/NAME" for the plan's call list.
pub(crate) fn call(method: &str, id: Option<&ResourceId>, suffix: &str, fallback: &str) -> String {
    match id {
        Some(id) => format!("{method} {id}{suffix}"),
        None => format!("{method} {fallback}{suffix}"),
    }
}
