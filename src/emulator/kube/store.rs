//! One cluster's API objects, kept as the JSON the API server would return, with the
//! cluster-wide resourceVersion and the tombstones a watch needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::kinds::Kind;

/// A cluster's API server state, saved with the emulator's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}`.
    pub arm_id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    /// The cluster admin's bearer token (what listClusterAdminCredential hands out).
    pub token: String,
    /// `gitVersion` of `/version`.
    pub version: String,
    /// The last resourceVersion handed out: etcd's revision is one counter for every object,
    /// which is why a list's resourceVersion can start a watch of any kind.
    pub revision: u64,
    /// Objects by kind (plural), then by `namespace/name` (`name` for cluster-scoped kinds).
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// Deleted objects as last seen, with their deletion revision, for watches that start at
    /// an older resourceVersion.
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
    /// What the Azure side says about each node's VM (by lowercase providerID) until the AKS
    /// resources carry it: the scenario's `ready:` / `running:` flags.
    #[serde(default)]
    pub agents: BTreeMap<String, Agent>,
    /// Pending timers of the control loops (see `controllers.rs`).
    #[serde(default)]
    pub timers: Timers,
    /// Key (in `State::clusters`) of the AKS cluster whose pools' instances are this cluster's
    /// nodes, when the scenario let them be derived: they register and go as the instances do.
    #[serde(default)]
    pub aks: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Agent {
    pub running: bool,
    pub ready: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tombstone {
    pub revision: u64,
    pub kind: String,
    pub object: Value,
}

/// Unix seconds (fractional) at which a control loop acts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timers {
    /// VolumeAttachment name → when the attach-detach controller force-detaches it.
    #[serde(default)]
    pub detach_at: BTreeMap<String, f64>,
    /// VolumeAttachment name → when the CSI driver reports it attached (or, once deleted,
    /// detached).
    #[serde(default)]
    pub csi_done_at: BTreeMap<String, f64>,
    /// Pod key → when its kubelet has started its containers / stopped them.
    #[serde(default)]
    pub kubelet_at: BTreeMap<String, f64>,
    /// Node name → when its kubelet was first seen silent.
    #[serde(default)]
    pub silent_since: BTreeMap<String, f64>,
    /// Node name → when the pod GC first saw pods bound to it while it did not exist.
    #[serde(default)]
    pub node_missing_since: BTreeMap<String, f64>,
}

/// How many tombstones a cluster keeps (a watch further behind is told `410 Gone`, as etcd's
/// compaction does).
const TOMBSTONES: usize = 512;

pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

impl Cluster {
    pub fn list(&self, kind: Kind) -> impl Iterator<Item = &Value> {
        self.objects
            .get(kind.plural)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn get(&self, kind: Kind, key: &str) -> Option<&Value> {
        self.objects.get(kind.plural)?.get(key)
    }

    pub fn keys(&self, kind: Kind) -> Vec<String> {
        self.objects
            .get(kind.plural)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores an object under a new resourceVersion (creation fills uid and timestamp).
    pub fn put(&mut self, kind: Kind, mut object: Value) -> Value {
        self.revision += 1;
        let meta = &mut object["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(uuid_like());
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!(now_rfc3339());
        }
        meta["resourceVersion"] = json!(self.revision.to_string());
        let key = object_key(
            meta.get("namespace").and_then(Value::as_str),
            meta["name"].as_str().unwrap_or_default(),
        );
        object["kind"] = json!(kind.kind);
        object["apiVersion"] = json!(kind.api_version());
        self.objects
            .entry(kind.plural.to_string())
            .or_default()
            .insert(key, object.clone());
        object
    }

    /// Changes an object in place; a change that leaves it equal keeps its resourceVersion.
    pub fn update(&mut self, kind: Kind, key: &str, change: impl FnOnce(&mut Value)) -> bool {
        let Some(old) = self.get(kind, key) else {
            return false;
        };
        let mut new = old.clone();
        change(&mut new);
        if &new == old {
            return false;
        }
        self.put(kind, new);
        true
    }

    pub fn remove(&mut self, kind: Kind, key: &str) -> Option<Value> {
        let object = self.objects.get_mut(kind.plural)?.remove(key)?;
        self.revision += 1;
        let mut last = object.clone();
        last["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.tombstones.push(Tombstone {
            revision: self.revision,
            kind: kind.plural.to_string(),
            object: last,
        });
        if self.tombstones.len() > TOMBSTONES {
            let extra = self.tombstones.len() - TOMBSTONES;
            self.tombstones.drain(..extra);
        }
        Some(object)
    }

    /// The oldest revision a watch can start from and still see every change.
    pub fn oldest_watchable(&self) -> u64 {
        if self.tombstones.len() < TOMBSTONES {
            0
        } else {
            self.tombstones.first().map_or(0, |t| t.revision)
        }
    }
}

pub fn now_rfc3339() -> String {
    // Kubernetes' metav1.Time marshals to whole seconds (RFC 3339, `Z`).
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn rfc3339_at(unix: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix.floor() as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<f64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

pub fn now_unix() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

fn uuid_like() -> String {
    super::super::arm::guid()
}
