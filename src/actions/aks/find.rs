//! `aks.node.find`: a node, the scale-set instance behind it and the pods that must move;
//! `aks.disk.find_holder`: the VM or instance a disk is stuck on, and whether it may be stopped.
//! Both only read, so a plan shows what they find.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::azure::{Known, Plan, Run, P_RESOURCE_GROUP, P_SUBSCRIPTION};
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};
use crate::azure::model::Vm;

pub struct FindNode;
pub struct FindHolder;

const fn out(name: &'static str, description: &'static str) -> OutputSpec {
    OutputSpec { name, description }
}

static FIND_NODE: ActionSpec = ActionSpec {
    name: "aks.node.find",
    summary:
        "read an AKS node: its scale-set instance, OS disk, data disks and the pods that must move",
    params: &[
        P_RESOURCE_GROUP,
        Param {
            name: "cluster",
            ty: ParamType::String,
            required: true,
            description: "the AKS cluster's name",
        },
        P_NODE,
        Param {
            name: "pool",
            ty: ParamType::String,
            required: false,
            description: "the node's pool (default: its `agentpool` label)",
        },
        P_KUBECONFIG,
        Param {
            name: "allow_ready_node",
            ty: ParamType::Boolean,
            required: false,
            description: "replace a node that is Ready and running (its pods stop without a drain)",
        },
        P_SUBSCRIPTION,
    ],
    outputs: &[
        out("cluster_id", "the cluster's ARM id"),
        out("instance_id", "the scale-set instance's ARM id"),
        out("os_disk_id", "the instance's OS disk"),
        out(
            "data_disk_ids",
            "the managed disks attached to the instance",
        ),
        out("pool", "the node's pool"),
        out("pool_count", "the pool's node count now"),
        out("ready", "whether the node is Ready"),
        out(
            "not_ready_since",
            "when the node stopped being Ready (RFC 3339; empty if Ready)",
        ),
        out(
            "power_state",
            "the instance's power state, as Azure reports it",
        ),
        out(
            "pods",
            "the pods on the node that must move (not DaemonSets')",
        ),
        out(
            "owners",
            "for each owner of those pods, how many pods it has in all",
        ),
    ],
    mutates: false,
};

static FIND_HOLDER: ActionSpec = ActionSpec {
    name: "aks.disk.find_holder",
    summary: "read the VM or scale-set instance a managed disk is attached to, and its node",
    params: &[
        Param {
            name: "disk_id",
            ty: ParamType::String,
            required: true,
            description: "the managed disk's ARM id",
        },
        Param {
            name: "cluster_id",
            ty: ParamType::String,
            required: false,
            description: "the AKS cluster whose node holds it (its node's Ready condition is then checked too)",
        },
        P_KUBECONFIG,
    ],
    outputs: &[
        out("holder_id", "the VM or instance holding the disk (empty: none)"),
        out("power_state", "its power state"),
        out("node", "its Kubernetes node (empty: none found)"),
        out("node_ready", "whether that node is Ready"),
    ],
    mutates: false,
};

