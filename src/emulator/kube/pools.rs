//! An AKS cluster's nodes as its pools' scale set instances make them: the Node a booted
//! instance's kubelet registers (named by the instance's computer name, with AKS's providerID,
//! labels and allocatable), and the Node the cloud node lifecycle controller deletes once its
//! instance is gone.

use std::collections::BTreeMap;

use serde_json::Value;

use super::kinds;
use super::nodes::{self, Machine};
use super::quantity;
use super::scenario::NodeSpec;
use super::store::Cluster;
use crate::emulator::aks;
use crate::emulator::state::{Pool, Power, State, Vm};

/// AKS's kube-reserved CPU in millicores by the host's cores (AKS docs
/// node-resource-reservations.md, "CPU reservations": 1 core 60, 2 cores 100, 4 cores 140,
/// 8 cores 180, 16 cores 260, 32 cores 420, 64 cores 740).
fn reserved_cpu(cores: u64) -> u64 {
    match cores {
        0..=1 => 60,
        2..=3 => 100,
        4..=7 => 140,
        8..=15 => 180,
        16..=31 => 260,
        32..=63 => 420,
        _ => 740,
    }
}

/// Pods per node: the cluster's networkPlugin is `azure` (Azure CNI), whose default maximum is
/// 30 pods per node (AKS docs azure-cni-overview.md / configure-azure-cni.md, "Maximum pods per
/// node": Azure CNI default 30).
const MAX_PODS: u64 = 30;

fn at_least_1_29(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split('.');
    let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 29)
}

/// Memory AKS keeps from pods, in MiB: kube-reserved plus the kubelet's hard eviction threshold
/// (node-resource-reservations.md, "Memory reservations"). AKS 1.29 and later: the lesser of
/// 20 MB × max pods + 50 MB and 25 % of memory, and `memory.available<100Mi`; earlier: 25 % of
/// the first 4 GB, 20 % of the next 4 GB, 10 % of the next 8 GB, 6 % of the next 112 GB and 2 %
/// above 128 GB, and `memory.available<750Mi`. (MB are taken as MiB.)
fn reserved_memory_mib(total: u64, version: &str) -> u64 {
    if at_least_1_29(version) {
        (20 * MAX_PODS + 50).min(total / 4) + 100
    } else {
        let mut left = total;
        let mut reserved = 0;
        for (band, percent) in [
            (4096, 25),
            (4096, 20),
            (8192, 10),
            (114_688, 6),
            (u64::MAX, 2),
        ] {
            let part = left.min(band);
            reserved += part * percent / 100;
            left -= part;
        }
        reserved + 750
    }
}

/// The instances of the cluster's pools, each with its pool, in pool then instance order.
pub fn instances<'a>(state: &'a State, cluster: &str) -> Vec<(&'a Pool, &'a Vm)> {
    let Some(c) = state.clusters.get(cluster) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &c.pools {
        let mut vms: Vec<&Vm> = aks::members(state, &p.scale_set).map(|(_, v)| v).collect();
        vms.sort_by_key(|v| v.scale_set.as_ref().map(|m| m.instance_id));
        out.extend(vms.into_iter().map(|v| (p, v)));
    }
    out
}

