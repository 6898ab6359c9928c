//! `Microsoft.ContainerService/managedClusters` and their `agentPools`: GET and lists, scale by
//! PUT of `count`, and `deleteMachines`.
//!
//! Shapes: the ManagedCluster / AgentPool models of azure-rest-api-specs containerservice
//! aks/stable (examples ManagedClustersGet.json, AgentPoolsGet.json: ids under `resourcegroups`
//! in lowercase, type `Microsoft.ContainerService/ManagedClusters`, `powerState.code`).
//! LROs: PUT of an agent pool answers 200 (update) or 201 (create) with `Azure-AsyncOperation`
//! (azure-mgmt-containerservice 41.6.0 `AgentPoolsOperations._create_or_update_initial`
//! accepts [200, 201] and reads Azure-AsyncOperation and Retry-After);
//! `deleteMachines` answers 202 with a `location` under `.../operationresults/{id}?api-version=2017-08-31`
//! (spec example AgentPoolsDeleteMachines.json; the SDK's `_delete_machines_initial` accepts
//! [202] and reads Location).

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::arm::{self, ArmError, ArmResult};
use super::super::boot::BootOutcome;
use super::super::http::{Call, Reply};
use super::super::operations::{Family, OpKind, Operation};
use super::super::server::Emu;
use super::super::state::{Cluster, Pool, Power, State};
use super::{field, group};

/// The version an operation URL carries when its request named none.
pub const AKS_API: &str = "2026-06-01";

/// Azure seconds AKS takes to settle a pool change that creates or deletes no machine
/// (inferred: AKS still reconciles the pool; no figure is documented).
const POOL_RECONCILE: f64 = 30.0;
/// Per machine added or removed, before the node boots (inferred: AKS docs say a scale "can take
/// a few minutes"; VMSS instance creation is about VM_CREATE).
const POOL_MACHINE: f64 = 90.0;

fn cluster_id(state: &State, c: &Cluster) -> String {
    format!(
        "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
        state.subscription, c.resource_group, c.name
    )
}

fn not_found(kind: &str, rg: &str, name: &str) -> ArmError {
    ArmError::not_found_in("Microsoft.ContainerService", kind, rg, name)
}

fn find<'a>(state: &'a State, rg: &str, name: &str) -> ArmResult<(String, &'a Cluster)> {
    let rg = group(state, rg)?;
    let key = arm::key(rg, name);
    let c = state
        .clusters
        .get(&key)
        .ok_or_else(|| not_found("managedClusters", rg, name))?;
    Ok((key, c))
}

fn find_pool<'a>(c: &'a Cluster, pool: &str) -> ArmResult<(usize, &'a Pool)> {
    c.pools
        .iter()
        .enumerate()
        .find(|(_, p)| p.name.eq_ignore_ascii_case(pool))
        .ok_or_else(|| {
            // AKS's own 404 for a missing pool (azure-cli acs tests match "NotFound"; text
            // inferred).
            ArmError::new(
                404,
                "NotFound",
                format!(
                    "Could not find agent pool '{pool}' in managed cluster '{}'.",
                    c.name
                ),
            )
        })
}

/// The pool's properties (AgentPool.properties = ManagedClusterAgentPoolProfileProperties).
fn pool_properties(c: &Cluster, p: &Pool) -> Value {
    let mut props = json!({
        "count": p.count,
        "vmSize": p.vm_size,
        "osDiskSizeGB": p.os_disk_size_gb,
        "osDiskType": "Managed",
        "kubeletDiskType": "OS",
        "maxPods": 110,
        "type": "VirtualMachineScaleSets",
        "enableAutoScaling": false,
        "scaleDownMode": "Delete",
        "provisioningState": p.provisioning_state,
        "powerState": { "code": if c.provisioning_state == "Stopped" { "Stopped" } else { "Running" } },
        "orchestratorVersion": c.kubernetes_version,
        "currentOrchestratorVersion": c.kubernetes_version,
        "mode": p.mode,
        "osType": "Linux",
        "osSKU": "Ubuntu",
        "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202411.12.0",
        "enableNodePublicIP": false,
        "enableFIPS": false,
        "upgradeSettings": { "maxSurge": "10%" },
    });
    if !p.zones.is_empty() {
        props["availabilityZones"] = json!(p.zones);
    }
    props
}

fn render_pool(state: &State, c: &Cluster, p: &Pool) -> Value {
    json!({
        "id": format!("{}/agentPools/{}", cluster_id(state, c), p.name),
        "name": p.name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": pool_properties(c, p),
    })
}

