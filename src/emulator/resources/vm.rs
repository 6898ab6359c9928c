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
    let vm = state
        .vms
        .get(&key)
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
    profile
}

pub fn render(emu: &Emu, state: &State, vm: &Vm, expand: bool) -> Value {
    let nic = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}-nic",
        state.subscription, vm.resource_group, vm.name
    );
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
        "networkProfile": { "networkInterfaces": [ { "id": nic, "properties": { "primary": true } } ] },
        "diagnosticsProfile": { "bootDiagnostics": { "enabled": true } },
        "provisioningState": vm.provisioning_state,
        "timeCreated": arm::rfc3339(vm.time_created),
    });
    if vm.generation == "V2" {
        props["securityProfile"] =
            json!({ "uefiSettings": { "secureBootEnabled": false, "vTpmEnabled": false } });
    }
    if expand {
        props["instanceView"] = instance_view(emu, state, vm);
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
    body
}

/// The VirtualMachineInstanceView: power state, VM agent, disks, boot diagnostics.
pub fn instance_view(emu: &Emu, state: &State, vm: &Vm) -> Value {
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
        "bootDiagnostics": { "serialConsoleLogBlobUri": emu.serial_log_url(&vm.vm_id) },
        "statuses": [ provisioning, { "code": vm.power.code(), "level": "Info", "displayStatus": vm.power.display() } ],
    });
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

/// A resource group's VMs, or the subscription's (`rg: None`).
pub fn list(emu: &Emu, call: &Call, rg: Option<&str>) -> ArmResult<Reply> {
    let state = emu.lock();
    let prefix = super::group_prefix(&state, rg)?;
    let value: Vec<Value> = state
        .vms
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, vm)| render(emu, &state, vm, false))
        .collect();
    Ok(super::page(emu, &state, call, rg, value))
}

pub fn get(emu: &Emu, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, name)?;
    let expand = call
        .query("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
    Ok(Reply::json(200, render(emu, &state, vm, expand)).header("ETag", etag(vm)))
}

pub fn instance_view_reply(emu: &Emu, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, name)?;
    Ok(Reply::json(200, instance_view(emu, &state, vm)))
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

/// PUT/PATCH of a VM: data disks, OS disk swap, tags.
pub async fn update(emu: &Arc<Emu>, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let body = call.json()?;
    let exists = {
        let state = emu.lock();
        group(&state, rg)?;
        find(&state, rg, name).is_ok()
    };
    if !exists {
        if call.method == "PUT" {
            return super::vm_create::create(emu, call, rg, name, &body).await;
        }
        return Err(ArmError::not_found("virtualMachines", rg, name));
    }
    let mut state = emu.lock();
    let (key, vm) = find(&state, rg, name)?;
    let vm = vm.clone();
    if let Some(m) = call.headers.get("if-match").and_then(|v| v.to_str().ok()) {
        if m != "*" && m != etag(&vm) {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                format!("The condition specified using HTTP conditional header(s) is not met: If-Match {m}, current etag {}.", etag(&vm)),
            ));
        }
    }
    let op_name = if call.method == "PUT" {
        "createOrUpdate"
    } else {
        "update"
    };
    rules::vm_idle(&state, &vm, op_name)?;
    let storage = field(&body, &["properties", "storageProfile"]);
    let os = storage.and_then(|s| field(s, &["osDisk"]));
    if let Some(opt) = os
        .and_then(|o| field(o, &["createOption"]))
        .and_then(Value::as_str)
    {
        if !opt.eq_ignore_ascii_case(&vm.os_create_option) {
            return Err(ArmError::conflict(
                "PropertyChangeNotAllowed",
                "Changing property 'osDisk.createOption' is not allowed.",
            ));
        }
    }
    let mut new_os = None;
    if let Some(id) = os
        .and_then(|o| field(o, &["managedDisk", "id"]))
        .and_then(Value::as_str)
    {
        let disk = disk_by_id(&state, id)?;
        if disk != vm.os_disk {
            rules::os_swappable(
                &state,
                &vm,
                &disk,
                os.and_then(|o| field(o, &["name"])).and_then(Value::as_str),
            )?;
            new_os = Some(disk);
        }
    }
    let new_data = match storage.and_then(|s| field(s, &["dataDisks"])) {
        None => None,
        Some(Value::Array(entries)) => {
            let mut wanted = Vec::new();
            for e in entries {
                wanted.extend(wanted_disk(&state, &vm, e)?);
            }
            Some(rules::data_disks(&state, &vm, wanted)?)
        }
        Some(_) => {
            return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "'dataDisks' must be an array.",
            ))
        }
    };
    let new_tags = tags(&body)?;
    // A resize is accepted as Azure does (a running VM restarts on the new size).
    let new_size = field(&body, &["properties", "hardwareProfile", "vmSize"])
        .and_then(Value::as_str)
        .filter(|s| !s.eq_ignore_ascii_case(&vm.size))
        .map(String::from);
    let seconds = if new_os.is_some() || new_size.is_some() {
        OS_SWAP
    } else if new_data.is_some() {
        VM_UPDATE
    } else {
        NO_OP
    };
    let op = emu.begin(
        &mut state,
        Family::Compute,
        OpKind::VmUpdate { vm: key.clone() },
        seconds,
        call,
    );
    if !call.lro_failed() {
        state.set_disks(&key, new_os, new_data);
    }
    let v = state.vms.get_mut(&key).expect("found above");
    if !call.lro_failed() {
        if let Some(t) = new_tags {
            v.tags = t;
        }
        if let Some(size) = new_size {
            v.size = size;
        }
    }
    v.etag += 1;
    v.provisioning_state = "Updating".into();
    v.busy = Some(op.id.clone());
    emu.save(&state)?;
    let vm = &state.vms[&key];
    let reply = Reply::json(200, render(emu, &state, vm, false)).header("ETag", etag(vm));
    Ok(emu.lro_headers(&state, &op, reply, false))
}

/// The boot diagnostics serial log, served at a signed URL like a SAS blob.
pub fn serial_log(emu: &Emu, vm_id: &str, query: &[(String, String)]) -> Reply {
    let sig = query
        .iter()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if sig != super::super::auth::sign(&emu.sas_key, vm_id) {
        return Reply::from(ArmError::new(
            403,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        ));
    }
    let state = emu.lock();
    match state.vms.values().find(|v| v.vm_id == vm_id) {
        Some(vm) => Reply {
            status: 200,
            headers: Vec::new(),
            body: None,
            text: Some(vm.serial_log.clone()),
        },
        None => Reply::from(ArmError::new(
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
        )),
    }
}
