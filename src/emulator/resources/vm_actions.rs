//! VM actions: deallocate, powerOff, start, restart (with the boot check), delete,
//! attachDetachDataDisks, retrieveBootDiagnosticsData; Run Command lives in `vm_run_command`.

use std::sync::Arc;

use serde_json::Value;

use super::super::arm::{ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::latency::*;
use super::super::operations::OpKind;
use super::super::rules::{self, WantedDisk};
use super::super::server::Emu;
use super::super::state::Power;
use super::vm::{begin_vm_op, disk_by_id, find};
use super::{field, group};

pub async fn action(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    action: &str,
) -> ArmResult<Reply> {
    match action.to_ascii_lowercase().as_str() {
        "deallocate" => power(emu, call, rg, name, Power::Deallocated).await,
        "poweroff" => power(emu, call, rg, name, Power::Stopped).await,
        "start" => power(emu, call, rg, name, Power::Running).await,
        "restart" => power(emu, call, rg, name, Power::Starting).await,
        "attachdetachdatadisks" => attach_detach(emu, call, rg, name),
        "runcommand" => super::vm_run_command::action(emu, call, rg, name).await,
        "retrievebootdiagnosticsdata" => {
            let state = emu.lock();
            let (_, vm) = find(&state, rg, name)?;
            // "Expiration duration in minutes for the SAS URIs with a value between 1 to 1440
            // minutes. NOTE: If not specified, SAS URIs will be generated with a default
            // expiration duration of 120 minutes." (the spec's sasUriExpirationTimeInMinutes).
            let minutes = call
                .query("sasUriExpirationTimeInMinutes")
                .and_then(|m| m.parse::<f64>().ok())
                .unwrap_or(120.0)
                .clamp(1.0, 1440.0);
            let uris = match &vm.settings.boot_diagnostics_storage {
                None => super::vm::boot_diagnostics_urls(emu, vm, minutes),
                Some(_) => super::vm::instance_view(&state, vm)["bootDiagnostics"].clone(),
            };
            Ok(Reply::json(200, uris))
        }
        // (inferred) ARM's text for a resource type it does not know, as `routes::unknown`.
        other => Err(ArmError::new(
            404,
            "InvalidResourceType",
            format!("The resource type 'virtualMachines/{other}' could not be found in the namespace 'Microsoft.Compute' for api version '{}'.", super::super::arm::COMPUTE_API),
        )),
    }
}

/// deallocate / powerOff / start / restart (`Power::Starting` = restart).
async fn power(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    target: Power,
) -> ArmResult<Reply> {
    let key = find(&emu.lock(), rg, name)?.0;
    let op = power_of(emu, call, &key, target).await?;
    let state = emu.lock();
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// Starts a power operation on the VM (or scale set instance) at `key` and, for a start,
/// waits for its boot check; returns the operation.
pub async fn power_of(
    emu: &Arc<Emu>,
    call: &Call,
    key: &str,
    target: Power,
) -> ArmResult<super::super::operations::Operation> {
    let restart = target == Power::Starting;
    let target = if restart { Power::Running } else { target };
    let key = key.to_string();
    let (op, key, needs_boot) = {
        let mut state = emu.lock();
        let vm = state
            .vms
            .get(&key)
            .cloned()
            .ok_or_else(|| ArmError::internal("the VM went away while its action started"))?;
        let verb = match (target, restart) {
            (Power::Deallocated, _) => "deallocate",
            (Power::Stopped, _) => "powerOff",
            (_, true) => "restart",
            _ => "start",
        };
        rules::vm_accepts(&state, &vm, verb)?;
        // "Stop-deallocated state: Not Supported" for ephemeral OS disks (Microsoft's
        // "Ephemeral OS disks for Azure VMs"); Azure's ephemeral refusals carry the code
        // NotSupported (cloudfoundry/bosh-azure-cpi-release#674); this text is inferred.
        if target == Power::Deallocated && vm.settings.ephemeral_os.is_some() {
            return Err(ArmError::bad_request(
                "NotSupported",
                format!("Operation 'deallocate' is not supported for VM '{}' because it has an ephemeral OS disk.", vm.name),
            ));
        }
        if restart {
            rules::running(&vm)?;
        }
        let already = vm.power == target && !restart;
        let seconds = match (already, target, restart) {
            (true, ..) => NO_OP,
            (_, _, true) => RESTART,
            (_, Power::Deallocated, _) => DEALLOCATE,
            (_, Power::Stopped, _) => POWER_OFF,
            _ => START,
        };
        let needs_boot = target == Power::Running && !already && !call.lro_failed();
        let kind = OpKind::VmPower {
            vm: key.clone(),
            target,
            boot: None,
        };
        let mut op = begin_vm_op(emu, &mut state, &key, kind, seconds, call);
        if !needs_boot {
            // No boot to wait for: the operation completes on its due time alone.
            if let OpKind::VmPower { boot, .. } = &mut op.kind {
                *boot = Some(super::super::boot::BootOutcome {
                    ready: vm.agent_ready,
                    serial_log: vm.serial_log.clone(),
                    ready_after: 0.0,
                });
            }
            state.operations.insert(op.id.clone(), op.clone());
        }
        let v = state.vms.get_mut(&key).expect("found");
        if !already && !call.lro_failed() {
            v.power = match target {
                Power::Deallocated => Power::Deallocating,
                Power::Stopped => Power::Stopping,
                _ => Power::Starting,
            };
            v.agent_ready = false;
        }
        emu.save(&state)?;
        (op, key, needs_boot)
    };
    if needs_boot {
        boot_into(emu, &op.id, &key).await?;
    }
    Ok(op)
}

/// DELETE of a VM: 202 and an operation; its disks are kept (and become Unattached).
pub fn delete(emu: &Emu, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let mut state = emu.lock();
    let Ok((key, vm)) = find(&state, rg, name) else {
        group(&state, rg)?;
        return Ok(Reply::empty(204));
    };
    // "You can only retry the Delete operation (or wait for an ongoing one to complete)": a
    // Delete of a VM being deleted gets the operation in flight.
    if let Some(op) = vm
        .busy
        .as_ref()
        .and_then(|id| state.operations.get(id))
        .filter(|op| {
            op.status == super::super::operations::Status::InProgress
                && matches!(op.kind, OpKind::VmDelete { .. })
        })
    {
        return Ok(emu.lro_headers(&state, op, Reply::empty(202), true));
    }
    let op = begin_vm_op(
        emu,
        &mut state,
        &key,
        OpKind::VmDelete { vm: key.clone() },
        VM_DELETE,
        call,
    );
    let v = state.vms.get_mut(&key).expect("found");
    v.provisioning_state = "Deleting".into();
    emu.save(&state)?;
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// Boots the VM's OS disk (read-only check) and hands the outcome to its start operation,
/// which completes only once it has one.
pub async fn boot_into(emu: &Emu, op_id: &str, key: &str) -> ArmResult<()> {
    let outcome = boot_check(emu, key).await;
    let mut state = emu.lock();
    if let Some(op) = state.operations.get_mut(op_id) {
        if let OpKind::VmPower { boot, .. } = &mut op.kind {
            *boot = Some(outcome);
            op.worked_until = Some(super::super::arm::now());
        }
    }
    emu.save(&state)
}

/// The boot check of the VM's (or instance's) OS disk, its waits scaled to Azure time; a check
/// that cannot run is a boot that never reports.
pub async fn boot_check(emu: &Emu, key: &str) -> super::super::boot::BootOutcome {
    let (name, image, dir) = {
        let state = emu.lock();
        let vm = &state.vms[key];
        (
            vm.name.clone(),
            emu.images.join(&state.disks[&vm.os_disk].image),
            emu.data_dir.clone(),
        )
    };
    let outcome =
        tokio::task::spawn_blocking(move || super::super::boot::boot(&name, &image, &dir))
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .and_then(|r| r)
            .unwrap_or_else(|e| super::super::boot::BootOutcome {
                ready: false,
                serial_log: format!("emulator: the boot check could not run: {e:#}\n"),
                ready_after: 0.0,
            });
    // The guest boots in Azure time, like every other wait.
    super::super::boot::BootOutcome {
        ready_after: outcome.ready_after * emu.time_scale,
        ..outcome
    }
}

fn attach_detach(emu: &Emu, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let body = call.json()?;
    let mut state = emu.lock();
    let (key, vm) = find(&state, rg, name)?;
    let vm = vm.clone();
    rules::vm_accepts(&state, &vm, "attachDetachDataDisks")?;
    let list = |k: &str| {
        field(&body, &[k])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (attach, detach) = (list("dataDisksToAttach"), list("dataDisksToDetach"));
    if attach.is_empty() && detach.is_empty() {
        // (inferred) both lists are optional in the spec; a request with neither names no disk.
        return Err(rules::missing("dataDisksToAttach"));
    }
    let mut wanted: Vec<WantedDisk> = vm
        .data_disks
        .iter()
        .map(|d| WantedDisk {
            lun: d.lun,
            disk: d.disk.clone(),
            create_option: "Attach".into(),
            caching: Some(d.caching.clone()),
        })
        .collect();
    // The spec's DataDisksToDetach: `diskId` required, `detachOption` ForceDetach optional;
    // DataDisksToAttach: `diskId` required, `lun` ("If not specified, lun would be auto
    // assigned"), `caching`.
    for d in &detach {
        let id = field(d, &["diskId"])
            .and_then(Value::as_str)
            .ok_or_else(|| rules::missing("dataDisksToDetach.diskId"))?;
        let disk = disk_by_id(&state, id)?;
        let before = wanted.len();
        wanted.retain(|w| w.disk != disk);
        if wanted.len() == before {
            // (inferred) no recording of detaching a disk the VM does not have.
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!(
                    "Disk '{}' is not attached to VM '{}' as a data disk.",
                    state.disks[&disk].name, vm.name
                ),
            ));
        }
    }
    for a in &attach {
        let id = field(a, &["diskId"])
            .and_then(Value::as_str)
            .ok_or_else(|| rules::missing("dataDisksToAttach.diskId"))?;
        let disk = disk_by_id(&state, id)?;
        // (inferred) an auto-assigned LUN is one no disk holds, the disks this request detaches
        // included: they hold theirs until the operation ends, and `rules::data_disks` refuses
        // a LUN the VM has now for another disk.
        let free = |l: &i32, with_leaving: bool| {
            let held = wanted.iter().any(|w| w.lun == *l);
            let leaving = with_leaving && vm.data_disks.iter().any(|d| d.lun == *l);
            !held && !leaving
        };
        let lun = match field(a, &["lun"]).and_then(Value::as_i64) {
            Some(l) => l as i32,
            None => (0..64)
                .find(|l| free(l, true))
                .or_else(|| (0..64).find(|l| free(l, false)))
                .unwrap_or(64),
        };
        let caching = field(a, &["caching"])
            .and_then(Value::as_str)
            .map(String::from);
        wanted.push(WantedDisk {
            lun,
            disk,
            create_option: "Attach".into(),
            caching,
        });
    }
    let next = rules::data_disks(&state, &vm, wanted)?;
    let kind = OpKind::AttachDetach { vm: key.clone() };
    let op = change_data_disks(emu, &mut state, &key, next, kind, call)?;
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// Starts the operation that gives the VM (or instance) `next` as its data disks; the disks it
/// lets go stay its own until the operation ends.
pub(super) fn change_data_disks(
    emu: &Emu,
    state: &mut super::super::state::State,
    key: &str,
    next: Vec<super::super::state::DataDiskRef>,
    kind: OpKind,
    call: &Call,
) -> ArmResult<super::super::operations::Operation> {
    let op = begin_vm_op(emu, state, key, kind, VM_UPDATE, call);
    if !call.lro_failed() {
        state.set_disks(key, None, Some(next));
    }
    let v = state.vms.get_mut(key).expect("caller found the VM");
    v.etag += 1;
    v.provisioning_state = "Updating".into();
    emu.save(state)?;
    Ok(op)
}
