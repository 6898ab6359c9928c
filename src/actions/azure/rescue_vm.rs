//! `azure.vm.create_rescue` and `azure.vm.delete_rescue`: a rescue VM made for one run, and
//! removed with exactly what that run made.
//!
//! The VM matches the broken one where a disk swap needs it (as `az vm repair` does, see
//! field-lessons): same region and zone, same Hyper-V generation and architecture, a SCSI disk
//! controller (so the copy appears at `/dev/disk/azure/scsi1/lunN`). It runs a current Ubuntu
//! LTS marketplace image and has no public IP: scripts reach it inside Run Command, and its own
//! NSG has no inbound rule. Everything it creates carries this run's tag and is named from the
//! run id, so the intent lists it before it exists; deletions check the tag first.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};
use crate::azure::ids::derived_name_within;
use crate::azure::network;

pub struct CreateRescue;
pub struct DeleteRescue;

const P_KEEP: Param = Param {
    name: "keep",
    ty: ParamType::Boolean,
    required: false,
    description: "keep the rescue VM and its network (no deletion at the end or by rollback)",
};

static CREATE: ActionSpec = ActionSpec {
    name: "azure.vm.create_rescue",
    summary: "create a rescue VM matching a broken VM (zone, generation, architecture), no public IP, tagged with the run id",
    params: &[
        Param { name: "vm_id", ty: ParamType::String, required: true, description: "ARM id of the broken VM it must match" },
        Param { name: "resource_group", ty: ParamType::String, required: false, description: "where to create it (default: the broken VM's group)" },
        Param { name: "rescue_subnet_id", ty: ParamType::String, required: false, description: "a subnet of yours to put it in (default: its own VNet, subnet and NSG)" },
        P_KEEP,
    ],
    outputs: &[
        OutputSpec { name: "id", description: "ARM id of the rescue VM" },
        OutputSpec { name: "name", description: "rescue VM name" },
        OutputSpec { name: "resource_group", description: "its resource group" },
        OutputSpec { name: "created", description: "ARM ids of what was created, in the order they are deleted" },
        OutputSpec { name: "image", description: "the marketplace image (publisher:offer:sku:version)" },
        OutputSpec { name: "vm_size", description: "its size" },
    ],
    mutates: true,
};

static DELETE: ActionSpec = ActionSpec {
    name: "azure.vm.delete_rescue",
    summary:
        "delete a rescue VM with exactly what its run created (each checked for the run's tag)",
    params: &[
        Param {
            name: "created",
            ty: ParamType::List,
            required: true,
            description: "the `created` output of azure.vm.create_rescue",
        },
        P_KEEP,
    ],
    outputs: &[OutputSpec {
        name: "deleted",
        description: "ARM ids deleted",
    }],
    mutates: true,
};

/// What one run creates for its rescue VM, named from the run id.
struct Names {
    vm: ResourceId,
    os_disk: ResourceId,
    nic: ResourceId,
    nsg: ResourceId,
    /// None: the user's subnet.
    vnet: Option<ResourceId>,
    subnet: ResourceId,
}

/// A Linux VM name (and computer name) is at most 64 characters (Microsoft's
/// resource-name-rules: virtualMachines, Linux 1-64).
const VM_NAME_MAX: usize = 64;

const SUBNET: &str = "rescue";
const VNET_PREFIX: &str = "10.200.0.0/24";
const SUBNET_PREFIX: &str = "10.200.0.0/26";

