//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with the columns kube-apiserver's
//! printers give each kind (pkg/printers/internalversion/printers.go).

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::controllers::is_deleting;
use super::kinds::Kind;
use super::store::{now_unix, parse_rfc3339};

pub struct Wanted;

pub fn wanted(headers: &HeaderMap) -> Option<Wanted> {
    let accept = headers.get("accept")?.to_str().ok()?;
    accept
        .split(',')
        .any(|m| m.contains("as=Table") && m.contains("g=meta.k8s.io") && m.contains("v=v1"))
        .then_some(Wanted)
}

type Column = (&'static str, &'static str, u8);

fn columns(kind: Kind) -> Vec<Column> {
    let name = ("Name", "name", 0);
    let age = ("Age", "", 0);
    match kind.plural {
        "nodes" => vec![
            name,
            ("Status", "", 0),
            ("Roles", "", 0),
            age,
            ("Version", "", 0),
            ("Internal-IP", "", 1),
            ("External-IP", "", 1),
            ("OS-Image", "", 1),
            ("Kernel-Version", "", 1),
            ("Container-Runtime", "", 1),
        ],
        "pods" => vec![
            name,
            ("Ready", "", 0),
            ("Status", "", 0),
            ("Restarts", "", 0),
            age,
            ("IP", "", 1),
            ("Node", "", 1),
            ("Nominated Node", "", 1),
            ("Readiness Gates", "", 1),
        ],
        "volumeattachments" => vec![
            name,
            ("Attacher", "", 0),
            ("PV", "", 0),
            ("Node", "", 0),
            ("Attached", "", 0),
            age,
        ],
        "persistentvolumes" => vec![
            name,
            ("Capacity", "", 0),
            ("Access Modes", "", 0),
            ("Reclaim Policy", "", 0),
            ("Status", "", 0),
            ("Claim", "", 0),
            ("StorageClass", "", 0),
            ("VolumeAttributesClass", "", 0),
            ("Reason", "", 0),
            age,
            ("VolumeMode", "", 1),
        ],
        "persistentvolumeclaims" => vec![
            name,
            ("Status", "", 0),
            ("Volume", "", 0),
            ("Capacity", "", 0),
            ("Access Modes", "", 0),
            ("StorageClass", "", 0),
            ("VolumeAttributesClass", "", 0),
            age,
            ("VolumeMode", "", 1),
        ],
        "statefulsets" => vec![name, ("Ready", "", 0), age],
        "replicasets" => vec![
            name,
            ("Desired", "", 0),
            ("Current", "", 0),
            ("Ready", "", 0),
            age,
        ],
        "namespaces" => vec![name, ("Status", "", 0), age],
        "poddisruptionbudgets" => vec![
            name,
            ("Min Available", "", 0),
            ("Max Unavailable", "", 0),
            ("Allowed Disruptions", "", 0),
            age,
        ],
        _ => vec![name, age],
    }
}

pub fn render(kind: Kind, items: &[Value], revision: u64, _: Wanted) -> Value {
    let defs: Vec<Value> = columns(kind)
        .iter()
        .map(|(n, format, priority)| {
            json!({"name": n, "type": "string", "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({
                "cells": cells(kind, o),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": defs, "rows": rows,
    })
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn none(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

fn cells(kind: Kind, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let age = json!(age(o));
    match kind.plural {
        "nodes" => {
            let mut status = match super::nodes::condition(o, "Ready") {
                Some("True") => "Ready".to_string(),
                Some(_) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if super::nodes::unschedulable(o) {
                status.push_str(",SchedulingDisabled");
            }
            let labels = o["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut roles: Vec<String> = labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect();
            if let Some(r) = labels.get("kubernetes.io/role").and_then(Value::as_str) {
                roles.push(r.to_string());
            }
            let address = |t: &str| {
                o["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map(|a| s(&a["address"]))
                    .unwrap_or_default()
            };
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                json!(status),
                json!(none(roles.join(","))),
                age,
                json!(s(&info["kubeletVersion"])),
                json!(none(address("InternalIP"))),
                json!(none(address("ExternalIP"))),
                json!(s(&info["osImage"])),
                json!(s(&info["kernelVersion"])),
                json!(s(&info["containerRuntimeVersion"])),
            ]
        }
        "pods" => {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let mut reason = s(&o["status"]["phase"]);
            if o["spec"]["nodeName"].is_string() && reason == "Pending" && statuses.is_empty() {
                reason = "ContainerCreating".into();
            }
            if is_deleting(o) {
                reason = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(reason),
                json!(statuses
                    .iter()
                    .map(|c| c["restartCount"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    .to_string()),
                age,
                json!(none(s(&o["status"]["podIP"]))),
                json!(none(s(&o["spec"]["nodeName"]))),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "volumeattachments" => vec![
            name,
            json!(s(&o["spec"]["attacher"])),
            json!(s(&o["spec"]["source"]["persistentVolumeName"])),
            json!(s(&o["spec"]["nodeName"])),
            json!(o["status"]["attached"] == true),
            age,
        ],
        "persistentvolumes" => {
            let claim = &o["spec"]["claimRef"];
            let claim = if claim.is_object() {
                format!("{}/{}", s(&claim["namespace"]), s(&claim["name"]))
            } else {
                String::new()
            };
            vec![
                name,
                json!(s(&o["spec"]["capacity"]["storage"])),
                json!(access_modes(&o["spec"]["accessModes"])),
                json!(s(&o["spec"]["persistentVolumeReclaimPolicy"])),
                json!(s(&o["status"]["phase"])),
                json!(claim),
                json!(s(&o["spec"]["storageClassName"])),
                json!("<unset>"),
                json!(""),
                age,
                json!(s(&o["spec"]["volumeMode"])),
            ]
        }
        "persistentvolumeclaims" => vec![
            name,
            json!(s(&o["status"]["phase"])),
            json!(s(&o["spec"]["volumeName"])),
            json!(s(&o["status"]["capacity"]["storage"])),
            json!(access_modes(&o["status"]["accessModes"])),
            json!(s(&o["spec"]["storageClassName"])),
            json!("<unset>"),
            age,
            json!(s(&o["spec"]["volumeMode"])),
        ],
        "statefulsets" => vec![
            name,
            json!(format!(
                "{}/{}",
                o["status"]["readyReplicas"].as_u64().unwrap_or(0),
                o["spec"]["replicas"].as_u64().unwrap_or(0)
            )),
            age,
        ],
        "replicasets" => vec![
            name,
            json!(o["spec"]["replicas"].as_u64().unwrap_or(0)),
            json!(o["status"]["replicas"].as_u64().unwrap_or(0)),
            json!(o["status"]["readyReplicas"].as_u64().unwrap_or(0)),
            age,
        ],
        "namespaces" => vec![name, json!(s(&o["status"]["phase"])), age],
        "poddisruptionbudgets" => {
            let either = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                name,
                json!(either(&o["spec"]["minAvailable"])),
                json!(either(&o["spec"]["maxUnavailable"])),
                json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

fn access_modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn age(o: &Value) -> String {
    let Some(t) = o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
    else {
        return "<unknown>".into();
    };
    human_duration((now_unix() - t).max(0.0) as u64)
}

/// k8s.io/apimachinery/pkg/util/duration HumanDuration.
pub fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs.is_multiple_of(60) {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m.is_multiple_of(60) {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h.is_multiple_of(24) {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}
