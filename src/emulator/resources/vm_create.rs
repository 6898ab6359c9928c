//! PUT of a VM that does not exist: creates it, as a rescue or repair VM is created on Azure.
//! The OS disk is either an existing disk (`createOption: Attach`) or made from an image
//! (`FromImage`: a clean generated Ubuntu root filesystem); it answers 201 with
//! `provisioningState: Creating` and an Azure-AsyncOperation to poll.

use std::sync::Arc;

use serde_json::Value;

use super::super::arm::{self, ArmError, ArmResult};
use super::super::generate::{self, Fs, Recipe, Tree};
use super::super::http::{Call, Reply};
use super::super::images;
use super::super::latency::*;
use super::super::operations::{Family, OpKind, Operation};
use super::super::rules;
use super::super::server::Emu;
use super::super::state::{Creation, Power, Vm, Volume};
use super::vm::{disk_by_id, etag, render, wanted_disk};
use super::vm_actions::boot_into;
use super::{field, group, tags};

pub async fn create(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    body: &Value,
) -> ArmResult<Reply> {
    let str_at = |path: &[&str]| field(body, path).and_then(Value::as_str).map(String::from);
    // ARM's own validation of a tracked resource without a location (inferred: no recording).
    let location = str_at(&["location"]).ok_or_else(|| {
        ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        )
    })?;
    let size = str_at(&["properties", "hardwareProfile", "vmSize"])
        .ok_or_else(|| rules::missing("hardwareProfile.vmSize"))?;
    let zone = match field(body, &["zones"]).and_then(Value::as_array) {
        Some(z) if z.len() == 1 => z[0].as_str().map(String::from),
        Some(z) if z.len() > 1 => {
            // (inferred) a VM lives in one zone.
            return Err(
                ArmError::bad_request("InvalidParameter", "A VM can be in one zone only.")
                    .with_target("zones"),
            );
        }
        _ => None,
    };
    let os = field(body, &["properties", "storageProfile", "osDisk"])
        .ok_or_else(|| rules::missing("osDisk"))?;
    let option = field(os, &["createOption"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let from_image = match option.to_ascii_lowercase().as_str() {
        "fromimage" => true,
        "attach" => false,
        // Not an Azure rule: the emulator creates VMs from an image or an existing disk only.
        other => {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("osDisk.createOption '{other}' is not supported by the rescue emulator: use FromImage or Attach."),
            ))
        }
    };
    let image_ref = field(body, &["properties", "storageProfile", "imageReference"]);
    let image_text = image_ref.map(|r| {
        r.get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| {
                ["publisher", "offer", "sku", "version"]
                    .iter()
                    .map(|k| r.get(*k).and_then(Value::as_str).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(":")
            })
    });
    if from_image && image_text.is_none() {
        return Err(rules::missing("imageReference"));
    }

    // Build the new OS disk's bytes outside the lock (generation may run mke2fs once).
    let new_disk_file = if from_image {
        let file = format!("{}.img", arm::guid());
        let dst = emu.images.join(&file);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let src = generate::cached(&Recipe {
                fs: Fs::Ext4,
                tree: Tree::Os,
                corrupt: None,
                image_mib: 256,
                layout: Default::default(),
            })?;
            images::copy_image(&src, &dst)
        })
        .await
        .map_err(|e| ArmError::internal(e.to_string()))?
        .map_err(|e| ArmError::internal(format!("creating the OS disk image failed: {e:#}")))?;
        Some(file)
    } else {
        None
    };

    let (op, key) = register(
        emu,
        call,
        rg,
        name,
        body,
        os,
        from_image,
        image_text,
        zone,
        size,
        location,
        new_disk_file.clone(),
    )
    .inspect_err(|_| {
        // Refused: the OS disk image made for it is not kept.
        if let Some(f) = &new_disk_file {
            let _ = std::fs::remove_file(emu.images.join(f));
        }
    })?;
    boot_into(emu, &op.id, &key).await?;
    let state = emu.lock();
    let vm = &state.vms[&key];
    let reply = Reply::json(201, render(&state, vm, false))
        .header("ETag", etag(vm))
        .retry_after(10.0, emu.time_scale);
    Ok(emu.lro_headers(&state, &op, reply, false))
}

