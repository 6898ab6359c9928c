//! `azure.vm.attach_disk` and `azure.vm.detach_disk`: data disks of the rescue VM, through a VM
//! PATCH of `storageProfile.dataDisks` (detach with `toBeDetached`, since an empty list vanishes
//! from the SDK's body).

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs, Reconciled};

pub struct Attach;
pub struct Detach;

const P_DISK: Param = Param {
    name: "disk_id",
    ty: ParamType::String,
    required: true,
    description: "ARM id of the data disk",
};

static ATTACH: ActionSpec = ActionSpec {
    name: "azure.vm.attach_disk",
    summary: "attach a disk to a VM as a data disk (first free LUN unless `lun` is given)",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        P_DISK,
        Param {
            name: "lun",
            ty: ParamType::Integer,
            required: false,
            description: "LUN to use (default: the first free one)",
        },
        P_SUBSCRIPTION,
    ],
    outputs: &[OutputSpec {
        name: "lun",
        description: "the LUN the disk is attached at",
    }],
    mutates: true,
};

static DETACH: ActionSpec = ActionSpec {
    name: "azure.vm.detach_disk",
    summary: "detach a data disk from a VM (nothing to do when it is not attached)",
    params: &[P_RESOURCE_GROUP, P_VM, P_DISK, P_SUBSCRIPTION],
    outputs: &[OutputSpec {
        name: "detached",
        description: "true when a disk was detached, false when it was not attached",
    }],
    mutates: true,
};

/// Azure's maximum LUN.
const MAX_LUN: u64 = 63;

fn lun_of(disks: &[Value], disk_id: &str) -> Option<u64> {
    disks
        .iter()
        .find(|d| {
            d.pointer("/managedDisk/id")
                .and_then(Value::as_str)
                .is_some_and(|id| same_id(id, disk_id))
        })
        .and_then(|d| d.get("lun"))
        .and_then(Value::as_u64)
}

pub(crate) fn first_free_lun(disks: &[Value]) -> Option<u64> {
    let used: Vec<u64> = disks
        .iter()
        .filter_map(|d| d.get("lun").and_then(Value::as_u64))
        .collect();
    (0..=MAX_LUN).find(|l| !used.contains(l))
}

/// Existing data disks as a PATCH needs them (the typed model wants lun + createOption).
fn keep(disk: &Value) -> Value {
    let mut d = json!({
        "lun": disk.get("lun"),
        "createOption": disk.get("createOption").cloned().unwrap_or(json!("Attach")),
    });
    for k in [
        "name",
        "caching",
        "managedDisk",
        "toBeDetached",
        "writeAcceleratorEnabled",
    ] {
        if let Some(v) = disk.get(k).filter(|v| !v.is_null()) {
            d[k] = v.clone();
        }
    }
    d
}

fn patch_data_disks(disks: Vec<Value>) -> Value {
    json!({"properties": {"storageProfile": {"dataDisks": disks}}})
}

fn lun_output(lun: u64) -> Outputs {
    let mut out = Outputs::new();
    out.insert("lun".into(), json!(lun));
    out
}

