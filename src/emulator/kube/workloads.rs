//! StatefulSets, ReplicaSets (a Deployment's) and the pods, claims and volumes they own, in
//! the shapes the controllers and the API server give them.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::kinds::{self, Kind};
use super::scenario::{self, WorkloadKind, WorkloadSpec};
use super::store::{now_rfc3339, object_key, Cluster};

/// The Azure Disk CSI driver's name (kubernetes-sigs/azuredisk-csi-driver `DefaultDriverName`).
pub const DISK_DRIVER: &str = "disk.csi.azure.com";

/// What the DefaultTolerationSeconds admission plugin adds to every pod: not-ready and
/// unreachable NoExecute tolerated for 300 s (plugin/pkg/admission/defaulttolerationseconds,
/// `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`).
pub const DEFAULT_TOLERATION_SECONDS: u64 = 300;

/// Seeds a workload whose first replicas run on `nodes` (names, by ordinal).
pub fn seed(c: &mut Cluster, w: &WorkloadSpec, nodes: &[String]) {
    let image = w.image.clone().unwrap_or_else(|| match w.kind {
        WorkloadKind::StatefulSet => "postgres:16".into(),
        WorkloadKind::Deployment => "nginx:1.27".into(),
    });
    let mut container = json!({
        "name": w.name,
        "image": image,
        "resources": {"requests": scenario::requests_json(&w.requests)},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    });
    let mut volumes = Vec::new();
    if w.empty_dir {
        container["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
        volumes.push(json!({"name": "scratch", "emptyDir": {}}));
    }
    if let Some(v) = &w.volume {
        let mounts = container["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut mounts = mounts;
        mounts.push(json!({"name": v.claim, "mountPath": "/var/lib/postgresql/data"}));
        container["volumeMounts"] = json!(mounts);
    }
    let labels = json!({"app": w.name});
    let mut template = json!({
        "metadata": {"labels": labels},
        "spec": {
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        },
    });
    if !volumes.is_empty() {
        template["spec"]["volumes"] = json!(volumes);
    }
    let owner = match w.kind {
        WorkloadKind::StatefulSet => {
            let mut spec = json!({
                "replicas": w.replicas,
                "serviceName": w.name,
                "podManagementPolicy": "OrderedReady",
                "selector": {"matchLabels": labels},
                "template": template,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            });
            if let Some(v) = &w.volume {
                spec["volumeClaimTemplates"] = json!([{
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": v.claim},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "managed-csi",
                        "volumeMode": "Filesystem",
                        "resources": {"requests": {"storage": v.size}},
                    },
                }]);
            }
            c.put(
                kinds::STATEFULSETS,
                json!({
                    "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels, "generation": 1},
                    "spec": spec,
                    "status": {"replicas": 0, "availableReplicas": 0, "observedGeneration": 1},
                }),
            )
        }
        WorkloadKind::Deployment => {
            let hash = &hex::encode(Sha256::digest(w.name.as_bytes()))[..10];
            let rs_name = format!("{}-{hash}", w.name);
            let mut t = template.clone();
            t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = labels.clone();
            selector["pod-template-hash"] = json!(hash);
            c.put(
                kinds::REPLICASETS,
                json!({
                    "metadata": {
                        "name": rs_name,
                        "namespace": w.namespace,
                        "labels": selector,
                        "generation": 1,
                        "annotations": {"deployment.kubernetes.io/desired-replicas": w.replicas.to_string()},
                        "ownerReferences": [{
                            "apiVersion": "apps/v1", "kind": "Deployment", "name": w.name,
                            "uid": super::super::arm::guid(), "controller": true, "blockOwnerDeletion": true,
                        }],
                    },
                    "spec": {"replicas": w.replicas, "selector": {"matchLabels": selector}, "template": t},
                    "status": {"replicas": 0, "observedGeneration": 1},
                }),
            )
        }
    };
    let kind = match w.kind {
        WorkloadKind::StatefulSet => kinds::STATEFULSETS,
        WorkloadKind::Deployment => kinds::REPLICASETS,
    };
    if let Some(v) = &w.volume {
        bind_claim(c, &owner, v);
    }
    for (i, node) in nodes.iter().enumerate() {
        let mut pod = new_pod(c, kind, &owner, i as u32);
        set_scheduled(&mut pod, node);
        set_running(&mut pod);
        let pod = c.put(kinds::PODS, pod);
        for pv in pod_volumes(c, &pod) {
            let va = volume_attachment(c, &pv, node);
            let mut va = va;
            va["status"] = json!({"attached": true, "attachmentMetadata": {"LUN": "0"}});
            c.put(kinds::VOLUMEATTACHMENTS, va);
        }
    }
}

/// A claim from the StatefulSet's template for ordinal 0, bound to a PV of the given disk, as
/// Azure Disk CSI provisioned it (the disk is named after its PV: `pvc-<claim uid>`).
fn bind_claim(c: &mut Cluster, sts: &Value, v: &scenario::VolumeSpec) {
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("default");
    let claim = format!(
        "{}-{}-0",
        v.claim,
        sts["metadata"]["name"].as_str().unwrap_or_default()
    );
    let pv_name = v.disk.rsplit('/').next().unwrap_or_default().to_string();
    let pvc = c.put(
        kinds::PVCS,
        json!({
            "metadata": {
                "name": claim,
                "namespace": ns,
                "labels": sts["spec"]["selector"]["matchLabels"],
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": DISK_DRIVER,
                    "volume.kubernetes.io/storage-provisioner": DISK_DRIVER,
                },
                "finalizers": ["kubernetes.io/pvc-protection"],
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": v.size}},
                "storageClassName": "managed-csi",
                "volumeMode": "Filesystem",
                "volumeName": pv_name,
            },
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": v.size}},
        }),
    );
    c.put(
        kinds::PVS,
        json!({
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": DISK_DRIVER, "volume.kubernetes.io/provisioner-deletion-secret-name": "", "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""},
                "finalizers": ["external-provisioner.volume.kubernetes.io/finalizer", "kubernetes.io/pv-protection"],
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": v.size},
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "name": claim, "namespace": ns,
                    "uid": pvc["metadata"]["uid"], "resourceVersion": pvc["metadata"]["resourceVersion"],
                },
                "csi": {
                    "driver": DISK_DRIVER,
                    "fsType": "ext4",
                    "volumeHandle": v.disk,
                    "volumeAttributes": {
                        "csi.storage.k8s.io/pv/name": pv_name,
                        "csi.storage.k8s.io/pvc/name": claim,
                        "csi.storage.k8s.io/pvc/namespace": ns,
                        "requestedsizegib": v.size.trim_end_matches("Gi"),
                        "skuname": "StandardSSD_LRS",
                    },
                },
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "managed-csi",
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        }),
    );
}