/// Read the node and everything the replacement needs to know about it.
async fn find_node(env: &crate::actions::Env, args: &Args) -> Result<Outputs, ActionError> {
    let azure = env.azure()?;
    let cluster_id = cluster_arg(azure, args)?;
    let name = str_arg(args, "node")?;
    azure.read_existing(&cluster_id).await?;
    let k = connect(env, &cluster_id, args).await?;
    let Some(node) = k.node(name).await? else {
        let names: Vec<String> = k.nodes().await?.into_iter().map(|n| n.name).collect();
        return Err(ActionError::refused(format!(
            "node {name} does not exist in cluster {} (its nodes: {})",
            cluster_id.name,
            names.join(", ")
        ))
        .with_hint("name one of its nodes with --node (`kubectl get nodes` lists them)"));
    };
    let instance_id = crate::azure::aks::provider_id(&node.provider_id)?;
    if instance_id.kind != Kind::ScaleSetVm {
        return Err(ActionError::refused(format!(
            "node {name} is a standalone VM ({}), not a scale-set instance: its pool cannot delete it",
            instance_id.name
        ))
        .with_hint(format!(
            "repair its OS disk instead: `rescue run os-disk-swap -g {} -n {} --allow-aks-node`",
            instance_id.resource_group, instance_id.name
        )));
    }
    let vm: Vm = azure.read_existing_vm(&instance_id, true).await?;
    let power = vm.power.clone().unwrap_or_else(|| "unknown".into());
    if node.ready && power == "running" && args.get("allow_ready_node") != Some(&json!(true)) {
        return Err(ActionError::refused(format!(
            "node {name} is Ready and its instance is running: replacing it would stop its pods without a drain"
        ))
        .with_hint(format!(
            "drain it first (`kubectl drain {name} --ignore-daemonsets --delete-emptydir-data`), or pass `--input allow_ready_node=true`"
        )));
    }
    let pool = opt_str(args, "pool")
        .map(str::to_string)
        .or_else(|| node.labels.get("agentpool").cloned())
        .or_else(|| node.labels.get("kubernetes.azure.com/agentpool").cloned())
        .ok_or_else(|| {
            ActionError::refused(format!("node {name} has no `agentpool` label"))
                .with_hint("name its pool with `--input pool=POOL`")
        })?;
    let pool_res = azure.read_existing(&pool_id(&cluster_id, &pool)).await?;
    let pool_count = pool_res.raw["properties"]["count"].as_u64().unwrap_or(0);
    let pods = k.pods().await?;
    let moving = displaced(&pods, name);
    // What each workload wants running, from its controller: counting its pods would count
    // the dead node's Terminating ones and their replacements twice.
    let mut owners: BTreeMap<String, u64> = BTreeMap::new();
    for p in &moving {
        let Some(owner) = &p.owner else { continue };
        let key = format!("{}/{owner}", p.namespace);
        if owners.contains_key(&key) {
            continue;
        }
        // A bare pod, or another controller's: it alone.
        let wanted = k.replicas(&p.namespace, owner).await?.unwrap_or(1);
        owners.insert(key, wanted);
    }
    let mut out = Outputs::new();
    out.insert("cluster_id".into(), json!(cluster_id.to_string()));
    out.insert("instance_id".into(), json!(instance_id.to_string()));
    out.insert("os_disk_id".into(), json!(vm.os_disk_id));
    out.insert(
        "data_disk_ids".into(),
        json!(vm.data_disks.iter().map(|d| &d.disk_id).collect::<Vec<_>>()),
    );
    out.insert("pool".into(), json!(pool));
    out.insert("pool_count".into(), json!(pool_count));
    out.insert("ready".into(), json!(node.ready));
    let since = node.ready_changed.clone().filter(|_| !node.ready);
    out.insert("not_ready_since".into(), json!(since.unwrap_or_default()));
    out.insert("power_state".into(), json!(power));
    out.insert(
        "pods".into(),
        Value::Array(moving.iter().map(pod_json).collect()),
    );
    out.insert("owners".into(), json!(owners));
    Ok(out)
}

