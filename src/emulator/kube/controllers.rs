//! The control loops a real cluster runs, simulated lazily: every request to the slice first
//! brings each cluster up to now, on the emulator's time scale (each duration below is the
//! real default, multiplied by the scale).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::kinds;
use super::nodes::{self, OUT_OF_SERVICE};
use super::quantity;
use super::store::{now_rfc3339, now_unix, object_key, parse_rfc3339, rfc3339_at, Cluster};
use super::workloads;
use crate::emulator::state::State;
use crate::emulator::{arm, operations};
use std::path::Path;

/// `--node-monitor-grace-period`, kube-controller-manager's default: 50 s without a status
/// from the kubelet before the node is Unknown (40 s in the older reference docs; raised to
/// 50 s by v1.29: kubernetes/kubernetes#127352 "a 50 second default node-monitor-grace-period").
pub const NODE_MONITOR_GRACE: f64 = 50.0;
/// The attach-detach controller's `reconcilerMaxWaitForUnmountDuration`: 6 minutes after the
/// pod is gone before a volume on an unresponsive node is force-detached
/// (pkg/controller/volume/attachdetach/attach_detach_controller.go).
pub const MAX_WAIT_FOR_UNMOUNT: f64 = 360.0;
/// The Azure disk attach or detach under the CSI driver: the same VM update as an ARM attach
/// (`latency::VM_UPDATE`).
pub const CSI_ATTACH: f64 = crate::emulator::latency::VM_UPDATE;
/// From binding to running containers, and from deletion to stopped containers (inferred:
/// image already present, containers that exit on SIGTERM).
pub const KUBELET_START: f64 = 5.0;
pub const KUBELET_STOP: f64 = 2.0;
/// The pod GC's `quarantineTime` (pkg/controller/podgc/gc_controller.go).
pub const POD_GC_QUARANTINE: f64 = 40.0;
/// A pod's default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: u64 = 30;

/// Whether the VM behind a node runs and its agent reports: `(running, agent_ready)`, or
/// `None` when no VM has that provider id. The AKS scale-set instance with that provider id
/// decides when the scenario has one (powering it off makes the node go NotReady, as the
/// kubelet's heartbeats stop); a node declared only in `kubernetes:` goes by its `ready:` /
/// `running:` flags (`agents`).
pub fn node_agent(
    state: &State,
    agents: &BTreeMap<String, super::store::Agent>,
    provider_id: &str,
) -> Option<(bool, bool)> {
    super::super::aks::instance_by_provider_id(state, provider_id).or_else(|| {
        agents
            .get(&provider_id.to_ascii_lowercase())
            .map(|a| (a.running, a.ready))
    })
}

/// Brings the whole world up to now: the ARM operations that are due, then every cluster's
/// control loops (which read and change the Azure side: nodes come and go with their
/// instances, the CSI driver attaches disks to them); true if anything changed.
pub fn reconcile(state: &mut State, images: &Path, time_scale: f64) -> bool {
    let mut changed = operations::complete_due(state, images, arm::now());
    let now = now_unix();
    // The clusters are taken out while their loops run so those can change the Azure side.
    let mut clusters = std::mem::take(&mut state.kubernetes);
    for c in clusters.iter_mut() {
        changed |= super::pools::sync(c, state);
        let alive: BTreeMap<String, bool> = c
            .list(kinds::NODES)
            .map(|n| {
                let name = n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let agent = node_agent(state, &c.agents, nodes::provider_id(n));
                (name, agent == Some((true, true)))
            })
            .collect();
        // Each pass may enable the next (a deleted pod lets its StatefulSet recreate it, which
        // the scheduler then places); a few passes reach the fixed point.
        for _ in 0..6 {
            let step = Step {
                now,
                scale: time_scale,
            };
            if !step.run(c, &alive, state) {
                break;
            }
            changed = true;
        }
    }
    state.kubernetes = clusters;
    changed
}

struct Step {
    now: f64,
    scale: f64,
}

impl Step {
    fn after(&self, seconds: f64) -> f64 {
        self.now + seconds * self.scale
    }

    fn run(&self, c: &mut Cluster, alive: &BTreeMap<String, bool>, arm: &mut State) -> bool {
        let mut changed = self.node_lifecycle(c, alive);
        changed |= self.taint_eviction(c);
        changed |= self.pod_gc(c);
        changed |= self.kubelet(c, alive);
        changed |= self.workloads(c);
        changed |= self.scheduler(c);
        changed |= self.attach_detach(c, arm);
        changed |= disruption(c);
        changed
    }