fn render(state: &State, c: &Cluster) -> Value {
    let profiles: Vec<Value> = c
        .pools
        .iter()
        .map(|p| {
            let mut v = pool_properties(c, p);
            v["name"] = json!(p.name);
            v
        })
        .collect();
    // A cluster is Succeeded only when its pools are (AKS reports the cluster Updating/Scaling
    // during a pool operation, inferred from `az aks show` during `nodepool scale`).
    let busy = c.pools.iter().find(|p| p.provisioning_state != "Succeeded");
    let provisioning = busy.map_or(c.provisioning_state.as_str(), |p| {
        p.provisioning_state.as_str()
    });
    json!({
        "id": cluster_id(state, c),
        "location": c.location,
        "name": c.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": {},
        "sku": { "name": "Base", "tier": "Free" },
        "properties": {
            "provisioningState": provisioning,
            "powerState": { "code": "Running" },
            "kubernetesVersion": c.kubernetes_version,
            "currentKubernetesVersion": c.kubernetes_version,
            "dnsPrefix": c.dns_prefix,
            "fqdn": format!("{}-{}.hcp.{}.azmk8s.io", c.dns_prefix, &c.node_digits, c.location),
            "azurePortalFQDN": format!("{}-{}.portal.hcp.{}.azmk8s.io", c.dns_prefix, &c.node_digits, c.location),
            "agentPoolProfiles": profiles,
            "nodeResourceGroup": c.node_resource_group,
            "enableRBAC": true,
            "supportPlan": "KubernetesOfficial",
            "networkProfile": {
                "networkPlugin": "azure",
                "loadBalancerSku": "standard",
                "serviceCidr": "10.0.0.0/16",
                "dnsServiceIP": "10.0.0.10",
                "outboundType": "loadBalancer",
            },
            "maxAgentPools": 100,
        },
    })
}

/// The clusters whose key starts with `prefix` (a group's, or all with "").
pub fn listed(state: &State, prefix: &str) -> Vec<Value> {
    super::keyed(&state.clusters, prefix)
        .map(|(_, c)| render(state, c))
        .collect()
}

pub fn get(emu: &Emu, rg: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, c) = find(&state, rg, name)?;
    Ok(Reply::json(200, render(&state, c)))
}

pub fn pools(emu: &Emu, rg: &str, cluster: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, c) = find(&state, rg, cluster)?;
    let value: Vec<Value> = c.pools.iter().map(|p| render_pool(&state, c, p)).collect();
    Ok(Reply::json(200, json!({ "value": value })))
}

pub fn pool(emu: &Emu, rg: &str, cluster: &str, pool: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, c) = find(&state, rg, cluster)?;
    let (_, p) = find_pool(c, pool)?;
    Ok(Reply::json(200, render_pool(&state, c, p)))
}

/// AKS runs one operation at a time on a cluster: "Operation is not allowed because there's an
/// in progress ... operation" with code OperationNotAllowed (Azure/AKS issues quote it as
/// `OperationNotAllowed: Operation is not allowed because there's an in progress update managed
/// cluster operation`).
fn idle(state: &State, c: &Cluster) -> ArmResult<()> {
    let busy = c
        .busy
        .as_ref()
        .and_then(|id| state.operations.get(id))
        .is_some_and(|op| op.status == super::super::operations::Status::InProgress);
    if busy {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Operation is not allowed because there's an in progress scale agent pool operation on managed cluster '{}'. Please wait for it to finish before starting a new operation.",
                c.name
            ),
        ));
    }
    Ok(())
}

