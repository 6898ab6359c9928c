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
use super::super::state::{Creation, Power, State, Vm, Volume};
use super::vm::{disk_by_id, etag, render, wanted_disk};
use super::vm_actions::boot_into;
use super::{field, group, network, tags};

pub async fn create(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    name: &str,
    body: &Value,
) -> ArmResult<Reply> {
    let str_at = |path: &[&str]| field(body, path).and_then(Value::as_str).map(String::from);
    let location = super::location(&emu.lock(), body, "Microsoft.Compute/virtualMachines")?;
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
    let image = if from_image {
        let r = field(body, &["properties", "storageProfile", "imageReference"])
            .ok_or_else(|| rules::missing("imageReference"))?;
        let image = marketplace_image(r)?;
        if field(body, &["properties", "osProfile"]).is_none() {
            return Err(rules::missing("osProfile"));
        }
        if field(body, &["properties", "osProfile", "adminUsername"]).is_none() {
            return Err(rules::missing("osProfile.adminUsername"));
        }
        Some(image)
    } else {
        None
    };
    let generation = image.map(|i| i.generation);
    if let (Some(image), Some(sz)) = (image, size_of(&size)) {
        sz.boots(&size, image.generation, image.architecture)?;
    }
    if let Some(z) = &zone {
        zone_available(&location, &size, z)?;
    }
    let image_text = image.map(|i| i.urn(body));

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
        generation,
        image.map(|i| i.architecture),
        zone,
        size,
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
    generation: Option<&'static str>,
    architecture: Option<&'static str>,
    zone: Option<String>,
    size: String,
    new_disk_file: Option<String>,
) -> ArmResult<(Operation, String)> {
    let str_at = |path: &[&str]| field(body, path).and_then(Value::as_str).map(String::from);
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    if state.vms.contains_key(&key) {
        return Err(rules::concurrent_request());
    }
    let nics = requested_nics(&state, body, &state.vm_id_of(&rg, name))?;
    let generation = generation.unwrap_or("V1");
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
        agent_ready_since: None,
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
            architecture: architecture.filter(|a| *a != "x64").map(String::from),
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
        scripts: Vec::new(),
        run_command_seq: 0,
        scale_set: None,
        nics,
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
            let image_id = image_text.as_deref().map(|u| platform_image_id(&state, u));
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
                        image_reference: image_id.clone(),
                    },
                    tags: Default::default(),
                    provisioning_state: "Succeeded".into(),
                    time_created: arm::now(),
                    unique_id: arm::guid(),
                    image: file.clone(),
                    incremental: false,
                    settings: super::super::state::DiskSettings {
                        security_type: vm.settings.security_type.clone(),
                        architecture: vm.settings.architecture.clone(),
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

/// A marketplace image the emulator can create a VM from: each boots the same generated healthy
/// Ubuntu root filesystem.
#[derive(Clone, Copy)]
struct Image {
    publisher: &'static str,
    offer: &'static str,
    sku: &'static str,
    generation: &'static str,
    architecture: &'static str,
}

impl Image {
    /// `publisher:offer:sku:version` as asked.
    fn urn(&self, body: &Value) -> String {
        let version = field(
            body,
            &["properties", "storageProfile", "imageReference", "version"],
        )
        .and_then(Value::as_str)
        .unwrap_or("latest");
        format!("{}:{}:{}:{version}", self.publisher, self.offer, self.sku)
    }
}

/// Ubuntu LTS server images by generation and architecture, as PerfKitBenchmarker's Azure
/// provider names them (providers/azure/azure_virtual_machine.py: Ubuntu2204/Ubuntu2404
/// GEN1_IMAGE_URN, GEN2_IMAGE_URN, ARM_IMAGE_URN; azure-cli 2.91's `Ubuntu2204` alias is the
/// Gen2 one, command_modules/vm/_alias.py). Arm64 images are Gen2 only.
const IMAGES: &[Image] = &[
    Image {
        publisher: "Canonical",
        offer: "ubuntu-24_04-lts",
        sku: "server",
        generation: "V2",
        architecture: "x64",
    },
    Image {
        publisher: "Canonical",
        offer: "ubuntu-24_04-lts",
        sku: "server-gen1",
        generation: "V1",
        architecture: "x64",
    },
    Image {
        publisher: "Canonical",
        offer: "ubuntu-24_04-lts",
        sku: "server-arm64",
        generation: "V2",
        architecture: "Arm64",
    },
    Image {
        publisher: "Canonical",
        offer: "0001-com-ubuntu-server-jammy",
        sku: "22_04-lts-gen2",
        generation: "V2",
        architecture: "x64",
    },
    Image {
        publisher: "Canonical",
        offer: "0001-com-ubuntu-server-jammy",
        sku: "22_04-lts",
        generation: "V1",
        architecture: "x64",
    },
    Image {
        publisher: "Canonical",
        offer: "0001-com-ubuntu-server-jammy",
        sku: "22_04-lts-arm64",
        generation: "V2",
        architecture: "Arm64",
    },
];

/// The image an `imageReference` names, or Azure's refusal: 404 PlatformImageNotFound "The
/// platform image 'P:O:S:V' is not available. Verify that all fields in the storage profile are
/// correct. For more details about storage profile information, please refer to
/// https://aka.ms/storageprofile" with target imageReference (clear-code/firefox-support-common#31,
/// hashicorp/packer#10600). Versions: `latest` or a dotted version (the marketplace's form).
fn marketplace_image(r: &Value) -> ArmResult<Image> {
    let part = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    if r.get("id").is_some() {
        // Not an Azure rule: gallery and managed images are not served by the emulator.
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "imageReference.id (a gallery or managed image) is not supported by the rescue emulator: use a marketplace publisher/offer/sku/version.",
        ));
    }
    let version = part("version");
    let version_ok = version.eq_ignore_ascii_case("latest")
        || (!version.is_empty()
            && version
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
    IMAGES
        .iter()
        .find(|i| {
            i.publisher.eq_ignore_ascii_case(part("publisher"))
                && i.offer.eq_ignore_ascii_case(part("offer"))
                && i.sku.eq_ignore_ascii_case(part("sku"))
        })
        .filter(|_| version_ok)
        .copied()
        .ok_or_else(|| {
            ArmError::new(
                404,
                "PlatformImageNotFound",
                format!(
                    "The platform image '{}:{}:{}:{version}' is not available. Verify that all fields in the storage profile are correct. For more details about storage profile information, please refer to https://aka.ms/storageprofile",
                    part("publisher"), part("offer"), part("sku")
                ),
            )
            .with_target("imageReference")
        })
}

