//! `azure.vm.inspect` and `azure.check.compatible`: read-only facts a repair is planned on.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};
use crate::azure::model::Vm;

pub struct Inspect;

static INSPECT: ActionSpec = ActionSpec {
    name: "azure.vm.inspect",
    summary: "read a VM: OS disk, zone, generation, size, power state, data disks, agent status",
    params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
    outputs: &[
        OutputSpec {
            name: "id",
            description: "the VM's ARM id",
        },
        OutputSpec {
            name: "name",
            description: "VM name",
        },
        OutputSpec {
            name: "resource_group",
            description: "the VM's resource group",
        },
        OutputSpec {
            name: "subscription",
            description: "the VM's subscription",
        },
        OutputSpec {
            name: "location",
            description: "Azure region",
        },
        OutputSpec {
            name: "zone",
            description: "availability zone (empty when not zonal)",
        },
        OutputSpec {
            name: "vm_size",
            description: "e.g. Standard_D4s_v5",
        },
        OutputSpec {
            name: "os_type",
            description: "Linux or Windows",
        },
        OutputSpec {
            name: "hyper_v_generation",
            description: "V1 or V2",
        },
        OutputSpec {
            name: "os_disk_id",
            description: "ARM id of the current OS disk",
        },
        OutputSpec {
            name: "os_disk_name",
            description: "name of the current OS disk",
        },
        OutputSpec {
            name: "os_disk_sku",
            description: "SKU of the OS disk, e.g. Premium_LRS",
        },
        OutputSpec {
            name: "os_disk_size_gb",
            description: "size of the OS disk in GiB",
        },
        OutputSpec {
            name: "power_state",
            description: "running, deallocated, stopped, ...",
        },
        OutputSpec {
            name: "agent_status",
            description: "VM agent display status (Ready, Not Ready, unknown)",
        },
        OutputSpec {
            name: "data_disks",
            description: "list of {lun, name, id}",
        },
    ],
    mutates: false,
};

/// Everything inspect reports, from a VM (with instance view) and its OS disk.
pub(crate) fn facts(vm_id: &ResourceId, vm: &Vm, os_disk: Option<&Resource>) -> Outputs {
    let raw = &vm.resource.raw;
    let os = raw
        .pointer("/properties/storageProfile/osDisk")
        .cloned()
        .unwrap_or(Value::Null);
    let disk_prop = |p: &str| os_disk.and_then(|d| d.raw.pointer(p)).cloned();
    let generation = raw
        .pointer("/properties/instanceView/hyperVGeneration")
        .cloned()
        .or_else(|| disk_prop("/properties/hyperVGeneration"))
        .unwrap_or(json!("V1"));
    let data: Vec<Value> = raw
        .pointer("/properties/storageProfile/dataDisks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| json!({"lun": d.get("lun"), "name": d.get("name"), "id": d.pointer("/managedDisk/id")}))
        .collect();
    let mut out = Outputs::new();
    out.insert("id".into(), json!(vm_id.to_string()));
    out.insert("name".into(), json!(vm_id.name));
    out.insert("resource_group".into(), json!(vm_id.resource_group));
    out.insert("subscription".into(), json!(vm_id.subscription));
    out.insert("location".into(), json!(vm.resource.location()));
    out.insert("zone".into(), json!(vm.resource.zone().unwrap_or_default()));
    out.insert(
        "vm_size".into(),
        raw.pointer("/properties/hardwareProfile/vmSize")
            .cloned()
            .unwrap_or(Value::Null),
    );
    out.insert(
        "os_type".into(),
        os.get("osType")
            .cloned()
            .or_else(|| disk_prop("/properties/osType"))
            .unwrap_or(Value::Null),
    );
    out.insert("hyper_v_generation".into(), generation);
    out.insert("os_disk_id".into(), json!(vm.os_disk_id));
    out.insert(
        "os_disk_name".into(),
        os.get("name").cloned().unwrap_or(Value::Null),
    );
    out.insert(
        "os_disk_sku".into(),
        disk_prop("/sku/name").unwrap_or(Value::Null),
    );
    out.insert(
        "os_disk_size_gb".into(),
        disk_prop("/properties/diskSizeGB").unwrap_or(Value::Null),
    );
    out.insert(
        "power_state".into(),
        json!(vm.power.as_deref().unwrap_or("unknown")),
    );
    out.insert(
        "agent_status".into(),
        json!(vm.agent.as_deref().unwrap_or("unknown")),
    );
    out.insert("data_disks".into(), Value::Array(data));
    let str_at = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let ephemeral = os
        .get("diffDiskSettings")
        .map(|d| str_at(d.get("placement")))
        .map(|p| if p.is_empty() { "Local".to_string() } else { p })
        .unwrap_or_default();
    out.insert("ephemeral_os".into(), json!(ephemeral));
    out.insert(
        "disk_controller".into(),
        json!(Some(str_at(
            raw.pointer("/properties/storageProfile/diskControllerType")
        ))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "SCSI".into())),
    );
    out.insert(
        "architecture".into(),
        json!(Some(str_at(
            disk_prop("/properties/supportedCapabilities/architecture").as_ref()
        ))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "x64".into())),
    );
    // Extensions come in the VM's `resources` (the REST spec's VirtualMachine.resources).
    let extensions: Vec<String> = raw
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}.{}",
                str_at(e.pointer("/properties/publisher")),
                str_at(e.pointer("/properties/type"))
            )
        })
        .collect();
    let ade = extensions.iter().any(|e| e.contains("AzureDiskEncryption"))
        || disk_prop("/properties/encryptionSettingsCollection/enabled") == Some(json!(true));
    out.insert("extensions".into(), json!(extensions));
    out.insert("disk_encryption".into(), json!(ade));
    let aks: Vec<String> = vm
        .resource
        .raw
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("aks-managed-"))
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    out.insert("aks_node".into(), json!(aks.join(", ")));
    out.insert(
        "rescue_pool".into(),
        json!(vm.resource.tag(super::pool::POOL_TAG).unwrap_or_default()),
    );
    out
}

