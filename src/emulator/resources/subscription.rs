//! ARM's own resources around the compute ones: the tenant, the subscription, its locations,
//! resource groups, and the cloud's metadata document. Shapes from the Resources and
//! Subscriptions REST specs (azure-rest-api-specs: resources/resource-manager
//! Microsoft.Resources/stable/2024-11-01/resources.json, subscriptions 2022-12-01
//! subscriptions.json) and the public cloud's metadata endpoint.

use serde_json::{json, Value};

use super::super::arm::{ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::server::Emu;
use super::super::state::State;

/// Not in the scenario: a subscription's display name matters to no workflow.
const SUBSCRIPTION_NAME: &str = "rescue emulator";

fn subscription(emu: &Emu, state: &State) -> Value {
    json!({
        "id": format!("/subscriptions/{}", state.subscription),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": state.subscription,
        "tenantId": emu.directory.tenant_id,
        "displayName": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        },
    })
}

/// `GET /subscriptions`: the subscriptions the caller can see (`count` as in 2022-12-01).
pub fn list(emu: &Emu) -> Reply {
    let state = emu.lock();
    Reply::json(
        200,
        json!({ "value": [subscription(emu, &state)], "count": { "type": "Total", "value": 1 } }),
    )
}

pub fn get(emu: &Emu) -> Reply {
    let state = emu.lock();
    Reply::json(200, subscription(emu, &state))
}

/// `GET /tenants`: the service principal's home tenant.
pub fn tenants(emu: &Emu) -> Reply {
    let t = &emu.directory.tenant_id;
    Reply::json(
        200,
        json!({ "value": [ {
            "id": format!("/tenants/{t}"),
            "tenantId": t,
            "tenantCategory": "Home",
            "displayName": "rescue emulator",
            "tenantType": "AAD",
        } ] }),
    )
}

/// `GET /subscriptions/{sub}/locations`: the scenario's one region.
pub fn locations(emu: &Emu) -> Reply {
    let state = emu.lock();
    let name = &state.location;
    Reply::json(
        200,
        json!({ "value": [ {
            "id": format!("/subscriptions/{}/locations/{name}", state.subscription),
            "name": name,
            "type": "Region",
            "displayName": display_name(name),
            "regionalDisplayName": display_name(name),
            "metadata": { "regionType": "Physical", "regionCategory": "Recommended" },
        } ] }),
    )
}

/// "westeurope" → "West Europe": Azure's display names split the region's words.
fn display_name(region: &str) -> String {
    let words = [
        "west",
        "east",
        "north",
        "south",
        "central",
        "europe",
        "us",
        "asia",
        "uk",
        "france",
        "germany",
        "japan",
        "australia",
        "canada",
        "india",
        "korea",
        "brazil",
        "norway",
        "sweden",
        "switzerland",
        "uae",
        "italy",
        "poland",
        "spain",
        "mexico",
        "israel",
        "qatar",
        "africa",
    ];
    let mut out = Vec::new();
    let mut rest = region;
    'outer: while !rest.is_empty() {
        for w in words {
            if let Some(r) = rest.strip_prefix(w) {
                out.push(if w.len() <= 3 && w != "uae" {
                    w.to_ascii_uppercase()
                } else {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                });
                rest = r;
                continue 'outer;
            }
        }
        out.push(rest.to_string());
        break;
    }
    out.join(" ")
}

fn group_body(state: &State, name: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{name}", state.subscription),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": state.location,
        "properties": { "provisioningState": "Succeeded" },
    })
}

pub fn groups(emu: &Emu, _call: &Call) -> Reply {
    let state = emu.lock();
    let value: Vec<Value> = state
        .resource_groups
        .values()
        .map(|n| group_body(&state, n))
        .collect();
    Reply::json(200, json!({ "value": value }))
}

/// GET, HEAD (checkExistence: 204 or 404, no body) and PUT (201 created, 200 updated) of a
/// resource group.
pub fn group(emu: &Emu, call: &Call, rg: &str) -> ArmResult<Reply> {
    let mut state = emu.lock();
    let key = rg.to_ascii_lowercase();
    match call.method.as_str() {
        "GET" => {
            let name = super::group(&state, rg)?.to_string();
            Ok(Reply::json(200, group_body(&state, &name)))
        }
        "HEAD" => Ok(Reply::empty(if state.resource_groups.contains_key(&key) {
            204
        } else {
            404
        })),
        "PUT" => {
            let body = call.json()?;
            if body.get("location").and_then(Value::as_str).is_none() {
                return Err(ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                ));
            }
            let created = !state.resource_groups.contains_key(&key);
            let name = state
                .resource_groups
                .entry(key)
                .or_insert_with(|| rg.to_string())
                .clone();
            emu.save(&state)?;
            Ok(Reply::json(
                if created { 201 } else { 200 },
                group_body(&state, &name),
            ))
        }
        m => Err(ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{m}'."),
        )),
    }
}

/// `GET /metadata/endpoints?api-version=2022-09-01`, without a token, in the shape of
/// management.azure.com's answer (one cloud object; the fields azure-cli maps are listed in
/// azure/cli/core/cloud.py `CloudEndpoints.ARM_METADATA_INDEX` and `_arm_to_cli_mapper`).
/// Endpoints this emulator does not serve are left out, which azure-cli treats as unset.
pub fn metadata(emu: &Emu) -> Reply {
    let b = &emu.base;
    Reply::json(
        200,
        json!({
            "name": "RescueEmulator",
            "resourceManager": format!("{b}/"),
            "authentication": {
                "loginEndpoint": format!("{b}/"),
                "audiences": super::super::entra::audiences(b),
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "suffixes": {},
        }),
    )
}

/// `GET .../resourceGroups/{rg}/providers/Microsoft.Authorization/permissions`: the caller's
/// permissions there, as `Permissions_ListForResourceGroup` answers (azure-rest-api-specs
/// Microsoft.Authorization stable/2022-04-01 authorization-Permissions.json, `PermissionGetResult`:
/// `value` of `{actions, notActions, dataActions, notDataActions}`). The scenario's service
/// principals act as Contributor on every group: Contributor's permissions as the built-in role
/// lists them ("Azure built-in roles", Microsoft Learn: actions `*`; notActions
/// `Microsoft.Authorization/*/Delete`, `Microsoft.Authorization/*/Write`,
/// `Microsoft.Authorization/elevateAccess/Action`, ...). An unknown group is ARM's 404
/// `ResourceGroupNotFound`, as for the group itself.
pub fn permissions(emu: &Emu, _call: &Call, rg: &str) -> ArmResult<Reply> {
    super::group(&emu.lock(), rg)?;
    Ok(Reply::json(
        200,
        json!({ "value": [ {
            "actions": ["*"],
            "notActions": [
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ],
            "dataActions": [],
            "notDataActions": [],
        } ] }),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_display_names() {
        assert_eq!(super::display_name("westeurope"), "West Europe");
        assert_eq!(super::display_name("eastus2"), "East US 2");
    }
}
