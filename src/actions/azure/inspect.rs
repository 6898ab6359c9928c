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
    out
}

/// GET the VM (with instance view) and its OS disk; with the disk itself for checks.
pub(crate) async fn read_vm_and_disk(
    azure: &Azure,
    id: &ResourceId,
) -> Result<(Outputs, Option<Resource>), ActionError> {
    let vm = azure.read_vm(id, true).await?.ok_or_else(|| {
        ActionError::refused(format!(
            "VM {} does not exist in resource group {} (subscription {})",
            id.name, id.resource_group, id.subscription
        ))
        .with_hint("check the name and resource group: `az vm list -g RG -o table`")
    })?;
    let disk = match vm.os_disk_id.as_str() {
        "" => None,
        disk_id => azure.read(&ResourceId::parse(disk_id)?).await?,
    };
    Ok((facts(id, &vm, disk.as_ref()), disk))
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
    summary: "check that a rescue VM can take the broken VM's disk: same region and zone, running, not the same VM",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        Param { name: "rescue_resource_group", ty: ParamType::String, required: true, description: "resource group of the rescue VM" },
        Param { name: "rescue_vm", ty: ParamType::String, required: true, description: "rescue VM name" },
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
    if s(rescue, "power_state") != "running" {
        problems.push(format!(
            "the rescue VM is {}, not running (start it first: attach the copy only after the rescue VM has booted)",
            s(rescue, "power_state")
        ));
    }
    problems
}

#[async_trait]
impl AzureStep for CheckCompatible {
    const SPEC: &'static ActionSpec = &CHECK;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let broken = plan_vm_id(ctx, args, "resource_group", "vm");
        let rescue = plan_vm_id(ctx, args, "rescue_resource_group", "rescue_vm");
        let (mut notes, mut warnings) = (Vec::new(), Vec::new());
        if let (Some(b), Some(r), Some(azure)) = (&broken, &rescue, &ctx.env.azure) {
            match (read_vm(azure, b).await, read_vm(azure, r).await) {
                (Ok(b), Ok(r)) => {
                    let problems = incompatibilities(&b, &r);
                    if problems.is_empty() {
                        notes.push("compatible now".into());
                    }
                    warnings.extend(
                        problems
                            .into_iter()
                            .map(|p| format!("the run would stop here: {p}")),
                    );
                }
                (Err(e), _) | (_, Err(e)) => {
                    notes.push(format!("cannot read it now: {}", e.message))
                }
            }
        }
        Ok(Description {
            summary: format!(
                "check rescue VM {} can repair {}: same region and zone, running",
                args.display("rescue_vm"),
                args.display("vm")
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
            ],
            notes,
            warnings,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let broken_id = vm_id(azure, args, "resource_group", "vm")?;
        let rescue_id = vm_id(azure, args, "rescue_resource_group", "rescue_vm")?;
        let ((broken, disk), rescue) = with_progress(ctx, async {
            Ok::<_, ActionError>((
                read_vm_and_disk(azure, &broken_id).await?,
                read_vm(azure, &rescue_id).await?,
            ))
        })
        .await?;
        let mut problems = incompatibilities(&broken, &rescue);
        problems.extend(disk.as_ref().and_then(copy::refusal));
        if !problems.is_empty() {
            return Err(ActionError::refused(format!(
                "rescue VM {} cannot repair {}:\n  - {}",
                rescue_id.name,
                broken_id.name,
                problems.join("\n  - ")
            ))
            .with_hint("nothing was changed; choose a running rescue VM in the broken VM's region and zone (`--input rescue_vm=NAME`)"));
        }
        let mut out = Outputs::new();
        out.insert("location".into(), broken["location"].clone());
        out.insert("zone".into(), broken["zone"].clone());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
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