/// GET the VM (with instance view) and its OS disk; with the disk itself for checks.
pub(crate) async fn read_vm_and_disk(
    azure: &Azure,
    id: &ResourceId,
) -> Result<(Outputs, Option<Resource>), ActionError> {
    let vm = azure
        .read_vm(id, true)
        .await?
        .ok_or_else(|| match vmss_instance(&id.name) {
            Some(scale_set) => ActionError::refused(format!(
                "{} is not a standalone VM but an instance of the scale set {scale_set}: AKS node \
             pools are VMSS Uniform, whose instances the VM APIs cannot read or change, and whose \
             OS disk cannot be swapped (\"Virtual Machine Scale Sets: orchestration modes\")",
                id.name
            ))
            .with_hint({
                let (cluster_rg, cluster) =
                    aks_cluster(&id.resource_group).unwrap_or(("CLUSTER_RG", "CLUSTER"));
                format!(
                    "replace the node instead, as AKS supports: `rescue run aks-node-replace -g \
                 {cluster_rg} --cluster-name {cluster} --node {0}` (it makes room for its pods, \
                 keeps a snapshot of its OS disk and deletes the machine through its pool)",
                    id.name
                )
            }),
            None => ActionError::refused(format!(
                "VM {} does not exist in resource group {} (subscription {})",
                id.name, id.resource_group, id.subscription
            ))
            .with_hint("check the name and resource group: `az vm list -g RG -o table`"),
        })?;
    let disk = match vm.os_disk_id.as_str() {
        "" => None,
        disk_id => azure.read(&ResourceId::parse(disk_id)?).await?,
    };
    Ok((facts(id, &vm, disk.as_ref()), disk))
}

/// The scale set of a VMSS Uniform instance's computer name: the scale set's name prefix plus
/// six base-36 digits, as AKS names its nodes (`aks-nodepool1-12345678-vmss000002`; "Virtual
/// Machine Scale Sets: computer name prefix" in Microsoft's docs).
fn vmss_instance(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(6)?;
    let (prefix, digits) = (name.get(..cut)?, name.get(cut..)?);
    let is_b36 = |c: char| c.is_ascii_digit() || c.is_ascii_lowercase();
    (prefix.ends_with("vmss") && digits.chars().all(is_b36)).then_some(prefix)
}

