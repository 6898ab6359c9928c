//! Virtual machines: model, instance view, GET/list, PUT/PATCH updates (data disks, OS disk
//! swap, tags) and the boot diagnostics log; actions live in `vm_actions`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::arm::{self, ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::latency::*;
use super::super::operations::{Family, OpKind};
use super::super::rules::{self, WantedDisk};
use super::super::server::Emu;
use super::super::state::{Power, State, Vm};
use super::{field, group, tags};

pub(super) fn find<'a>(state: &'a State, rg: &str, name: &str) -> ArmResult<(String, &'a Vm)> {
    let rg = group(state, rg)?;
    let key = arm::key(rg, name);
    // A scale set's instance is not a VM to the virtualMachines API ("Uniform ... instances
    // are not managed through the standalone virtualMachines API", aks-and-run-command.md).
    let vm = state
        .vms
        .get(&key)
        .filter(|vm| vm.scale_set.is_none())
        .ok_or_else(|| ArmError::not_found("virtualMachines", rg, name))?;
    Ok((key, vm))
}

pub(super) fn etag(vm: &Vm) -> String {
    format!("\"{}\"", vm.etag)
}

fn managed_disk(state: &State, key: &str) -> Value {
    let d = &state.disks[key];
    json!({ "id": state.disk_id(d), "storageAccountType": d.sku })
}

/// `properties.storageProfile` (also the attachDetachDataDisks result).
pub fn storage_profile(state: &State, vm: &Vm) -> Value {
    let os = &state.disks[&vm.os_disk];
    let data: Vec<Value> = vm
        .data_disks
        .iter()
        .map(|d| {
            let disk = &state.disks[&d.disk];
            json!({
                "lun": d.lun,
                "name": disk.name,
                "createOption": "Attach",
                "caching": d.caching,
                "managedDisk": managed_disk(state, &d.disk),
                "deleteOption": "Detach",
                "diskSizeGB": disk.size_gb,
                "toBeDetached": false,
            })
        })
        .collect();
    let mut profile = json!({
        "osDisk": {
            "osType": os.os_type.clone().unwrap_or_else(|| "Linux".into()),
            "name": os.name,
            "createOption": vm.os_create_option,
            "caching": "ReadOnly",
            "managedDisk": managed_disk(state, &vm.os_disk),
            "deleteOption": "Detach",
            "diskSizeGB": os.size_gb,
        },
        "dataDisks": data,
    });
    if let Some(img) = &os.creation.image_reference {
        profile["imageReference"] = json!({ "id": img });
    }
    // The spec's StorageProfile.diskControllerType ("SCSI" or "NVMe").
    if let Some(c) = &vm.settings.disk_controller {
        profile["diskControllerType"] = json!(c);
    }
    // An ephemeral OS disk: the spec's DiffDiskSettings (`option: Local`, `placement`), as in
    // its VirtualMachine_Create_WithDiffOsDisk examples.
    if let Some(placement) = &vm.settings.ephemeral_os {
        profile["osDisk"]["diffDiskSettings"] =
            json!({ "option": "Local", "placement": placement });
    }
    profile
}