/// Detach `disk` from `vm` if attached; true when a detach was sent.
pub(crate) async fn detach(
    ctx: &StepContext,
    azure: &Azure,
    vm: &ResourceId,
    disk: &ResourceId,
) -> Result<bool, ActionError> {
    let key = OPERATION;
    if let Some(result) = resume_pending(ctx, azure, key).await {
        result?;
    }
    when_idle(
        ctx,
        azure,
        &format!("detach {} from {}", disk.name, vm.name),
        || async {
            let current = azure.get(vm).await?;
            let disks = data_disks(&current);
            if lun_of(&disks, &disk.to_string()).is_none() {
                return Ok(false);
            }
            let patched: Vec<Value> = disks
                .iter()
                .map(|d| {
                    let mut d = keep(d);
                    if d.pointer("/managedDisk/id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| same_id(id, &disk.to_string()))
                    {
                        d["toBeDetached"] = json!(true);
                    }
                    d
                })
                .collect();
            let started = azure
                .patch_vm(
                    vm,
                    patch_data_disks(patched),
                    &format!("detach {} from {}", disk.name, vm.name),
                )
                .await?;
            finish(ctx, azure, started, key).await?;
            Ok(true)
        },
    )
    .await
}

#[async_trait]
impl Action for Attach {
    fn spec(&self) -> &'static ActionSpec {
        &ATTACH
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let id = plan_vm_id(ctx, args, "resource_group", "vm");
        let mut notes = Vec::new();
        let mut lun = args
            .known
            .get("lun")
            .and_then(Value::as_u64)
            .map(|l| l.to_string());
        if let (Some(id), None) = (&id, &lun) {
            match plan_read(ctx, id).await {
                Ok(Some(vm)) => {
                    let disks = data_disks(&vm);
                    notes.push(format!("{} data disk(s) attached now", disks.len()));
                    lun = first_free_lun(&disks).map(|l| format!("{l} (first free now)"));
                }
                Ok(None) => notes.push(format!("VM {} does not exist now", id.name)),
                Err(e) => notes.push(e),
            }
        }
        Ok(Description {
            summary: format!(
                "attach disk {} to VM {} at LUN {}",
                args.display("disk_id"),
                args.display("vm"),
                lun.unwrap_or_else(|| "(first free)".into())
            ),
            calls: vec![
                call("GET", id.as_ref(), "", ".../virtualMachines/VM"),
                call(
                    "PATCH",
                    id.as_ref(),
                    " (storageProfile.dataDisks += the disk)",
                    ".../virtualMachines/VM",
                ),
                "GET <Azure-AsyncOperation> until Succeeded".into(),
            ],
            notes,
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "disk_id": args.get("disk_id"), "lun": args.get("lun")}),
            creates: Vec::new(),
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        with_progress(ctx, async {
            let key = OPERATION;
            if let Some(result) = resume_pending(ctx, azure, key).await {
                result?;
            }
            when_idle(ctx, azure, &format!("attach {} to {}", disk.name, vm.name), || async {
                let current = azure.get(&vm).await?;
                let disks = data_disks(&current);
                if let Some(lun) = lun_of(&disks, &disk.to_string()) {
                    ctx.status(format!("{} is attached at LUN {lun}", disk.name));
                    return Ok(lun_output(lun));
                }
                let lun = match args.get("lun").and_then(Value::as_u64) {
                    Some(l) if disks.iter().any(|d| d.get("lun").and_then(Value::as_u64) == Some(l)) => {
                        return Err(ActionError::fatal(format!("LUN {l} of VM {} is taken by another disk", vm.name))
                            .with_hint("leave `lun` unset so rescue picks the first free one"));
                    }
                    Some(l) if l > MAX_LUN => return Err(ActionError::fatal(format!("LUN {l} is above Azure's maximum {MAX_LUN}"))),
                    Some(l) => l,
                    None => first_free_lun(&disks)
                        .ok_or_else(|| ActionError::fatal(format!("VM {} has no free LUN (64 data disks attached)", vm.name)))?,
                };
                let mut patched: Vec<Value> = disks.iter().map(keep).collect();
                patched.push(json!({"lun": lun, "name": disk.name, "createOption": "Attach", "managedDisk": {"id": disk.to_string()}}));
                let started = azure.patch_vm(&vm, patch_data_disks(patched), &format!("attach {} to {}", disk.name, vm.name)).await?;
                finish(ctx, azure, started, key).await?;
                Ok(lun_output(lun))
            })
            .await
        })
        .await
    }

    async fn reconcile(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Reconciled, ActionError> {
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        if pending_operation(ctx, OPERATION).is_some() {
            return Ok(Reconciled::Redo);
        }
        Ok(adopt_if(
            lun_of(&data_disks(&azure.get(&vm).await?), &disk.to_string()).map(lun_output),
        ))
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "detach disk {} from VM {}",
            opt_str(args, "disk_id").unwrap_or("?"),
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        with_progress(ctx, detach(ctx, azure, &vm, &disk))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Action for Detach {
    fn spec(&self) -> &'static ActionSpec {
        &DETACH
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let id = plan_vm_id(ctx, args, "resource_group", "vm");
        Ok(Description {
            summary: format!(
                "detach disk {} from VM {}",
                args.display("disk_id"),
                args.display("vm")
            ),
            calls: vec![
                call("GET", id.as_ref(), "", ".../virtualMachines/VM"),
                call(
                    "PATCH",
                    id.as_ref(),
                    " (the disk's dataDisks entry toBeDetached: true)",
                    ".../virtualMachines/VM",
                ),
                "GET <Azure-AsyncOperation> until Succeeded".into(),
            ],
            notes: Vec::new(),
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "disk_id": args.get("disk_id")}),
            creates: Vec::new(),
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        let detached = with_progress(ctx, detach(ctx, azure, &vm, &disk)).await?;
        let mut out = Outputs::new();
        out.insert("detached".into(), json!(detached));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_lun_fills_gaps() {
        assert_eq!(first_free_lun(&[]), Some(0));
        assert_eq!(
            first_free_lun(&[json!({"lun":0}), json!({"lun":2})]),
            Some(1)
        );
        let full: Vec<Value> = (0..=MAX_LUN).map(|l| json!({"lun": l})).collect();
        assert_eq!(first_free_lun(&full), None);
    }
}