/// The cluster's resource group and name from its node resource group, which AKS names
/// `MC_{resourceGroup}_{clusterName}_{location}` by default; None when that is ambiguous.
fn aks_cluster(node_rg: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = node_rg.strip_prefix("MC_")?.split('_').collect();
    match parts[..] {
        [rg, cluster, _location] => Some((rg, cluster)),
        _ => None,
    }
}

pub(crate) async fn read_vm(azure: &Azure, id: &ResourceId) -> Result<Outputs, ActionError> {
    Ok(read_vm_and_disk(azure, id).await?.0)
}

#[async_trait]
impl AzureStep for Inspect {
    const SPEC: &'static ActionSpec = &INSPECT;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let id = plan_vm_id(ctx, args, "resource_group", "vm");
        // The plan read the VM already (read_for_plan); show it, do not read it again.
        let notes = ctx.read.iter().map(|f| {
            format!(
                "now: {}, zone {}, {}, {}, OS disk {} ({} GiB, {}), agent {}",
                f["power_state"].as_str().unwrap_or("?"),
                f["zone"]
                    .as_str()
                    .filter(|z| !z.is_empty())
                    .unwrap_or("none"),
                f["vm_size"].as_str().unwrap_or("?"),
                f["hyper_v_generation"].as_str().unwrap_or("?"),
                f["os_disk_name"].as_str().unwrap_or("?"),
                f["os_disk_size_gb"],
                f["os_disk_sku"].as_str().unwrap_or("?"),
                f["agent_status"].as_str().unwrap_or("?"),
            )
        });
        let notes = notes.collect();
        Ok(Description {
            summary: format!(
                "inspect VM {} in {}",
                args.display("vm"),
                args.display("resource_group")
            ),
            calls: vec![
                call(
                    "GET",
                    id.as_ref(),
                    "?$expand=instanceView",
                    ".../virtualMachines/VM",
                ),
                "GET .../disks/OS_DISK".into(),
            ],
            notes,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        read_vm(azure, &id).await
    }

    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        let Known { ctx, args } = *k;
        let azure = ctx.env.azure.as_ref()?;
        Some(match vm_id(azure, args, "resource_group", "vm") {
            Ok(id) => read_vm(azure, &id).await,
            Err(e) => Err(e),
        })
    }
}

// ---------------------------------------------------------------------------------------------

pub struct CheckCompatible;

static CHECK: ActionSpec = ActionSpec {
    name: "azure.check.compatible",
    summary: "pre-flight: refuse a VM whose OS disk cannot be swapped (VMSS instance, ephemeral, ADE, Windows) or a rescue VM that cannot take it (region, zone, architecture, generation, no free LUN); AKS nodes and healthy VMs need a go-ahead",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        Param { name: "rescue_resource_group", ty: ParamType::String, required: false, description: "resource group of the rescue VM (default the VM's)" },
        Param { name: "rescue_vm", ty: ParamType::String, required: false, description: "rescue VM name (empty: check the broken VM alone)" },
        Param { name: "allow_aks_node", ty: ParamType::Boolean, required: false, description: "repair an AKS node VM although AKS's support policy calls IaaS changes to nodes unsupported" },
        Param { name: "force_healthy", ty: ParamType::Boolean, required: false, description: "repair a VM that looks healthy (agent Ready, no filesystem complaint at boot) without asking" },
        P_SUBSCRIPTION,
    ],
    outputs: &[
        OutputSpec { name: "location", description: "the shared region" },
        OutputSpec { name: "zone", description: "the shared zone (empty when not zonal)" },
    ],
    mutates: false,
};