    /// pkg/controller/nodelifecycle: a node whose kubelet has not posted status for the grace
    /// period becomes Unknown and is tainted unreachable; its pods are marked not Ready
    /// (MarkPodsNotReady). A kubelet posting again makes it Ready and drops the taints.
    fn node_lifecycle(&self, c: &mut Cluster, alive: &BTreeMap<String, bool>) -> bool {
        let mut changed = false;
        let stamp = now_rfc3339();
        for key in c.keys(kinds::NODES) {
            // The node lifecycle controller's TaintNodesByCondition keeps the unschedulable
            // taint in step with `spec.unschedulable` (what cordon sets).
            changed |= c.update(kinds::NODES, &key, nodes::sync_unschedulable_taint);
            let up = alive.get(&key).copied().unwrap_or(false);
            let ready = c.get(kinds::NODES, &key).is_some_and(nodes::is_ready);
            if up {
                c.timers.silent_since.remove(&key);
                if !ready {
                    changed |= c.update(kinds::NODES, &key, |n| nodes::mark_ready(n, &stamp));
                }
                continue;
            }
            if !ready {
                for pod in pods_on(c, &key) {
                    changed |= c.update(kinds::PODS, &pod, |p| mark_not_ready(p, &stamp));
                }
                continue;
            }
            let since = *c.timers.silent_since.entry(key.clone()).or_insert(self.now);
            if self.now >= since + NODE_MONITOR_GRACE * self.scale {
                c.update(kinds::NODES, &key, |n| nodes::mark_unknown(n, &stamp));
                for pod in pods_on(c, &key) {
                    c.update(kinds::PODS, &pod, |p| mark_not_ready(p, &stamp));
                }
                changed = true;
            }
        }
        changed
    }

    /// The taint eviction controller (pkg/controller/tainteviction): a pod on a node with a
    /// NoExecute taint it does not tolerate is deleted at once; one it tolerates for
    /// `tolerationSeconds` is deleted that long after the taint's `timeAdded`.
    fn taint_eviction(&self, c: &mut Cluster) -> bool {
        let mut changed = false;
        for (key, pod, node) in bound_pods(c) {
            let pod = &pod;
            if is_deleting(pod) {
                continue;
            }
            let Some(node) = c.get(kinds::NODES, &node) else {
                continue;
            };
            let due = nodes::taints(node)
                .iter()
                .filter(|t| t["effect"] == "NoExecute")
                .filter_map(|t| match toleration_for(pod, t) {
                    None => Some(self.now),
                    Some(tol) => tol["tolerationSeconds"].as_f64().map(|s| {
                        let added = t["timeAdded"]
                            .as_str()
                            .and_then(parse_rfc3339)
                            .unwrap_or(self.now);
                        added + s * self.scale
                    }),
                })
                .fold(f64::INFINITY, f64::min);
            if due <= self.now {
                let grace = pod_grace(pod);
                c.update(kinds::PODS, &key, |p| {
                    mark_deleting(p, self.after(grace as f64), grace)
                });
                changed = true;
            }
        }
        changed
    }

    /// The pod garbage collector (pkg/controller/podgc gcTerminating, KEP-2268): terminating
    /// pods on a node that is not Ready and carries the out-of-service taint are force-deleted;
    /// pods bound to a node that no longer exists are deleted (gcOrphaned) once the node has
    /// been missing for `quarantineTime`, 40 s ("how long Orphaned GC waits for nodes to show
    /// up in an informer before issuing a GET call to check if they are truly gone",
    /// gc_controller.go).
    fn pod_gc(&self, c: &mut Cluster) -> bool {
        let mut changed = false;
        let missing: BTreeSet<String> = bound_pods(c)
            .into_iter()
            .map(|(_, _, node)| node)
            .filter(|n| c.get(kinds::NODES, n).is_none())
            .collect();
        c.timers
            .node_missing_since
            .retain(|n, _| missing.contains(n));
        for n in &missing {
            c.timers
                .node_missing_since
                .entry(n.clone())
                .or_insert(self.now);
        }
        for (key, pod, node_name) in bound_pods(c) {
            let pod = &pod;
            let gone = match c.get(kinds::NODES, &node_name) {
                None => c
                    .timers
                    .node_missing_since
                    .get(&node_name)
                    .is_some_and(|since| self.now >= since + POD_GC_QUARANTINE * self.scale),
                Some(node) => {
                    is_deleting(pod)
                        && !nodes::is_ready(node)
                        && nodes::has_taint(node, OUT_OF_SERVICE)
                }
            };
            if gone {
                c.remove(kinds::PODS, &key);
                c.timers.kubelet_at.remove(&key);
                changed = true;
            }
        }
        changed
    }

