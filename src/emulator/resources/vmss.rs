//! `Microsoft.Compute/virtualMachineScaleSets` (Uniform, as AKS's pools are) and their instances
//! (`virtualMachineScaleSets/{ss}/virtualMachines/{instanceId}`): GET and lists, the instance
//! view, power actions per instance and over `instanceIds`, and data disk detach (incl.
//! ForceDetach) by PUT/PATCH of the instance.
//!
//! Shapes: azure-rest-api-specs ComputeRP `virtualMachineScaleSet.json` (VirtualMachineScaleSet:
//! `sku.capacity`, `properties.orchestrationMode`, `virtualMachineProfile`) and
//! `virtualMachineScaleSetVM.json` (VirtualMachineScaleSetVM: `instanceId`, `latestModelApplied`,
//! `osProfile.computerName`, `storageProfile`; `$expand=instanceView`; the `instanceView`
//! sub-resource; powerOff / start / deallocate / restart answer 202 as the VM actions do).
//! Instances share the VM machinery (`Vm` with `scale_set` set): boots, power operations and
//! disk ownership behave as a standalone VM's.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::arm::{ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::latency::*;
use super::super::operations::{Family, OpKind};
use super::super::rules::{self, WantedDisk};
use super::super::server::Emu;
use super::super::state::{Power, ScaleSet, State, Vm};
use super::vm::begin_vm_op;
use super::{field, group};

/// Where an instance is: its group, scale set and instance id, as the path names them.
pub struct Instance<'a> {
    pub rg: &'a str,
    pub scale_set: &'a str,
    pub id: &'a str,
}

fn find<'a>(state: &'a State, rg: &str, name: &str) -> ArmResult<(String, &'a ScaleSet)> {
    let rg = group(state, rg)?;
    let key = super::super::arm::key(rg, name);
    let ss = state
        .scale_sets
        .get(&key)
        .ok_or_else(|| ArmError::not_found("virtualMachineScaleSets", rg, name))?;
    Ok((key, ss))
}

/// An instance by its id; a missing one is ARM's 404 on the instance's own type (inferred from
/// the compute RP's ResourceNotFound on VMs).
fn instance<'a>(state: &'a State, at: &Instance<'_>) -> ArmResult<(String, &'a Vm)> {
    let (ss_key, ss) = find(state, at.rg, at.scale_set)?;
    let id = at.id;
    let missing = || {
        ArmError::not_found(
            &format!("virtualMachineScaleSets/{}/virtualMachines", ss.name),
            &ss.resource_group,
            id,
        )
    };
    let n: u64 = id.parse().map_err(|_| missing())?;
    super::super::aks::members(state, &ss_key)
        .find(|(_, v)| v.scale_set.as_ref().is_some_and(|m| m.instance_id == n))
        .map(|(k, v)| (k.clone(), v))
        .ok_or_else(missing)
}

fn render_scale_set(state: &State, key: &str, ss: &ScaleSet) -> Value {
    let capacity = super::super::aks::members(state, key).count();
    let id = super::super::arm::resource_id(
        &state.subscription,
        &ss.resource_group,
        "virtualMachineScaleSets",
        &ss.name,
    );
    let mut body = json!({
        "id": id,
        "name": ss.name,
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": ss.location,
        "tags": ss.tags,
        "sku": { "name": ss.size, "tier": "Standard", "capacity": capacity },
        "properties": {
            "singlePlacementGroup": false,
            "orchestrationMode": "Uniform",
            "upgradePolicy": { "mode": "Manual" },
            "overprovision": false,
            "doNotRunExtensionsOnOverprovisionedVMs": false,
            "provisioningState": "Succeeded",
            "uniqueId": ss.unique_id,
            "timeCreated": super::super::arm::rfc3339(ss.time_created),
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": ss.name,
                    "adminUsername": "azureuser",
                    "linuxConfiguration": { "disablePasswordAuthentication": true, "provisionVMAgent": true },
                },
                "storageProfile": {
                    "imageReference": { "id": super::super::scenario::AKS_IMAGE },
                    "osDisk": { "createOption": "FromImage", "caching": "ReadOnly", "osType": "Linux", "managedDisk": { "storageAccountType": "Premium_LRS" } },
                },
            },
        },
    });
    if !ss.zones.is_empty() {
        body["zones"] = json!(ss.zones);
    }
    body
}