/// A new pod of a StatefulSet (ordinal `i`, named `<set>-<i>`) or a ReplicaSet (a random
/// five-character suffix, as names.SimpleNameGenerator makes), before the scheduler sees it.
pub fn new_pod(c: &Cluster, kind: Kind, owner: &Value, i: u32) -> Value {
    let owner_name = owner["metadata"]["name"].as_str().unwrap_or_default();
    let ns = owner["metadata"]["namespace"].as_str().unwrap_or("default");
    let template = &owner["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    let name = if kind == kinds::STATEFULSETS {
        let name = format!("{owner_name}-{i}");
        labels["statefulset.kubernetes.io/pod-name"] = json!(name);
        labels["apps.kubernetes.io/pod-index"] = json!(i.to_string());
        labels["controller-revision-hash"] = json!(format!(
            "{owner_name}-{}",
            &hex::encode(Sha256::digest(owner_name.as_bytes()))[..10]
        ));
        name
    } else {
        loop {
            // SimpleNameGenerator's alphabet: consonants and digits without look-alikes.
            const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALPHA[rand::random::<usize>() % ALPHA.len()] as char)
                .collect();
            let name = format!("{owner_name}-{suffix}");
            if c.get(kinds::PODS, &object_key(Some(ns), &name)).is_none() {
                break name;
            }
        }
    };
    let mut spec = template["spec"].clone();
    if kind == kinds::STATEFULSETS {
        let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        for t in owner["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim = t["metadata"]["name"].as_str().unwrap_or_default();
            volumes.push(json!({
                "name": claim,
                "persistentVolumeClaim": {"claimName": format!("{claim}-{name}")},
            }));
        }
        if !volumes.is_empty() {
            spec["volumes"] = json!(volumes);
        }
        spec["hostname"] = json!(name);
        spec["subdomain"] = owner["spec"]["serviceName"].clone();
    }
    spec["serviceAccountName"] = json!("default");
    spec["priority"] = json!(0);
    spec["enableServiceLinks"] = json!(true);
    spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    spec["tolerations"] = json!(["not-ready", "unreachable"]
        .iter()
        .map(|t| json!({
            "key": format!("node.kubernetes.io/{t}"),
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
        }))
        .collect::<Vec<_>>());
    json!({
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": kind.kind,
                "name": owner_name,
                "uid": owner["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
        },
    })
}

