//! `azure.vm.swap_os_disk`: put the repaired copy in as the VM's OS disk. The original disk id is
//! journaled (intent) before the PATCH and the original disk itself is never touched.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::power::set_power;
use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

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
/// "VM `vm` boots from `new`", reached only from `original` on a deallocated VM: anything else
/// is refused, never forced.
async fn swap(
    ctx: &StepContext,
    vm: &ResourceId,
    new: &ResourceId,
    original: &ResourceId,
    key: &str,
) -> Result<(), ActionError> {
    let label = format!("OS disk swap of {} to {}", vm.name, new.name);
    let desired = Want::new(vm, label, VM_UPDATE_DEADLINE, |now| {
        let current = existing_vm(now, vm)?;
        if new.same_as(&current.os_disk_id) {
            return Ok(Next::Done);
        }
        if !original.same_as(&current.os_disk_id) {
            return Err(ActionError::fatal(format!(
                "VM {}'s OS disk is {}, not {} as when the run started: refusing to swap",
                vm.name, current.os_disk_id, original
            ))
            .with_hint("someone changed the VM meanwhile; inspect it, then start a new run"));
        }
        let power = current.power.clone().unwrap_or_else(|| "unknown".into());
        if power != "deallocated" {
            return Err(ActionError::fatal(format!(
                "VM {} is {power}: it must be deallocated before its OS disk can be swapped",
                vm.name
            ))
            .with_hint("run the workflow's `azure.vm.deallocate` step first (os-disk-swap.yaml does it in step `deallocate`), then `rescue resume RUN_ID`"));
        }
        Ok(Next::Write(Write::PatchVm(os_disk_patch(&current.resource, new))))
    })
    .with_instance_view();
    ensure(ctx, &desired, key).await.map(|_| ())
}

/// The PATCH that makes `disk` the OS disk. `createOption` stays what it is (changing it is
/// `PropertyChangeNotAllowed`), and the SDK's typed model requires it.
fn os_disk_patch(vm: &Resource, disk: &ResourceId) -> Value {
    let create_option = vm
        .raw
        .pointer("/properties/storageProfile/osDisk/createOption")
        .cloned()
        .unwrap_or(json!("Attach"));
    json!({"properties": {"storageProfile": {"osDisk": {
        "createOption": create_option,
        "name": disk.name,
        "managedDisk": {"id": disk.to_string()},
    }}}})
}

fn outputs(original: &ResourceId, new: &ResourceId) -> Outputs {
    let mut out = Outputs::new();
    out.insert("original_disk_id".into(), json!(original.to_string()));
    out.insert("new_disk_id".into(), json!(new.to_string()));
    out
}

#[async_trait]
impl AzureStep for SwapOsDisk {
    const SPEC: &'static ActionSpec = &SPEC;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let (old, new) = (
            p.args.display("original_disk_id"),
            p.args.display("disk_id"),
        );
        let summary = format!(
            "swap VM {}'s OS disk {old} for {new} (the old disk is kept untouched)",
            p.args.display("vm")
        );
        let what = format!(
            "OS disk {} -> {} (the old disk is kept)",
            short(&old),
            short(&new)
        );
        let calls = [
            "GET {vm}?$expand=instanceView",
            "PATCH {vm} If-Match (storageProfile.osDisk.managedDisk.id = the copy)",
            "GET <Azure-AsyncOperation> until Succeeded",
        ];
        Ok(p.vm_change(ChangeKind::Update, what, summary, &calls))
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "original_disk_id": args.get("original_disk_id"), "new_disk_id": args.get("disk_id")}),
            creates: Vec::new(),
            scaffolding: false,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let new = id_arg(args, "disk_id", Kind::Disk)?;
        let original = id_arg(args, "original_disk_id", Kind::Disk)?;
        swap(ctx, &vm, &new, &original, OPERATION).await?;
        Ok(outputs(&original, &new))
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

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, outputs } = *u;
        let azure = azure(ctx)?;
        let vm_id = vm_id(azure, args, "resource_group", "vm")?;
        let original = ResourceId::parse(
            outputs
                .get("original_disk_id")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        let new = output_id(outputs, "new_disk_id")?;
        with_progress(ctx, async {
            let now = azure.read_existing_vm(&vm_id, false).await?;
            if !original.same_as(&now.os_disk_id) {
                set_power(ctx, &vm_id, VmAction::Deallocate, "undo_deallocate").await?;
                swap(ctx, &vm_id, &original, &new, "undo_operation").await?;
            }
            set_power(ctx, &vm_id, VmAction::Start, "undo_start")
                .await
                .map(|_| ())
        })
        .await
    }
}
