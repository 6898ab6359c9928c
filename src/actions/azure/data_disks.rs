//! `azure.vm.attach_disk` and `azure.vm.detach_disk`: data disks of the rescue VM, through
//! `attachDetachDataDisks`, which names only the disk concerned. A PUT or PATCH of the whole
//! `dataDisks` list would rewrite every other disk too, so two repairs sharing a rescue VM could
//! detach each other's copy mid-fsck.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};
use crate::azure::model::{DataDisk, Vm};

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

fn place_key(vm: &ResourceId) -> String {
    crate::actions::place_key(&vm.resource_group, &vm.name)
}

/// Azure's maximum LUN.
const MAX_LUN: u64 = 63;

pub(crate) fn first_free_lun(disks: &[DataDisk]) -> Option<u32> {
    (0..=MAX_LUN as u32).find(|l| !disks.iter().any(|d| d.lun == *l))
}

fn lun_output(lun: u32) -> Outputs {
    let mut out = Outputs::new();
    out.insert("lun".into(), json!(lun));
    out
}

/// "Disk `disk` is a data disk of VM `vm`" (at `lun` when given, else where Azure puts it).
/// Through `attachDetachDataDisks`, which changes only this disk: other runs' disks on a
/// shared rescue VM are never rewritten. A VM another fleet claimed for its pool is refused
/// here, in the state the attach is decided on, whenever the claim came ([`super::pool`]);
/// detaching from it stays allowed, since that only gives a slot back.
fn attached(
    ctx: &StepContext,
    now: Option<&Resource>,
    vm_id: &ResourceId,
    disk: &ResourceId,
    lun: Option<u32>,
) -> Result<Next, ActionError> {
    let vm = existing_vm(now, vm_id)?;
    if vm.lun_of(&disk.to_string()).is_some() {
        return Ok(Next::Done);
    }
    super::pool::may_use(
        vm.resource.tag(super::pool::POOL_TAG),
        &vm_id.name,
        ctx.env.fleet.as_deref(),
        ctx.env.force_unlock.as_deref(),
    )?;
    if let Some(l) = lun {
        if vm.data_disks.iter().any(|d| d.lun == l) {
            return Err(ActionError::fatal(format!(
                "LUN {l} of VM {} is taken by another disk",
                vm_id.name
            ))
            .with_hint("leave `lun` unset so Azure picks a free one"));
        }
    } else if first_free_lun(&vm.data_disks).is_none() {
        return Err(ActionError::fatal(format!(
            "VM {} has no free LUN (64 data disks attached)",
            vm_id.name
        )));
    }
    let mut attach = json!({"diskId": disk.to_string()});
    if let Some(l) = lun {
        attach["lun"] = json!(l);
    }
    Ok(Next::Write(Write::AttachDetach(
        json!({"dataDisksToAttach": [attach]}),
    )))
}

/// Detach `disk` from `vm` if attached; true when it was attached.
pub(crate) async fn detach(
    ctx: &StepContext,
    vm: &ResourceId,
    disk: &ResourceId,
    key: &str,
) -> Result<bool, ActionError> {
    // Whether it was attached when the step began: the loop's first look says.
    let was_attached = std::sync::atomic::AtomicBool::new(false);
    let first_look = std::sync::Once::new();
    let detached = Want::new(
        vm,
        format!("detach {} from {}", disk.name, vm.name),
        VM_UPDATE_DEADLINE,
        |now| {
            let attached =
                now.is_some_and(|r| Vm::parse(r.clone()).lun_of(&disk.to_string()).is_some());
            first_look
                .call_once(|| was_attached.store(attached, std::sync::atomic::Ordering::Relaxed));
            Ok(if attached {
                Next::Write(Write::AttachDetach(
                    json!({"dataDisksToDetach": [{"diskId": disk.to_string()}]}),
                ))
            } else {
                Next::Done
            })
        },
    );
    ensure(ctx, &detached, key).await?;
    // Azure releases the disk (`managedBy`) when the detach completes; only then can it become
    // another VM's OS disk.
    let released = Want::new(
        disk,
        format!("release of disk {}", disk.name),
        VM_UPDATE_DEADLINE,
        |now| {
            let owner = now.and_then(|d| d.str("/managedBy")).unwrap_or_default();
            Ok(if same_id(owner, &vm.to_string()) {
                Next::Wait(format!("still held by {}", vm.name))
            } else {
                Next::Done
            })
        },
    );
    ensure(ctx, &released, key).await?;
    Ok(was_attached.into_inner())
}