/// What a VM size can boot.
struct Size {
    architecture: &'static str,
    generations: &'static [&'static str],
}

/// Sizes with the generations and architecture Microsoft's size pages list (Dsv3 and Dsv5:
/// Gen1 and Gen2; Dv3 and Dv2: Gen1 only, as the refusals in dotnet/arcade#9371 and
/// microsoft/ga4gh-tes#43 show; Dadsv6: Gen2 only, Dayzure/entra-gsa-labs#12; Dpsv5: Arm64,
/// Gen2). Not an Azure rule: a size outside this table is taken as x64 booting both.
fn size_of(size: &str) -> Option<Size> {
    const BOTH: &[&str] = &["V1", "V2"];
    let (architecture, generations): (&str, &[&str]) = match size.to_ascii_lowercase().as_str() {
        "standard_d2s_v3" | "standard_d4s_v3" | "standard_d8s_v3" | "standard_d2s_v5"
        | "standard_d4s_v5" | "standard_d8s_v5" => ("x64", BOTH),
        "standard_d2_v3" | "standard_d4_v3" | "standard_d1_v2" | "standard_d2_v2" => {
            ("x64", &["V1"])
        }
        "standard_d2ads_v6" | "standard_d4ads_v6" => ("x64", &["V2"]),
        "standard_d2ps_v5" | "standard_d4ps_v5" | "standard_d8ps_v5" => ("Arm64", &["V2"]),
        _ => return None,
    };
    Some(Size {
        architecture,
        generations,
    })
}