pub fn render(state: &State, vm: &Vm, expand: bool) -> Value {
    let nics: Vec<Value> = vm
        .nics
        .iter()
        .filter_map(|k| state.nics.get(k))
        .enumerate()
        .map(|(i, n)| {
            let id = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}",
                state.subscription, n.resource_group, n.name
            );
            json!({ "id": id, "properties": { "primary": i == 0 } })
        })
        .collect();
    let mut props = json!({
        "vmId": vm.vm_id,
        "hardwareProfile": { "vmSize": vm.size },
        "storageProfile": storage_profile(state, vm),
        "osProfile": {
            "computerName": vm.name,
            "adminUsername": "azureuser",
            "linuxConfiguration": { "disablePasswordAuthentication": true, "provisionVMAgent": true },
            "allowExtensionOperations": true,
        },
        "networkProfile": { "networkInterfaces": nics },
        "diagnosticsProfile": { "bootDiagnostics": boot_diagnostics_profile(vm) },
        "provisioningState": vm.provisioning_state,
        "timeCreated": arm::rfc3339(vm.time_created),
    });
    // Trusted Launch and confidential VMs carry their security type and UEFI settings (the
    // spec's VirtualMachine_Create_WithSecurityTypeTrustedLaunch... examples); a Standard VM has
    // no securityProfile.
    if let Some(t) = &vm.settings.security_type {
        props["securityProfile"] = json!({
            "securityType": t,
            "uefiSettings": { "secureBootEnabled": true, "vTpmEnabled": true },
        });
    }
    if expand {
        props["instanceView"] = instance_view(state, vm);
    }
    let mut body = json!({
        "id": state.vm_id(vm),
        "name": vm.name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "tags": vm.tags,
        "etag": etag(vm),
        "properties": props,
    });
    if let Some(z) = &vm.zone {
        body["zones"] = json!([z]);
    }
    // Extensions appear in the VM's `resources` (the spec's VirtualMachine.resources, a list of
    // VirtualMachineExtension: publisher, type, typeHandlerVersion, provisioningState).
    if !vm.settings.extensions.is_empty() {
        let id = state.vm_id(vm);
        body["resources"] = json!(vm
            .settings
            .extensions
            .iter()
            .map(|e| {
                let (publisher, ty) = e.rsplit_once('.').unwrap_or(("", e));
                json!({
                    "id": format!("{id}/extensions/{ty}"),
                    "name": ty,
                    "type": "Microsoft.Compute/virtualMachines/extensions",
                    "location": vm.location,
                    "properties": { "publisher": publisher, "type": ty, "typeHandlerVersion": "1.1", "autoUpgradeMinorVersion": true, "provisioningState": "Succeeded" },
                })
            })
            .collect::<Vec<_>>());
    }
    body
}

/// The VirtualMachineInstanceView: power state, VM agent, disks, boot diagnostics.
pub fn instance_view(state: &State, vm: &Vm) -> Value {
    let now = arm::rfc3339(arm::now());
    let provisioning = match vm.provisioning_state.as_str() {
        "Succeeded" => {
            json!({ "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": now })
        }
        other => {
            json!({ "code": format!("ProvisioningState/{}", other.to_ascii_lowercase()), "level": "Info", "displayStatus": format!("{other}") })
        }
    };
    let disks: Vec<Value> = std::iter::once(&vm.os_disk)
        .chain(vm.data_disks.iter().map(|d| &d.disk))
        .map(|k| {
            json!({
                "name": state.disks[k].name,
                "statuses": [ { "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": now } ],
            })
        })
        .collect();
    let mut view = json!({
        "computerName": vm.name,
        "osName": "ubuntu",
        "osVersion": "22.04",
        "hyperVGeneration": vm.generation,
        "disks": disks,
        "statuses": [ provisioning, { "code": vm.power.code(), "level": "Info", "displayStatus": vm.power.display() } ],
    });
    if let Some(storage) = &vm.settings.boot_diagnostics_storage {
        view["bootDiagnostics"] = unmanaged_boot_diagnostics(storage, vm);
    }
    if vm.power == Power::Running {
        let status = if vm.agent_ready {
            json!({ "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready", "message": "Guest Agent is running", "time": now })
        } else {
            json!({ "code": "ProvisioningState/Unavailable", "level": "Warning", "displayStatus": "Not Ready", "message": "VM Agent is unresponsive.", "time": now })
        };
        view["vmAgent"] = json!({ "vmAgentVersion": if vm.agent_ready { "2.12.0.2" } else { "Unknown" }, "statuses": [status] });
    }
    view
}