    /// The kubelet of each live node: stops deleted pods (and the API server removes them once
    /// no finalizer is left) and starts bound ones whose volumes are attached.
    fn kubelet(&self, c: &mut Cluster, alive: &BTreeMap<String, bool>) -> bool {
        let mut changed = false;
        for (key, pod, node) in bound_pods(c) {
            let pod = &pod;
            if !alive.get(&node).copied().unwrap_or(false) {
                continue;
            }
            if is_deleting(pod) {
                let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                    .as_f64()
                    .unwrap_or(0.0);
                let due = *c
                    .timers
                    .kubelet_at
                    .entry(key.clone())
                    .or_insert(self.after(KUBELET_STOP.min(grace)));
                let finalized = pod["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                if self.now >= due && finalized {
                    c.remove(kinds::PODS, &key);
                    c.timers.kubelet_at.remove(&key);
                    changed = true;
                }
                continue;
            }
            if pod["status"]["phase"] != "Pending" {
                continue;
            }
            let attached = workloads::pod_volumes(c, pod).iter().all(|pv| {
                let va = workloads::attachment_name(&volume_handle(c, pv), &node);
                c.get(kinds::VOLUMEATTACHMENTS, &va)
                    .is_some_and(|v| v["status"]["attached"] == true)
            });
            if !attached {
                continue;
            }
            let due = *c
                .timers
                .kubelet_at
                .entry(key.clone())
                .or_insert(self.after(KUBELET_START));
            if self.now >= due {
                c.update(kinds::PODS, &key, workloads::set_running);
                c.timers.kubelet_at.remove(&key);
                changed = true;
            }
        }
        changed
    }

