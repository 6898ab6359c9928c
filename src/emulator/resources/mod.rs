//! Resource handlers: managed disks and snapshots (`volume`), virtual machines (`vm`), and the
//! operation-status URLs.

pub mod aks;
pub mod network;
mod subscription;
pub mod vm;
pub mod vm_actions;
mod vm_create;
pub mod vm_run_command;
pub mod vmss;
pub mod volume;

use std::sync::Arc;

use serde_json::Value;

use super::arm::{ArmError, ArmResult};
use super::http::{Call, Reply};
use super::operations::Status;
use super::routes::Route;
use super::server::Emu;
use super::state::State;

pub use volume::render as render_volume;

pub async fn dispatch(emu: &Arc<Emu>, call: &Call) -> ArmResult<Reply> {
    let m = call.method.as_str();
    match (&call.route, m) {
        (Route::Disks { rg }, "GET") => volume::list(emu, call, rg.as_deref(), false),
        (Route::Snapshots { rg }, "GET") => volume::list(emu, call, rg.as_deref(), true),
        (Route::Disk { rg, name }, _) => volume::handle(emu, call, rg, name, false).await,
        (Route::Snapshot { rg, name }, _) => volume::handle(emu, call, rg, name, true).await,
        (Route::Vms { rg }, "GET") => vm::list(emu, call, rg.as_deref()),
        (Route::Tenants, "GET") => Ok(subscription::tenants(emu)),
        (Route::Subscriptions, "GET") => Ok(subscription::list(emu)),
        (Route::Subscription, "GET") => Ok(subscription::get(emu)),
        (Route::Locations, "GET") => Ok(subscription::locations(emu)),
        (Route::ResourceGroups, "GET") => Ok(subscription::groups(emu, call)),
        (Route::ResourceGroup { rg }, _) => subscription::group(emu, call, rg),
        (Route::Permissions { rg }, "GET") => subscription::permissions(emu, call, rg),
        (Route::Vm { rg, name }, "GET") => vm::get(emu, call, rg, name),
        (Route::Vm { rg, name }, "PUT" | "PATCH") => vm::update(emu, call, rg, name).await,
        (Route::Vm { rg, name }, "DELETE") => vm_actions::delete(emu, call, rg, name),
        (Route::VmInstanceView { rg, name }, "GET") => vm::instance_view_reply(emu, rg, name),
        (Route::VmAction { rg, name, action }, "POST") => {
            vm_actions::action(emu, call, rg, name, action).await
        }
        (Route::VmAction { rg, name, action }, "GET")
            if action.eq_ignore_ascii_case("retrieveBootDiagnosticsData") =>
        {
            vm_actions::action(emu, call, rg, name, action).await
        }
        (Route::VmRunCommands { rg, name }, "GET") => vm_run_command::list(emu, call, rg, name),
        (Route::VmRunCommand { rg, name, command }, "GET") => {
            vm_run_command::get(emu, call, rg, name, command)
        }
        (Route::VmRunCommand { rg, name, command }, "PUT") => {
            vm_run_command::put(emu, call, rg, name, command).await
        }
        (Route::VmRunCommand { rg, name, command }, "DELETE") => {
            vm_run_command::delete(emu, call, rg, name, command)
        }
        (Route::Operation { id, .. }, "GET") => operation(emu, call, id, false),
        (Route::OperationResult { id }, "GET") => operation(emu, call, id, true),
        (Route::Clusters { rg }, "GET") => group_list(emu, rg.as_deref(), aks::listed),
        (Route::Cluster { rg, name }, "GET") => aks::get(emu, rg, name),
        (Route::AgentPools { rg, cluster }, "GET") => aks::pools(emu, rg, cluster),
        (
            Route::AgentPool {
                rg,
                cluster,
                pool,
                action: None,
            },
            m,
        ) => match m {
            "GET" => aks::pool(emu, rg, cluster, pool),
            "PUT" => aks::put_pool(emu, call, rg, cluster, pool).await,
            _ => Err(method_not_allowed(m)),
        },
        (
            Route::AgentPool {
                rg,
                cluster,
                pool,
                action: Some(action),
            },
            "POST",
        ) => aks::delete_machines(emu, call, rg, cluster, pool, action),
        (Route::ScaleSets { rg }, "GET") => group_list(emu, rg.as_deref(), vmss::listed),
        (Route::ScaleSet { rg, name }, "GET") => vmss::get(emu, rg, name),
        (Route::ScaleSetAction { rg, name, action }, "POST") => {
            vmss::scale_set_action(emu, call, rg, name, action).await
        }
        (Route::ScaleSetVms { rg, scale_set }, "GET") => vmss::instances(emu, call, rg, scale_set),
        (
            Route::ScaleSetVm {
                rg,
                scale_set,
                id,
                action,
            },
            m,
        ) => {
            let at = vmss::Instance { rg, scale_set, id };
            match (action.as_deref(), m) {
                (None, "GET") => vmss::get_instance(emu, call, &at),
                (None, "PUT" | "PATCH") => vmss::update_instance(emu, call, &at),
                (Some(a), "GET") if a.eq_ignore_ascii_case("instanceView") => {
                    vmss::instance_view_reply(emu, &at)
                }
                (Some(a), "POST") => vmss::instance_action(emu, call, &at, a).await,
                _ => Err(method_not_allowed(m)),
            }
        }
        (Route::Network { rg, kind, name }, _) => {
            network::handle(emu, call, rg, *kind, name.as_deref())
        }
        (Route::Subnet { rg, vnet, name }, _) => {
            network::handle_subnet(emu, call, rg, vnet, name.as_deref())
        }
        (Route::GroupResources { rg }, "GET") => group_resources(emu, rg),
        (Route::ClusterAdminCredential { rg, cluster }, "POST") => {
            super::kube::admin_credential(emu, rg, cluster)
        }
        _ => Err(method_not_allowed(m)),
    }
}