/// `diagnosticsProfile.bootDiagnostics`: managed storage is `enabled` without a `storageUri`
/// (the spec's BootDiagnostics: "If storageUri is not specified while enabling boot
/// diagnostics, managed storage will be used").
fn boot_diagnostics_profile(vm: &Vm) -> Value {
    match &vm.settings.boot_diagnostics_storage {
        None => json!({ "enabled": true }),
        Some(uri) => json!({ "enabled": true, "storageUri": uri }),
    }
}

/// The instance view's blob URIs, set only for a customer storage account: "This will not be
/// set if boot diagnostics is currently enabled with managed storage" (the spec's
/// BootDiagnosticsInstanceView). The blob names follow the container Azure creates in that
/// account, `bootdiagnostics-<vm name, 9 chars>-<vmId>` (inferred); the emulator serves none of
/// a customer's storage.
fn unmanaged_boot_diagnostics(storage: &str, vm: &Vm) -> Value {
    let short: String = vm
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(9)
        .collect::<String>()
        .to_ascii_lowercase();
    let base = format!(
        "{}/bootdiagnostics-{short}-{}/{}.{}",
        storage.trim_end_matches('/'),
        vm.vm_id,
        vm.name,
        vm.vm_id
    );
    json!({
        "consoleScreenshotBlobUri": format!("{base}.screenshot.bmp"),
        "serialConsoleLogBlobUri": format!("{base}.serialconsole.log"),
    })
}

/// A resource group's VMs, or the subscription's (`rg: None`).
pub fn list(emu: &Emu, call: &Call, rg: Option<&str>) -> ArmResult<Reply> {
    let state = emu.lock();
    let prefix = super::group_prefix(&state, rg)?;
    let value: Vec<Value> = state
        .vms
        .iter()
        .filter(|(k, vm)| k.starts_with(&prefix) && vm.scale_set.is_none())
        .map(|(_, vm)| render(&state, vm, false))
        .collect();
    Ok(super::page(emu, &state, call, rg, value))
}

pub fn get(emu: &Emu, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, name)?;
    let expand = call
        .query("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
    Ok(Reply::json(200, render(&state, vm, expand)).header("ETag", etag(vm)))
}

pub fn instance_view_reply(emu: &Emu, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, name)?;
    Ok(Reply::json(200, instance_view(&state, vm)))
}

/// Reads one data-disk entry of a request body.
pub(super) fn wanted_disk(state: &State, vm: &Vm, entry: &Value) -> ArmResult<Option<WantedDisk>> {
    let lun = field(entry, &["lun"])
        .and_then(Value::as_i64)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidParameter",
                "Required parameter 'dataDisk.lun' is missing (null).",
            )
        })? as i32;
    if field(entry, &["toBeDetached"]).and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let disk = if let Some(id) = field(entry, &["managedDisk", "id"]).and_then(Value::as_str) {
        disk_by_id(state, id)?
    } else if let Some(cur) = vm.data_disks.iter().find(|d| d.lun == lun) {
        cur.disk.clone()
    } else {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "Data disk at LUN {lun}: 'managedDisk.id' is required to attach an existing disk."
            ),
        ));
    };
    Ok(Some(WantedDisk {
        lun,
        disk,
        create_option: field(entry, &["createOption"])
            .and_then(Value::as_str)
            .unwrap_or("Attach")
            .to_string(),
        caching: field(entry, &["caching"])
            .and_then(Value::as_str)
            .map(String::from),
    }))
}

pub(super) fn disk_by_id(state: &State, id: &str) -> ArmResult<String> {
    match arm::parse_resource_id(id) {
        Some((rg, kind, name)) if kind == "disks" => state
            .disk_key_by_id(id)
            .ok_or_else(|| ArmError::not_found("disks", &rg, &name)),
        _ => Err(ArmError::bad_request(
            "InvalidParameter",
            format!("'{id}' is not a managed disk id."),
        )),
    }
}