impl Names {
    fn of(args: &Args, run_id: &str) -> Result<Names, ActionError> {
        let broken = id_arg(args, "vm_id", Kind::VirtualMachine)?;
        let rg = opt_str(args, "resource_group").unwrap_or(&broken.resource_group);
        let at = |kind: Kind, suffix: &str| {
            ResourceId::new(
                &broken.subscription,
                rg,
                kind,
                &derived_name(&broken.name, suffix, run_id),
            )
        };
        let vnet = match opt_str(args, "rescue_subnet_id") {
            Some(_) => None,
            None => Some(at(Kind::VirtualNetwork, "rescue-vnet")),
        };
        let subnet = match (&vnet, opt_str(args, "rescue_subnet_id")) {
            (Some(v), _) => ResourceId::subnet(v, SUBNET),
            (None, Some(s)) => id_arg(args, "rescue_subnet_id", Kind::Subnet)
                .map_err(|_| ActionError::refused(format!("rescue_subnet_id `{s}` is not a subnet id (…/Microsoft.Network/virtualNetworks/VNET/subnets/NAME)")))?,
            (None, None) => unreachable!("no VNet only with a subnet"),
        };
        Ok(Names {
            vm: ResourceId::new(
                &broken.subscription,
                rg,
                Kind::VirtualMachine,
                &derived_name_within(&broken.name, "rescue", run_id, VM_NAME_MAX),
            ),
            os_disk: at(Kind::Disk, "rescue-osdisk"),
            nic: at(Kind::NetworkInterface, "rescue-nic"),
            nsg: at(Kind::NetworkSecurityGroup, "rescue-nsg"),
            vnet,
            subnet,
        })
    }

    /// Everything created, in the order it can be deleted: a VM before its disk and NIC, a NIC
    /// before its subnet's VNet, the VNet before the NSG guarding its subnet.
    fn created(&self) -> Vec<&ResourceId> {
        let mut all = vec![&self.vm, &self.os_disk, &self.nic];
        all.extend(&self.vnet);
        all.push(&self.nsg);
        all
    }
}

/// The marketplace image and size for a generation and architecture: Ubuntu 24.04 LTS server
/// images as PerfKitBenchmarker's Azure provider names them (GEN2_IMAGE_URN
/// `Canonical:ubuntu-24_04-lts:server:latest`, GEN1_IMAGE_URN `...:server-gen1:latest`,
/// ARM_IMAGE_URN `...:server-arm64:latest`); Dsv5 boots Gen1 and Gen2 on SCSI, Dpsv5 is Arm64
/// (Microsoft's dv5/dpsv5 size pages).
fn image_and_size(
    generation: &str,
    architecture: &str,
) -> ((&'static str, &'static str), &'static str) {
    let sku = match (architecture.eq_ignore_ascii_case("arm64"), generation) {
        (true, _) => "server-arm64",
        (false, g) if g.eq_ignore_ascii_case("V1") => "server-gen1",
        _ => "server",
    };
    let size = if sku == "server-arm64" {
        "Standard_D2ps_v5"
    } else {
        "Standard_D2s_v5"
    };
    (("ubuntu-24_04-lts", sku), size)
}

fn urn(image: (&str, &str)) -> String {
    format!("Canonical:{}:{}:latest", image.0, image.1)
}

/// An OpenSSH `ssh-ed25519` public key whose private half is dropped at once: Azure asks a Linux
/// VM without password login for a key, and nobody is ever to log in to a rescue VM.
fn unusable_ssh_key() -> Result<String, ActionError> {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| ActionError::fatal(format!("cannot make an SSH key: {e}")))?;
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), key.public_key_raw()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    Ok(format!(
        "ssh-ed25519 {} rescue-no-login",
        base64::engine::general_purpose::STANDARD.encode(blob)
    ))
}

fn vm_body(
    names: &Names,
    location: &str,
    zone: Option<&str>,
    tags: &Map<String, Value>,
    image: (&str, &str),
    size: &str,
) -> Result<Value, ActionError> {
    let admin = "rescue";
    let mut body = json!({
        "location": location,
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical", "offer": image.0, "sku": image.1, "version": "latest"},
                "osDisk": {
                    "name": names.os_disk.name,
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                },
                "diskControllerType": "SCSI",
            },
            "osProfile": {
                "computerName": names.vm.name,
                "adminUsername": admin,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "provisionVMAgent": true,
                    "ssh": {"publicKeys": [{"path": format!("/home/{admin}/.ssh/authorized_keys"), "keyData": unusable_ssh_key()?}]},
                },
            },
            "networkProfile": {"networkInterfaces": [{"id": names.nic.to_string(), "properties": {"primary": true}}]},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}},
        },
    });
    if let Some(z) = zone.filter(|z| !z.is_empty()) {
        body["zones"] = json!([z]);
    }
    Ok(body)
}

