//! `azure.vm.swap_os_disk`: put the repaired copy in as the VM's OS disk. The original disk id is
//! journaled (intent) before the PATCH and the original disk itself is never touched.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::power::set_power;
use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs, Reconciled};
use crate::azure::VmAction;

pub struct SwapOsDisk;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.vm.swap_os_disk",
    summary: "make a disk the VM's OS disk (the VM must be deallocated); the original disk is kept",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        Param {
            name: "disk_id",
            ty: ParamType::String,
            required: true,
            description: "ARM id of the disk to boot from",
        },
        Param {
            name: "original_disk_id",
            ty: ParamType::String,
            required: true,
            description: "the OS disk the VM must have now (refuses to swap out anything else)",
        },
        P_SUBSCRIPTION,
    ],
    outputs: &[
        OutputSpec {
            name: "original_disk_id",
            description: "the old OS disk (kept, untouched)",
        },
        OutputSpec {
            name: "new_disk_id",
            description: "the VM's OS disk now",
        },
    ],
    mutates: true,
};

/// Set the VM's OS disk to `disk`, keeping `createOption` (changing it is a 409).
async fn set_os_disk(
    ctx: &StepContext,
    azure: &Azure,
    vm_id: &ResourceId,
    vm: &Value,
    disk: &ResourceId,
    key: &str,
) -> Result<(), ActionError> {
    let create_option = vm
        .pointer("/properties/storageProfile/osDisk/createOption")
        .cloned()
        .unwrap_or(json!("Attach"));
    let body = json!({"properties": {"storageProfile": {"osDisk": {
        "createOption": create_option,
        "name": disk.name,
        "managedDisk": {"id": disk.to_string()},
    }}}});
    let started = azure
        .patch_vm(
            vm_id,
            body,
            &format!("OS disk swap of {} to {}", vm_id.name, disk.name),
        )
        .await?;
    finish(ctx, azure, started, key).await.map(|_| ())
}

fn outputs(original: &ResourceId, new: &ResourceId) -> Outputs {
    let mut out = Outputs::new();
    out.insert("original_disk_id".into(), json!(original.to_string()));
    out.insert("new_disk_id".into(), json!(new.to_string()));
    out
}

fn not_deallocated(vm: &ResourceId, state: &str) -> ActionError {
    ActionError::fatal(format!("VM {} is {state}: it must be deallocated before its OS disk can be swapped", vm.name))
        .with_hint("run the workflow's `azure.vm.deallocate` step first (os-disk-swap.yaml does it in step `deallocate`), then `rescue resume RUN_ID`")
}

#[async_trait]
impl Action for SwapOsDisk {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let id = plan_vm_id(ctx, args, "resource_group", "vm");
        Ok(Description {
            summary: format!(
                "swap VM {}'s OS disk {} for {} (the old disk is kept untouched)",
                args.display("vm"),
                args.display("original_disk_id"),
                args.display("disk_id")
            ),
            calls: vec![
                call(
                    "GET",
                    id.as_ref(),
                    "?$expand=instanceView",
                    ".../virtualMachines/VM",
                ),
                call(
                    "PATCH",
                    id.as_ref(),
                    " (storageProfile.osDisk.managedDisk.id = the copy)",
                    ".../virtualMachines/VM",
                ),
                "GET <Azure-AsyncOperation> until Succeeded".into(),
            ],
            notes: Vec::new(),
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "original_disk_id": args.get("original_disk_id"), "new_disk_id": args.get("disk_id")}),
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
        let vm_id = vm_id(azure, args, "resource_group", "vm")?;
        let new = id_arg(args, "disk_id", Kind::Disk)?;
        let original = id_arg(args, "original_disk_id", Kind::Disk)?;
        with_progress(ctx, async {
            if let Some(result) = resume_pending(ctx, azure, OPERATION).await {
                result?;
            }
            when_idle(ctx, azure, &format!("OS disk swap of {}", vm_id.name), || async {
                let vm = azure.get_vm_with_instance_view(&vm_id).await?;
                let current = os_disk_id(&vm).unwrap_or_default().to_string();
                if !new.same_as(&current) {
                    if !original.same_as(&current) {
                        return Err(ActionError::fatal(format!(
                            "VM {}'s OS disk is {current}, not {original} as when the run started: refusing to swap",
                            vm_id.name
                        ))
                        .with_hint("someone changed the VM meanwhile; inspect it, then start a new run"));
                    }
                    let state = power_state(&vm);
                    if state != "deallocated" {
                        return Err(not_deallocated(&vm_id, &state));
                    }
                    set_os_disk(ctx, azure, &vm_id, &vm, &new, OPERATION).await?;
                }
                Ok(())
            })
            .await?;
            Ok(outputs(&original, &new))
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
        let vm_id = vm_id(azure, args, "resource_group", "vm")?;
        let new = id_arg(args, "disk_id", Kind::Disk)?;
        let original = id_arg(args, "original_disk_id", Kind::Disk)?;
        if pending_operation(ctx, OPERATION).is_some() {
            return Ok(Reconciled::Redo);
        }
        let vm = azure.get(&vm_id).await?;
        Ok(adopt_if(
            new.same_as(os_disk_id(&vm).unwrap_or_default())
                .then(|| outputs(&original, &new)),
        ))
    }

    fn describe_undo(&self, args: &Args, outputs: &Outputs) -> Option<String> {
        Some(format!(
            "deallocate VM {}, swap its original OS disk {} back, start it",
            opt_str(args, "vm").unwrap_or("?"),
            outputs
                .get("original_disk_id")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ))
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        outputs: &Outputs,
    ) -> Result<(), ActionError> {
        let azure = azure(ctx)?;
        let vm_id = vm_id(azure, args, "resource_group", "vm")?;
        let original = ResourceId::parse(
            outputs
                .get("original_disk_id")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        with_progress(ctx, async {
            let vm = azure.get(&vm_id).await?;
            if !original.same_as(os_disk_id(&vm).unwrap_or_default()) {
                set_power(ctx, azure, &vm_id, VmAction::Deallocate).await?;
                set_os_disk(ctx, azure, &vm_id, &vm, &original, "undo_operation").await?;
            }
            set_power(ctx, azure, &vm_id, VmAction::Start)
                .await
                .map(|_| ())
        })
        .await
    }
}