#[async_trait]
impl AzureStep for Attach {
    const SPEC: &'static ActionSpec = &ATTACH;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let mut notes = Vec::new();
        let mut lun = args
            .known
            .get("lun")
            .and_then(Value::as_u64)
            .map(|l| l.to_string());
        if let (Some(id), None) = (p.vm(), &lun) {
            match plan_read(ctx, &id).await {
                Ok(Some(vm)) => {
                    let vm = Vm::parse(vm);
                    notes.push(format!("{} data disk(s) attached now", vm.data_disks.len()));
                    lun = first_free_lun(&vm.data_disks).map(|l| format!("{l} (first free now)"));
                }
                Ok(None) => notes.push(format!("VM {} does not exist now", id.name)),
                Err(e) => notes.push(e),
            }
        }
        let summary = format!(
            "attach disk {} to VM {} at LUN {}",
            args.display("disk_id"),
            args.display("vm"),
            lun.unwrap_or_else(|| "(first free)".into())
        );
        let what = format!(
            "attach disk {} as a data disk",
            short(&args.display("disk_id"))
        );
        let calls = [
            "GET {vm}",
            "POST {vm}/attachDetachDataDisks (dataDisksToAttach: the disk)",
            "GET <Location> until Succeeded",
        ];
        Ok(Description {
            notes,
            ..p.vm_change(ChangeKind::Update, what, summary, &calls)
        })
    }

    const INTENT: &'static [&'static str] = &["vm", "disk_id", "lun"];

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        let lun = match args.get("lun").and_then(Value::as_u64) {
            Some(l) if l > MAX_LUN => {
                return Err(ActionError::fatal(format!(
                    "LUN {l} is above Azure's maximum {MAX_LUN}"
                )))
            }
            other => other.map(|l| l as u32),
        };
        with_progress(ctx, async {
            if let Some(places) = &ctx.env.places {
                ctx.status(format!("waiting for a free data-disk slot on {}", vm.name));
                places.enter(&place_key(&vm)).await;
            }
            let desired = Want::new(
                &vm,
                format!("attach {} to {}", disk.name, vm.name),
                VM_UPDATE_DEADLINE,
                |now| attached(ctx, now, &vm, &disk, lun),
            );
            let now = ensure(ctx, &desired, OPERATION).await?;
            let lun = now
                .map(Vm::parse)
                .and_then(|v| v.lun_of(&disk.to_string()))
                .ok_or_else(|| {
                    ActionError::retryable(format!(
                        "{} is not listed on {} after the attach",
                        disk.name, vm.name
                    ))
                })?;
            ctx.status(format!("{} is attached at LUN {lun}", disk.name));
            Ok(lun_output(lun))
        })
        .await
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "detach disk {} from VM {}",
            opt_str(args, "disk_id").unwrap_or("?"),
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, .. } = *u;
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        detach(ctx, &vm, &disk, "undo_operation").await.map(|_| ())
    }
}

#[async_trait]
impl AzureStep for Detach {
    const SPEC: &'static ActionSpec = &DETACH;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let disk = p.args.display("disk_id");
        let summary = format!("detach disk {disk} from VM {}", p.args.display("vm"));
        let calls = [
            "GET {vm}",
            "POST {vm}/attachDetachDataDisks (dataDisksToDetach: the disk)",
            "GET <Location> until Succeeded",
        ];
        Ok(p.vm_change(
            ChangeKind::Update,
            format!("detach disk {}", short(&disk)),
            summary,
            &calls,
        ))
    }

    const INTENT: &'static [&'static str] = &["vm", "disk_id"];

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let disk = id_arg(args, "disk_id", Kind::Disk)?;
        let detached = detach(ctx, &vm, &disk, OPERATION).await?;
        if let Some(places) = &ctx.env.places {
            places.leave(&place_key(&vm));
        }
        Ok(output("detached", json!(detached)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_lun_fills_gaps() {
        let disk = |lun| DataDisk {
            lun,
            disk_id: "/d".into(),
            to_be_detached: false,
        };
        assert_eq!(first_free_lun(&[]), Some(0));
        assert_eq!(first_free_lun(&[disk(0), disk(2)]), Some(1));
        let full: Vec<DataDisk> = (0..=MAX_LUN as u32).map(disk).collect();
        assert_eq!(first_free_lun(&full), None);
    }
}