/// PUT of an agent pool: only `count` may change here (a pool of another name is not created).
pub async fn put_pool(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    cluster: &str,
    pool: &str,
) -> ArmResult<Reply> {
    let body = call.json()?;
    let count = field(&body, &["properties", "count"])
        .map(|v| {
            v.as_u64().filter(|n| *n <= 1000).ok_or_else(|| {
                // The spec's `count` range: "Number of agents (VMs) to host docker containers.
                // Allowed values must be in the range of 0 to 1000 (inclusive) for user pools and
                // in the range of 1 to 1000 (inclusive) for system pools."
                ArmError::bad_request(
                    "InvalidParameter",
                    format!("The value of parameter agentPoolProfile.count is invalid: {v}. It must be in the range of 0 to 1000."),
                )
            })
        })
        .transpose()?;
    let (ck, ss_key, image, os_gb, current, mode) = {
        let state = emu.lock();
        let (ck, c) = find(&state, rg, cluster)?;
        let (_, p) = find_pool(c, pool)?;
        idle(&state, c)?;
        (
            ck,
            p.scale_set.clone(),
            emu.images.join(&p.node_image),
            p.os_disk_size_gb,
            p.count,
            p.mode.clone(),
        )
    };
    let count = count.unwrap_or(current);
    if mode == "System" && count == 0 {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "The value of parameter agentPoolProfile.count is invalid: 0. System node pools must have at least one node.",
        ));
    }
    let mut added = Vec::new();
    let removed = if count < current {
        // Which instances a scale-in removes is AKS's choice; the newest go first here
        // (inferred: scaleDownMode Delete documents no order).
        let state = emu.lock();
        let mut m: Vec<(u64, String)> = super::super::aks::members(&state, &ss_key)
            .filter(|(_, v)| v.provisioning_state != "Deleting")
            .map(|(k, v)| (v.scale_set.as_ref().expect("member").instance_id, k.clone()))
            .collect();
        m.sort();
        m.into_iter()
            .rev()
            .take((current - count) as usize)
            .map(|(_, k)| k)
            .collect()
    } else {
        Vec::new()
    };
    for _ in current..count {
        let key = {
            let mut state = emu.lock();
            let key =
                super::super::aks::add_instance(&mut state, &ss_key, &image, os_gb, &emu.images)
                    .map_err(|e| {
                        ArmError::internal(format!("a new node's OS disk could not be made: {e:#}"))
                    })?;
            let v = state.vms.get_mut(&key).expect("just added");
            v.provisioning_state = "Creating".into();
            v.power = Power::Starting;
            emu.save(&state)?;
            key
        };
        added.push((key.clone(), super::vm_actions::boot_check(emu, &key).await));
    }
    let machines = added.len() + removed.len();
    let seconds = if machines == 0 {
        POOL_RECONCILE
    } else {
        POOL_MACHINE
    };
    let mut state = emu.lock();
    let kind = OpKind::PoolScale {
        cluster: ck.clone(),
        pool: pool.to_string(),
        added,
        removed,
    };
    let op = begin(emu, &mut state, &ck, pool, kind, seconds, call);
    set_count(&mut state, &ck, pool, count);
    let c = &state.clusters[&ck];
    let (_, p) = find_pool(c, pool)?;
    let out = render_pool(&state, c, p);
    emu.save(&state)?;
    let reply = Reply::json(200, out).retry_after(POOL_RETRY, emu.time_scale);
    Ok(emu.lro_headers(&state, &op, reply, false))
}

/// The pool's `count` is the goal from the request on, as the PUT's own answer shows it (the
/// spec's AgentPool.count is the desired number of agents); the operation's end sets it to the
/// instances there are.
fn set_count(state: &mut State, ck: &str, pool: &str, count: u64) {
    let c = state
        .clusters
        .get_mut(ck)
        .expect("caller found the cluster");
    if let Some(p) = c
        .pools
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(pool))
    {
        p.count = count;
    }
}

/// How long AKS asks a poller to wait (inferred: the SDK reads Retry-After on these responses;
/// no recorded value was found, so the compute RP's 10 s is used).
const POOL_RETRY: f64 = 10.0;

/// Registers a pool operation: the pool is Scaling, the machines it removes Deleting, and the
/// cluster busy until it ends.
fn begin(
    emu: &Emu,
    state: &mut State,
    ck: &str,
    pool: &str,
    kind: OpKind,
    seconds: f64,
    call: &Call,
) -> Operation {
    let op = emu.begin(state, Family::ContainerService, kind, seconds, call);
    let c = state
        .clusters
        .get_mut(ck)
        .expect("caller found the cluster");
    c.busy = Some(op.id.clone());
    if let Some(p) = c
        .pools
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(pool))
    {
        // provisioningState during a scale (AgentPool.provisioningState is a string; AKS shows
        // "Scaling" during `az aks nodepool scale`, Microsoft docs scale-cluster.md sample).
        p.provisioning_state = "Scaling".into();
    }
    op
}

