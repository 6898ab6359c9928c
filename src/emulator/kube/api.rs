//! The REST surface of kube-apiserver for the served kinds: discovery, get/list (selectors,
//! Tables), create, patch, update, delete (graceful for pods), the eviction subresource and
//! watch. Status errors are metav1.Status, as kubectl prints them
//! (`Error from server (NotFound): pods "x" not found`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::controllers::{self, is_deleting, pod_ready};
use super::kinds::{self, Kind};
use super::select::Selectors;
use super::store::{now_unix, object_key, rfc3339_at, Cluster};
use super::{patch, table, watch};
use crate::emulator::server::Emu;

pub struct Request<'a> {
    pub method: &'a str,
    pub segments: Vec<String>,
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Request<'_> {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl KubeError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        KubeError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(kind: Kind, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind_ref(kind)),
        );
        e.details = Some(details(kind, name));
        e
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// `pods` or `volumeattachments.storage.k8s.io`: how the API server names a resource in its
/// messages (schema.GroupResource.String()).
fn kind_ref(kind: Kind) -> String {
    if kind.group.is_empty() {
        kind.plural.to_string()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    }
}

fn details(kind: Kind, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind.plural});
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    d
}

pub type Answer = Result<(u16, Value), KubeError>;

/// Where a path points once the cluster prefix is stripped.
enum Target {
    Version,
    CoreVersions,
    Groups,
    Resources {
        group: String,
        version: String,
    },
    Object {
        kind: Kind,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn target(segments: &[String]) -> Result<Target, KubeError> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let not_found = || {
        KubeError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (group, version, rest) = match s.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["api", "v1"] => {
            return Ok(Target::Resources {
                group: String::new(),
                version: "v1".into(),
            })
        }
        ["apis", g, v] => {
            return Ok(Target::Resources {
                group: g.to_string(),
                version: v.to_string(),
            })
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, sub] => (*p, Some(n.to_string()), Some(sub.to_string())),
        _ => return Err(not_found()),
    };
    let kind = kinds::find(group, version, plural).ok_or_else(not_found)?;
    if kind.namespaced != namespace.is_some() && !(kind.namespaced && name.is_none()) {
        return Err(not_found());
    }
    Ok(Target::Object {
        kind,
        namespace,
        name,
        sub,
    })
}

pub async fn handle(emu: &Arc<Emu>, index: usize, req: Request<'_>) -> Result<Response, KubeError> {
    let t = target(&req.segments)?;
    let answer = match t {
        Target::Version => Ok((200, version(&emu.lock().kubernetes[index]))),
        Target::CoreVersions => Ok((
            200,
            json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}],
            }),
        )),
        Target::Groups => Ok((200, groups())),
        Target::Resources { group, version } => resources(&group, &version),
        Target::Object {
            kind,
            namespace,
            name,
            sub,
        } => {
            let watching = req.method == "GET"
                && name.is_none()
                && matches!(req.query("watch"), Some("true" | "1"));
            if watching {
                return watch::start(emu.clone(), index, kind, namespace, &req);
            }
            let mut state = emu.lock();
            let mut changed = controllers::reconcile(&mut state, &emu.images, emu.time_scale);
            let before = state.kubernetes[index].revision;
            let c = &mut state.kubernetes[index];
            let ns = namespace.as_deref();
            let answer = match (req.method, name.as_deref(), sub.as_deref()) {
                ("GET", None, None) => list(c, kind, ns, &req),
                ("GET", Some(n), None) => get(c, kind, ns, n, &req),
                ("POST", None, None) => create(c, kind, ns, &req),
                ("POST", Some(n), Some("eviction")) if kind == kinds::PODS => {
                    evict(c, ns.unwrap_or("default"), n, &req, emu.time_scale)
                }
                ("PATCH", Some(n), None) => patch_object(c, kind, ns, n, &req),
                ("PUT", Some(n), None) => replace(c, kind, ns, n, &req),
                ("DELETE", Some(n), None) => delete(c, kind, ns, n, &req, emu.time_scale),
                ("GET", Some(n), Some("status")) => get(c, kind, ns, n, &req),
                _ => Err(KubeError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource".to_string(),
                )),
            };
            changed |= state.kubernetes[index].revision != before;
            changed |= controllers::reconcile(&mut state, &emu.images, emu.time_scale);
            if changed {
                emu.save(&state)
                    .map_err(|e| KubeError::new(500, "InternalError", e.message))?;
            }
            answer
        }
    };
    let (code, body) = answer?;
    Ok(super::json_response(code, &body))
}