/// The scheduler's binding: `spec.nodeName` and the PodScheduled condition.
pub fn set_scheduled(pod: &mut Value, node: &str) {
    pod["spec"]["nodeName"] = json!(node);
    let now = now_rfc3339();
    pod["status"]["conditions"] = json!([
        {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
    ]);
}

/// A pod the kubelet has started: Running, its containers ready.
pub fn set_running(pod: &mut Value) {
    let now = now_rfc3339();
    let status = &mut pod["status"];
    status["phase"] = json!("Running");
    status["hostIP"] = json!("10.224.0.4");
    status["podIP"] = json!(format!(
        "10.244.{}.{}",
        rand::random::<u8>() % 4,
        2 + rand::random::<u8>() % 250
    ));
    status["startTime"] = json!(now);
    status["conditions"] = json!([
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled"
    ]
    .iter()
    .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
    .collect::<Vec<_>>());
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "containerID": format!("containerd://{}", hex::encode(rand::random::<[u8; 32]>())),
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
                "lastState": {},
            })
        })
        .collect();
    pod["status"]["containerStatuses"] = json!(containers);
}

/// The PVs (by name) a pod's claims are bound to.
pub fn pod_volumes(c: &Cluster, pod: &Value) -> Vec<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .filter_map(|claim| c.get(kinds::PVCS, &object_key(Some(ns), claim)))
        .filter_map(|pvc| pvc["spec"]["volumeName"].as_str().map(String::from))
        .collect()
}

/// A VolumeAttachment as the attach-detach controller creates it for a CSI volume, named as
/// its csi_attacher does: `csi-` + hex SHA-256 of volumeHandle + driver + node
/// (pkg/volume/csi/csi_attacher.go getAttachmentName).
pub fn volume_attachment(c: &Cluster, pv: &str, node: &str) -> Value {
    let handle = c
        .get(kinds::PVS, pv)
        .and_then(|p| p["spec"]["csi"]["volumeHandle"].as_str())
        .unwrap_or(pv)
        .to_string();
    let name = attachment_name(&handle, node);
    json!({
        "metadata": {
            "name": name,
            "annotations": {"csi.alpha.kubernetes.io/node-id": node},
            "finalizers": ["external-attacher/disk-csi-azure-com"],
        },
        "spec": {
            "attacher": DISK_DRIVER,
            "nodeName": node,
            "source": {"persistentVolumeName": pv},
        },
        "status": {"attached": false},
    })
}

pub fn attachment_name(volume_handle: &str, node: &str) -> String {
    format!(
        "csi-{}",
        hex::encode(Sha256::digest(
            format!("{volume_handle}{DISK_DRIVER}{node}").as_bytes()
        ))
    )
}
