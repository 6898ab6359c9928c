//! Kubernetes: an AKS cluster's API server, through kube-rs with a kubeconfig (the user's, or
//! the cluster admin's from ARM). Like `azure`, it knows objects and requests, never steps.
//!
//! What rescue reads is reduced to the views below, so that actions compare facts (Ready, on
//! which node, how much it asks for) rather than picking at API objects.

mod quantity;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node as KNode, PersistentVolume, Pod as KPod};
use k8s_openapi::api::storage::v1::VolumeAttachment as KAttachment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

pub use quantity::{cpu_millis, memory_bytes};

/// The taint that lets Kubernetes force-delete a shut-down node's pods and detach their
/// volumes (GA in 1.28, "Non-graceful node shutdown handling", kubernetes.io docs).
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// What went wrong talking to the API server.
#[derive(Debug, Clone)]
pub struct Error {
    /// "cordon node aks-...": what was being done.
    pub doing: String,
    pub message: String,
    /// The API's HTTP status, when it answered.
    pub status: Option<u16>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot {}: {}", self.doing, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn err(doing: &str) -> impl Fn(kube::Error) -> Error + '_ {
    move |e| {
        let status = match &e {
            kube::Error::Api(s) => Some(s.code),
            _ => None,
        };
        let message = match &e {
            kube::Error::Api(s) => format!("the API server answered {} ({})", s.code, s.message),
            other => other.to_string(),
        };
        Error {
            doing: doing.to_string(),
            message,
            status,
        }
    }
}

/// A node as rescue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `spec.providerID`: the VM or scale-set instance behind it.
    pub provider_id: String,
    /// The Ready condition is True.
    pub ready: bool,
    /// When the Ready condition last changed (RFC 3339): for a NotReady node, since when.
    pub ready_changed: Option<String>,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// Taints as `key=value:Effect`.
    pub taints: Vec<String>,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub labels: BTreeMap<String, String>,
}

/// A pod as rescue sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// Pending, Running, Succeeded, Failed.
    pub phase: String,
    /// Has a deletionTimestamp (Terminating).
    pub deleting: bool,
    /// Every container is ready.
    pub ready: bool,
    /// The owner's kind and name (`StatefulSet/postgres`, `ReplicaSet/api-7d9f`).
    pub owner: Option<String>,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// The claims it mounts.
    pub claims: Vec<String>,
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A DaemonSet's pod belongs to its node and never moves.
    pub fn is_daemon(&self) -> bool {
        self.owner
            .as_deref()
            .is_some_and(|o| o.starts_with("DaemonSet/"))
    }

    /// Done for good: it needs no room anywhere.
    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
}

/// A `storage.k8s.io/v1` VolumeAttachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub node: String,
    /// The PersistentVolume it attaches.
    pub volume: Option<String>,
    pub attached: bool,
    pub deleting: bool,
}

/// A PersistentVolume's claim and its disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// `namespace/claim`.
    pub claim: Option<String>,
    /// The CSI volume handle: for Azure Disk, the managed disk's ARM id.
    pub handle: Option<String>,
}

/// A connection to one cluster's API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cluster")
    }
}