fn version(c: &Cluster) -> Value {
    let v = c.version.trim_start_matches('v');
    let mut parts = v.split('.');
    json!({
        "major": parts.next().unwrap_or("1"),
        "minor": parts.next().unwrap_or("32"),
        "gitVersion": c.version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:00:00Z",
        "goVersion": "go1.23.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn groups() -> Value {
    let groups: Vec<Value> = kinds::GROUPS
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// An APIResourceList as kube-apiserver serves it for one group version, with the
/// subresources kubectl looks for (drain checks `pods/eviction` of kind Eviction in policy/v1:
/// k8s.io/kubectl/pkg/drain CheckEvictionSupport).
fn resources(group: &str, version: &str) -> Answer {
    let served = kinds::in_group(group, version);
    if served.is_empty() {
        return Err(KubeError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut list = Vec::new();
    for k in served {
        let mut r = json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": verbs,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        // The `all` category `kubectl get all` expands (kube-apiserver's registry stores give
        // it to pods, replicasets, statefulsets and daemonsets among the kinds served here).
        if matches!(
            k.plural,
            "pods" | "replicasets" | "statefulsets" | "daemonsets"
        ) {
            r["categories"] = json!(["all"]);
        }
        list.push(r);
        if matches!(
            k.plural,
            "nodes"
                | "pods"
                | "persistentvolumes"
                | "persistentvolumeclaims"
                | "statefulsets"
                | "replicasets"
                | "volumeattachments"
        ) {
            list.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
        }
        if k == kinds::PODS {
            list.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok((
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    ))
}

fn objects_of(c: &Cluster, kind: Kind) -> Vec<Value> {
    if kind == kinds::LEASES {
        return node_leases(c);
    }
    c.list(kind).cloned().collect()
}

/// The kubelet's heartbeats (kube-node-lease/<node>, renewed every 10 s while it runs), made up
/// from the node's state when read rather than written every 10 seconds.
fn node_leases(c: &Cluster) -> Vec<Value> {
    c.list(kinds::NODES)
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or_default();
            let renew = if super::nodes::is_ready(n) {
                rfc3339_at(now_unix())
            } else {
                n["status"]["conditions"][3]["lastHeartbeatTime"].as_str().unwrap_or_default().to_string()
            };
            json!({
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": c.revision.to_string(),
                             "uid": n["metadata"]["uid"], "creationTimestamp": n["metadata"]["creationTimestamp"],
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": n["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": format!("{}", renew.replace('Z', ".000000Z"))},
            })
        })
        .collect()
}

fn list(c: &Cluster, kind: Kind, ns: Option<&str>, req: &Request) -> Answer {
    let sel = Selectors::parse(req.query("labelSelector"), req.query("fieldSelector"))
        .map_err(|m| KubeError::new(400, "BadRequest", m))?;
    let items: Vec<Value> = objects_of(c, kind)
        .into_iter()
        .filter(|o| ns.is_none_or(|ns| o["metadata"]["namespace"] == ns))
        .filter(|o| sel.matches(o))
        .collect();
    if let Some(t) = table::wanted(req.headers) {
        return Ok((200, table::render(kind, &items, c.revision, t)));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut o| {
            // A typed list's items carry no kind/apiVersion (they are the list's).
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    Ok((
        200,
        json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": c.revision.to_string()},
            "items": items,
        }),
    ))
}

fn find(c: &Cluster, kind: Kind, ns: Option<&str>, name: &str) -> Result<Value, KubeError> {
    if kind == kinds::LEASES {
        return node_leases(c)
            .into_iter()
            .find(|l| l["metadata"]["name"] == name && ns == Some("kube-node-lease"))
            .ok_or_else(|| KubeError::not_found(kind, name));
    }
    c.get(kind, &object_key(ns, name))
        .cloned()
        .ok_or_else(|| KubeError::not_found(kind, name))
}

fn get(c: &Cluster, kind: Kind, ns: Option<&str>, name: &str, req: &Request) -> Answer {
    let o = find(c, kind, ns, name)?;
    if let Some(t) = table::wanted(req.headers) {
        return Ok((200, table::render(kind, &[o], c.revision, t)));
    }
    Ok((200, o))
}

fn body_json(req: &Request) -> Result<Value, KubeError> {
    serde_json::from_slice(req.body).map_err(|e| {
        KubeError::new(400, "BadRequest", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({e})"))
    })
}

fn read_only(kind: Kind) -> Result<(), KubeError> {
    if kind == kinds::LEASES || kind == kinds::EVENTS {
        return Err(KubeError::new(
            405,
            "MethodNotAllowed",
            format!("{} are read-only here", kind.plural),
        ));
    }
    Ok(())
}

fn create(c: &mut Cluster, kind: Kind, ns: Option<&str>, req: &Request) -> Answer {
    read_only(kind)?;
    let mut o = body_json(req)?;
    let name = match o["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match o["metadata"]["generateName"].as_str() {
            Some(g) => format!("{g}{}", &hex::encode(rand::random::<[u8; 3]>())[..5]),
            None => return Err(KubeError::new(422, "Invalid", format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", kind.kind))),
        },
    };
    o["metadata"]["name"] = json!(name);
    if let Some(ns) = ns {
        o["metadata"]["namespace"] = json!(ns);
    }
    if c.get(kind, &object_key(ns, &name)).is_some() {
        let mut e = KubeError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind_ref(kind)),
        );
        e.details = Some(details(kind, &name));
        return Err(e);
    }
    if let Some(m) = o["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            m.remove(k);
        }
    }
    if kind == kinds::PODS && o["status"].get("phase").is_none() {
        o["status"] = json!({"phase": "Pending", "qosClass": "Burstable"});
    }
    Ok((201, c.put(kind, o)))
}

/// Fields an update or patch of the main resource may not change: identity and bookkeeping
/// in metadata, and `status` (written only through `/status`, as each registry strategy's
/// PrepareForUpdate resets it).
fn keep_server_fields(old: &Value, new: &mut Value) {
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if let Some(s) = old.get("status") {
        new["status"] = s.clone();
    }
}

fn check_resource_version(
    kind: Kind,
    old: &Value,
    new: &Value,
    name: &str,
) -> Result<(), KubeError> {
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str() {
        if !rv.is_empty() && old["metadata"]["resourceVersion"] != rv {
            let mut e = KubeError::new(409, "Conflict", format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind_ref(kind)
            ));
            e.details = Some(details(kind, name));
            return Err(e);
        }
    }
    Ok(())
}

fn patch_object(
    c: &mut Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    req: &Request,
) -> Answer {
    read_only(kind)?;
    let old = find(c, kind, ns, name)?;
    let content_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let new = patch::apply(&old, content_type, req.body)?;
    store_update(c, kind, ns, name, old, new)
}

fn replace(c: &mut Cluster, kind: Kind, ns: Option<&str>, name: &str, req: &Request) -> Answer {
    read_only(kind)?;
    let old = find(c, kind, ns, name)?;
    let new = body_json(req)?;
    store_update(c, kind, ns, name, old, new)
}

/// The write of an update or patch: the caller's resourceVersion precondition, the fields
/// only the server sets, and a deletion that its last finalizer was waiting for.
fn store_update(
    c: &mut Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    old: Value,
    mut new: Value,
) -> Answer {
    check_resource_version(kind, &old, &new, name)?;
    keep_server_fields(&old, &mut new);
    let key = object_key(ns, name);
    c.update(kind, &key, |o| *o = new);
    finish_if_finalized(c, kind, &key);
    Ok((200, c.get(kind, &key).cloned().unwrap_or(old)))
}

/// An object being deleted goes once its last finalizer is removed (the API server's
/// graceful-deletion path); a pod also waits for its kubelet.
fn finish_if_finalized(c: &mut Cluster, kind: Kind, key: &str) {
    let Some(o) = c.get(kind, key) else { return };
    let empty = o["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    if is_deleting(o) && empty && kind != kinds::PODS {
        c.remove(kind, key);
    }
}

fn delete(
    c: &mut Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    req: &Request,
    scale: f64,
) -> Answer {
    read_only(kind)?;
    let old = find(c, kind, ns, name)?;
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        body_json(req)?
    };
    let grace = req
        .query("gracePeriodSeconds")
        .and_then(|g| g.parse::<u64>().ok())
        .or_else(|| options["gracePeriodSeconds"].as_u64());
    Ok((
        200,
        delete_object(c, kind, &object_key(ns, name), old, grace, scale),
    ))
}

/// The API server's deletion: a pod bound to a node gets `deletionTimestamp` and waits for
/// its kubelet unless the grace period is 0 (registry/core/pod CheckGracefulDelete: an
/// unscheduled pod goes at once); an object with finalizers waits for them.
fn delete_object(
    c: &mut Cluster,
    kind: Kind,
    key: &str,
    old: Value,
    grace: Option<u64>,
    scale: f64,
) -> Value {
    let finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let graceful_pod =
        kind == kinds::PODS && old["spec"]["nodeName"].is_string() && grace != Some(0);
    if !(graceful_pod || finalizers) {
        c.remove(kind, key);
        return old;
    }
    let grace = if kind == kinds::PODS {
        grace.unwrap_or_else(|| controllers::pod_grace(&old))
    } else {
        0
    };
    let until = now_unix() + grace as f64 * scale;
    if grace == 0 && !finalizers {
        c.remove(kind, key);
        return old;
    }
    c.update(kind, key, |o| controllers::mark_deleting(o, until, grace));
    c.get(kind, key).cloned().unwrap_or(old)
}

/// `POST pods/{name}/eviction` (policy/v1 Eviction): a graceful delete through the eviction
/// API, 201 with a Success Status, unless a PodDisruptionBudget selecting the pod has no
/// disruption left: 429 "Cannot evict pod as it would violate the pod's disruption budget."
/// with a DisruptionBudget cause; an eviction that goes takes one of the budget's allowed
/// disruptions (registry/core/pod/storage/eviction.go checkAndDecrement). A pod already
/// terminating or not Ready may always go (the default unhealthyPodEvictionPolicy,
/// IfHealthyBudget).
fn evict(c: &mut Cluster, ns: &str, name: &str, req: &Request, scale: f64) -> Answer {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        body_json(req)?
    };
    let old = find(c, kinds::PODS, Some(ns), name)?;
    if !is_deleting(&old) && pod_ready(&old) {
        take_disruption(c, &old)?;
    }
    let grace = body["deleteOptions"]["gracePeriodSeconds"].as_u64();
    delete_object(
        c,
        kinds::PODS,
        &object_key(Some(ns), name),
        old,
        grace,
        scale,
    );
    Ok((
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn take_disruption(c: &mut Cluster, pod: &Value) -> Result<(), KubeError> {
    let budgets: Vec<String> = c
        .keys(kinds::PDBS)
        .into_iter()
        .filter(|k| {
            c.get(kinds::PDBS, k)
                .is_some_and(|b| controllers::budget_selects(b, pod))
        })
        .collect();
    for key in budgets {
        let Some(b) = c.get(kinds::PDBS, &key) else {
            continue;
        };
        let status = &b["status"];
        if status["disruptionsAllowed"].as_i64().unwrap_or(0) <= 0 {
            let mut e = KubeError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            e.details = Some(json!({"causes": [{
                "reason": "DisruptionBudget",
                "message": format!(
                    "The disruption budget {} needs {} healthy pods and has {} currently",
                    b["metadata"]["name"].as_str().unwrap_or_default(),
                    status["desiredHealthy"].as_i64().unwrap_or(0),
                    status["currentHealthy"].as_i64().unwrap_or(0),
                ),
            }]}));
            return Err(e);
        }
        c.update(kinds::PDBS, &key, |b| {
            let left = b["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) - 1;
            b["status"]["disruptionsAllowed"] = json!(left);
        });
    }
    Ok(())
}
