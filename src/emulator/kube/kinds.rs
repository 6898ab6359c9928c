//! The resource types the slice serves, as API discovery names them (kube-apiserver's
//! `/api/v1` and `/apis/{group}/{version}` APIResourceLists; names, kinds, short names and verbs
//! as a v1.32 cluster lists them).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    /// "" is the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// What a client may do; anything else is 405 MethodNotAllowed.
    pub writable: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn kind(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    group: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Kind {
    Kind {
        plural,
        singular,
        kind,
        group,
        version: "v1",
        namespaced,
        short_names,
        writable: true,
    }
}

pub const NODES: Kind = kind("nodes", "node", "Node", "", false, &["no"]);
pub const PODS: Kind = kind("pods", "pod", "Pod", "", true, &["po"]);
pub const NAMESPACES: Kind = kind("namespaces", "namespace", "Namespace", "", false, &["ns"]);
pub const PVS: Kind = kind(
    "persistentvolumes",
    "persistentvolume",
    "PersistentVolume",
    "",
    false,
    &["pv"],
);
pub const PVCS: Kind = kind(
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    "",
    true,
    &["pvc"],
);
/// Served empty: nothing here records events, but `kubectl describe` lists them.
pub const EVENTS: Kind = kind("events", "event", "Event", "", true, &["ev"]);
pub const STATEFULSETS: Kind = kind(
    "statefulsets",
    "statefulset",
    "StatefulSet",
    "apps",
    true,
    &["sts"],
);
pub const REPLICASETS: Kind = kind(
    "replicasets",
    "replicaset",
    "ReplicaSet",
    "apps",
    true,
    &["rs"],
);
pub const DAEMONSETS: Kind = kind(
    "daemonsets",
    "daemonset",
    "DaemonSet",
    "apps",
    true,
    &["ds"],
);
pub const VOLUMEATTACHMENTS: Kind = kind(
    "volumeattachments",
    "volumeattachment",
    "VolumeAttachment",
    "storage.k8s.io",
    false,
    &[],
);
pub const PDBS: Kind = kind(
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    "policy",
    true,
    &["pdb"],
);
pub const LEASES: Kind = kind("leases", "lease", "Lease", "coordination.k8s.io", true, &[]);

pub const ALL: &[Kind] = &[
    NODES,
    PODS,
    NAMESPACES,
    PVS,
    PVCS,
    EVENTS,
    STATEFULSETS,
    REPLICASETS,
    DAEMONSETS,
    VOLUMEATTACHMENTS,
    PDBS,
    LEASES,
];

/// The API groups, each with its one served version, in the order kube-apiserver lists them.
pub const GROUPS: &[&str] = &["apps", "policy", "storage.k8s.io", "coordination.k8s.io"];

pub fn find(group: &str, version: &str, plural: &str) -> Option<Kind> {
    ALL.iter()
        .copied()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

pub fn in_group(group: &str, version: &str) -> Vec<Kind> {
    ALL.iter()
        .copied()
        .filter(|k| k.group == group && k.version == version)
        .collect()
}