/// The instance view of an instance: a VM's, with the instance's computer name.
fn instance_view(state: &State, vm: &Vm) -> Value {
    let mut view = super::vm::instance_view(state, vm);
    if let Some(m) = &vm.scale_set {
        view["computerName"] = json!(m.computer_name);
    }
    view
}

/// A VM's model with what makes it an instance: its type, `instanceId`, `sku` and computer name.
fn render_instance(state: &State, vm: &Vm, expand: bool) -> Value {
    let m = vm.scale_set.as_ref().expect("an instance");
    let mut body = super::vm::render(state, vm, false);
    body["type"] = json!("Microsoft.Compute/virtualMachineScaleSets/virtualMachines");
    body["instanceId"] = json!(m.instance_id.to_string());
    body["sku"] = json!({ "name": vm.size, "tier": "Standard" });
    let props = &mut body["properties"];
    props["latestModelApplied"] = json!(true);
    props["osProfile"]["computerName"] = json!(m.computer_name);
    if expand {
        props["instanceView"] = instance_view(state, vm);
    }
    body
}

/// The scale sets whose key starts with `prefix` (a group's, or all with "").
pub fn listed(state: &State, prefix: &str) -> Vec<Value> {
    super::keyed(&state.scale_sets, prefix)
        .map(|(k, ss)| render_scale_set(state, k, ss))
        .collect()
}

pub fn get(emu: &Emu, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (key, ss) = find(&state, rg, name)?;
    Ok(Reply::json(200, render_scale_set(&state, &key, ss)))
}

fn expand(call: &Call) -> bool {
    call.query("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
}

pub fn instances(emu: &Emu, call: &Call, rg: &str, scale_set: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (key, _) = find(&state, rg, scale_set)?;
    let mut vms: Vec<&Vm> = super::super::aks::members(&state, &key)
        .map(|(_, v)| v)
        .collect();
    vms.sort_by_key(|v| v.scale_set.as_ref().map(|m| m.instance_id));
    let value: Vec<Value> = vms
        .into_iter()
        .map(|v| render_instance(&state, v, expand(call)))
        .collect();
    Ok(Reply::json(200, json!({ "value": value })))
}

pub fn get_instance(emu: &Emu, call: &Call, at: &Instance<'_>) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = instance(&state, at)?;
    Ok(Reply::json(200, render_instance(&state, vm, expand(call)))
        .header("ETag", super::vm::etag(vm)))
}

pub fn instance_view_reply(emu: &Emu, at: &Instance<'_>) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = instance(&state, at)?;
    Ok(Reply::json(200, instance_view(&state, vm)))
}

fn target(action: &str) -> Option<Power> {
    Some(match action.to_ascii_lowercase().as_str() {
        "poweroff" => Power::Stopped,
        "start" => Power::Running,
        "deallocate" => Power::Deallocated,
        "restart" => Power::Starting,
        _ => return None,
    })
}

fn unknown_action(action: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type 'virtualMachineScaleSets/virtualMachines/{action}' could not be found in the namespace 'Microsoft.Compute'."),
    )
}