/// Why the rescue VM cannot be used, one reason per line; empty when it can.
pub(crate) fn incompatibilities(broken: &Outputs, rescue: &Outputs) -> Vec<String> {
    let s = |o: &Outputs, k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut problems = Vec::new();
    if same_id(&s(broken, "id"), &s(rescue, "id")) {
        problems.push("the rescue VM is the broken VM itself; pick another VM".to_string());
    }
    if !s(broken, "location").eq_ignore_ascii_case(&s(rescue, "location")) {
        problems.push(format!(
            "regions differ: the broken VM is in {}, the rescue VM in {} (a disk attaches only in its own region)",
            s(broken, "location"),
            s(rescue, "location")
        ));
    }
    if s(broken, "zone") != s(rescue, "zone") {
        let z = |z: String| {
            if z.is_empty() {
                "no zone".to_string()
            } else {
                format!("zone {z}")
            }
        };
        problems.push(format!(
            "zones differ: the broken VM is in {}, the rescue VM in {} (the disk copy is created in the broken VM's zone)",
            z(s(broken, "zone")),
            z(s(rescue, "zone"))
        ));
    }
    if !s(broken, "architecture").eq_ignore_ascii_case(&s(rescue, "architecture")) {
        problems.push(format!(
            "architectures differ: the broken VM is {}, the rescue VM {} (az vm repair makes its repair VM match the source's architecture; pick a rescue VM of the same one)",
            s(broken, "architecture"),
            s(rescue, "architecture")
        ));
    }
    if s(broken, "hyper_v_generation") != s(rescue, "hyper_v_generation") {
        problems.push(format!(
            "Hyper-V generations differ: the broken VM is {}, the rescue VM {} (az vm repair makes its repair VM match the source's generation)",
            s(broken, "hyper_v_generation"),
            s(rescue, "hyper_v_generation")
        ));
    }
    let used = rescue
        .get("data_disks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if used >= 64 {
        problems
            .push("the rescue VM has no free LUN (0-63 all used): detach a data disk first".into());
    }
    if s(rescue, "os_type").eq_ignore_ascii_case("Windows") {
        problems.push("the rescue VM runs Windows: the fsck script needs a Linux rescue VM".into());
    }
    if s(rescue, "power_state") != "running" {
        problems.push(format!(
            "the rescue VM is {}, not running (start it first: attach the copy only after the rescue VM has booted)",
            s(rescue, "power_state")
        ));
    }
    problems
}

/// Why the broken VM's OS disk cannot be repaired by a swap at all, one reason per line, each
/// with what to do instead.
pub(crate) fn unswappable(broken: &Outputs) -> Vec<String> {
    let s = |k: &str| broken.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut problems = Vec::new();
    if s("os_type").eq_ignore_ascii_case("Windows") {
        problems.push("its OS disk is Windows: fsck-disk.sh repairs Linux filesystems (for Windows, `az vm repair` has its own scripts)".to_string());
    }
    if !s("ephemeral_os").is_empty() {
        problems.push(format!(
            "its OS disk is ephemeral (placement {}): Azure supports neither disk snapshots nor OS disk swaps of one, nor stop-deallocate (Microsoft's \"Ephemeral OS disks for Azure VMs\", Unsupported features); reimage or redeploy it instead (for an AKS node: aks-node-replace)",
            s("ephemeral_os")
        ));
    }
    if broken.get("disk_encryption") == Some(&json!(true)) {
        problems.push("its disks use Azure Disk Encryption: a copy attached to a rescue VM is unreadable without the key in Key Vault; use `az vm repair create --unlock-encrypted-vm`, which unlocks it".to_string());
    }
    problems
}

/// An AKS node's tags, when the VM is one: AKS's support policy calls IaaS changes to node VMs
/// unsupported (the AKS support policies: "Any modification ... to the IaaS resources of the
/// agent nodes is not supported").
fn aks_warning(broken: &Outputs) -> Option<String> {
    let tags = broken
        .get("aks_node")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (!tags.is_empty()).then(|| format!(
        "this VM is an AKS node ({tags}): AKS's support policy calls changes to node VMs through IaaS APIs unsupported. The supported path is to replace the node (workflow aks-node-replace); an OS-disk swap needs `--allow-aks-node` (input allow_aks_node=true)"
    ))
}

/// Signs of a filesystem in trouble in a serial log (the kernel's and fsck's own texts).
const COMPLAINTS: &[&str] = &[
    "contains a file system with errors",
    "structure needs cleaning",
    "UNEXPECTED INCONSISTENCY",
    "EXT4-fs error",
    "Metadata corruption detected",
    "log mount failed",
    "emergency mode",
    "Dropping to a shell",
    "requires a manual fsck",
];