#[async_trait]
impl AzureStep for FindNode {
    const SPEC: &'static ActionSpec = &FIND_NODE;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let notes = ctx
            .read
            .iter()
            .map(|f| {
                let pods: Vec<&str> = f["pods"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["pod"].as_str())
                    .collect();
                format!(
                    "now: node {}, instance {} {}, pool {} of {} nodes, {} pod(s) to move: {}",
                    if f["ready"] == json!(true) {
                        "Ready"
                    } else {
                        "NotReady"
                    },
                    super::super::azure::short(f["instance_id"].as_str().unwrap_or("?")),
                    f["power_state"].as_str().unwrap_or("?"),
                    f["pool"].as_str().unwrap_or("?"),
                    f["pool_count"],
                    pods.len(),
                    pods.join(", ")
                )
            })
            .collect();
        Ok(Description {
            summary: format!(
                "find node {} of AKS cluster {}",
                args.display("node"),
                args.display("cluster")
            ),
            calls: vec![
                "GET .../managedClusters/CLUSTER".into(),
                "POST .../managedClusters/CLUSTER/listClusterAdminCredential (unless kubeconfig)"
                    .into(),
                "GET /api/v1/nodes/NODE, GET /api/v1/pods".into(),
                "GET .../virtualMachineScaleSets/VMSS/virtualMachines/ID?$expand=instanceView"
                    .into(),
            ],
            notes,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        find_node(&r.ctx.env, r.args).await
    }

    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        k.ctx.env.azure.as_ref()?;
        Some(find_node(&k.ctx.env, k.args).await)
    }
}

async fn find_holder(env: &crate::actions::Env, args: &Args) -> Result<Outputs, ActionError> {
    let azure = env.azure()?;
    let disk_id = super::super::azure::id_arg(args, "disk_id", Kind::Disk)?;
    let disk = azure.read_existing(&disk_id).await?;
    let mut out = Outputs::new();
    let holder = disk.str("/managedBy").unwrap_or_default().to_string();
    out.insert("holder_id".into(), json!(holder));
    out.insert("power_state".into(), json!(""));
    out.insert("node".into(), json!(""));
    out.insert("node_ready".into(), json!(false));
    if holder.is_empty() {
        return Ok(out);
    }
    let holder_id = ResourceId::parse(&holder)?;
    let vm = azure.read_existing_vm(&holder_id, true).await?;
    let power = vm.power.clone().unwrap_or_else(|| "unknown".into());
    out.insert("power_state".into(), json!(power));
    let mut node_ready = vm.agent.as_deref() == Some("Ready");
    if let Some(cluster) = opt_str(args, "cluster_id") {
        let cluster = ResourceId::parse(cluster)?;
        let k = connect(env, &cluster, args).await?;
        let node = k.nodes().await?.into_iter().find(|n| {
            crate::azure::aks::provider_id(&n.provider_id).is_ok_and(|id| id.same_as(&holder))
        });
        if let Some(n) = node {
            node_ready = n.ready;
            out.insert("node".into(), json!(n.name));
        }
    }
    out.insert("node_ready".into(), json!(node_ready));
    if power == "running" && node_ready {
        return Err(ActionError::refused(format!(
            "disk {} is attached to {}, which is running and whose node is Ready: it is in use, not stuck",
            disk_id.name, vm.name()
        ))
        .with_hint("move its workload first (`kubectl drain`), or replace the node with `rescue run aks-node-replace`"));
    }
    Ok(out)
}

#[async_trait]
impl AzureStep for FindHolder {
    const SPEC: &'static ActionSpec = &FIND_HOLDER;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let notes = ctx
            .read
            .iter()
            .map(|f| match f["holder_id"].as_str() {
                Some("") | None => "now: the disk is attached to nothing".to_string(),
                Some(h) => format!(
                    "now: attached to {} ({}), node {} {}",
                    super::super::azure::short(h),
                    f["power_state"].as_str().unwrap_or("?"),
                    f["node"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or("(none)"),
                    if f["node_ready"] == json!(true) {
                        "Ready"
                    } else {
                        "NotReady"
                    },
                ),
            })
            .collect();
        Ok(Description {
            summary: format!("find what disk {} is attached to", args.display("disk_id")),
            calls: vec![
                "GET .../disks/DISK".into(),
                "GET HOLDER?$expand=instanceView".into(),
            ],
            notes,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        find_holder(&r.ctx.env, r.args).await
    }

    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        k.ctx.env.azure.as_ref()?;
        Some(find_holder(&k.ctx.env, k.args).await)
    }
}