    /// The StatefulSet controller (a pod per ordinal, recreated only once the old one with its
    /// name is gone: pkg/controller/statefulset) and the ReplicaSet controller (replaces pods
    /// that are deleted, terminating ones no longer counted: pkg/controller/replicaset).
    fn workloads(&self, c: &mut Cluster) -> bool {
        let mut changed = false;
        for kind in [kinds::STATEFULSETS, kinds::REPLICASETS] {
            for key in c.keys(kind) {
                let Some(owner) = c.get(kind, &key).cloned() else {
                    continue;
                };
                if is_deleting(&owner) {
                    continue;
                }
                let uid = owner["metadata"]["uid"].clone();
                let ns = owner["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let replicas = owner["spec"]["replicas"].as_u64().unwrap_or(1) as u32;
                let owned: Vec<Value> = c
                    .list(kinds::PODS)
                    .filter(|p| p["metadata"]["ownerReferences"][0]["uid"] == uid)
                    .cloned()
                    .collect();
                if kind == kinds::STATEFULSETS {
                    for i in 0..replicas {
                        let name = format!(
                            "{}-{i}",
                            owner["metadata"]["name"].as_str().unwrap_or_default()
                        );
                        if c.get(kinds::PODS, &object_key(Some(&ns), &name)).is_none() {
                            let pod = workloads::new_pod(c, kind, &owner, i);
                            c.put(kinds::PODS, pod);
                            changed = true;
                        }
                    }
                } else {
                    let live = owned.iter().filter(|p| !is_deleting(p)).count() as u32;
                    for _ in live..replicas {
                        let pod = workloads::new_pod(c, kind, &owner, 0);
                        c.put(kinds::PODS, pod);
                        changed = true;
                    }
                }
                let ready = owned
                    .iter()
                    .filter(|p| p["status"]["phase"] == "Running" && pod_ready(p))
                    .count();
                let total = owned.len();
                changed |= c.update(kind, &key, |o| {
                    o["status"]["replicas"] = json!(total);
                    o["status"]["readyReplicas"] = json!(ready);
                    o["status"]["availableReplicas"] = json!(ready);
                    if kind == kinds::STATEFULSETS {
                        o["status"]["currentReplicas"] = json!(total);
                        o["status"]["updatedReplicas"] = json!(total);
                    } else {
                        o["status"]["fullyLabeledReplicas"] = json!(total);
                    }
                });
            }
        }
        changed
    }

    /// kube-scheduler's default filters that matter here: NodeUnschedulable, TaintToleration
    /// (NoSchedule and NoExecute), NodeResourcesFit by requests, and a Ready node; among the
    /// nodes that fit it takes the least requested (NodeResourcesFit's LeastAllocated score).
    fn scheduler(&self, c: &mut Cluster) -> bool {
        let mut changed = false;
        for (key, pod) in pods(c) {
            let pod = &pod;
            if is_deleting(pod) || pod["spec"]["nodeName"].is_string() {
                continue;
            }
            let (cpu, mem) = quantity::pod_requests(pod);
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            let mut best: Option<(u64, String)> = None;
            let node_list: Vec<Value> = c.list(kinds::NODES).cloned().collect();
            for node in &node_list {
                let name = node["metadata"]["name"].as_str().unwrap_or_default();
                if nodes::unschedulable(node) {
                    *reasons
                        .entry("node(s) were unschedulable".into())
                        .or_default() += 1;
                    continue;
                }
                if let Some(t) = nodes::taints(node).iter().find(|t| {
                    (t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
                        && toleration_for(pod, t).is_none()
                }) {
                    let what = format!(
                        "node(s) had untolerated taint {{{}: {}}}",
                        t["key"].as_str().unwrap_or_default(),
                        t["value"].as_str().unwrap_or_default()
                    );
                    *reasons.entry(what).or_default() += 1;
                    continue;
                }
                if !nodes::is_ready(node) {
                    *reasons.entry("node(s) were not ready".into()).or_default() += 1;
                    continue;
                }
                let (free_cpu, free_mem) = free(c, node);
                if cpu > free_cpu || mem > free_mem {
                    if cpu > free_cpu {
                        *reasons.entry("Insufficient cpu".into()).or_default() += 1;
                    }
                    if mem > free_mem {
                        *reasons.entry("Insufficient memory".into()).or_default() += 1;
                    }
                    continue;
                }
                let (alloc_cpu, _) = nodes::allocatable(node);
                let used = (alloc_cpu - free_cpu + cpu) * 1000 / alloc_cpu.max(1);
                if best.as_ref().is_none_or(|(u, _)| used < *u) {
                    best = Some((used, name.to_string()));
                }
            }
            match best {
                Some((_, node)) => {
                    c.update(kinds::PODS, &key, |p| workloads::set_scheduled(p, &node));
                    changed = true;
                }
                None => {
                    let detail: Vec<String> =
                        reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                    let message = format!(
                        "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
                        node_list.len(),
                        detail.join(", "),
                        node_list.len(),
                        node_list.len(),
                    );
                    changed |= c.update(kinds::PODS, &key, |p| {
                        let old = p["status"]["conditions"][0]["message"] == message.as_str();
                        if !old {
                            p["status"]["conditions"] = json!([{
                                "type": "PodScheduled", "status": "False", "lastProbeTime": null,
                                "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable", "message": message,
                            }]);
                        }
                    });
                }
            }
        }
        changed
    }

    /// The attach-detach controller with the CSI external-attacher
    /// (pkg/controller/volume/attachdetach/reconciler): a volume stays attached while any pod
    /// bound to the node uses it, Terminating ones included; once none does it is detached at
    /// once from a Ready node (its kubelet has unmounted), from a NotReady node only after
    /// `MAX_WAIT_FOR_UNMOUNT`, or at once when the node is NotReady and tainted out-of-service
    /// (KEP-2268). An Azure disk attaches to one node at a time, so the next node's attachment
    /// waits for the detach ("Multi-Attach error"). On a node backed by a scale set instance
    /// the CSI driver's attach and detach are ARM's (`csi.rs`).
    fn attach_detach(&self, c: &mut Cluster, arm: &mut State) -> bool {
        let mut changed = false;
        let mut desired: BTreeSet<(String, String)> = BTreeSet::new();
        for pod in c.list(kinds::PODS) {
            let Some(node) = pod["spec"]["nodeName"].as_str() else {
                continue;
            };
            if pod["status"]["phase"] == "Succeeded" || pod["status"]["phase"] == "Failed" {
                continue;
            }
            for pv in workloads::pod_volumes(c, pod) {
                desired.insert((pv, node.to_string()));
            }
        }
        for key in c.keys(kinds::VOLUMEATTACHMENTS) {
            let Some(va) = c.get(kinds::VOLUMEATTACHMENTS, &key) else {
                continue;
            };
            let pv = va["spec"]["source"]["persistentVolumeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let node = va["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let handle = volume_handle(c, &pv);
            if is_deleting(va) {
                // A node that no longer exists, or an instance ARM shows without the disk
                // (someone force-detached it), has nothing left to detach.
                let gone = c.get(kinds::NODES, &node).is_none()
                    || super::csi::held(arm, c, &handle, &node) == Some(false);
                let due = *c
                    .timers
                    .csi_done_at
                    .entry(key.clone())
                    .or_insert(self.after(CSI_ATTACH));
                if gone || self.now >= due {
                    super::csi::detach(arm, c, &handle, &node);
                    c.remove(kinds::VOLUMEATTACHMENTS, &key);
                    c.timers.csi_done_at.remove(&key);
                    changed = true;
                }
                continue;
            }
            if va["status"]["attached"] != true {
                let due = *c
                    .timers
                    .csi_done_at
                    .entry(key.clone())
                    .or_insert(self.after(CSI_ATTACH));
                if self.now >= due {
                    match super::csi::attach(arm, c, &handle, &node) {
                        Ok(lun) => {
                            let lun = lun.unwrap_or(0).to_string();
                            c.update(kinds::VOLUMEATTACHMENTS, &key, |v| {
                                v["status"] =
                                    json!({"attached": true, "attachmentMetadata": {"LUN": lun}});
                            });
                            c.timers.csi_done_at.remove(&key);
                        }
                        Err(message) => {
                            // The external-attacher records the failure and retries (with
                            // backoff; here every attach latency).
                            let at = rfc3339_at(self.now);
                            c.update(kinds::VOLUMEATTACHMENTS, &key, |v| {
                                v["status"] = json!({"attached": false, "attachError": {"time": at, "message": message}});
                            });
                            c.timers
                                .csi_done_at
                                .insert(key.clone(), self.after(CSI_ATTACH));
                        }
                    }
                    changed = true;
                }
            }
            if desired.contains(&(pv.clone(), node.clone())) {
                c.timers.detach_at.remove(&key);
                continue;
            }
            let node_obj = c.get(kinds::NODES, &node);
            let now_ok = match node_obj {
                // A deleted node mounts nothing any more.
                None => true,
                Some(n) => nodes::is_ready(n) || nodes::has_taint(n, OUT_OF_SERVICE),
            };
            let due = if now_ok {
                self.now
            } else {
                *c.timers
                    .detach_at
                    .entry(key.clone())
                    .or_insert(self.after(MAX_WAIT_FOR_UNMOUNT))
            };
            if self.now >= due {
                let at = rfc3339_at(self.now);
                c.update(kinds::VOLUMEATTACHMENTS, &key, |v| {
                    v["metadata"]["deletionTimestamp"] = json!(at);
                    v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                });
                c.timers.detach_at.remove(&key);
                c.timers
                    .csi_done_at
                    .insert(key.clone(), self.after(CSI_ATTACH));
                changed = true;
            }
        }
        for (pv, node) in desired {
            let name = workloads::attachment_name(&volume_handle(c, &pv), &node);
            if c.get(kinds::VOLUMEATTACHMENTS, &name).is_some() {
                continue;
            }
            let elsewhere = c
                .list(kinds::VOLUMEATTACHMENTS)
                .any(|v| v["spec"]["source"]["persistentVolumeName"] == pv.as_str());
            if elsewhere {
                continue;
            }
            let va = workloads::volume_attachment(c, &pv, &node);
            c.put(kinds::VOLUMEATTACHMENTS, va);
            c.timers.csi_done_at.insert(name, self.after(CSI_ATTACH));
            changed = true;
        }
        changed
    }
}

/// The pods as they are at the start of a loop (the loop changes them as it goes).
fn pods(c: &Cluster) -> Vec<(String, Value)> {
    c.objects
        .get(kinds::PODS.plural)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Those bound to a node, with its name.
fn bound_pods(c: &Cluster) -> Vec<(String, Value, String)> {
    pods(c)
        .into_iter()
        .filter_map(|(k, p)| {
            let node = p["spec"]["nodeName"].as_str()?.to_string();
            Some((k, p, node))
        })
        .collect()
}

/// Whether a PodDisruptionBudget's selector (`matchLabels`) picks the pod, in its namespace.
pub fn budget_selects(budget: &Value, pod: &Value) -> bool {
    let Some(wanted) = budget["spec"]["selector"]["matchLabels"].as_object() else {
        return false;
    };
    budget["metadata"]["namespace"] == pod["metadata"]["namespace"]
        && wanted
            .iter()
            .all(|(k, v)| pod["metadata"]["labels"].get(k) == Some(v))
}

/// The disruption controller (pkg/controller/disruption): each budget's status from the Ready
/// pods it selects; `minAvailable` or `maxUnavailable` as integers.
fn disruption(c: &mut Cluster) -> bool {
    let mut changed = false;
    for key in c.keys(kinds::PDBS) {
        let Some(b) = c.get(kinds::PDBS, &key).cloned() else {
            continue;
        };
        let pods: Vec<&Value> = c
            .list(kinds::PODS)
            .filter(|p| budget_selects(&b, p))
            .collect();
        let healthy = pods
            .iter()
            .filter(|p| pod_ready(p) && !is_deleting(p))
            .count() as i64;
        let expected = pods.len() as i64;
        let desired = match (
            b["spec"]["minAvailable"].as_i64(),
            b["spec"]["maxUnavailable"].as_i64(),
        ) {
            (Some(min), _) => min,
            (None, Some(max)) => (expected - max).max(0),
            (None, None) => continue,
        };
        let status = json!({
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": (healthy - desired).max(0),
            "expectedPods": expected,
            "observedGeneration": 1,
        });
        changed |= c.update(kinds::PDBS, &key, |b| b["status"] = status);
    }
    changed
}

pub fn volume_handle(c: &Cluster, pv: &str) -> String {
    c.get(kinds::PVS, pv)
        .and_then(|p| p["spec"]["csi"]["volumeHandle"].as_str())
        .unwrap_or(pv)
        .to_string()
}

pub fn is_deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

pub fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

pub fn pod_grace(pod: &Value) -> u64 {
    pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_GRACE)
}

/// A graceful deletion as the API server records it: `deletionTimestamp` is when the grace
/// period ends, `deletionGracePeriodSeconds` the period (registry/core/pod strategy).
pub fn mark_deleting(pod: &mut Value, until: f64, grace: u64) {
    if is_deleting(pod) {
        return;
    }
    pod["metadata"]["deletionTimestamp"] = json!(rfc3339_at(until));
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
}

fn mark_not_ready(pod: &mut Value, now: &str) {
    for c in pod["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            if c["status"] != "False" {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("False");
        }
    }
    for s in pod["status"]["containerStatuses"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        s["ready"] = json!(false);
    }
}

/// Keys of the pods bound to a node.
pub fn pods_on(c: &Cluster, node: &str) -> Vec<String> {
    c.keys(kinds::PODS)
        .into_iter()
        .filter(|k| {
            c.get(kinds::PODS, k)
                .is_some_and(|p| p["spec"]["nodeName"] == node)
        })
        .collect()
}

/// Allocatable minus the requests of the pods bound to the node that have not finished
/// (Terminating ones still hold their share, as in the scheduler's NodeInfo).
pub fn free(c: &Cluster, node: &Value) -> (u64, u64) {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let (mut cpu, mut mem) = nodes::allocatable(node);
    for p in c.list(kinds::PODS) {
        if p["spec"]["nodeName"] != name
            || p["status"]["phase"] == "Succeeded"
            || p["status"]["phase"] == "Failed"
        {
            continue;
        }
        let (pc, pm) = quantity::pod_requests(p);
        cpu = cpu.saturating_sub(pc);
        mem = mem.saturating_sub(pm);
    }
    (cpu, mem)
}

/// The pod's toleration of a taint (k8s.io/api core/v1 Toleration.ToleratesTaint): same
/// effect or none, same key (or none with Exists), Exists or Equal value.
fn toleration_for<'a>(pod: &'a Value, taint: &Value) -> Option<&'a Value> {
    pod["spec"]["tolerations"].as_array()?.iter().find(|t| {
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || taint["effect"] == e);
        let key_ok = t["key"].as_str().is_none_or(|k| k.is_empty()) || t["key"] == taint["key"];
        let op = t["operator"].as_str().unwrap_or("Equal");
        let value_ok = op == "Exists"
            || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
        let any_key = t["key"].as_str().is_none_or(|k| k.is_empty());
        effect_ok && key_ok && value_ok && (!any_key || op == "Exists")
    })
}