/// The VM looks healthy: its agent is Ready and (when read) its serial log shows no filesystem
/// complaint. Repairing it deallocates a working VM.
fn healthy_warning(broken: &Outputs, serial: Option<&str>) -> Option<String> {
    let ready = broken.get("agent_status").and_then(Value::as_str) == Some("Ready");
    let complaint = serial.and_then(|log| COMPLAINTS.iter().find(|c| log.contains(**c)));
    (ready && complaint.is_none()).then(|| {
        format!(
            "the VM looks healthy: its agent is Ready{}; repairing it deallocates a working VM",
            if serial.is_some() {
                " and its serial log shows no filesystem complaint"
            } else {
                ""
            }
        )
    })
}

fn flag(args: &Args, name: &str) -> bool {
    args.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads both VMs and finds what refuses the run; the broken VM's facts. A rescue VM that
/// another fleet shares out is an error of its own (exit 3: someone else holds it).
async fn preflight(
    env: &Env,
    azure: &Azure,
    args: &Args,
) -> Result<(Outputs, Vec<String>), ActionError> {
    let broken_id = vm_id(azure, args, "resource_group", "vm")?;
    let (broken, disk) = read_vm_and_disk(azure, &broken_id).await?;
    let mut problems = unswappable(&broken);
    if let Some(rescue) = opt_str(args, "rescue_vm") {
        let rg = opt_str(args, "rescue_resource_group").unwrap_or(&broken_id.resource_group);
        let rescue_id = ResourceId::new(&broken_id.subscription, rg, Kind::VirtualMachine, rescue);
        let rescue = read_vm(azure, &rescue_id).await?;
        super::pool::may_use(
            rescue.get("rescue_pool").and_then(Value::as_str),
            &rescue_id.name,
            env.fleet.as_deref(),
            env.force_unlock.as_deref(),
        )?;
        problems.extend(incompatibilities(&broken, &rescue));
    }
    problems.extend(disk.as_ref().and_then(copy::refusal));
    Ok((broken, problems))
}

fn refusal(vm: &str, problems: &[String]) -> ActionError {
    ActionError::refused(format!(
        "VM {vm} cannot be repaired this way:\n  - {}",
        problems.join("\n  - ")
    ))
    .with_hint("nothing was changed; each reason says what to do instead")
}

#[async_trait]
impl AzureStep for CheckCompatible {
    const SPEC: &'static ActionSpec = &CHECK;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let broken = plan_vm_id(ctx, args, "resource_group", "vm");
        let rescue = plan_vm_id(ctx, args, "rescue_resource_group", "rescue_vm");
        let (mut notes, mut warnings) = (Vec::new(), Vec::new());
        if let (Some(azure), true) = (&ctx.env.azure, args.unknown.is_empty()) {
            match preflight(&ctx.env, azure, &args.known).await {
                Ok((broken, problems)) => {
                    if problems.is_empty() {
                        notes.push("compatible now".into());
                    }
                    warnings.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("the run would stop here: {p}")),
                    );
                    if let Some(w) =
                        aks_warning(&broken).filter(|_| !flag(&args.known, "allow_aks_node"))
                    {
                        warnings.push(w);
                    }
                    if let Some(w) = healthy_warning(&broken, None)
                        .filter(|_| !flag(&args.known, "force_healthy"))
                    {
                        warnings.push(format!("{w}: the run asks before going on, even with --yes (`--input force_healthy=true` does not ask)"));
                    }
                }
                Err(e) if e.locked => {
                    warnings.push(format!("the run would stop here (exit 3): {}", e.message))
                }
                Err(e) => notes.push(format!("cannot read it now: {}", e.message)),
            }
        }
        Ok(Description {
            summary: format!(
                "check VM {} can be repaired (and rescue VM {} can take its disk)",
                args.display("vm"),
                args.display("rescue_vm")
            ),
            calls: vec![
                call(
                    "GET",
                    broken.as_ref(),
                    "?$expand=instanceView",
                    ".../virtualMachines/VM",
                ),
                call(
                    "GET",
                    rescue.as_ref(),
                    "?$expand=instanceView",
                    ".../virtualMachines/RESCUE_VM",
                ),
                "POST .../virtualMachines/VM/retrieveBootDiagnosticsData (when its agent is Ready)"
                    .into(),
            ],
            notes,
            warnings,
            ..Default::default()
        })
    }

    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        let Known { ctx, args } = *k;
        let azure = ctx.env.azure.as_ref()?;
        Some(match preflight(&ctx.env, azure, args).await {
            Ok((broken, problems)) if problems.is_empty() => Ok(located(&broken)),
            Ok((broken, problems)) => {
                Err(refusal(broken["name"].as_str().unwrap_or("?"), &problems))
            }
            Err(e) => Err(e),
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let (broken, problems) = with_progress(ctx, preflight(&ctx.env, azure, args)).await?;
        let name = broken["name"].as_str().unwrap_or("?").to_string();
        if !problems.is_empty() {
            return Err(refusal(&name, &problems));
        }
        if let Some(w) = aks_warning(&broken).filter(|_| !flag(args, "allow_aks_node")) {
            return Err(ActionError::refused(w).with_hint(
                "nothing was changed; to swap the node's OS disk anyway, run again with `--allow-aks-node` (input allow_aks_node=true)",
            ));
        }
        if !flag(args, "force_healthy") && healthy_warning(&broken, None).is_some() {
            let id = vm_id(azure, args, "resource_group", "vm")?;
            let serial = azure.serial_log(&id).await;
            if let Some(w) = healthy_warning(&broken, serial.as_deref()) {
                let asked =
                    tokio::task::block_in_place(|| ctx.ask(&format!("{w}. Repair it anyway?")));
                match asked {
                    Some(true) => {}
                    Some(false) => {
                        return Err(ActionError::refused(format!("{w}; not confirmed"))
                            .with_hint("nothing was changed"))
                    }
                    None => {
                        return Err(ActionError::refused(w).with_hint(
                            "nothing was changed; there is no terminal to ask on: to repair it anyway, run again with `--input force_healthy=true`",
                        ))
                    }
                }
            }
        }
        Ok(located(&broken))
    }
}