/// The Node an instance's kubelet registers: named by the computer name, with the labels AKS's
/// node bootstrap sets (`agentpool`, `kubernetes.azure.com/agentpool`, `kubernetes.azure.com/mode`,
/// `node.kubernetes.io/instance-type`, `topology.kubernetes.io/region` and `zone`, where a
/// zonal node's zone is `<region>-<zone>` and a regional one's `0`, as `kubectl get nodes
/// -L topology.kubernetes.io/zone` shows on AKS: availability-zones.md), capacity from the VM
/// size and allocatable after AKS's reservations.
pub fn node(state: &State, pool: &Pool, vm: &Vm, version: &str) -> Value {
    let member = vm.scale_set.as_ref().expect("an instance");
    // Sizes outside the table are refused by the scenario check; a 2-core 8 GiB machine
    // stands in for anything else.
    let (cores, gib) = aks::vm_size_capacity(&vm.size).unwrap_or((2, 8));
    let total_mib = gib * 1024;
    let cpu = cores * 1000 - reserved_cpu(cores);
    let mib = total_mib - reserved_memory_mib(total_mib, version);
    let zone = match &vm.zone {
        Some(z) => format!("{}-{z}", vm.location),
        None => "0".into(),
    };
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("agentpool", pool.name.clone()),
        ("kubernetes.azure.com/agentpool", pool.name.clone()),
        ("kubernetes.azure.com/mode", pool.mode.to_ascii_lowercase()),
        ("kubernetes.azure.com/cluster", vm.resource_group.clone()),
        ("node.kubernetes.io/instance-type", vm.size.clone()),
        ("beta.kubernetes.io/instance-type", vm.size.clone()),
        ("topology.kubernetes.io/region", vm.location.clone()),
    ] {
        labels.insert(k.to_string(), v);
    }
    let spec = NodeSpec {
        name: member.computer_name.clone(),
        provider_id: aks::provider_id(state, vm),
        cpu: quantity::format_millis(cpu),
        memory: format!("{mib}Mi"),
        ready: true,
        running: true,
        zone: Some(zone),
        labels,
    };
    let machine = Machine {
        cpu: cores * 1000,
        memory: gib << 30,
        pods: MAX_PODS,
    };
    let up = vm.power == Power::Running && vm.agent_ready;
    nodes::new_node(&spec, version, up, Some(&machine))
}

/// Keeps a derived cluster's Nodes in step with its instances: the kubelet of an instance that
/// has booted and whose agent is Ready registers its Node (Ready: it posts status from then
/// on); the cloud node lifecycle controller deletes the Node of an instance that no longer
/// exists ("checks with the cloud provider to determine if a node has been deleted in the
/// cloud after it stops responding. If the node has been deleted, the node lifecycle
/// controller deletes the Node object", Kubernetes docs concepts/architecture/cloud-controller.md).
pub fn sync(c: &mut Cluster, state: &State) -> bool {
    let Some(key) = c.aks.clone() else {
        return false;
    };
    let Some(cluster) = state.clusters.get(&key) else {
        return false;
    };
    let mut changed = false;
    for (pool, vm) in instances(state, &key) {
        let name = &vm.scale_set.as_ref().expect("an instance").computer_name;
        let booted = vm.power == Power::Running && vm.agent_ready;
        if booted && vm.provisioning_state != "Deleting" && c.get(kinds::NODES, name).is_none() {
            let version = c.version.clone();
            c.put(kinds::NODES, node(state, pool, vm, &version));
            changed = true;
        }
    }
    // A providerID under one of the cluster's scale sets whose instance is gone.
    let prefixes: Vec<String> = cluster
        .pools
        .iter()
        .filter_map(|p| state.scale_sets.get(&p.scale_set))
        .map(|ss| {
            let id = crate::emulator::arm::resource_id(
                &state.subscription,
                &ss.resource_group,
                "virtualMachineScaleSets",
                &ss.name,
            );
            format!("azure://{id}/virtualMachines/").to_ascii_lowercase()
        })
        .collect();
    for name in c.keys(kinds::NODES) {
        let Some(n) = c.get(kinds::NODES, &name) else {
            continue;
        };
        let pid = nodes::provider_id(n).to_ascii_lowercase();
        let ours = prefixes.iter().any(|p| pid.starts_with(p.as_str()));
        if ours && aks::instance_by_provider_id(state, &pid).is_none() {
            c.remove(kinds::NODES, &name);
            c.timers.silent_since.remove(&name);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_d4s_v3_keeps_aks_reservations_from_pods() {
        // 4 cores: 140m reserved. 16 GiB on 1.29+: 20 × 30 + 50 = 650 MiB, + 100 MiB eviction.
        assert_eq!(4000 - reserved_cpu(4), 3860);
        assert_eq!(reserved_memory_mib(16384, "v1.29.9"), 750);
        // Before 1.29: 1024 + 819 + 819 MiB, + 750 MiB eviction.
        assert_eq!(reserved_memory_mib(16384, "1.28.5"), 1024 + 819 + 819 + 750);
    }
}