impl Size {
    /// "The selected VM size 'S' cannot boot Hypervisor Generation 'N'. If this was a Create
    /// operation please check that the Hypervisor Generation of the Image matches the Hypervisor
    /// Generation of the selected VM Size. If this was an Update operation please select a
    /// Hypervisor Generation 'N' VM Size. For more information, see https://aka.ms/azuregen2vm"
    /// (400 BadRequest: loft-sh/devpod#731, microsoft/ga4gh-tes#43).
    fn boots(&self, size: &str, generation: &str, architecture: &str) -> ArmResult<()> {
        if !self.architecture.eq_ignore_ascii_case(architecture) {
            // (inferred) no recording of CRP's words for an image of another architecture.
            return Err(ArmError::bad_request(
                "BadRequest",
                format!("The selected VM size '{size}' cannot boot an image of architecture '{architecture}': its architecture is '{}'.", self.architecture),
            ));
        }
        if self.generations.contains(&generation) {
            return Ok(());
        }
        let n = generation.trim_start_matches('V');
        Err(ArmError::bad_request(
            "BadRequest",
            format!("The selected VM size '{size}' cannot boot Hypervisor Generation '{n}'. If this was a Create operation please check that the Hypervisor Generation of the Image matches the Hypervisor Generation of the selected VM Size. If this was an Update operation please select a Hypervisor Generation '{n}' VM Size. For more information, see https://aka.ms/azuregen2vm"),
        ))
    }
}

/// A platform image's id as DiskRP reports it in `creationData.imageReference.id` (the form the
/// scenario's AKS node disks carry).
fn platform_image_id(state: &State, urn: &str) -> String {
    let p: Vec<&str> = urn.split(':').collect();
    let at = |i: usize| p.get(i).copied().unwrap_or("");
    format!(
        "/Subscriptions/{}/Providers/Microsoft.Compute/Locations/{}/Publishers/{}/ArtifactTypes/VMImage/Offers/{}/Skus/{}/Versions/{}",
        state.subscription, state.location, at(0), at(1), at(2), at(3)
    )
}

/// The emulated region has zones 1, 2 and 3; a size asked elsewhere is "currently not available":
/// "The requested size for resource '{id}' is currently not available in location '{loc}' zones
/// '{z}' for subscription '{sub}'. Please try another size or deploy to a different location or
/// zones. See https://aka.ms/azureskunotavailable for details." (SkuNotAvailable, quoted in
/// Azure/Azure-Network-Security#30; the 409 status is inferred).
fn zone_available(location: &str, size: &str, zone: &str) -> ArmResult<()> {
    if ["1", "2", "3"].contains(&zone) {
        return Ok(());
    }
    Err(ArmError::conflict(
        "SkuNotAvailable",
        format!("The requested size '{size}' is currently not available in location '{location}' zones '{zone}'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details."),
    )
    .with_target("zones"))
}

/// The NICs a create names: at least one (CRP's "Required parameter 'networkProfile' is missing
/// (null)."), each existing (`InvalidResourceReference`, the Network RP's words for a reference
/// that is not found: MicrosoftDocs/azure-docs#81734) and in use by no other VM (400 NicInUse,
/// which a VM create answers too: pulumi/pulumi-azure#441).
fn requested_nics(state: &State, body: &Value, vm_id: &str) -> ArmResult<Vec<String>> {
    let refs = field(body, &["properties", "networkProfile", "networkInterfaces"])
        .and_then(Value::as_array)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| rules::missing("networkProfile"))?;
    let mut keys = Vec::new();
    for r in refs {
        let nic_id = field(r, &["id"])
            .and_then(Value::as_str)
            .ok_or_else(|| rules::missing("networkProfile.networkInterfaces.id"))?;
        let key = network::nic_key_by_id(state, nic_id)
            .ok_or_else(|| network::invalid_reference(nic_id, vm_id))?;
        if let Some(other) = network::nic_owner(state, &key) {
            return Err(ArmError::bad_request(
                "NicInUse",
                format!("Network Interface {nic_id} is used by existing resource {}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.", state.vm_id(other)),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}