/// The step's outputs: where the repair happens.
fn located(broken: &Outputs) -> Outputs {
    let mut out = Outputs::new();
    out.insert("location".into(), broken["location"].clone());
    out.insert("zone".into(), broken["zone"].clone());
    out
}

#[cfg(test)]
mod tests {
    use super::{aks_cluster, vmss_instance};

    #[test]
    fn an_aks_node_resource_group_and_scale_set_name_the_cluster_and_pool() {
        assert_eq!(
            aks_cluster("MC_prod-rg_prod-aks_westeurope"),
            Some(("prod-rg", "prod-aks"))
        );
        assert_eq!(aks_cluster("MC_my_rg_aks_westeurope"), None);
        assert_eq!(aks_cluster("prod-rg"), None);
    }

    #[test]
    fn aks_vmss_node_names_are_recognised_and_standalone_names_are_not() {
        assert_eq!(
            vmss_instance("aks-nodepool1-12345678-vmss00000a"),
            Some("aks-nodepool1-12345678-vmss")
        );
        assert_eq!(vmss_instance("aks-nodepool1-31415926-vm2"), None);
        assert_eq!(vmss_instance("vmss"), None);
        assert_eq!(vmss_instance("web-vmss0000ZZ"), None);
        assert_eq!(vmss_instance("ünïcödé-vmss"), None);
    }

    use super::*;

    fn vm(id: &str, loc: &str, zone: &str, power: &str) -> Outputs {
        let mut o = Outputs::new();
        o.insert("id".into(), json!(id));
        o.insert("location".into(), json!(loc));
        o.insert("zone".into(), json!(zone));
        o.insert("power_state".into(), json!(power));
        o
    }

    #[test]
    fn compatible_when_same_region_zone_and_running() {
        assert!(incompatibilities(
            &vm("a", "westeurope", "1", "deallocated"),
            &vm("b", "westeurope", "1", "running")
        )
        .is_empty());
    }

    #[test]
    fn every_mismatch_is_reported() {
        let p = incompatibilities(
            &vm("a", "westeurope", "1", "running"),
            &vm("A", "northeurope", "2", "deallocated"),
        );
        assert_eq!(p.len(), 4, "{p:?}");
    }
}