fn outputs(names: &Names, image: &str, size: &str) -> Outputs {
    let mut out = created_outputs(None, &names.vm);
    out.insert("resource_group".into(), json!(names.vm.resource_group));
    out.insert(
        "created".into(),
        json!(names
            .created()
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()),
    );
    out.insert("image".into(), json!(image));
    out.insert("vm_size".into(), json!(size));
    out
}

fn keep(args: &Args) -> bool {
    args.get("keep").and_then(Value::as_bool).unwrap_or(false)
}

/// How long a VM agent may take to report Ready after the VM is created.
const AGENT_DEADLINE: Duration = Duration::from_secs(20 * 60);

#[async_trait]
impl AzureStep for CreateRescue {
    const SPEC: &'static ActionSpec = &CREATE;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let names = Names::of(&args.known, &ctx.run_id).ok();
        let mut notes = Vec::new();
        if let (Some(n), Ok(broken)) = (&names, id_arg(&args.known, "vm_id", Kind::VirtualMachine))
        {
            if let Some(azure) = &ctx.env.azure {
                match inspect::read_vm_and_disk(azure, &broken).await {
                    Ok((f, disk)) => {
                        let (generation, arch) = generation_and_arch(&f, disk.as_ref());
                        let (image, size) = image_and_size(&generation, &arch);
                        notes.push(format!(
                            "matches {}: zone {}, {generation}, {arch}: {} on {size}, SCSI",
                            broken.name,
                            f["zone"]
                                .as_str()
                                .filter(|z| !z.is_empty())
                                .unwrap_or("none"),
                            urn(image)
                        ));
                    }
                    Err(e) => notes.push(format!("cannot read {} now: {}", broken.name, e.message)),
                }
            }
            notes.push(format!(
                "no public IP; inbound: none (NSG {} has no rule of its own)",
                n.nsg.name
            ));
        }
        let mut changes = Vec::new();
        let plan_change = |kind: Kind, id: Option<&ResourceId>, what: &str| {
            change(
                ChangeKind::Create,
                kind,
                id,
                "(named after the broken VM and the run id)",
                what,
            )
        };
        let n = names.as_ref();
        changes.push(plan_change(
            Kind::NetworkSecurityGroup,
            n.map(|n| &n.nsg),
            "no inbound rule of its own",
        ));
        if n.is_none_or(|n| n.vnet.is_some()) {
            changes.push(plan_change(Kind::VirtualNetwork, n.and_then(|n| n.vnet.as_ref()), &format!("{VNET_PREFIX}, subnet {SUBNET} {SUBNET_PREFIX} behind the NSG, no default outbound access")));
        }
        changes.push(plan_change(
            Kind::NetworkInterface,
            n.map(|n| &n.nic),
            "private address only",
        ));
        changes.push(plan_change(
            Kind::VirtualMachine,
            n.map(|n| &n.vm),
            "Ubuntu LTS, tagged with the run id; deleted at the end unless kept",
        ));
        changes.push(plan_change(
            Kind::Disk,
            n.map(|n| &n.os_disk),
            "its OS disk, created with it",
        ));
        let calls = match n {
            Some(n) => n
                .created()
                .iter()
                .rev()
                .filter(|id| id.kind != Kind::Disk)
                .map(|id| format!("PUT {id}"))
                .chain([format!("PATCH {} (tag it)", n.os_disk), format!("GET {}?$expand=instanceView until its agent is Ready", n.vm)])
                .collect(),
            None => vec!["PUT .../networkSecurityGroups, .../virtualNetworks, .../networkInterfaces, .../virtualMachines".into()],
        };
        Ok(Description {
            summary: format!(
                "create rescue VM {} for {}",
                n.map(|n| n.vm.name.clone())
                    .unwrap_or_else(|| "(named from the run id)".into()),
                args.display("vm_id")
            ),
            changes,
            calls,
            notes,
            ..Default::default()
        })
    }

    /// Its names follow from the run id: later steps plan with the rescue VM's name.
    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        let names = Names::of(k.args, &k.ctx.run_id).ok()?;
        Some(Ok(outputs(
            &names,
            "(chosen at run time)",
            "(chosen at run time)",
        )))
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        let names = Names::of(args, run_id)?;
        let created: Vec<String> = names.created().iter().map(|i| i.to_string()).collect();
        Ok(Intent {
            detail: json!({"name": names.vm.name, "created": created, "keep": keep(args)}),
            creates: names.created().into_iter().map(resource_ref).collect(),
            scaffolding: true,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let names = Names::of(args, &ctx.run_id)?;
        let broken = id_arg(args, "vm_id", Kind::VirtualMachine)?;
        with_progress(ctx, async {
            let (facts, disk) = inspect::read_vm_and_disk(azure, &broken).await?;
            let location = facts["location"].as_str().unwrap_or_default().to_string();
            let zone = facts["zone"].as_str().map(str::to_string);
            let (generation, arch) = generation_and_arch(&facts, disk.as_ref());
            let (image, size) = image_and_size(&generation, &arch);
            let tags = run_tags(&ctx.run_id, &[("rescue-for", &broken.to_string())]);
            let tags = tags.as_object().cloned().unwrap_or_default();
            if names.vnet.is_none() {
                check_subnet(azure, &names.subnet, &location).await?;
            }
            create_keyed(
                ctx,
                &names.nsg,
                network::nsg_body(&location, &tags),
                DISK_DEADLINE,
                "operation_nsg",
            )
            .await?;
            if let Some(vnet) = &names.vnet {
                let body = network::vnet_body(
                    &location,
                    &tags,
                    VNET_PREFIX,
                    SUBNET,
                    SUBNET_PREFIX,
                    &names.nsg,
                );
                create_keyed(ctx, vnet, body, DISK_DEADLINE, "operation_vnet").await?;
            }
            // On the user's subnet, whose NSG rescue does not know, its own guards the NIC.
            let nic_nsg = names.vnet.is_none().then_some(&names.nsg);
            let body = network::nic_body(&location, &tags, &names.subnet, nic_nsg);
            create_keyed(ctx, &names.nic, body, DISK_DEADLINE, "operation_nic").await?;
            let body = vm_body(&names, &location, zone.as_deref(), &tags, image, size)?;
            create_keyed(ctx, &names.vm, body, VM_UPDATE_DEADLINE, OPERATION).await?;
            tag_os_disk(ctx, &names).await?;
            agent_ready(ctx, &names.vm).await?;
            Ok(outputs(&names, &urn(image), size))
        })
        .await
    }

    fn describe_undo(&self, args: &Args, outputs: &Outputs) -> Option<String> {
        let name = outputs.get("name").and_then(Value::as_str).unwrap_or("?");
        Some(if keep(args) {
            format!("keep rescue VM {name} and its network (keep is set)")
        } else {
            format!("delete rescue VM {name} with its OS disk, NIC and network (this run's)")
        })
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        if keep(u.args) {
            return Ok(());
        }
        delete_all(
            u.ctx,
            &created_ids(u.outputs.get("created"))?,
            "undo_operation",
        )
        .await
    }
}

