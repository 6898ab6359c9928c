//! The scenario's `kubernetes:` section: clusters (by their managed cluster's ARM id), their
//! nodes and workloads, seeded as the API objects a running AKS cluster would hold.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::aks::{ClusterSpec as AksSpec, PoolNode};
use super::super::state::State;
use super::kinds;
use super::quantity;
use super::store::{Agent, Cluster};
use super::workloads;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// The managed cluster's ARM id.
    pub cluster: String,
    /// The Kubernetes version `/version` and the nodes report (default v1.32.4).
    #[serde(default)]
    pub version: Option<String>,
    /// The nodes, declared by hand; a cluster that is one of the scenario's `aks_clusters` may
    /// leave them out and gets its pools' instances as nodes.
    #[serde(default)]
    pub nodes: Option<Vec<NodeSpec>>,
    #[serde(default)]
    pub workloads: Vec<WorkloadSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// `spec.providerID`, AKS's form for a VMSS instance:
    /// `azure:///subscriptions/.../virtualMachineScaleSets/<vmss>/virtualMachines/<id>`.
    pub provider_id: String,
    /// Allocatable CPU (`2`, `1900m`).
    pub cpu: String,
    /// Allocatable memory (`8Gi`, `5480Mi`).
    pub memory: String,
    /// Whether the node's VM agent (and so its kubelet) reports; false = a silent node.
    #[serde(default = "yes")]
    pub ready: bool,
    /// Whether the VM runs (a stopped VM is silent too).
    #[serde(default = "yes")]
    pub running: bool,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default)]
    pub image: Option<String>,
    /// Per-pod requests: `{cpu: 500m, memory: 1Gi}`.
    pub requests: Requests,
    /// The node each replica runs on now (by ordinal), by name or as `POOL/INSTANCE_ID` of an
    /// AKS cluster's pool; replicas beyond the list start Pending.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// A StatefulSet's volume claim, bound to an existing managed disk (Azure Disk CSI).
    #[serde(default)]
    pub volume: Option<VolumeSpec>,
    /// Whether the pods mount an emptyDir (what `drain --delete-emptydir-data` is about).
    #[serde(default)]
    pub empty_dir: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// The volumeClaimTemplate's name (default `data`).
    #[serde(default = "default_claim")]
    pub claim: String,
    /// The managed disk's ARM id, the PV's `spec.csi.volumeHandle`.
    pub disk: String,
    #[serde(default = "default_capacity")]
    pub size: String,
}

fn default_namespace() -> String {
    "default".into()
}
fn one() -> u32 {
    1
}
fn default_claim() -> String {
    "data".into()
}
fn default_capacity() -> String {
    "32Gi".into()
}

pub const DEFAULT_VERSION: &str = "v1.32.4";

/// (subscription, resource group, name) of a managed cluster's ARM id.
pub fn parse_cluster_id(id: &str) -> Option<(String, String, String)> {
    let s: Vec<&str> = id.trim_matches('/').split('/').collect();
    let is = |i: usize, w: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    (s.len() == 8
        && is(0, "subscriptions")
        && is(2, "resourceGroups")
        && is(4, "providers")
        && is(5, "Microsoft.ContainerService")
        && is(6, "managedClusters"))
    .then(|| (s[1].to_string(), s[3].to_string(), s[7].to_string()))
}

/// The scenario's AKS cluster with the same id as a `kubernetes:` cluster, if any.
fn aks_of<'a>(spec: &ClusterSpec, subscription: &str, aks: &'a [AksSpec]) -> Option<&'a AksSpec> {
    let (sub, rg, name) = parse_cluster_id(&spec.cluster)?;
    aks.iter().find(|a| {
        sub.eq_ignore_ascii_case(subscription)
            && a.resource_group.eq_ignore_ascii_case(&rg)
            && a.name.eq_ignore_ascii_case(&name)
    })
}

/// A workload's `nodes:` entry as a node name: `POOL/INSTANCE_ID` names a pool's instance.
fn resolve(entry: &str, names: &[String], pool_nodes: &[PoolNode]) -> Option<String> {
    let name = match entry.split_once('/') {
        Some((pool, id)) => {
            let id: u64 = id.parse().ok()?;
            pool_nodes
                .iter()
                .find(|n| n.pool == pool && n.instance == id)?
                .name
                .clone()
        }
        None => entry.to_string(),
    };
    names.contains(&name).then_some(name)
}

/// The node names a cluster starts with and the pool instances behind them.
fn node_names(
    spec: &ClusterSpec,
    subscription: &str,
    aks: &[AksSpec],
) -> (Vec<String>, Vec<PoolNode>) {
    let pool_nodes = aks_of(spec, subscription, aks)
        .map(|a| super::super::aks::pool_nodes(subscription, a))
        .unwrap_or_default();
    let names = match &spec.nodes {
        Some(nodes) => nodes.iter().map(|n| n.name.clone()).collect(),
        None => pool_nodes.iter().map(|n| n.name.clone()).collect(),
    };
    (names, pool_nodes)
}