/// ARM's answer for a method a resource type does not have (inferred: no recording).
fn method_not_allowed(m: &str) -> ArmError {
    ArmError::new(
        405,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{m}'."),
    )
}

/// Azure-AsyncOperation (status body) and Location (202 until done, then the final answer).
/// An operation the RP no longer keeps (or never had) is a 404 (see `ArmError::entity_not_found`);
/// finished ones are kept `operation_retention` Azure seconds, scaled.
/// `location_url`: AKS's `operationresults` URL, which answers as a Location does.
fn operation(emu: &Emu, call: &Call, id: &str, location_url: bool) -> ArmResult<Reply> {
    let mut state = emu.lock();
    let retention = state.operation_retention * emu.time_scale;
    super::operations::forget_expired(&mut state, retention, super::arm::now());
    let op = state
        .operations
        .get(id)
        .ok_or_else(ArmError::entity_not_found)?;
    let monitor = location_url
        || call
            .query("monitor")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !monitor {
        let reply = Reply::json(200, op.status_body());
        return Ok(if op.status == Status::InProgress {
            reply.retry_after(10.0, emu.time_scale)
        } else {
            reply
        });
    }
    match op.status {
        Status::InProgress if location_url => Ok(aks::in_progress(emu, &state, id)),
        Status::InProgress => {
            let reply = Reply::empty(202).retry_after(10.0, emu.time_scale);
            Ok(emu.lro_headers(&state, op, reply, true))
        }
        Status::Succeeded => Ok(match &op.output {
            Some(out) => Reply::json(200, out.clone()),
            None => Reply::empty(200),
        }),
        Status::Failed | Status::Canceled => {
            let e = op
                .error
                .clone()
                .unwrap_or_else(|| ArmError::internal("The operation failed."));
            // The Location of a failed operation answers with the operation's error and the
            // status the error carries (inferred: the RPC only says it must not be 202).
            Err(ArmError {
                status: if e.status >= 400 { e.status } else { 500 },
                ..e
            })
        }
    }
}

pub use subscription::metadata;

/// ARM's list of a group's resources (Resources - List By Resource Group, 2024-11-01: the
/// `GenericResourceExpanded` id, name, type, location, tags, and a disk's `managedBy`, `sku`,
/// `zones`), as `az resource list -g RG` reads it.
fn group_resources(emu: &Emu, rg: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let rg = group(&state, rg)?;
    let prefix = group_prefix(&state, Some(rg))?;
    let compute = |v: Value| {
        let mut item = serde_json::json!({});
        for k in [
            "id",
            "name",
            "type",
            "location",
            "tags",
            "zones",
            "managedBy",
        ] {
            if let Some(x) = v.get(k) {
                item[k] = x.clone();
            }
        }
        if let Some(sku) = v.get("sku") {
            item["sku"] = serde_json::json!({ "name": sku.get("name"), "tier": sku.get("tier") });
        }
        item
    };
    let mut value: Vec<Value> = Vec::new();
    for snapshot in [false, true] {
        let map = if snapshot {
            &state.snapshots
        } else {
            &state.disks
        };
        value.extend(
            map.keys()
                .filter(|k| k.starts_with(&prefix))
                .filter_map(|k| render_volume(&state, k, snapshot))
                .map(compute),
        );
    }
    value.extend(
        state
            .vms
            .iter()
            .filter(|(k, vm)| k.starts_with(&prefix) && vm.scale_set.is_none())
            .map(|(_, vm)| compute(vm::render(&state, vm, false))),
    );
    value.extend(network::listed(&state, rg));
    // A group's scale sets and clusters are among its resources too (an AKS node group lists
    // its `virtualMachineScaleSets`, the cluster's group its `managedClusters`, as the portal
    // and `az resource list` show them).
    let mut tracked = vmss::listed(&state, &prefix);
    tracked.extend(aks::listed(&state, &prefix));
    value.extend(tracked.into_iter().map(compute));
    Ok(Reply::json(200, serde_json::json!({ "value": value })))
}