/// Generation and architecture of the broken VM (its instance view, else its OS disk).
fn generation_and_arch(facts: &Outputs, disk: Option<&Resource>) -> (String, String) {
    let generation = facts["hyper_v_generation"]
        .as_str()
        .unwrap_or("V1")
        .to_string();
    let arch = disk
        .and_then(|d| d.str("/properties/supportedCapabilities/architecture"))
        .unwrap_or("x64")
        .to_string();
    (generation, arch)
}

/// The user's subnet must exist, in the broken VM's region (a NIC is in its subnet's region).
async fn check_subnet(
    azure: &Azure,
    subnet: &ResourceId,
    location: &str,
) -> Result<(), ActionError> {
    let vnet = subnet.vnet().expect("a subnet id has its VNet");
    let refuse = |why: String| {
        ActionError::refused(format!("rescue_subnet_id {subnet}: {why}"))
            .with_hint("give a subnet in the broken VM's region, or leave rescue_subnet_id out to create a VNet for the rescue VM")
    };
    let Some(v) = azure.read(&vnet).await? else {
        return Err(refuse(format!("VNet {} does not exist", vnet.name)));
    };
    if azure.read(subnet).await?.is_none() {
        return Err(refuse("the subnet does not exist".into()));
    }
    if !v.location().eq_ignore_ascii_case(location) {
        return Err(refuse(format!(
            "its VNet is in {}, the broken VM in {location}",
            v.location()
        )));
    }
    Ok(())
}

