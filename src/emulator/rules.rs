//! What Azure refuses, with the status, code and text Azure answers. Each rule names its source
//! (a recorded response quoted in a GitHub issue, a REST spec example, Microsoft's docs); where
//! no source shows the text, the comment says "(inferred)" and the text is the nearest one a
//! source does show.

use super::arm::{ArmError, ArmResult};
use super::operations::OpKind;
use super::state::{DataDiskRef, Power, State, Vm};

/// DiskRP: deleting an attached disk is 409 `OperationNotAllowed` "Disk {name} is attached to VM
/// {vm id}." (ansible/ansible#54644 quotes "Disk mdb57dc956081 is attached to VM
/// /subscriptions/.../virtualMachines/trb57dc95608.").
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

/// A VM being deleted takes no other operation: 409 `OperationNotAllowed` "Operation '{op}' is
/// not allowed on VM '{name}' since the VM is marked for deletion. You can only retry the Delete
/// operation (or wait for an ongoing one to complete)." (Azure/azure-sdk-for-python#2702 with
/// 'Update VM', sassoftware/viya4-iac-azure#140 with 'startTenantUpdate'). Any other operation in
/// flight is preempted by the new one (see `operations::preempt`), not refused.
pub fn vm_accepts(state: &State, vm: &Vm, operation: &str) -> ArmResult<()> {
    let deleting = vm
        .busy
        .as_ref()
        .and_then(|id| state.operations.get(id))
        .is_some_and(|op| {
            op.status == super::operations::Status::InProgress
                && matches!(op.kind, OpKind::VmDelete { .. })
        });
    if deleting {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Operation '{operation}' is not allowed on VM '{}' since the VM is marked for deletion. \
                 You can only retry the Delete operation (or wait for an ongoing one to complete).",
                vm.name
            ),
        ));
    }
    Ok(())
}

/// ARM's answer to a write racing another on the same resource: 409 `Conflict` "The request
/// failed due to conflict with a concurrent request. To resolve it, please refer to
/// https://aka.ms/activitylog to get more details on the conflicting requests."
/// (Azure/azure-cli#15765, recorded 2020; kubernetes/kubernetes#50150 shows the older text
/// without the second sentence). Used for a disk still being created or updated.
pub fn concurrent_request() -> ArmError {
    ArmError::conflict(
        "Conflict",
        "The request failed due to conflict with a concurrent request. To resolve it, please refer to \
         https://aka.ms/activitylog to get more details on the conflicting requests.",
    )
}

/// A disk that may become one of `vm`'s disks.
pub fn attachable(state: &State, vm: &Vm, disk_key: &str) -> ArmResult<()> {
    let disk = &state.disks[disk_key];
    if disk.provisioning_state != "Succeeded" {
        // (inferred) no recording of an attach racing the disk's own creation was found.
        return Err(concurrent_request());
    }
    let disk_id = state.disk_id(disk);
    if let Some(owner) = state.owner_of(disk_key) {
        // 409 `ConflictingUserInput` with the disk as target (kubernetes-sigs/azuredisk-csi-driver
        // #1378, recorded 2022: "Cannot attach the disk pvc-… to VM /subscriptions/… because it
        // is already attached to VM /subscriptions/…. A disk can be attached to only one VM at a
        // time.").
        return Err(attached_to(state, vm, disk_key, owner));
    }
    match (&disk.zone, &vm.zone) {
        (a, b) if a == b => Ok(()),
        // 400 `BadRequest` "Disk {id} cannot be attached to the VM because it is not in zone '1'."
        // for a regional disk (jrudlin/Azure#7, recorded 2023) ...
        (None, Some(z)) => Err(ArmError::bad_request(
            "BadRequest",
            format!("Disk {disk_id} cannot be attached to the VM because it is not in zone '{z}'."),
        )),
        // ... and "... because it is not in the same zone as the VM. VM zone: '1'. Disk zone:
        // '2'." for a disk in another zone (jenkins-infra/azure#1406, recorded 2026); a zonal
        // disk on a regional VM gets the same (inferred).
        (d, v) => Err(ArmError::bad_request(
            "BadRequest",
            format!(
                "Disk {disk_id} cannot be attached to the VM because it is not in the same zone as the VM. \
                 VM zone: '{}'. Disk zone: '{}'.",
                v.clone().unwrap_or_default(),
                d.clone().unwrap_or_default()
            ),
        )),
    }
}