/// POST `deleteMachines`: `{"machineNames": [...]}` names nodes (computer names) of the pool.
pub fn delete_machines(
    emu: &Emu,
    call: &Call,
    rg: &str,
    cluster: &str,
    pool: &str,
    action: &str,
) -> ArmResult<Reply> {
    if !action.eq_ignore_ascii_case("deleteMachines") {
        return Err(ArmError::new(
            404,
            "InvalidResourceType",
            format!("The resource type 'managedClusters/agentPools/{action}' could not be found in the namespace 'Microsoft.ContainerService'."),
        ));
    }
    let body = call.json()?;
    let names: Vec<String> = field(&body, &["machineNames"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        // The spec marks machineNames required (AgentPoolDeleteMachinesParameter); text inferred.
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "The value of parameter machineNames is invalid: at least one machine name is required.",
        ));
    }
    let mut state = emu.lock();
    let (ck, c) = find(&state, rg, cluster)?;
    let (_, p) = find_pool(c, pool)?;
    idle(&state, c)?;
    let mode = p.mode.clone();
    let count = p.count;
    let members: Vec<(String, String)> = super::super::aks::members(&state, &p.scale_set)
        .map(|(k, v)| {
            (
                v.scale_set.as_ref().expect("member").computer_name.clone(),
                k.clone(),
            )
        })
        .collect();
    let mut removed = Vec::new();
    for n in &names {
        let Some((_, k)) = members.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)) else {
            // (inferred) AKS's text for a machine not in the pool.
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("The machine '{n}' is not found in agent pool '{pool}'."),
            ));
        };
        if !removed.contains(k) {
            removed.push(k.clone());
        }
    }
    if mode == "System" && removed.len() as u64 >= count {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "System node pools must have at least one node: deleting these machines would leave none.",
        ));
    }
    let removed_count = removed.len() as u64;
    let kind = OpKind::PoolScale {
        cluster: ck.clone(),
        pool: pool.to_string(),
        added: Vec::new(),
        removed,
    };
    let op = begin(emu, &mut state, &ck, pool, kind, POOL_MACHINE, call);
    set_count(&mut state, &ck, pool, count - removed_count);
    emu.save(&state)?;
    Ok(in_progress(emu, &state, &op.id))
}

/// 202 with AKS's Location (`.../operationresults/{id}`): the answer to deleteMachines and to
/// that Location while the operation runs.
pub fn in_progress(emu: &Emu, state: &State, op_id: &str) -> Reply {
    let location = format!(
        "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operationresults/{op_id}?api-version=2017-08-31",
        emu.base, state.subscription, state.location
    );
    Reply::empty(202)
        .header("Location", location)
        .retry_after(POOL_RETRY, emu.time_scale)
}

/// A pool operation ended: new nodes run (their agents Ready after booting), removed ones are
/// gone with their OS disks (Uniform instances' OS disks are deleted with them; attached data
/// disks are detached and kept), the count follows, the pool is Succeeded again.
pub fn scaled(
    state: &mut State,
    images: &std::path::Path,
    (cluster, pool): (&String, &String),
    (added, removed): (&[(String, BootOutcome)], &[String]),
    end: time::OffsetDateTime,
    failed: bool,
) {
    for (k, b) in added {
        if failed {
            remove_instance(state, images, k);
            continue;
        }
        if let Some(v) = state.vms.get_mut(k) {
            v.provisioning_state = "Succeeded".into();
            v.power = Power::Running;
            v.serial_log = b.serial_log.clone();
            v.agent_ready = false;
            v.agent_ready_at = b
                .ready
                .then(|| end + time::Duration::seconds_f64(b.ready_after.max(0.0)));
        }
    }
    for k in removed {
        if failed {
            if let Some(v) = state.vms.get_mut(k) {
                v.provisioning_state = "Succeeded".into();
            }
        } else {
            remove_instance(state, images, k);
        }
    }
    if let Some(c) = state.clusters.get_mut(cluster) {
        c.busy = None;
        let ss = c
            .pools
            .iter()
            .find(|p| &p.name == pool)
            .map(|p| p.scale_set.clone());
        let n = ss.map_or(0, |ss| {
            state
                .vms
                .values()
                .filter(|v| v.scale_set.as_ref().is_some_and(|m| m.scale_set == ss))
                .count() as u64
        });
        let c = state.clusters.get_mut(cluster).expect("still there");
        if let Some(p) = c.pools.iter_mut().find(|p| &p.name == pool) {
            p.count = n;
            p.provisioning_state = if failed { "Failed" } else { "Succeeded" }.into();
        }
    }
}

fn remove_instance(state: &mut State, images: &std::path::Path, key: &str) {
    if let Some(v) = state.vms.remove(key) {
        if let Some(d) = state.disks.remove(&v.os_disk) {
            let _ = std::fs::remove_file(images.join(&d.image));
        }
        state.releasing.retain(|_, vm| vm != key);
    }
}