/// Checks a section before anything is seeded: every error names the cluster and the value.
pub fn check(specs: &[ClusterSpec], subscription: &str, aks: &[AksSpec]) -> anyhow::Result<()> {
    for c in specs {
        if parse_cluster_id(&c.cluster).is_none() {
            bail!(
                "kubernetes: cluster `{}` is not a managed cluster id \
                 (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/NAME)",
                c.cluster
            );
        }
        let ctx = || format!("kubernetes: cluster {}", c.cluster);
        if c.nodes.is_none() {
            let Some(a) = aks_of(c, subscription, aks) else {
                bail!(
                    "{}: declares no `nodes:` and is not one of the scenario's aks_clusters",
                    ctx()
                );
            };
            for p in &a.pools {
                if super::super::aks::vm_size_capacity(&p.vm_size).is_none() {
                    bail!(
                        "{}: pool {} vm_size `{}` is not a size whose nodes this emulator can size",
                        ctx(),
                        p.name,
                        p.vm_size
                    );
                }
            }
        }
        let (node_names, pool_nodes) = node_names(c, subscription, aks);
        let mut names = BTreeMap::new();
        for n in c.nodes.iter().flatten() {
            if names.insert(n.name.as_str(), ()).is_some() {
                bail!("{}: node `{}` is declared twice", ctx(), n.name);
            }
            quantity::cpu_millis(&n.cpu)
                .with_context(|| format!("{}: node {} cpu", ctx(), n.name))?;
            quantity::bytes(&n.memory)
                .with_context(|| format!("{}: node {} memory", ctx(), n.name))?;
            if !n.provider_id.starts_with("azure:///subscriptions/") {
                bail!(
                    "{}: node {} provider_id `{}` is not an Azure provider id (azure:///subscriptions/...)",
                    ctx(),
                    n.name,
                    n.provider_id
                );
            }
        }
        for w in &c.workloads {
            let wctx = || format!("{}: workload {}", ctx(), w.name);
            quantity::cpu_millis(&w.requests.cpu).with_context(|| format!("{} cpu", wctx()))?;
            quantity::bytes(&w.requests.memory).with_context(|| format!("{} memory", wctx()))?;
            for n in &w.nodes {
                if resolve(n, &node_names, &pool_nodes).is_none() {
                    bail!(
                        "{}: node `{n}` is not one of the cluster's nodes (a node name, or POOL/INSTANCE_ID of its AKS pools)",
                        wctx()
                    );
                }
            }
            if w.nodes.len() > w.replicas as usize {
                bail!(
                    "{}: {} nodes listed for {} replicas",
                    wctx(),
                    w.nodes.len(),
                    w.replicas
                );
            }
            if let Some(v) = &w.volume {
                if w.kind != WorkloadKind::StatefulSet || w.replicas != 1 {
                    bail!(
                        "{}: a volume needs a StatefulSet of 1 replica (one disk)",
                        wctx()
                    );
                }
                if super::super::arm::parse_resource_id(&v.disk).is_none() {
                    bail!(
                        "{}: volume disk `{}` is not a managed disk id",
                        wctx(),
                        v.disk
                    );
                }
                quantity::bytes(&v.size).with_context(|| format!("{} volume size", wctx()))?;
            }
        }
    }
    Ok(())
}

/// The clusters as the API server holds them at the scenario's start; `state` holds the AKS
/// side already (a cluster without `nodes:` takes its pools' instances).
pub fn seed(specs: &[ClusterSpec], aks: &[AksSpec], state: &State) -> Vec<Cluster> {
    specs.iter().map(|s| seed_one(s, aks, state)).collect()
}

fn seed_one(spec: &ClusterSpec, aks: &[AksSpec], state: &State) -> Cluster {
    let (subscription, resource_group, name) =
        parse_cluster_id(&spec.cluster).expect("checked by check()");
    let derived = spec
        .nodes
        .is_none()
        .then(|| aks_of(spec, &state.subscription, aks))
        .flatten()
        .map(|a| super::super::arm::key(&a.resource_group, &a.name));
    // The nodes report the cluster's Kubernetes version, as AKS's own do.
    let aks_version = derived
        .as_ref()
        .and_then(|k| state.clusters.get(k))
        .map(|c| format!("v{}", c.kubernetes_version));
    let version = spec
        .version
        .clone()
        .or(aks_version)
        .unwrap_or_else(|| DEFAULT_VERSION.into());
    let mut c = Cluster {
        arm_id: spec.cluster.clone(),
        subscription,
        resource_group,
        name,
        token: hex::encode(rand::random::<[u8; 32]>()),
        version: version.clone(),
        revision: 0,
        objects: BTreeMap::new(),
        tombstones: Vec::new(),
        agents: BTreeMap::new(),
        timers: Default::default(),
        aks: derived.clone(),
    };
    let mut namespaces: Vec<&str> =
        vec!["default", "kube-node-lease", "kube-public", "kube-system"];
    for w in &spec.workloads {
        if !namespaces.contains(&w.namespace.as_str()) {
            namespaces.push(&w.namespace);
        }
    }
    for ns in namespaces {
        c.put(
            kinds::NAMESPACES,
            json!({
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }),
        );
    }
    for n in spec.nodes.iter().flatten() {
        c.agents.insert(
            n.provider_id.to_ascii_lowercase(),
            Agent {
                running: n.running,
                ready: n.ready,
            },
        );
        let node = super::nodes::new_node(n, &version, n.ready && n.running, None);
        c.put(kinds::NODES, node);
    }
    if let Some(key) = &derived {
        for (pool, vm) in super::pools::instances(state, key) {
            c.put(kinds::NODES, super::pools::node(state, pool, vm, &version));
        }
    }
    let (names, pool_nodes) = node_names(spec, &state.subscription, aks);
    for w in &spec.workloads {
        let nodes: Vec<String> = w
            .nodes
            .iter()
            .map(|n| resolve(n, &names, &pool_nodes).expect("checked by check()"))
            .collect();
        workloads::seed(&mut c, w, &nodes);
    }
    c
}

/// A pod template's container resources (`requests` as the scenario gives them).
pub fn requests_json(r: &Requests) -> Value {
    json!({"cpu": r.cpu, "memory": r.memory})
}