/// Replacing the OS disk (the "OS disk swap"). Microsoft's swap article says "You don't need to
/// stop the VM before you swap its OS disk" (azure-compute-docs linux/os-disk-swap.md; a running
/// VM restarts on the new disk, Azure/azure-powershell#4892), so the power state is not checked.
/// What the disk must match is.
pub fn os_swappable(state: &State, vm: &Vm, disk_key: &str) -> ArmResult<()> {
    attachable(state, vm, disk_key)?;
    let disk = &state.disks[disk_key];
    // 409 `PropertyChangeNotAllowed` "Swapping OS Disk is not supported since HyperVisor property
    // on the OSDisk and VM do not match. Please make sure the HyperVisor property on the OSDisk is
    // HyperVisor Generation 'V2'" (MicrosoftDocs/SupportArticles-docs#214 and #338; a disk without
    // a generation is a V1 disk there).
    let disk_generation = disk.hyper_v_generation.as_deref().unwrap_or("V1");
    if !disk_generation.eq_ignore_ascii_case(&vm.generation) {
        return Err(ArmError::conflict(
            "PropertyChangeNotAllowed",
            format!(
                "Swapping OS Disk is not supported since HyperVisor property on the OSDisk and VM do not match. \
                 Please make sure the HyperVisor property on the OSDisk is HyperVisor Generation '{}'",
                vm.generation
            ),
        ));
    }
    // 400 `BadRequest` "Security type of VM is not compatible with the security type of attached
    // OS Disk." (Azure/azure-sdk-for-python#30479, recorded 2023 for a VM made on a Trusted Launch
    // disk; the swap's check is the same comparison, inferred).
    let standard = |t: &Option<String>| {
        t.clone()
            .filter(|t| !t.eq_ignore_ascii_case("Standard"))
            .map(|t| t.to_ascii_lowercase())
    };
    if standard(&disk.settings.security_type) != standard(&vm.settings.security_type) {
        return Err(ArmError::bad_request(
            "BadRequest",
            "Security type of VM is not compatible with the security type of attached OS Disk.",
        ));
    }
    architecture_matches(vm, disk.settings.architecture.as_deref())
}

/// 400 `BadRequest` "Cannot create a VM of size '{size}' because this VM size only supports a
/// CPU Architecture of 'Arm64', but an image or disk with CPU Architecture 'x64' was given. Please
/// check that the CPU Architecture of the image or disk is compatible with that of the VM size."
/// (Azure/azure-cli-extensions#5826, recorded 2023 on create; a swap is checked the same way,
/// inferred).
pub fn architecture_matches(vm: &Vm, disk_architecture: Option<&str>) -> ArmResult<()> {
    let vm_arch = vm.settings.architecture.as_deref().unwrap_or("x64");
    let disk_arch = disk_architecture.unwrap_or("x64");
    if vm_arch.eq_ignore_ascii_case(disk_arch) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "BadRequest",
        format!(
            "Cannot create a VM of size '{}' because this VM size only supports a CPU Architecture of '{vm_arch}', \
             but an image or disk with CPU Architecture '{disk_arch}' was given. Please check that the CPU \
             Architecture of the image or disk is compatible with that of the VM size.",
            vm.size
        ),
    ))
}

/// A data-disk entry as a request describes it.
pub struct WantedDisk {
    pub lun: i32,
    pub disk: String,
    pub create_option: String,
    pub caching: Option<String>,
}

/// 400 `InvalidParameter` "A disk at LUN {n} already exists." (Azure/azure-sdk-for-go#678,
/// recorded 2017).
fn lun_taken(lun: i32) -> ArmError {
    ArmError::bad_request(
        "InvalidParameter",
        format!("A disk at LUN {lun} already exists."),
    )
}

