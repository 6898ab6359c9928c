//! A Kubernetes API server slice for each scenario cluster, on the emulator's own listener
//! under `/k8s/{subscription}/{resourceGroup}/{cluster}` (client-go keeps a path given in a
//! kubeconfig's `server:`), enough for the real kubectl to get, describe, cordon, taint, drain
//! and delete; with the control loops that decide what happens to a dead node's pods and
//! volumes (`controllers.rs`). Objects are JSON in the shapes of k8s.io/api.

mod api;
pub mod controllers;
mod csi;
mod kinds;
mod nodes;
mod patch;
mod pools;
mod quantity;
mod scenario;
mod select;
mod store;
mod table;
mod watch;
mod workloads;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::arm::{ArmError, ArmResult};
use super::http::Reply;
use super::server::Emu;

#[allow(unused_imports)]
pub use controllers::node_agent;
pub use scenario::ClusterSpec;
pub use store::Cluster;

/// Where the clusters' API servers live on the emulator's listener.
pub const PREFIX: &str = "/k8s/";

pub use controllers::reconcile;

pub fn check_scenario(
    specs: &[ClusterSpec],
    subscription: &str,
    aks: &[super::aks::ClusterSpec],
) -> anyhow::Result<()> {
    scenario::check(specs, subscription, aks)
}

/// Seeds the clusters once `state` holds the AKS side.
pub fn seed(
    specs: &[ClusterSpec],
    aks: &[super::aks::ClusterSpec],
    state: &super::state::State,
) -> Vec<Cluster> {
    scenario::seed(specs, aks, state)
}

pub fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from(
            serde_json::to_vec(body).expect("json serializes"),
        ))
        .expect("valid response")
}

fn error_response(e: &api::KubeError) -> Response {
    let mut r = json_response(e.code, &e.status());
    if e.code == 401 {
        // What kube-apiserver's authentication filter answers (a Status with reason
        // Unauthorized); kubectl then prints "You must be logged in to the server".
        r.headers_mut()
            .insert("www-authenticate", "Bearer".parse().expect("ascii"));
    }
    r
}

/// Serves a request under `PREFIX`; the operation name is for the request log.
pub async fn handle(
    emu: &Arc<Emu>,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, String) {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let operation = format!("kubernetes.{}", method.to_ascii_lowercase());
    let not_found = api::KubeError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    if segments.len() < 3 {
        return (error_response(&not_found), operation);
    }
    let index = {
        let state = emu.lock();
        state.kubernetes.iter().position(|c| {
            c.subscription.eq_ignore_ascii_case(&segments[0])
                && c.resource_group.eq_ignore_ascii_case(&segments[1])
                && c.name.eq_ignore_ascii_case(&segments[2])
        })
    };
    let Some(index) = index else {
        return (error_response(&not_found), operation);
    };
    let token = emu.lock().kubernetes[index].token.clone();
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        let e = api::KubeError::new(401, "Unauthorized", "Unauthorized");
        return (error_response(&e), operation);
    }
    let req = api::Request {
        method,
        segments: segments[3..].to_vec(),
        query,
        headers,
        body,
    };
    match api::handle(emu, index, req).await {
        Ok(r) => (r, operation),
        Err(e) => (error_response(&e), operation),
    }
}

/// `POST .../managedClusters/{c}/listClusterAdminCredential`: a CredentialResults with one
/// kubeconfig named `clusterAdmin` (containerservice spec, ManagedClusters_ListClusterAdminCredentials
/// and its example ManagedClustersListClusterAdminCredentials.json: `{"kubeconfigs":[{"name":
/// "clusterAdmin","value":"<base64>"}]}`). The kubeconfig points at this emulator's slice, trusts
/// its CA and carries the cluster's admin token (AKS's admin kubeconfig has a client certificate
/// instead; kubectl treats both as the cluster admin).
pub fn admin_credential(emu: &Emu, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let c = state
        .kubernetes
        .iter()
        .find(|c| c.resource_group.eq_ignore_ascii_case(rg) && c.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            // ARM's answer for a missing tracked resource (ResourceNotFound).
            ArmError::new(
                404,
                "ResourceNotFound",
                format!(
                    "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                ),
            )
        })?;
    let ca = std::fs::read(emu.data_dir.join("tls").join("ca.pem")).ok();
    let b64 = base64::engine::general_purpose::STANDARD;
    let server = format!(
        "{}{PREFIX}{}/{}/{}",
        emu.base, c.subscription, c.resource_group, c.name
    );
    let user = format!("clusterAdmin_{}_{}", c.resource_group, c.name);
    let context = format!("{}-admin", c.name);
    let mut cluster = json!({"server": server});
    if let (Some(ca), true) = (ca, emu.base.starts_with("https://")) {
        cluster["certificate-authority-data"] = json!(b64.encode(ca));
    }
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c.name, "cluster": cluster}],
        "contexts": [{"name": context, "context": {"cluster": c.name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"token": c.token}}],
    });
    let text = serde_yaml::to_string(&kubeconfig)
        .map_err(|e| ArmError::internal(format!("kubeconfig: {e}")))?;
    Ok(Reply::json(
        200,
        json!({"kubeconfigs": [{"name": "clusterAdmin", "value": b64.encode(text)}]}),
    ))
}
