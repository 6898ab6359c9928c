//! Azure actions (`azure.*`): each one a step of a repair, built on [`crate::azure`].
//!
//! Shared rules: every mutation's operation is checkpointed right after Azure accepts it, so
//! `execute` called again after a crash (the default `reconcile` is Redo) keeps polling it instead
//! of sending the mutation twice; what a step creates has a deterministic name from the run id and
//! carries a `rescue-run` tag; undo deletes only resources carrying this run's tag.

mod data_disks;
mod disk;
mod health;
mod inspect;
mod lock;
mod power;
mod run_command;
mod snapshot;
mod swap;

use std::future::Future;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{
    Action, ActionError, Args, Outputs, Param, ParamType, PlanArgs, PlanContext, Reconciled,
    ResourceRef, StepContext,
};
use crate::azure::ids::{derived_name, Kind, ResourceId};
use crate::azure::{progress, Azure, Operation, Started, VmAction};

pub fn all() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(inspect::Inspect),
        Arc::new(inspect::CheckCompatible),
        Arc::new(lock::Lock),
        Arc::new(lock::Unlock),
        Arc::new(power::SetPower {
            to: VmAction::Deallocate,
        }),
        Arc::new(power::SetPower {
            to: VmAction::Start,
        }),
        Arc::new(snapshot::CreateSnapshot),
        Arc::new(disk::CreateFromSnapshot),
        Arc::new(data_disks::Attach),
        Arc::new(data_disks::Detach),
        Arc::new(run_command::RunCommand),
        Arc::new(swap::SwapOsDisk),
        Arc::new(health::WaitHealthy),
    ]
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

/// Run `fut` with the Azure layer's progress (polls, retries) going to this step's status line.
pub(crate) async fn with_progress<F: Future>(ctx: &StepContext, fut: F) -> F::Output {
    let host = ctx.host.clone();
    let step = ctx.step_id.clone();
    progress::scope(Arc::new(move |m| host.status(&step, m)), fut).await
}

/// Checkpoint key of a step's operation in flight.
pub(crate) const OPERATION: &str = "operation";

/// The operation an earlier attempt or process left in flight, if any.
pub(crate) fn pending_operation(ctx: &StepContext, key: &str) -> Option<Operation> {
    ctx.checkpoints
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Finish a started mutation: checkpoint its operation (so a resumed step polls instead of
/// re-sending), then poll it to the end.
pub(crate) async fn finish(
    ctx: &StepContext,
    azure: &Azure,
    started: Started,
    key: &str,
) -> Result<Value, ActionError> {
    match started {
        Started::Done(body) => Ok(body),
        Started::Pending(op) => {
            ctx.checkpoint(
                key,
                serde_json::to_value(&op).expect("an operation serializes"),
            )
            .await?;
            poll_checkpointed(ctx, azure, &op, key).await
        }
    }
}

/// Poll a checkpointed operation. Once it has ended (either way) the checkpoint is cleared: a
/// later attempt must look at the resource, not replay this outcome. When polling itself fails
/// the checkpoint stays, so the next attempt polls the same operation again.
async fn poll_checkpointed(
    ctx: &StepContext,
    azure: &Azure,
    op: &Operation,
    key: &str,
) -> Result<Value, ActionError> {
    let outcome = azure.wait_outcome(op).await?;
    ctx.checkpoint(key, Value::Null).await?;
    outcome
}

/// Keep polling an operation checkpointed by an earlier attempt; None if there was none.
pub(crate) async fn resume_pending(
    ctx: &StepContext,
    azure: &Azure,
    key: &str,
) -> Option<Result<Value, ActionError>> {
    let op = pending_operation(ctx, key)?;
    ctx.status(format!("resuming: polling {} again", op.label));
    Some(poll_checkpointed(ctx, azure, &op, key).await)
}

/// How long a step waits for another operation on its VM to finish before giving up.
const BUSY_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Run `attempt` (which re-reads state and sends its mutation only if still needed) until it is
/// not refused with "another operation is in progress": that operation may be our own request,
/// accepted by Azure just before its connection dropped and then retried.
pub(crate) async fn when_idle<T, F, Fut>(
    ctx: &StepContext,
    azure: &Azure,
    what: &str,
    mut attempt: F,
) -> Result<T, ActionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ActionError>>,
{
    let since = std::time::Instant::now();
    let mut waits = 0;
    loop {
        match attempt().await {
            Err(e) if crate::azure::errors::is_busy(&e) && since.elapsed() < BUSY_LIMIT => {
                ctx.status(format!(
                    "{what}: another operation is running on it, waiting ({})",
                    crate::azure::retry_human(since.elapsed())
                ));
                tokio::time::sleep(azure.health_poll_interval(waits)).await;
                waits += 1;
            }
            other => return other,
        }
    }
}

/// `{"rescue-run": run_id}` plus extra tags.
pub(crate) fn run_tags(run_id: &str, extra: &[(&str, &str)]) -> Value {
    let mut tags = Map::new();
    tags.insert(RUN_TAG.into(), json!(run_id));
    for (k, v) in extra {
        tags.insert((*k).into(), json!(v));
    }
    Value::Object(tags)
}

pub(crate) fn tag_of<'a>(resource: &'a Value, tag: &str) -> Option<&'a str> {
    resource
        .get("tags")
        .and_then(|t| t.get(tag))
        .and_then(Value::as_str)
}