/// Starts an operation on a VM: the one in flight is preempted (`operations::preempt`), the new
/// one holds the VM.
pub(super) fn begin_vm_op(
    emu: &Emu,
    state: &mut State,
    key: &str,
    kind: OpKind,
    seconds: f64,
    call: &Call,
) -> super::super::operations::Operation {
    super::super::operations::preempt(state, &emu.images, key);
    let op = emu.begin(state, Family::Compute, kind, seconds, call);
    if let Some(v) = state.vms.get_mut(key) {
        v.busy = Some(op.id.clone());
    }
    op
}

/// `If-Match` / `If-None-Match` on a VM write (the 2023-09-01 spec added both, Azure/azure-rest-api-specs
/// #26368). A mismatch is 412 `PreconditionFailed` "Etag provided in if-match header \"2\" does not
/// match etag \"3\" of resource." (kubernetes-sigs/cloud-provider-azure#9728, recorded 2025 on a
/// scale set); the if-none-match text is the same sentence for that header (inferred).
pub(super) fn preconditions(call: &Call, current: Option<&str>) -> ArmResult<()> {
    let header = |name: &str| call.headers.get(name).and_then(|v| v.to_str().ok());
    let failed = |h: &str, given: &str| {
        ArmError::new(
            412,
            "PreconditionFailed",
            format!(
                "Etag provided in {h} header {given} does not match etag {} of resource.",
                current.unwrap_or("\"\"")
            ),
        )
    };
    if let Some(m) = header("if-match") {
        let matches = match current {
            None => false,
            Some(cur) => m.trim() == "*" || m.split(',').any(|e| e.trim() == cur),
        };
        if !matches {
            return Err(failed("if-match", m));
        }
    }
    if let Some(m) = header("if-none-match") {
        let matches = match current {
            None => false,
            Some(cur) => m.trim() == "*" || m.split(',').any(|e| e.trim() == cur),
        };
        if matches {
            return Err(failed("if-none-match", m));
        }
    }
    Ok(())
}

/// PUT/PATCH of a VM: data disks, OS disk swap and size, tags, size.
pub async fn update(emu: &Arc<Emu>, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let body = call.json()?;
    let current_etag = {
        let state = emu.lock();
        group(&state, rg)?;
        find(&state, rg, name).ok().map(|(_, vm)| etag(vm))
    };
    preconditions(call, current_etag.as_deref())?;
    if current_etag.is_none() {
        if call.method == "PUT" {
            return super::vm_create::create(emu, call, rg, name, &body).await;
        }
        return Err(ArmError::not_found("virtualMachines", rg, name));
    }
    let (op, key, reboot) = {
        let mut state = emu.lock();
        let (key, vm) = find(&state, rg, name)?;
        let vm = vm.clone();
        preconditions(call, Some(&etag(&vm)))?;
        rules::vm_accepts(&state, &vm, "Update VM")?;
        let change = requested_change(&state, &vm, &body)?;
        let reboot = change.os_disk.is_some() && vm.power == Power::Running;
        let seconds = if change.os_disk.is_some() || change.size.is_some() {
            OS_SWAP
        } else if change.data_disks.is_some() {
            VM_UPDATE
        } else {
            NO_OP
        };
        // A running VM restarts on a new OS disk (Azure/azure-powershell#4892): its operation
        // boots it, as a restart does.
        let kind = if reboot {
            OpKind::VmPower {
                vm: key.clone(),
                target: Power::Running,
                boot: None,
            }
        } else {
            OpKind::VmUpdate { vm: key.clone() }
        };
        let op = begin_vm_op(emu, &mut state, &key, kind, seconds, call);
        if !call.lro_failed() {
            change.apply(&mut state, &key);
        }
        let v = state.vms.get_mut(&key).expect("found above");
        v.etag += 1;
        v.provisioning_state = "Updating".into();
        if reboot && !call.lro_failed() {
            v.power = Power::Starting;
            v.agent_ready = false;
        }
        emu.save(&state)?;
        (op, key, reboot && !call.lro_failed())
    };
    if reboot {
        super::vm_actions::boot_into(emu, &op.id, &key).await?;
    }
    let state = emu.lock();
    let vm = &state.vms[&key];
    let reply = Reply::json(200, render(&state, vm, false)).header("ETag", etag(vm));
    Ok(emu.lro_headers(&state, &op, reply, false))
}

