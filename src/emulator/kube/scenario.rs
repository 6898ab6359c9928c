//! The scenario's `kubernetes:` section: clusters (by their managed cluster's ARM id), their
//! nodes and workloads, seeded as the API objects a running AKS cluster would hold.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};

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
    pub nodes: Vec<NodeSpec>,
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
    /// The node each replica runs on now (by ordinal); replicas beyond the list start Pending.
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

/// Checks a section before anything is seeded: every error names the cluster and the value.
pub fn check(specs: &[ClusterSpec]) -> anyhow::Result<()> {
    for c in specs {
        if parse_cluster_id(&c.cluster).is_none() {
            bail!(
                "kubernetes: cluster `{}` is not a managed cluster id \
                 (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/NAME)",
                c.cluster
            );
        }
        let ctx = || format!("kubernetes: cluster {}", c.cluster);
        let mut names = BTreeMap::new();
        for n in &c.nodes {
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
                if !names.contains_key(n.as_str()) {
                    bail!("{}: node `{n}` is not one of the cluster's nodes", wctx());
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

/// The clusters as the API server holds them at the scenario's start.
pub fn seed(specs: &[ClusterSpec]) -> Vec<Cluster> {
    specs.iter().map(seed_one).collect()
}

fn seed_one(spec: &ClusterSpec) -> Cluster {
    let (subscription, resource_group, name) =
        parse_cluster_id(&spec.cluster).expect("checked by check()");
    let version = spec
        .version
        .clone()
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
    for n in &spec.nodes {
        c.agents.insert(
            n.provider_id.to_ascii_lowercase(),
            Agent {
                running: n.running,
                ready: n.ready,
            },
        );
        let node = super::nodes::new_node(n, &version, n.ready && n.running);
        c.put(kinds::NODES, node);
    }
    for w in &spec.workloads {
        workloads::seed(&mut c, w);
    }
    c
}

/// A pod template's container resources (`requests` as the scenario gives them).
pub fn requests_json(r: &Requests) -> Value {
    json!({"cpu": r.cpu, "memory": r.memory})
}