/// Checks the request against the state and records the VM (and a new OS disk).
#[allow(clippy::too_many_arguments)]
fn register(
    emu: &Emu,
    call: &Call,
    rg: &str,
    name: &str,
    body: &Value,
    os: &Value,
    from_image: bool,
    image_text: Option<String>,
    zone: Option<String>,
    size: String,
    location: String,
    new_disk_file: Option<String>,
) -> ArmResult<(Operation, String)> {
    let str_at = |path: &[&str]| field(body, path).and_then(Value::as_str).map(String::from);
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    if state.vms.contains_key(&key) {
        return Err(rules::concurrent_request());
    }
    if !location
        .replace(' ', "")
        .eq_ignore_ascii_case(&state.location)
    {
        return Err(ArmError::bad_request(
            "LocationNotAvailableForResourceType",
            format!("The provided location '{location}' is not available for resource type 'Microsoft.Compute/virtualMachines'. List of available regions for the resource type is '{}'.", state.location),
        ));
    }
    let generation = if image_text
        .as_deref()
        .is_some_and(|i| i.to_ascii_lowercase().contains("gen2"))
    {
        "V2"
    } else {
        "V1"
    };
    let mut vm = Vm {
        resource_group: rg.clone(),
        name: name.to_string(),
        location: state.location.clone(),
        zone: zone.clone(),
        size,
        generation: generation.into(),
        power: Power::Starting,
        agent_ready: false,
        agent_ready_at: None,
        serial_log: String::new(),
        os_disk: String::new(),
        os_create_option: if from_image { "FromImage" } else { "Attach" }.into(),
        data_disks: Vec::new(),
        tags: tags(body)?.unwrap_or_default(),
        etag: 1,
        provisioning_state: "Creating".into(),
        vm_id: arm::guid(),
        time_created: arm::now(),
        busy: None,
        settings: super::super::state::VmSettings {
            security_type: str_at(&["properties", "securityProfile", "securityType"])
                .filter(|t| !t.eq_ignore_ascii_case("Standard")),
            architecture: None,
            boot_diagnostics_storage: str_at(&[
                "properties",
                "diagnosticsProfile",
                "bootDiagnostics",
                "storageUri",
            ]),
            ..Default::default()
        },
        run_command: None,
        run_commands: Default::default(),
        scripts_run: 0,
        run_command_seq: 0,
    };
    let new_os_key = match &new_disk_file {
        Some(file) => {
            let disk_name = field(os, &["name"])
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("{name}_OsDisk_1_{}", arm::guid().replace('-', "")));
            let disk_key = arm::key(&rg, &disk_name);
            if state.disks.contains_key(&disk_key) {
                let _ = std::fs::remove_file(emu.images.join(file));
                // (inferred) the OS disk a FromImage create would make exists already.
                return Err(ArmError::conflict(
                    "ConflictingUserInput",
                    format!("A disk named '{disk_name}' already exists."),
                ));
            }
            let location = state.location.clone();
            state.disks.insert(
                disk_key.clone(),
                Volume {
                    resource_group: rg.clone(),
                    name: disk_name,
                    location,
                    zone: zone.clone(),
                    sku: field(os, &["managedDisk", "storageAccountType"])
                        .and_then(Value::as_str)
                        .unwrap_or("Premium_LRS")
                        .into(),
                    size_gb: field(os, &["diskSizeGB"])
                        .and_then(Value::as_u64)
                        .unwrap_or(30),
                    hyper_v_generation: Some(generation.into()),
                    os_type: Some("Linux".into()),
                    creation: Creation {
                        create_option: "FromImage".into(),
                        source_resource_id: None,
                        source_unique_id: None,
                        image_reference: image_text.clone(),
                    },
                    tags: Default::default(),
                    provisioning_state: "Succeeded".into(),
                    time_created: arm::now(),
                    unique_id: arm::guid(),
                    image: file.clone(),
                    incremental: false,
                    settings: super::super::state::DiskSettings {
                        security_type: vm.settings.security_type.clone(),
                        ..Default::default()
                    },
                },
            );
            Some(disk_key)
        }
        None => None,
    };
    let os_key = match new_os_key.clone() {
        Some(k) => k,
        None => {
            let id = field(os, &["managedDisk", "id"])
                .and_then(Value::as_str)
                .ok_or_else(|| rules::missing("osDisk.managedDisk.id"))?;
            let k = disk_by_id(&state, id)?;
            let disk = &state.disks[&k];
            if disk.os_type.is_none() && field(os, &["osType"]).is_none() {
                return Err(rules::missing("osDisk.osType"));
            }
            // The VM takes the disk's generation and architecture; its security type must
            // match (rules::os_swappable cites the texts).
            vm.generation = disk
                .hyper_v_generation
                .clone()
                .unwrap_or_else(|| "V1".into());
            vm.settings.architecture = disk.settings.architecture.clone();
            rules::os_swappable(&state, &vm, &k)?;
            k
        }
    };
    vm.os_disk = os_key;
    let checked = (|| -> ArmResult<()> {
        if let Some(entries) =
            field(body, &["properties", "storageProfile", "dataDisks"]).and_then(Value::as_array)
        {
            let mut wanted = Vec::new();
            for e in entries {
                wanted.extend(wanted_disk(&state, &vm, e)?);
            }
            vm.data_disks = rules::data_disks(&state, &vm, wanted)?;
        }
        Ok(())
    })();
    if let Err(e) = checked {
        if let Some(k) = new_os_key {
            if let Some(d) = state.disks.remove(&k) {
                let _ = std::fs::remove_file(emu.images.join(d.image));
            }
        }
        return Err(e);
    }
    let op = emu.begin(
        &mut state,
        Family::Compute,
        OpKind::VmPower {
            vm: key.clone(),
            target: Power::Running,
            boot: None,
        },
        VM_CREATE,
        call,
    );
    vm.busy = Some(op.id.clone());
    state.vms.insert(key.clone(), vm);
    emu.save(&state)?;
    Ok((op, key))
}