/// A group's (or, `rg: None`, the subscription's) list of one resource type, unpaged.
fn group_list(
    emu: &Emu,
    rg: Option<&str>,
    listed: fn(&State, &str) -> Vec<Value>,
) -> ArmResult<Reply> {
    let state = emu.lock();
    let prefix = group_prefix(&state, rg)?;
    Ok(Reply::json(
        200,
        serde_json::json!({ "value": listed(&state, &prefix) }),
    ))
}

/// The entries of a map by `arm::key` whose key starts with `prefix`.
pub fn keyed<'a, T>(
    map: &'a std::collections::BTreeMap<String, T>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a T)> + 'a {
    map.iter().filter(move |(k, _)| k.starts_with(prefix))
}

/// The key prefix of a resource group's resources (`None`: the whole subscription).
fn group_prefix(state: &State, rg: Option<&str>) -> ArmResult<String> {
    match rg {
        None => Ok(String::new()),
        Some(rg) => Ok(format!("{}/", group(state, rg)?.to_ascii_lowercase())),
    }
}

/// A list answer. Subscription-wide lists come in pages linked by `nextLink` with a
/// `$skiptoken`, as ARM pages them (the `nextLink` of the list models in the compute specs);
/// how many items Azure puts on a page is not documented, so the scenario sets it.
fn page(emu: &Emu, state: &State, call: &Call, rg: Option<&str>, mut value: Vec<Value>) -> Reply {
    if rg.is_some() {
        return Reply::json(200, serde_json::json!({ "value": value }));
    }
    let size = state.list_page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1);
    let skip: usize = call
        .query("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let rest = value.split_off(skip.min(value.len()));
    let (items, more) = if rest.len() > size {
        (rest[..size].to_vec(), true)
    } else {
        (rest, false)
    };
    let mut body = serde_json::json!({ "value": items });
    if more {
        let path = match &call.route {
            Route::Disks { .. } => "disks",
            Route::Snapshots { .. } => "snapshots",
            _ => "virtualMachines",
        };
        body["nextLink"] = serde_json::json!(format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/{path}?api-version={}&%24skiptoken={}",
            emu.base,
            state.subscription,
            call.query("api-version").unwrap_or_default(),
            skip + size
        ));
    }
    Reply::json(200, body)
}

const DEFAULT_PAGE_SIZE: usize = 100;

/// Looks a resource group up and returns its name as created.
pub fn group<'a>(state: &'a State, rg: &str) -> ArmResult<&'a str> {
    state.check_group(rg)?;
    Ok(state.resource_groups[&rg.to_ascii_lowercase()].as_str())
}

/// A JSON object's field, case-sensitively as ARM's JSON is.
pub fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// A tracked resource's `location`: required ("LocationRequired", ARM's own validation; inferred:
/// no recording), and the emulated region only, as ARM lists a type's regions
/// ("LocationNotAvailableForResourceType"). Returns the region as the state names it.
pub fn location(state: &State, body: &Value, type_name: &str) -> ArmResult<String> {
    let location = field(body, &["location"])
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })?;
    if !location
        .replace(' ', "")
        .eq_ignore_ascii_case(&state.location)
    {
        return Err(ArmError::bad_request(
            "LocationNotAvailableForResourceType",
            format!("The provided location '{location}' is not available for resource type '{type_name}'. List of available regions for the resource type is '{}'.", state.location),
        ));
    }
    Ok(state.location.clone())
}

pub fn tags(v: &Value) -> ArmResult<Option<serde_json::Map<String, Value>>> {
    match v.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The property 'tags' must be an object.",
        )),
    }
}