/// A resource found under our deterministic name must be ours (this run's tag), never adopted
/// blindly: a name collision with someone else's resource stops the step.
pub(crate) fn ensure_ours(
    resource: &Value,
    id: &ResourceId,
    run_id: &str,
) -> Result<(), ActionError> {
    match tag_of(resource, RUN_TAG) {
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

/// Delete a resource this run created; refuses anything without this run's tag (so never the
/// original disk).
pub(crate) async fn delete_created(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    run_id: &str,
) -> Result<(), ActionError> {
    let Some(current) = azure.find(id).await? else {
        return Ok(());
    };
    ensure_ours(&current, id, run_id).map_err(|e| {
        ActionError::fatal(format!(
            "refusing to delete {} {}: {}",
            id.kind.noun(),
            id.name,
            e.message
        ))
    })?;
    let started = azure
        .delete(id, &format!("delete {} {}", id.kind.noun(), id.name))
        .await?;
    finish(ctx, azure, started, "undo_operation")
        .await
        .map(|_| ())
}

pub(crate) fn provisioning(resource: &Value) -> String {
    resource
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// After a crash: the resource this step creates, when it exists complete and tagged with this
/// run and no operation of ours is still in flight (then the step is adopted, not redone).
pub(crate) async fn created_earlier(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
) -> Result<Option<Value>, ActionError> {
    if pending_operation(ctx, OPERATION).is_some() {
        return Ok(None);
    }
    Ok(azure.find(id).await?.filter(|r| {
        tag_of(r, RUN_TAG) == Some(ctx.run_id.as_str()) && provisioning(r) == "succeeded"
    }))
}

/// Adopt `outputs` when the step's effect is already in place, else redo (execute re-checks).
pub(crate) fn adopt_if(outputs: Option<Outputs>) -> Reconciled {
    outputs.map_or(Reconciled::Redo, Reconciled::Adopt)
}

pub(crate) fn resource_ref(id: &ResourceId) -> ResourceRef {
    ResourceRef {
        kind: id.kind.noun().to_string(),
        id: id.to_string(),
    }
}

/// Read-only state for `describe`, when an Azure target is configured; errors become notes.
pub(crate) async fn plan_read(ctx: &PlanContext, id: &ResourceId) -> Result<Option<Value>, String> {
    match &ctx.env.azure {
        Some(azure) => azure.find(id).await.map_err(|e| e.message),
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

/// "GET .../virtualMachines/NAME" for the plan's call list.
pub(crate) fn call(method: &str, id: Option<&ResourceId>, suffix: &str, fallback: &str) -> String {
    match id {
        Some(id) => format!("{method} {id}{suffix}"),
        None => format!("{method} {fallback}{suffix}"),
    }
}

/// `properties.instanceView` (VM GET with $expand) or a bare instance view: power state code.
pub(crate) fn power_state(vm: &Value) -> String {
    status_code(vm, "PowerState/").unwrap_or_else(|| "unknown".into())
}

/// The VM agent's display status ("Ready", "Not Ready"), "unknown" when absent.
pub(crate) fn agent_status(vm: &Value) -> String {
    let view = vm.pointer("/properties/instanceView").unwrap_or(vm);
    view.pointer("/vmAgent/statuses/0/displayStatus")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| "unknown".into())
}

fn status_code(vm: &Value, prefix: &str) -> Option<String> {
    let view = vm.pointer("/properties/instanceView").unwrap_or(vm);
    view.get("statuses")?
        .as_array()?
        .iter()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .find_map(|c| c.strip_prefix(prefix).map(str::to_string))
}

pub(crate) fn os_disk_id(vm: &Value) -> Option<&str> {
    vm.pointer("/properties/storageProfile/osDisk/managedDisk/id")
        .and_then(Value::as_str)
}

pub(crate) fn data_disks(vm: &Value) -> Vec<Value> {
    vm.pointer("/properties/storageProfile/dataDisks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn zone(resource: &Value) -> Option<String> {
    resource
        .get("zones")
        .and_then(Value::as_array)
        .and_then(|z| z.first())
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub(crate) fn location(resource: &Value) -> String {
    resource
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}