/// POST `.../virtualMachines/{id}/{powerOff|start|deallocate|restart}`.
pub async fn instance_action(
    emu: &Arc<Emu>,
    call: &Call,
    at: &Instance<'_>,
    action: &str,
) -> ArmResult<Reply> {
    let power = target(action).ok_or_else(|| unknown_action(action))?;
    let key = instance(&emu.lock(), at)?.0;
    let op = super::vm_actions::power_of(emu, call, &key, power).await?;
    let state = emu.lock();
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// POST `.../virtualMachineScaleSets/{ss}/{action}` with an optional `{"instanceIds": [...]}`
/// ("The virtual machine scale set instance ids. Omitting the virtual machine scale set
/// instance ids will result in the operation being performed on all virtual machines in the
/// virtual machine scale set", the spec's VirtualMachineScaleSetVMInstanceIDs).
pub async fn scale_set_action(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    scale_set: &str,
    action: &str,
) -> ArmResult<Reply> {
    let power = target(action).ok_or_else(|| unknown_action(action))?;
    let body = call.json()?;
    let keys: Vec<String> = {
        let state = emu.lock();
        let (ss_key, ss) = find(&state, rg, scale_set)?;
        match field(&body, &["instanceIds"]).and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .map(|v| {
                    let id = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    let at = Instance {
                        rg,
                        scale_set: &ss.name,
                        id: &id,
                    };
                    instance(&state, &at).map(|(k, _)| k)
                })
                .collect::<ArmResult<_>>()?,
            _ => super::super::aks::members(&state, &ss_key)
                .map(|(k, _)| k.clone())
                .collect(),
        }
    };
    let mut ops = Vec::new();
    for k in &keys {
        ops.push(super::vm_actions::power_of(emu, call, k, power).await?);
    }
    let mut state = emu.lock();
    // Done just after the last instance's operation, so it completes after them.
    let last = ops.iter().map(|o| o.due).max();
    let mut op = emu.begin(
        &mut state,
        Family::Compute,
        OpKind::Batch {
            ops: ops.iter().map(|o| o.id.clone()).collect(),
        },
        0.0,
        call,
    );
    if let Some(last) = last {
        op.due = last + time::Duration::milliseconds(1);
        state.operations.insert(op.id.clone(), op.clone());
    }
    emu.save(&state)?;
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// PUT / PATCH of an instance: its `storageProfile.dataDisks` as the VM update reads them, where
/// `toBeDetached: true` detaches ("Specifies whether the data disk is in process of detachment
/// from the VirtualMachine/VirtualMachineScaleset", the spec's DataDisk.toBeDetached) and
/// `detachOption: ForceDetach` forces it ("ForceDetach is applicable only for managed data disks
/// ... when the data disk did not detach successfully due to an unexpected failure", DataDisk
/// .detachOption). The emulator has no failure a plain detach would hang on, so both detach.
pub fn update_instance(emu: &Emu, call: &Call, at: &Instance<'_>) -> ArmResult<Reply> {
    let body = call.json()?;
    let mut state = emu.lock();
    let (key, vm) = instance(&state, at)?;
    let vm = vm.clone();
    rules::vm_accepts(&state, &vm, "update")?;
    let Some(entries) =
        field(&body, &["properties", "storageProfile", "dataDisks"]).and_then(Value::as_array)
    else {
        // Nothing this emulator changes on an instance: an update that settles at once.
        let op = begin_vm_op(
            emu,
            &mut state,
            &key,
            OpKind::VmUpdate { vm: key.clone() },
            NO_OP,
            call,
        );
        let out = render_instance(&state, &state.vms[&key], false);
        emu.save(&state)?;
        return Ok(emu.lro_headers(&state, &op, Reply::json(200, out), false));
    };
    for e in entries {
        if let Some(opt) = field(e, &["detachOption"]).and_then(Value::as_str) {
            if !opt.eq_ignore_ascii_case("ForceDetach") {
                // DataDiskDetachOptionTypes has the single value ForceDetach.
                return Err(ArmError::bad_request(
                    "InvalidParameter",
                    format!("The value '{opt}' of parameter 'dataDisk.detachOption' is invalid. Allowed values: ForceDetach."),
                ));
            }
        }
    }
    let wanted: Vec<WantedDisk> = entries
        .iter()
        .map(|e| super::vm::wanted_disk(&state, &vm, e))
        .collect::<ArmResult<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let next = rules::data_disks(&state, &vm, wanted)?;
    let kind = OpKind::VmUpdate { vm: key.clone() };
    let op = super::vm_actions::change_data_disks(emu, &mut state, &key, next, kind, call)?;
    let out = render_instance(&state, &state.vms[&key], false);
    Ok(emu.lro_headers(&state, &op, Reply::json(200, out), false))
}