/// The OS disk Azure made with the VM carries no tags of the VM's: tag it, so that it too is
/// deleted only as this run's. It is ours by name (the run id is in it) and by owner.
async fn tag_os_disk(ctx: &StepContext, names: &Names) -> Result<(), ActionError> {
    let run_id = ctx.run_id.clone();
    let vm_id = names.vm.to_string();
    let desired = Want::new(
        &names.os_disk,
        format!("tag disk {}", names.os_disk.name),
        DISK_DEADLINE,
        move |now| {
            let disk = now.ok_or_else(|| {
                ActionError::fatal(format!(
                    "the rescue VM's OS disk {} does not exist",
                    names.os_disk.name
                ))
            })?;
            if disk.tag(RUN_TAG) == Some(run_id.as_str()) {
                return Ok(Next::Done);
            }
            if !disk.str("/managedBy").is_some_and(|m| same_id(m, &vm_id)) {
                return Err(ActionError::fatal(format!(
                    "disk {} is not the OS disk of rescue VM {}; not tagging it",
                    names.os_disk.name, names.vm.name
                )));
            }
            let mut tags = disk.tags();
            tags.insert(RUN_TAG.into(), json!(run_id));
            Ok(Next::Write(Write::PatchDisk(json!({"tags": tags}))))
        },
    );
    ensure(ctx, &desired, "operation_disk_tag").await.map(drop)
}

/// The copy is attached only once the rescue VM has booted: the same filesystem UUIDs could
/// make it boot from the copy (field-lessons, az vm repair).
async fn agent_ready(ctx: &StepContext, vm: &ResourceId) -> Result<(), ActionError> {
    let desired = Want::new(
        vm,
        format!("agent of rescue VM {}", vm.name),
        AGENT_DEADLINE,
        |now| {
            let v = existing_vm(now, vm)?;
            let agent = v.agent.unwrap_or_else(|| "unknown".into());
            Ok(if agent.eq_ignore_ascii_case("ready") {
                Next::Done
            } else {
                Next::Wait(format!("its VM agent is {agent}"))
            })
        },
    )
    .with_instance_view();
    ensure(ctx, &desired, "operation_agent").await.map(drop)
}

fn created_ids(value: Option<&Value>) -> Result<Vec<ResourceId>, ActionError> {
    value
        .and_then(Value::as_array)
        .ok_or_else(|| ActionError::fatal("no list of what the rescue VM's step created"))?
        .iter()
        .map(|v| Ok(ResourceId::parse(v.as_str().unwrap_or_default())?))
        .collect()
}

/// Delete in order, each only while it carries this run's tag.
async fn delete_all(ctx: &StepContext, ids: &[ResourceId], key: &str) -> Result<(), ActionError> {
    for id in ids {
        delete_created_keyed(ctx, id, key).await?;
    }
    Ok(())
}

#[async_trait]
impl AzureStep for DeleteRescue {
    const SPEC: &'static ActionSpec = &DELETE;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { args, .. } = *p;
        let ids = created_ids(args.known.get("created")).unwrap_or_default();
        if keep(&args.known) {
            return Ok(Description {
                summary: "keep the rescue VM and its network (keep is set)".into(),
                ..Default::default()
            });
        }
        Ok(Description {
            summary: if ids.is_empty() {
                format!("delete what {} created", args.display("created"))
            } else {
                format!(
                    "delete rescue VM {} with exactly what this run created",
                    ids[0].name
                )
            },
            changes: ids
                .iter()
                .map(|id| {
                    change(
                        ChangeKind::Delete,
                        id.kind,
                        Some(id),
                        &id.name,
                        "this run's (its tag is checked first)",
                    )
                })
                .collect(),
            calls: ids
                .iter()
                .map(|id| format!("GET {id}, DELETE {id}"))
                .collect(),
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        if keep(args) {
            return Ok(output("deleted", json!([])));
        }
        let ids = created_ids(args.get("created"))?;
        with_progress(ctx, delete_all(ctx, &ids, OPERATION)).await?;
        Ok(output(
            "deleted",
            json!(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()),
        ))
    }
}