/// What a VM PUT/PATCH asks to change, checked against Azure's rules.
struct Change {
    os_disk: Option<String>,
    /// (disk key, new size) of the OS disk.
    os_disk_size: Option<(String, u64)>,
    data_disks: Option<Vec<super::super::state::DataDiskRef>>,
    tags: Option<serde_json::Map<String, Value>>,
    size: Option<String>,
}

impl Change {
    fn apply(self, state: &mut State, key: &str) {
        if let Some((disk, gb)) = &self.os_disk_size {
            if let Some(d) = state.disks.get_mut(disk) {
                d.size_gb = *gb;
            }
        }
        state.set_disks(key, self.os_disk, self.data_disks);
        let v = state.vms.get_mut(key).expect("caller found the VM");
        if let Some(t) = self.tags {
            v.tags = t;
        }
        if let Some(size) = self.size {
            v.size = size;
        }
    }
}

fn requested_change(state: &State, vm: &Vm, body: &Value) -> ArmResult<Change> {
    let storage = field(body, &["properties", "storageProfile"]);
    let os = storage.and_then(|s| field(s, &["osDisk"]));
    if let Some(opt) = os
        .and_then(|o| field(o, &["createOption"]))
        .and_then(Value::as_str)
    {
        if !opt.eq_ignore_ascii_case(&vm.os_create_option) {
            // Azure/azure-sdk-for-net#37285: "Changing property 'osDisk.createOption' is not
            // allowed." with HTTP 409.
            return Err(ArmError::conflict(
                "PropertyChangeNotAllowed",
                "Changing property 'osDisk.createOption' is not allowed.",
            )
            .with_target("osDisk.createOption"));
        }
    }
    let mut os_disk = None;
    if let Some(id) = os
        .and_then(|o| field(o, &["managedDisk", "id"]))
        .and_then(Value::as_str)
    {
        let disk = disk_by_id(state, id)?;
        if disk != vm.os_disk {
            rules::os_swappable(state, vm, &disk)?;
            os_disk = Some(disk);
        }
    }
    let os_key = os_disk.clone().unwrap_or_else(|| vm.os_disk.clone());
    let mut os_disk_size = None;
    if let Some(gb) = os
        .and_then(|o| field(o, &["diskSizeGB"]))
        .and_then(Value::as_u64)
    {
        let d = &state.disks[&os_key];
        if gb != d.size_gb {
            // The OS disk is resized through the VM; DiskRP's rules apply (a swap whose body
            // names the old, smaller size is refused this way: MicrosoftDocs/azure-docs#47704).
            rules::not_smaller(&d.name, d.size_gb, gb)?;
            rules::resizable_as_os_disk_of(state, vm, &os_key)?;
            os_disk_size = Some((os_key.clone(), gb));
        }
    }
    let data_disks = match storage.and_then(|s| field(s, &["dataDisks"])) {
        None => None,
        Some(Value::Array(entries)) => {
            let mut wanted = Vec::new();
            for e in entries {
                wanted.extend(wanted_disk(state, vm, e)?);
            }
            Some(rules::data_disks(state, vm, wanted)?)
        }
        // (inferred) ARM's deserialization error for a non-array.
        Some(_) => {
            return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'dataDisks' must be an array.",
            ))
        }
    };
    // A resize is accepted as Azure does (a running VM restarts on the new size).
    let size = field(body, &["properties", "hardwareProfile", "vmSize"])
        .and_then(Value::as_str)
        .filter(|s| !s.eq_ignore_ascii_case(&vm.size))
        .map(String::from);
    Ok(Change {
        os_disk,
        os_disk_size,
        data_disks,
        tags: tags(body)?,
        size,
    })
}