impl Cluster {
    /// Connect with a kubeconfig's text (its current context), as kubectl does.
    pub async fn connect(kubeconfig: &str) -> Result<Cluster> {
        let doing = "read the kubeconfig";
        let config = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| Error {
            doing: doing.into(),
            message: e.to_string(),
            status: None,
        })?;
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .map_err(|e| Error {
                doing: doing.into(),
                message: e.to_string(),
                status: None,
            })?;
        let client = kube::Client::try_from(config).map_err(err("connect to the API server"))?;
        Ok(Cluster { client })
    }

    pub async fn node(&self, name: &str) -> Result<Option<Node>> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let doing = format!("read node {name}");
        Ok(api.get_opt(name).await.map_err(err(&doing))?.map(node_view))
    }

    pub async fn nodes(&self) -> Result<Vec<Node>> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(err("list nodes"))?;
        Ok(list.items.into_iter().map(node_view).collect())
    }

    /// Every pod of the cluster.
    pub async fn pods(&self) -> Result<Vec<Pod>> {
        let api: Api<KPod> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(err("list pods"))?;
        Ok(list.items.into_iter().map(pod_view).collect())
    }

    /// Mark the node unschedulable, as `kubectl cordon` does.
    pub async fn cordon(&self, name: &str, unschedulable: bool) -> Result<()> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let doing = format!("cordon node {name}");
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": unschedulable}})),
        )
        .await
        .map_err(err(&doing))?;
        Ok(())
    }

    /// Add a taint (`key`, `value`, `effect`) unless the node has one of that key and effect.
    /// The whole list is written with the resourceVersion read, so a taint someone else added
    /// meanwhile is not lost: a conflict (409) is read again.
    pub async fn taint(&self, name: &str, key: &str, value: &str, effect: &str) -> Result<()> {
        let api: Api<KNode> = Api::all(self.client.clone());
        let doing = format!("taint node {name} {key}={value}:{effect}");
        for _ in 0..5 {
            let node = api.get(name).await.map_err(err(&doing))?;
            let mut taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            if taints.iter().any(|t| t.key == key && t.effect == effect) {
                return Ok(());
            }
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: key.into(),
                value: Some(value.into()),
                effect: effect.into(),
                time_added: None,
            });
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(err(&doing)(e)),
            }
        }
        Err(Error {
            doing,
            message: "the node kept changing under five attempts".into(),
            status: Some(409),
        })
    }

    /// The pods a pod's controller wants (`StatefulSet/NAME`, `ReplicaSet/NAME`):
    /// `spec.replicas`; None for another kind of owner, or one that is gone.
    pub async fn replicas(&self, namespace: &str, owner: &str) -> Result<Option<u64>> {
        use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
        let doing = format!("read {owner} in {namespace}");
        let Some((kind, name)) = owner.split_once('/') else {
            return Ok(None);
        };
        let replicas = match kind {
            "StatefulSet" => Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(err(&doing))?
                .map(|s| s.spec.and_then(|s| s.replicas).unwrap_or(1)),
            "ReplicaSet" => Api::<ReplicaSet>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(err(&doing))?
                .map(|s| s.spec.and_then(|s| s.replicas).unwrap_or(1)),
            _ => None,
        };
        Ok(replicas.map(|r| r.max(0) as u64))
    }

    pub async fn attachments(&self) -> Result<Vec<Attachment>> {
        let api: Api<KAttachment> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(err("list volume attachments"))?;
        Ok(list
            .items
            .into_iter()
            .map(|a| Attachment {
                name: a.metadata.name.unwrap_or_default(),
                node: a.spec.node_name,
                volume: a.spec.source.persistent_volume_name,
                attached: a.status.is_some_and(|s| s.attached),
                deleting: a.metadata.deletion_timestamp.is_some(),
            })
            .collect())
    }

    pub async fn volumes(&self) -> Result<Vec<Volume>> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(err("list persistent volumes"))?;
        Ok(list
            .items
            .into_iter()
            .map(|v| {
                let spec = v.spec.unwrap_or_default();
                Volume {
                    name: v.metadata.name.unwrap_or_default(),
                    claim: spec.claim_ref.map(|c| {
                        format!(
                            "{}/{}",
                            c.namespace.unwrap_or_default(),
                            c.name.unwrap_or_default()
                        )
                    }),
                    handle: spec.csi.map(|c| c.volume_handle),
                }
            })
            .collect())
    }
}

fn node_view(n: KNode) -> Node {
    let status = n.status.unwrap_or_default();
    let spec = n.spec.unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let condition = conditions.iter().find(|c| c.type_ == "Ready");
    let ready = condition.is_some_and(|c| c.status == "True");
    let ready_changed = condition
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.to_string());
    let allocatable = status.allocatable.unwrap_or_default();
    Node {
        name: n.metadata.name.unwrap_or_default(),
        provider_id: spec.provider_id.unwrap_or_default(),
        ready,
        ready_changed,
        unschedulable: spec.unschedulable.unwrap_or(false),
        taints: spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .map(|t| format!("{}={}:{}", t.key, t.value.unwrap_or_default(), t.effect))
            .collect(),
        cpu_millis: allocatable
            .get("cpu")
            .and_then(|q| cpu_millis(&q.0))
            .unwrap_or(0),
        memory_bytes: allocatable
            .get("memory")
            .and_then(|q| memory_bytes(&q.0))
            .unwrap_or(0),
        labels: n.metadata.labels.unwrap_or_default(),
    }
}

fn pod_view(p: KPod) -> Pod {
    let spec = p.spec.unwrap_or_default();
    let status = p.status.unwrap_or_default();
    let (mut cpu, mut memory) = (0, 0);
    for c in &spec.containers {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if let Some(r) = requests {
            cpu += r.get("cpu").and_then(|q| cpu_millis(&q.0)).unwrap_or(0);
            memory += r
                .get("memory")
                .and_then(|q| memory_bytes(&q.0))
                .unwrap_or(0);
        }
    }
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Pod {
        namespace: p.metadata.namespace.unwrap_or_default(),
        name: p.metadata.name.unwrap_or_default(),
        node: spec.node_name,
        phase: status.phase.unwrap_or_else(|| "Pending".into()),
        deleting: p.metadata.deletion_timestamp.is_some(),
        ready,
        owner: p
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind, o.name)),
        cpu_millis: cpu,
        memory_bytes: memory,
        claims: spec
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
            .collect(),
    }
}
