//! Node objects as an AKS node's kubelet registers them, and the status the node lifecycle
//! controller writes when a node goes silent.

use serde_json::{json, Value};

use super::quantity;
use super::scenario::NodeSpec;
use super::store::now_rfc3339;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Non-graceful node shutdown's taint (KEP-2268, GA in v1.28): "node.kubernetes.io/out-of-service".
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The condition types a kubelet reports (k8s.io/api core/v1 NodeConditionType), in its order.
const CONDITIONS: &[(&str, &str, &str)] = &[
    (
        "MemoryPressure",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    ("Ready", "KubeletReady", "kubelet is posting ready status"),
];

/// What a kubelet knows of its machine beside what is allocatable: its capacity (millicores,
/// bytes) and how many pods it takes.
pub struct Machine {
    pub cpu: u64,
    pub memory: u64,
    pub pods: u64,
}

/// A node as its kubelet registers it; `machine` is `None` for a node declared only by what
/// is allocatable.
pub fn new_node(n: &NodeSpec, version: &str, ready: bool, machine: Option<&Machine>) -> Value {
    let cpu = quantity::cpu_millis(&n.cpu).unwrap_or(0);
    let mem = quantity::bytes(&n.memory).unwrap_or(0);
    // The kubelet reserves part of capacity; a node declared by hand gives what is allocatable,
    // and capacity is shown as the same figure.
    let (cap_cpu, cap_mem, pods) = machine.map_or((cpu, mem, 110), |m| (m.cpu, m.memory, m.pods));
    // AKS names nodes aks-<pool>-<hash>-vmss<instance>; its pool label is the second part.
    let pool = n.name.split('-').nth(1).unwrap_or("nodepool1");
    let mut labels = json!({
        "agentpool": pool,
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.azure.com/agentpool": pool,
        "kubernetes.azure.com/mode": "system",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
    });
    if let Some(z) = &n.zone {
        labels["topology.kubernetes.io/zone"] = json!(z);
        labels["topology.disk.csi.azure.com/zone"] = json!(z);
    }
    for (k, v) in &n.labels {
        labels[k] = json!(v);
    }
    let now = now_rfc3339();
    let mut node = json!({
        "metadata": {
            "name": n.name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"providerID": n.provider_id},
        "status": {
            "capacity": {"cpu": quantity::format_millis(cap_cpu), "memory": format!("{}Ki", cap_mem / 1024), "pods": pods.to_string(), "ephemeral-storage": "129886128Ki"},
            "allocatable": {"cpu": quantity::format_millis(cpu), "memory": format!("{}Ki", mem / 1024), "pods": pods.to_string(), "ephemeral-storage": "119703055367"},
            "addresses": [
                {"type": "InternalIP", "address": "10.224.0.4"},
                {"type": "Hostname", "address": n.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": super::super::arm::guid(),
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "kernelVersion": "5.15.0-1089-azure",
                "kubeProxyVersion": version,
                "kubeletVersion": version,
                "machineID": hex::encode(rand::random::<[u8; 16]>()),
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": super::super::arm::guid(),
            },
            "conditions": kubelet_conditions(&now),
        },
    });
    if !ready {
        mark_unknown(&mut node, &now);
    }
    node
}

/// What the node lifecycle controller writes when a node's kubelet stops posting status for
/// the grace period (pkg/controller/nodelifecycle/node_lifecycle_controller.go
/// tryUpdateNodeHealth: every condition Unknown, reason NodeStatusUnknown, "Kubelet stopped
/// posting node status."), plus the unreachable taints it then adds (NoSchedule in
/// doNoScheduleTaintingPass, NoExecute with `timeAdded` in doNoExecuteTaintingPass).
pub fn mark_unknown(node: &mut Value, now: &str) {
    for c in node["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if c["status"] != "Unknown" {
            c["status"] = json!("Unknown");
            c["lastTransitionTime"] = json!(now);
        }
        c["reason"] = json!("NodeStatusUnknown");
        c["message"] = json!("Kubelet stopped posting node status.");
    }
    let mut taints = taints(node);
    for (effect, time) in [("NoSchedule", None), ("NoExecute", Some(now))] {
        if !taints
            .iter()
            .any(|t| t["key"] == UNREACHABLE && t["effect"] == effect)
        {
            let mut t = json!({"key": UNREACHABLE, "effect": effect});
            if let Some(time) = time {
                t["timeAdded"] = json!(time);
            }
            taints.push(t);
        }
    }
    node["spec"]["taints"] = json!(taints);
}

/// A kubelet posting again: its conditions as on registration, the unreachable taints removed.
/// The conditions a healthy kubelet posts: no pressure, Ready.
fn kubelet_conditions(now: &str) -> Value {
    CONDITIONS
        .iter()
        .map(|(t, reason, message)| {
            json!({
                "type": t,
                "status": if *t == "Ready" { "True" } else { "False" },
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            })
        })
        .collect()
}

pub fn mark_ready(node: &mut Value, now: &str) {
    node["status"]["conditions"] = kubelet_conditions(now);
    let taints: Vec<Value> = taints(node)
        .into_iter()
        .filter(|t| t["key"] != UNREACHABLE)
        .collect();
    set_taints(node, taints);
}

pub fn taints(node: &Value) -> Vec<Value> {
    node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn set_taints(node: &mut Value, taints: Vec<Value>) {
    if taints.is_empty() {
        if let Some(spec) = node["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        node["spec"]["taints"] = json!(taints);
    }
}

pub fn sync_unschedulable_taint(node: &mut Value) {
    let want = unschedulable(node);
    let mut taints = taints(node);
    let has = taints.iter().any(|t| t["key"] == UNSCHEDULABLE);
    if want && !has {
        taints.push(
            json!({"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": now_rfc3339()}),
        );
    } else if !want && has {
        taints.retain(|t| t["key"] != UNSCHEDULABLE);
    } else {
        return;
    }
    set_taints(node, taints);
}

pub fn is_ready(node: &Value) -> bool {
    condition(node, "Ready") == Some("True")
}

pub fn condition<'a>(node: &'a Value, kind: &str) -> Option<&'a str> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
}

pub fn has_taint(node: &Value, key: &str) -> bool {
    taints(node).iter().any(|t| t["key"] == key)
}

pub fn unschedulable(node: &Value) -> bool {
    node["spec"]["unschedulable"].as_bool() == Some(true)
}

pub fn allocatable(node: &Value) -> (u64, u64) {
    let a = &node["status"]["allocatable"];
    (
        a["cpu"]
            .as_str()
            .and_then(|q| quantity::cpu_millis(q).ok())
            .unwrap_or(0),
        a["memory"]
            .as_str()
            .and_then(|q| quantity::bytes(q).ok())
            .unwrap_or(0),
    )
}

pub fn provider_id(node: &Value) -> &str {
    node["spec"]["providerID"].as_str().unwrap_or_default()
}