/// Checks a desired data-disk list against the current one; returns the new list.
pub fn data_disks(state: &State, vm: &Vm, wanted: Vec<WantedDisk>) -> ArmResult<Vec<DataDiskRef>> {
    let mut next: Vec<DataDiskRef> = Vec::new();
    for w in wanted {
        if !(0..64).contains(&w.lun) {
            // Azure/azure-cli#6965 reports "parameter 'dataDisk.lun' is out of range" for LUN 64;
            // the rest of the sentence is CRP's wording for other ranged parameters (inferred).
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!(
                    "The value {} of parameter 'dataDisk.lun' is out of range. The value must be between '0' and '63', inclusive.",
                    w.lun
                ),
            )
            .with_target("dataDisk.lun"));
        }
        if next.iter().any(|d| d.lun == w.lun) {
            return Err(lun_taken(w.lun));
        }
        if next.iter().any(|d| d.disk == w.disk) {
            // (inferred) the same disk twice in one request is the disk already attached.
            return Err(already_attached(state, vm, &w.disk));
        }
        match vm.data_disks.iter().find(|d| d.lun == w.lun) {
            Some(cur) if cur.disk == w.disk => next.push(cur.clone()),
            Some(_) => return Err(lun_taken(w.lun)),
            None => {
                if !w.create_option.eq_ignore_ascii_case("Attach") {
                    // Not an Azure rule: Azure creates an Empty or FromImage data disk here; this
                    // emulator only attaches existing disks, and says so.
                    return Err(ArmError::bad_request(
                        "InvalidParameter",
                        format!(
                            "Data disk at LUN {}: createOption '{}' is not supported by the rescue emulator; attach an existing disk with createOption 'Attach'.",
                            w.lun, w.create_option
                        ),
                    ));
                }
                if vm.os_disk == w.disk || vm.data_disks.iter().any(|d| d.disk == w.disk) {
                    return Err(already_attached(state, vm, &w.disk));
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

/// The owner rule's error; a disk this VM already has, attached again elsewhere in its list,
/// gets it with the VM as its own owner (inferred).
fn attached_to(state: &State, vm: &Vm, disk_key: &str, owner: &Vm) -> ArmError {
    let disk = &state.disks[disk_key];
    ArmError::conflict(
        "ConflictingUserInput",
        format!(
            "Cannot attach the disk {} to VM {} because it is already attached to VM {}. \
             A disk can be attached to only one VM at a time.",
            disk.name,
            state.vm_id(vm),
            state.vm_id(owner)
        ),
    )
    .with_target(&state.disk_id(disk))
}

fn already_attached(state: &State, vm: &Vm, disk_key: &str) -> ArmError {
    attached_to(state, vm, disk_key, vm)
}

/// 409 `OperationNotAllowed` "The operation requires the VM to be running (or set to run)." for
/// an action on a VM that is not running (MicrosoftDocs/azure-docs#32404 quotes it).
pub fn running(vm: &Vm) -> ArmResult<()> {
    if vm.power == Power::Running {
        return Ok(());
    }
    Err(ArmError::conflict(
        "OperationNotAllowed",
        "The operation requires the VM to be running (or set to run).",
    ))
}

/// Action Run Command: one at a time per VM, 409 `Conflict` "Run command extension execution is
/// in progress. Please wait for completion before invoking a run command."
/// (MicrosoftDocs/azure-docs#43356 and #110433 quote it); and only on a running VM.
pub fn run_command_allowed(state: &State, vm: &Vm) -> ArmResult<()> {
    let in_progress = vm
        .run_command
        .as_ref()
        .and_then(|id| state.operations.get(id))
        .is_some_and(|op| op.status == super::operations::Status::InProgress);
    if in_progress {
        return Err(ArmError::conflict(
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        ));
    }
    running(vm)
}

/// Extensions (managed Run Command is one) change only on a running VM: 409
/// `OperationNotAllowed` "Cannot modify extensions in the VM when the VM is not running."
/// (hashicorp/terraform-provider-azurerm#477 and #6098, Azure/RDS-Templates#685).
pub fn extensions_modifiable(vm: &Vm) -> ArmResult<()> {
    if vm.power == Power::Running {
        return Ok(());
    }
    Err(ArmError::conflict(
        "OperationNotAllowed",
        "Cannot modify extensions in the VM when the VM is not running.",
    ))
}

/// An extension that was never published for Arm64: 404 `ExtensionNotFoundForCPUArchitecture`
/// "Extension with publisher '{p}', type '{t}', and type handler version '{v}' for CPU
/// Architecture 'arm64' was not found in the extension repository." (MicrosoftDocs/azure-docs
/// #108577 and kubernetes-sigs/cluster-api-provider-azure#3423 quote it for other extensions;
/// managed Run Command is "Not Supported" on ARM64 for every distribution in Microsoft's
/// run-command-managed.md, and its handler is Microsoft.CPlat.Core.RunCommandHandlerLinux 1.3
/// per run-command-handler-linux misc/manifest.xml).
pub fn managed_run_command_available(vm: &Vm) -> ArmResult<()> {
    let arm64 = vm
        .settings
        .architecture
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case("Arm64"));
    if !arm64 {
        return Ok(());
    }
    Err(ArmError::new(
        404,
        "ExtensionNotFoundForCPUArchitecture",
        "Extension with publisher 'Microsoft.CPlat.Core', type 'RunCommandHandlerLinux', and type handler version '1.3' \
         for CPU Architecture 'arm64' was not found in the extension repository.",
    ))
}

/// 409 `OperationNotAllowed` with `innererror.internalErrorCode` ChangeDiskSizeWhileAttachedNotAllowed:
/// "Cannot resize disk {name} while it is attached to running VM {vm id}. Resizing a disk of an
/// Azure Virtual Machine requires the virtual machine to be deallocated. Please stop your VM and
/// retry the operation." (kubernetes/kubernetes#96706 quotes the whole body). Data disks may grow
/// while attached (Microsoft's "Expand without downtime" in linux/expand-disks.md); OS disks not.
pub fn resizable(state: &State, disk_key: &str) -> ArmResult<()> {
    match state.vms.values().find(|vm| vm.os_disk == disk_key) {
        Some(vm) => resizable_as_os_disk_of(state, vm, disk_key),
        None => Ok(()),
    }
}

/// The same rule for a disk that is, or is about to be, `vm`'s OS disk.
pub fn resizable_as_os_disk_of(state: &State, vm: &Vm, disk_key: &str) -> ArmResult<()> {
    if vm.power == Power::Deallocated {
        return Ok(());
    }
    Err(ArmError::conflict(
        "OperationNotAllowed",
        format!(
            "Cannot resize disk {} while it is attached to running VM {}. Resizing a disk of an Azure Virtual Machine \
             requires the virtual machine to be deallocated. Please stop your VM and retry the operation.",
            state.disks[disk_key].name,
            state.vm_id(vm)
        ),
    )
    .with_internal_code("ChangeDiskSizeWhileAttachedNotAllowed"))
}

/// 400 `BadRequest` "The disk {name} cannot be resized down. Reducing disk/snapshot size is not
/// supported in Azure to prevent data loss. If you do need to reduce the size of the disk,
/// please create new snapshot/disks with the appropriate size. More information is available at
/// https://aka.ms/AzureDisksFAQ." (MicrosoftDocs/azure-docs#47704, recorded 2020).
pub fn not_smaller(name: &str, from_gb: u64, to_gb: u64) -> ArmResult<()> {
    if to_gb >= from_gb {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "BadRequest",
        format!(
            "The disk {name} cannot be resized down. Reducing disk/snapshot size is not supported in Azure to prevent \
             data loss. If you do need to reduce the size of the disk, please create new snapshot/disks with the \
             appropriate size. More information is available at https://aka.ms/AzureDisksFAQ."
        ),
    ))
}

/// 400 `InvalidParameter` with the parameter as target, "Required parameter '{p}' is missing
/// (null)." (Azure/azure-powershell#4001 quotes the body for 'osDisk'; #9409 shows
/// 'dataDisk.managedDisk').
pub fn missing(parameter: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidParameter",
        format!("Required parameter '{parameter}' is missing (null)."),
    )
    .with_target(parameter)
}
