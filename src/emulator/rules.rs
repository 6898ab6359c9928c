//! What Azure refuses, with Azure's codes and messages: one operation at a time per VM, OS-disk
//! swap only when deallocated, attach only an unattached disk in the VM's zone, free LUNs, no
//! deleting attached disks, Run Command only on a running VM with a ready agent.

use super::arm::{ArmError, ArmResult};
use super::operations::OpKind;
use super::state::{DataDiskRef, Power, State, Vm};

pub fn disk_deletable(state: &State, key: &str) -> ArmResult<()> {
    match state.owner_of(key) {
        Some(vm) => Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Disk {} is attached to VM {}.",
                state.disks[key].name,
                state.vm_id(vm)
            ),
        )),
        None => Ok(()),
    }
}

/// One operation at a time per VM.
pub fn vm_idle(state: &State, vm: &Vm, operation: &str) -> ArmResult<()> {
    let Some(op) = vm.busy.as_ref().and_then(|id| state.operations.get(id)) else {
        return Ok(());
    };
    if matches!(op.kind, OpKind::RunCommand { .. }) {
        return Err(ArmError::conflict(
            "Conflict",
            format!(
                "Run command extension execution is in progress on VM '{}'. Please wait for completion before invoking '{operation}': another operation is in progress.",
                vm.name
            ),
        ));
    }
    Err(ArmError::conflict(
        "OperationNotAllowed",
        format!("Operation '{operation}' is not allowed on VM '{}' since another operation is in progress.", vm.name),
    ))
}

/// A disk that may become one of `vm`'s disks.
pub fn attachable(state: &State, vm: &Vm, disk_key: &str) -> ArmResult<()> {
    let disk = &state.disks[disk_key];
    if disk.provisioning_state != "Succeeded" {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Disk '{}' cannot be attached while its provisioning state is {}.",
                disk.name, disk.provisioning_state
            ),
        ));
    }
    if let Some(owner) = state.owner_of(disk_key) {
        return Err(ArmError::conflict(
            "ConflictingUserInput",
            format!(
                "Disk '{}' cannot be attached as the disk is already owned by VM '{}'.",
                disk.name,
                state.vm_id(owner)
            ),
        ));
    }
    if disk.zone != vm.zone {
        let z = |z: &Option<String>| z.clone().unwrap_or_else(|| "none (regional)".into());
        return Err(ArmError::bad_request(
            "BadRequest",
            format!(
                "Disk {} is not in the same zone as the VM {}: disk zone {}, VM zone {}.",
                disk.name,
                vm.name,
                z(&disk.zone),
                z(&vm.zone)
            ),
        ));
    }
    Ok(())
}

/// Replacing the OS disk (the "OS disk swap").
pub fn os_swappable(state: &State, vm: &Vm, disk_key: &str, name: Option<&str>) -> ArmResult<()> {
    if vm.power != Power::Deallocated {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Cannot change the OS disk of VM '{}' since the VM is not deallocated.",
                vm.name
            ),
        ));
    }
    let disk = &state.disks[disk_key];
    if let Some(n) = name {
        if !n.eq_ignore_ascii_case(&disk.name) {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("The value '{n}' of parameter 'osDisk.name' does not match the name of the managed disk '{}'.", disk.name),
            ));
        }
    }
    attachable(state, vm, disk_key)?;
    usable_as_os_disk(state, disk_key)?;
    if let Some(g) = &disk.hyper_v_generation {
        if !g.eq_ignore_ascii_case(&vm.generation) {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "The HyperVGeneration property of disk '{}' ({g}) and VM '{}' ({}) do not match.",
                    disk.name, vm.name, vm.generation
                ),
            ));
        }
    }
    Ok(())
}

/// An OS disk must say which OS it holds.
pub fn usable_as_os_disk(state: &State, disk_key: &str) -> ArmResult<()> {
    let disk = &state.disks[disk_key];
    if disk.os_type.is_none() {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "Disk '{}' cannot be used as an OS disk because its 'osType' is not set.",
                disk.name
            ),
        ));
    }
    Ok(())
}

/// A data-disk entry as a request describes it.
pub struct WantedDisk {
    pub lun: i32,
    pub disk: String,
    pub create_option: String,
    pub caching: Option<String>,
}

/// Checks a desired data-disk list against the current one; returns the new list.
pub fn data_disks(state: &State, vm: &Vm, wanted: Vec<WantedDisk>) -> ArmResult<Vec<DataDiskRef>> {
    let mut next: Vec<DataDiskRef> = Vec::new();
    for w in wanted {
        if !(0..64).contains(&w.lun) {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("LUN {} is out of range: LUNs are 0 to 63.", w.lun),
            ));
        }
        if next.iter().any(|d| d.lun == w.lun) {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("A disk at LUN {} already exists.", w.lun),
            ));
        }
        if next.iter().any(|d| d.disk == w.disk) {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!(
                    "Disk '{}' is specified more than once.",
                    state.disks[&w.disk].name
                ),
            ));
        }
        match vm.data_disks.iter().find(|d| d.lun == w.lun) {
            Some(cur) if cur.disk == w.disk => next.push(cur.clone()),
            Some(_) => {
                return Err(ArmError::bad_request(
                    "InvalidParameter",
                    format!("A disk at LUN {} already exists.", w.lun),
                ))
            }
            None => {
                if !w.create_option.eq_ignore_ascii_case("Attach") {
                    return Err(ArmError::bad_request(
                        "InvalidParameter",
                        format!(
                            "Data disk at LUN {}: createOption '{}' is not supported by the rescue emulator; attach an existing disk with createOption 'Attach'.",
                            w.lun, w.create_option
                        ),
                    ));
                }
                if vm.os_disk == w.disk || vm.data_disks.iter().any(|d| d.disk == w.disk) {
                    return Err(ArmError::conflict(
                        "ConflictingUserInput",
                        format!(
                            "Disk '{}' is already attached to VM '{}'.",
                            state.disks[&w.disk].name, vm.name
                        ),
                    ));
                }
                attachable(state, vm, &w.disk)?;
                next.push(DataDiskRef {
                    lun: w.lun,
                    disk: w.disk,
                    caching: w.caching.unwrap_or_else(|| "None".into()),
                });
            }
        }
    }
    Ok(next)
}

pub fn run_command_allowed(state: &State, vm: &Vm) -> ArmResult<()> {
    vm_idle(state, vm, "runCommand")?;
    if vm.power != Power::Running {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!("Operation 'RunCommand' is not allowed on VM '{}' since the VM is not running ({}).", vm.name, vm.power.display()),
        ));
    }
    if !vm.agent_ready {
        return Err(ArmError::conflict(
            "VMAgentStatusCommunicationError",
            format!(
                "VM '{}' has not reported status for VM agent or extensions. Verify that the OS is up and healthy, \
                 the VM has a running VM agent, and that it can establish outbound connections to Azure storage.",
                vm.name
            ),
        ));
    }
    Ok(())
}