/// The boot diagnostics blobs of managed storage, handed out by retrieveBootDiagnosticsData as
/// SAS URIs: read-only (`sp=r`), of one blob (`sr=b`), valid until `se`, signed (`sig`) as Azure
/// Storage's service SAS is (Microsoft's "Create a service SAS": sv, sr, sp, se, sig).
pub fn boot_diagnostics_urls(emu: &Emu, vm: &Vm, minutes: f64) -> Value {
    let expiry = arm::now() + time::Duration::seconds_f64(minutes * 60.0 * emu.time_scale);
    let se = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let url = |blob: &str| {
        let path = format!("{}/{blob}", vm.vm_id);
        format!(
            "{}{}{path}?sv=2021-08-06&sr=b&sp=r&se={}&sig={}",
            emu.base,
            super::super::routes::SERIAL_LOG_PREFIX,
            url::form_urlencoded::byte_serialize(se.as_bytes()).collect::<String>(),
            super::super::auth::sign(&emu.sas_key, &format!("{path}\n{se}"))
        )
    };
    json!({
        "consoleScreenshotBlobUri": url(SCREENSHOT),
        "serialConsoleLogBlobUri": url(SERIAL_LOG),
    })
}

const SERIAL_LOG: &str = "serialconsole.log";
const SCREENSHOT: &str = "screenshot.bmp";

/// An Azure Storage error: XML `<Error><Code/><Message/>...` with the service's texts
/// (Microsoft's "Blob service error codes": BlobNotFound "The specified blob does not exist.",
/// AuthenticationFailed "Server failed to authenticate the request. Make sure the value of
/// Authorization header is formed correctly including the signature."); an expired SAS adds
/// "Signature not valid in the specified time frame" as its AuthenticationErrorDetail.
fn storage_error(status: u16, code: &str, message: &str, detail: Option<&str>) -> Reply {
    let detail = detail
        .map(|d| format!("<AuthenticationErrorDetail>{d}</AuthenticationErrorDetail>"))
        .unwrap_or_default();
    let xml = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{}\nTime:{}</Message>{detail}</Error>",
        arm::guid(),
        arm::rfc3339(arm::now())
    );
    Reply::raw(status, "application/xml", xml.into_bytes())
}

/// Serves a boot diagnostics blob at its SAS URI.
pub fn serial_log(emu: &Emu, blob: &str, query: &[(String, String)]) -> Reply {
    const AUTH: &str = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.";
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let se = q("se");
    if q("sig") != super::super::auth::sign(&emu.sas_key, &format!("{blob}\n{se}")) {
        return storage_error(403, "AuthenticationFailed", AUTH, None);
    }
    let expired = time::OffsetDateTime::parse(se, &time::format_description::well_known::Rfc3339)
        .map_or(true, |t| t < arm::now());
    if expired {
        return storage_error(
            403,
            "AuthenticationFailed",
            AUTH,
            Some("Signature not valid in the specified time frame"),
        );
    }
    let (vm_id, name) = blob.split_once('/').unwrap_or((blob, ""));
    let state = emu.lock();
    match (state.vms.values().find(|v| v.vm_id == vm_id), name) {
        (Some(vm), SERIAL_LOG) => Reply::raw(
            200,
            "text/plain; charset=utf-8",
            vm.serial_log.clone().into_bytes(),
        ),
        (Some(_), SCREENSHOT) => Reply::raw(200, "image/bmp", console_screenshot()),
        _ => storage_error(
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
            None,
        ),
    }
}

/// A console screenshot: a Linux VM's text console, black (8x8, 24-bit BMP).
fn console_screenshot() -> Vec<u8> {
    const SIDE: u32 = 8;
    let pixels = (SIDE * SIDE * 3) as usize;
    let mut bmp = Vec::with_capacity(54 + pixels);
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(54 + pixels as u32).to_le_bytes());
    bmp.extend_from_slice(&[0, 0, 0, 0]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&SIDE.to_le_bytes());
    bmp.extend_from_slice(&SIDE.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp.resize(54 + pixels, 0);
    bmp
}
