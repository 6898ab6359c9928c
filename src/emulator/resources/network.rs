//! Microsoft.Network: virtual networks and their subnets, network interfaces and network
//! security groups, with the rules that order their deletion.
//!
//! Shapes follow the Network 2024-03-01 spec and its examples (`NetworkInterfaceCreate.json`,
//! `NetworkInterfaceDelete.json`, ...). Writes are long-running as a recording shows them: PUT
//! answers 201 (create) or 200 with `provisioningState: Updating`, an `etag` `W/"guid"`,
//! `Retry-After: 3` and an `Azure-AsyncOperation` under
//! `/providers/Microsoft.Network/locations/{loc}/operations/{id}` (azure-sdk-for-js arm-network
//! recording of a subnet create, api-version 2021-05-01); DELETE answers 202 with a Location (the
//! spec's NetworkInterfaceDelete example), 204 when there is nothing to delete.
//!
//! What uses what is derived, never stored twice: a NIC is in use by the VM whose network profile
//! names it, a subnet by the NICs whose IP configuration names it, an NSG by the subnets and NICs
//! that name it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::super::arm::{self, ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::operations::{Family, OpKind};
use super::super::server::Emu;
use super::super::state::State;
use super::{field, group, tags};

pub const NETWORK_API: &str = "2024-03-01";
/// A network write or delete takes seconds (observed order of magnitude, like `latency.rs`).
const NETWORK_WRITE: f64 = 3.0;
const NETWORK_DELETE: f64 = 10.0;

/// The Microsoft.Network resource types served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetKind {
    VirtualNetwork,
    Subnet,
    NetworkInterface,
    NetworkSecurityGroup,
}

impl NetKind {
    pub fn segment(self) -> &'static str {
        match self {
            NetKind::VirtualNetwork => "virtualNetworks",
            NetKind::Subnet => "subnets",
            NetKind::NetworkInterface => "networkInterfaces",
            NetKind::NetworkSecurityGroup => "networkSecurityGroups",
        }
    }

    pub fn from_segment(s: &str) -> Option<NetKind> {
        [
            NetKind::VirtualNetwork,
            NetKind::NetworkInterface,
            NetKind::NetworkSecurityGroup,
        ]
        .into_iter()
        .find(|k| k.segment().eq_ignore_ascii_case(s))
    }

    fn type_name(self) -> &'static str {
        match self {
            NetKind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            NetKind::Subnet => "Microsoft.Network/virtualNetworks/subnets",
            NetKind::NetworkInterface => "Microsoft.Network/networkInterfaces",
            NetKind::NetworkSecurityGroup => "Microsoft.Network/networkSecurityGroups",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VirtualNetwork {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub address_prefixes: Vec<String>,
    /// Lowercase name → subnet.
    pub subnets: BTreeMap<String, Subnet>,
    pub provisioning_state: String,
    pub etag: String,
    pub resource_guid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub name: String,
    pub address_prefix: String,
    /// The NSG's id as given.
    pub nsg: Option<String>,
    pub default_outbound_access: Option<bool>,
    pub provisioning_state: String,
    pub etag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nic {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    /// The subnet's id as given.
    pub subnet: String,
    pub private_ip: String,
    pub nsg: Option<String>,
    pub provisioning_state: String,
    pub etag: String,
    pub resource_guid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nsg {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub security_rules: Vec<Value>,
    pub provisioning_state: String,
    pub etag: String,
    pub resource_guid: String,
}

fn etag() -> String {
    format!("W/\"{}\"", arm::guid())
}

fn id(state: &State, rg: &str, kind: NetKind, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/{}/{name}",
        state.subscription,
        kind.type_name()
    )
}

fn subnet_id(state: &State, vnet: &VirtualNetwork, subnet: &str) -> String {
    format!(
        "{}/subnets/{subnet}",
        id(
            state,
            &vnet.resource_group,
            NetKind::VirtualNetwork,
            &vnet.name
        )
    )
}

/// ARM's ResourceNotFound, for a network type.
fn not_found(kind: NetKind, rg: &str, name: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            kind.type_name()
        ),
    )
}

/// A referenced resource that does not exist: "Resource {ref} referenced by resource {by} was
/// not found. Please make sure that the referenced resource exists, and that both resources are
/// in the same region." (400 InvalidResourceReference, MicrosoftDocs/azure-docs#81734).
pub fn invalid_reference(reference: &str, by: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceReference",
        format!("Resource {reference} referenced by resource {by} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
    )
}

/// `(rg, kind, name, subnet)` of a Microsoft.Network id.
fn parse_id(id: &str) -> Option<(String, NetKind, String, Option<String>)> {
    let p: Vec<&str> = id.trim_matches('/').split('/').collect();
    let is = |i: usize, s: &str| p.get(i).is_some_and(|x| x.eq_ignore_ascii_case(s));
    if !(is(0, "subscriptions")
        && is(2, "resourceGroups")
        && is(4, "providers")
        && is(5, "Microsoft.Network"))
    {
        return None;
    }
    let kind = NetKind::from_segment(p.get(6)?)?;
    match (kind, p.len()) {
        (_, 8) => Some((p[3].into(), kind, p[7].into(), None)),
        (NetKind::VirtualNetwork, 10) if is(8, "subnets") => {
            Some((p[3].into(), NetKind::Subnet, p[7].into(), Some(p[9].into())))
        }
        _ => None,
    }
}

/// The key of the NIC a VM's network profile names, if it exists.
pub fn nic_key_by_id(state: &State, nic_id: &str) -> Option<String> {
    match parse_id(nic_id)? {
        (rg, NetKind::NetworkInterface, name, None) => {
            let k = arm::key(&rg, &name);
            state.nics.contains_key(&k).then_some(k)
        }
        _ => None,
    }
}

/// `(vnet key, subnet key)` of a subnet id that exists.
fn subnet_by_id(state: &State, subnet: &str) -> Option<(String, String)> {
    match parse_id(subnet)? {
        (rg, NetKind::Subnet, vnet, Some(name)) => {
            let vk = arm::key(&rg, &vnet);
            let sk = name.to_ascii_lowercase();
            state
                .vnets
                .get(&vk)
                .is_some_and(|v| v.subnets.contains_key(&sk))
                .then_some((vk, sk))
        }
        _ => None,
    }
}

fn nsg_exists(state: &State, nsg: &str) -> bool {
    matches!(parse_id(nsg), Some((rg, NetKind::NetworkSecurityGroup, name, None))
        if state.nsgs.contains_key(&arm::key(&rg, &name)))
}

fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// The VM whose network profile names this NIC.
pub fn nic_owner<'a>(state: &'a State, nic_key: &str) -> Option<&'a super::super::state::Vm> {
    state
        .vms
        .values()
        .find(|vm| vm.nics.iter().any(|n| n == nic_key))
}

/// The NICs with an IP configuration in this subnet.
fn nics_in<'a>(state: &'a State, subnet: &str) -> Vec<(&'a String, &'a Nic)> {
    state
        .nics
        .iter()
        .filter(|(_, n)| same(&n.subnet, subnet))
        .collect()
}

fn ip_config_id(state: &State, nic: &Nic) -> String {
    format!(
        "{}/ipConfigurations/ipconfig1",
        id(
            state,
            &nic.resource_group,
            NetKind::NetworkInterface,
            &nic.name
        )
    )
}

// ---- rendering ------------------------------------------------------------------------------

fn render_subnet(state: &State, vnet: &VirtualNetwork, s: &Subnet) -> Value {
    let sid = subnet_id(state, vnet, &s.name);
    let mut props = json!({
        "provisioningState": s.provisioning_state,
        "addressPrefix": s.address_prefix,
        "delegations": [],
        "privateEndpointNetworkPolicies": "Disabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
    });
    if let Some(nsg) = &s.nsg {
        props["networkSecurityGroup"] = json!({ "id": nsg });
    }
    if let Some(d) = s.default_outbound_access {
        props["defaultOutboundAccess"] = json!(d);
    }
    let configs: Vec<Value> = nics_in(state, &sid)
        .into_iter()
        .map(|(_, n)| json!({ "id": ip_config_id(state, n) }))
        .collect();
    if !configs.is_empty() {
        props["ipConfigurations"] = Value::Array(configs);
    }
    json!({
        "name": s.name,
        "id": sid,
        "etag": s.etag,
        "type": NetKind::Subnet.type_name(),
        "properties": props,
    })
}

fn render_vnet(state: &State, v: &VirtualNetwork) -> Value {
    json!({
        "name": v.name,
        "id": id(state, &v.resource_group, NetKind::VirtualNetwork, &v.name),
        "etag": v.etag,
        "type": NetKind::VirtualNetwork.type_name(),
        "location": v.location,
        "tags": v.tags,
        "properties": {
            "provisioningState": v.provisioning_state,
            "resourceGuid": v.resource_guid,
            "addressSpace": { "addressPrefixes": v.address_prefixes },
            "subnets": v.subnets.values().map(|s| render_subnet(state, v, s)).collect::<Vec<_>>(),
            "virtualNetworkPeerings": [],
            "enableDdosProtection": false,
        },
    })
}

fn render_nic(state: &State, key: &str, n: &Nic) -> Value {
    let mut props = json!({
        "provisioningState": n.provisioning_state,
        "resourceGuid": n.resource_guid,
        "ipConfigurations": [{
            "name": "ipconfig1",
            "id": ip_config_id(state, n),
            "etag": n.etag,
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": {
                "provisioningState": n.provisioning_state,
                "privateIPAddress": n.private_ip,
                "privateIPAllocationMethod": "Dynamic",
                "subnet": { "id": n.subnet },
                "primary": true,
                "privateIPAddressVersion": "IPv4",
            },
        }],
        "dnsSettings": { "dnsServers": [], "appliedDnsServers": [] },
        "enableAcceleratedNetworking": false,
        "enableIPForwarding": false,
        "vnetEncryptionSupported": false,
        "nicType": "Standard",
    });
    if let Some(nsg) = &n.nsg {
        props["networkSecurityGroup"] = json!({ "id": nsg });
    }
    if let Some(vm) = nic_owner(state, key) {
        props["virtualMachine"] = json!({ "id": state.vm_id(vm) });
        props["primary"] = json!(true);
    }
    json!({
        "name": n.name,
        "id": id(state, &n.resource_group, NetKind::NetworkInterface, &n.name),
        "etag": n.etag,
        "type": NetKind::NetworkInterface.type_name(),
        "location": n.location,
        "tags": n.tags,
        "properties": props,
    })
}

/// The rules every NSG has ("Default security rules", Microsoft's
/// network-security-groups-overview.md): VNet and load-balancer traffic in, the rest denied;
/// VNet and internet traffic out.
fn default_rules(nsg_id: &str) -> Vec<Value> {
    [
        (
            "AllowVnetInBound",
            65000,
            "Inbound",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow",
            "Allow inbound traffic from all VMs in VNET",
        ),
        (
            "AllowAzureLoadBalancerInBound",
            65001,
            "Inbound",
            "AzureLoadBalancer",
            "*",
            "Allow",
            "Allow inbound traffic from azure load balancer",
        ),
        (
            "DenyAllInBound",
            65500,
            "Inbound",
            "*",
            "*",
            "Deny",
            "Deny all inbound traffic",
        ),
        (
            "AllowVnetOutBound",
            65000,
            "Outbound",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow",
            "Allow outbound traffic from all VMs to all VMs in VNET",
        ),
        (
            "AllowInternetOutBound",
            65001,
            "Outbound",
            "*",
            "Internet",
            "Allow",
            "Allow outbound traffic from all VMs to Internet",
        ),
        (
            "DenyAllOutBound",
            65500,
            "Outbound",
            "*",
            "*",
            "Deny",
            "Deny all outbound traffic",
        ),
    ]
    .into_iter()
    .map(
        |(name, priority, direction, src, dst, access, description)| {
            json!({
                "name": name,
                "id": format!("{nsg_id}/defaultSecurityRules/{name}"),
                "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                "properties": {
                    "provisioningState": "Succeeded",
                    "description": description,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": src,
                    "destinationAddressPrefix": dst,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                },
            })
        },
    )
    .collect()
}

/// The subnets and NICs that name an NSG.
fn nsg_users(state: &State, nsg_id: &str) -> (Vec<String>, Vec<String>) {
    let subnets = state
        .vnets
        .values()
        .flat_map(|v| {
            v.subnets
                .values()
                .filter(|s| s.nsg.as_deref().is_some_and(|n| same(n, nsg_id)))
                .map(|s| subnet_id(state, v, &s.name))
        })
        .collect();
    let nics = state
        .nics
        .values()
        .filter(|n| n.nsg.as_deref().is_some_and(|x| same(x, nsg_id)))
        .map(|n| id(state, &n.resource_group, NetKind::NetworkInterface, &n.name))
        .collect();
    (subnets, nics)
}

fn render_nsg(state: &State, n: &Nsg) -> Value {
    let nid = id(
        state,
        &n.resource_group,
        NetKind::NetworkSecurityGroup,
        &n.name,
    );
    let mut props = json!({
        "provisioningState": n.provisioning_state,
        "resourceGuid": n.resource_guid,
        "securityRules": n.security_rules,
        "defaultSecurityRules": default_rules(&nid),
    });
    let (subnets, nics) = nsg_users(state, &nid);
    if !subnets.is_empty() {
        props["subnets"] = json!(subnets.iter().map(|i| json!({"id": i})).collect::<Vec<_>>());
    }
    if !nics.is_empty() {
        props["networkInterfaces"] =
            json!(nics.iter().map(|i| json!({"id": i})).collect::<Vec<_>>());
    }
    json!({
        "name": n.name,
        "id": nid,
        "etag": n.etag,
        "type": NetKind::NetworkSecurityGroup.type_name(),
        "location": n.location,
        "tags": n.tags,
        "properties": props,
    })
}

/// A resource as its own GET answers it.
pub fn render(state: &State, kind: NetKind, key: &str, subnet: Option<&str>) -> Option<Value> {
    match kind {
        NetKind::VirtualNetwork => state.vnets.get(key).map(|v| render_vnet(state, v)),
        NetKind::Subnet => {
            let v = state.vnets.get(key)?;
            let s = v.subnets.get(&subnet?.to_ascii_lowercase())?;
            Some(render_subnet(state, v, s))
        }
        NetKind::NetworkInterface => state.nics.get(key).map(|n| render_nic(state, key, n)),
        NetKind::NetworkSecurityGroup => state.nsgs.get(key).map(|n| render_nsg(state, n)),
    }
}

/// The group's network resources for the generic resource list: id, name, type, location, tags.
pub fn listed(state: &State, rg: &str) -> Vec<Value> {
    let prefix = format!("{}/", rg.to_ascii_lowercase());
    let nics = state.nics.iter().map(|(k, n)| {
        let what = (&n.resource_group, &n.name, &n.location, &n.tags);
        (k, NetKind::NetworkInterface, what)
    });
    let nsgs = state.nsgs.iter().map(|(k, n)| {
        let what = (&n.resource_group, &n.name, &n.location, &n.tags);
        (k, NetKind::NetworkSecurityGroup, what)
    });
    let vnets = state.vnets.iter().map(|(k, v)| {
        let what = (&v.resource_group, &v.name, &v.location, &v.tags);
        (k, NetKind::VirtualNetwork, what)
    });
    nics.chain(nsgs)
        .chain(vnets)
        .filter(|(k, ..)| k.starts_with(&prefix))
        .map(|(_, kind, (rg, name, location, tags))| {
            json!({"id": id(state, rg, kind, name), "name": name, "type": kind.type_name(), "location": location, "tags": tags})
        })
        .collect()
}

// ---- requests -------------------------------------------------------------------------------

/// GET/PUT/DELETE of a VNet, NIC or NSG, or the group's list of one type.
pub fn handle(
    emu: &Emu,
    call: &Call,
    rg: &str,
    kind: NetKind,
    name: Option<&str>,
) -> ArmResult<Reply> {
    let Some(name) = name else {
        let state = emu.lock();
        let prefix = super::group_prefix(&state, Some(rg))?;
        let keys: Vec<String> = match kind {
            NetKind::VirtualNetwork => state.vnets.keys().cloned().collect(),
            NetKind::NetworkInterface => state.nics.keys().cloned().collect(),
            _ => state.nsgs.keys().cloned().collect(),
        };
        let value: Vec<Value> = keys
            .iter()
            .filter(|k| k.starts_with(&prefix))
            .filter_map(|k| render(&state, kind, k, None))
            .collect();
        return Ok(Reply::json(200, json!({ "value": value })));
    };
    match call.method.as_str() {
        "GET" => {
            let state = emu.lock();
            let rg = group(&state, rg)?;
            render(&state, kind, &arm::key(rg, name), None)
                .map(|b| Reply::json(200, b))
                .ok_or_else(|| not_found(kind, rg, name))
        }
        "PUT" => put(emu, call, rg, kind, name, None),
        "DELETE" => delete(emu, call, rg, kind, name, None),
        m => Err(method_not_allowed(m)),
    }
}

/// GET/PUT/DELETE of a subnet, or the VNet's list of them.
pub fn handle_subnet(
    emu: &Emu,
    call: &Call,
    rg: &str,
    vnet: &str,
    name: Option<&str>,
) -> ArmResult<Reply> {
    let vkey = {
        let state = emu.lock();
        let rg = group(&state, rg)?;
        let vkey = arm::key(rg, vnet);
        if !state.vnets.contains_key(&vkey) {
            return Err(not_found(NetKind::VirtualNetwork, rg, vnet));
        }
        vkey
    };
    let Some(name) = name else {
        let state = emu.lock();
        let v = &state.vnets[&vkey];
        let value: Vec<Value> = v
            .subnets
            .values()
            .map(|s| render_subnet(&state, v, s))
            .collect();
        return Ok(Reply::json(200, json!({ "value": value })));
    };
    match call.method.as_str() {
        "GET" => {
            let state = emu.lock();
            render(&state, NetKind::Subnet, &vkey, Some(name))
                .map(|b| Reply::json(200, b))
                .ok_or_else(|| not_found(NetKind::Subnet, rg, &format!("{vnet}/subnets/{name}")))
        }
        "PUT" => put(emu, call, rg, NetKind::Subnet, vnet, Some(name)),
        "DELETE" => delete(emu, call, rg, NetKind::Subnet, vnet, Some(name)),
        m => Err(method_not_allowed(m)),
    }
}

fn method_not_allowed(m: &str) -> ArmError {
    ArmError::new(
        405,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{m}'."),
    )
}

/// A subnet of a request body (a VNet's `subnets` entry or a subnet PUT).
fn requested_subnet(
    state: &State,
    body: &Value,
    name: &str,
    by: &str,
    old: Option<&Subnet>,
) -> ArmResult<Subnet> {
    // The spec's SubnetPropertiesFormat has `addressPrefix` and `addressPrefixes` (azure-cli's
    // aaz commands send the list).
    let prefix = field(body, &["properties", "addressPrefix"])
        .and_then(Value::as_str)
        .or_else(|| {
            field(body, &["properties", "addressPrefixes"])
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
        })
        .ok_or_else(|| {
            // (inferred) the spec's SubnetPropertiesFormat needs an address prefix.
            ArmError::bad_request(
                "InvalidRequestFormat",
                format!("Cannot parse the request. Subnet {name} has no addressPrefix."),
            )
        })?;
    parse_prefix(prefix).ok_or_else(|| {
        ArmError::bad_request(
            "InvalidAddressPrefixFormat",
            format!("Address prefix {prefix} of resource {by} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."),
        )
    })?;
    let nsg = field(body, &["properties", "networkSecurityGroup", "id"])
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(n) = &nsg {
        if !nsg_exists(state, n) {
            return Err(invalid_reference(n, by));
        }
    }
    Ok(Subnet {
        name: name.to_string(),
        address_prefix: prefix.to_string(),
        nsg,
        default_outbound_access: field(body, &["properties", "defaultOutboundAccess"])
            .and_then(Value::as_bool),
        provisioning_state: "Updating".into(),
        etag: old.map(|_| etag()).unwrap_or_else(etag),
    })
}

/// A subnet that NICs use may not go (by a subnet DELETE, or a VNet PUT that leaves it out, or a
/// VNet DELETE): "Subnet {name} is in use by {ipConfiguration id} and cannot be deleted. In order
/// to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet."
/// (400 InUseSubnetCannotBeDeleted: Azure/bicep#13267 for a subnet, hashicorp/terraform-provider-azurerm#4784
/// for a VNet update, Azure/azure-quickstart-templates#5450 for a VNet delete).
fn subnet_deletable(state: &State, vnet: &VirtualNetwork, subnet: &Subnet) -> ArmResult<()> {
    let sid = subnet_id(state, vnet, &subnet.name);
    match nics_in(state, &sid).first() {
        None => Ok(()),
        Some((_, nic)) => Err(ArmError::bad_request(
            "InUseSubnetCannotBeDeleted",
            format!(
                "Subnet {} is in use by {} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                subnet.name,
                ip_config_id(state, nic)
            ),
        )),
    }
}

fn put(
    emu: &Emu,
    call: &Call,
    rg: &str,
    kind: NetKind,
    name: &str,
    subnet: Option<&str>,
) -> ArmResult<Reply> {
    let body = call.json()?;
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    let self_id = match subnet {
        Some(s) => format!(
            "{}/subnets/{s}",
            id(&state, &rg, NetKind::VirtualNetwork, name)
        ),
        None => id(&state, &rg, kind, name),
    };
    let created = match kind {
        NetKind::VirtualNetwork => {
            let location = super::location(&state, &body, kind.type_name())?;
            let prefixes: Vec<String> =
                field(&body, &["properties", "addressSpace", "addressPrefixes"])
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
            let old = state.vnets.get(&key).cloned();
            let mut subnets = BTreeMap::new();
            for s in field(&body, &["properties", "subnets"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let sname = field(s, &["name"]).and_then(Value::as_str).ok_or_else(|| {
                    ArmError::bad_request(
                        "InvalidRequestFormat",
                        "Cannot parse the request. A subnet has no name.",
                    )
                })?;
                let before = old
                    .as_ref()
                    .and_then(|o| o.subnets.get(&sname.to_ascii_lowercase()));
                let by = format!("{self_id}/subnets/{sname}");
                subnets.insert(
                    sname.to_ascii_lowercase(),
                    requested_subnet(&state, s, sname, &by, before)?,
                );
            }
            if let Some(old) = &old {
                for (k, s) in &old.subnets {
                    if !subnets.contains_key(k) {
                        subnet_deletable(&state, old, s)?;
                    }
                }
            }
            let created = old.is_none();
            state.vnets.insert(
                key.clone(),
                VirtualNetwork {
                    resource_group: rg.clone(),
                    name: name.to_string(),
                    location,
                    tags: tags(&body)?.unwrap_or_default(),
                    address_prefixes: prefixes,
                    subnets,
                    provisioning_state: "Updating".into(),
                    etag: etag(),
                    resource_guid: old.map(|o| o.resource_guid).unwrap_or_else(arm::guid),
                },
            );
            created
        }
        NetKind::Subnet => {
            let sname = subnet.expect("a subnet route names it");
            let sk = sname.to_ascii_lowercase();
            let before = state.vnets[&key].subnets.get(&sk).cloned();
            let s = requested_subnet(&state, &body, sname, &self_id, before.as_ref())?;
            let v = state.vnets.get_mut(&key).expect("checked by handle_subnet");
            v.subnets.insert(sk, s);
            v.etag = etag();
            before.is_none()
        }
        NetKind::NetworkInterface => {
            let location = super::location(&state, &body, kind.type_name())?;
            let configs = field(&body, &["properties", "ipConfigurations"])
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    // (inferred) the spec requires an IP configuration; no recording of the text.
                    ArmError::bad_request(
                        "InvalidRequestFormat",
                        format!("Cannot parse the request. Network interface {self_id} has no ipConfigurations."),
                    )
                })?;
            let subnet_ref = field(&configs[0], &["properties", "subnet", "id"])
                .and_then(Value::as_str)
                .ok_or_else(|| super::super::rules::missing("ipConfigurations.subnet"))?
                .to_string();
            let (vk, sk) = subnet_by_id(&state, &subnet_ref)
                .ok_or_else(|| invalid_reference(&subnet_ref, &self_id))?;
            let nsg = field(&body, &["properties", "networkSecurityGroup", "id"])
                .and_then(Value::as_str)
                .map(String::from);
            if let Some(n) = &nsg {
                if !nsg_exists(&state, n) {
                    return Err(invalid_reference(n, &self_id));
                }
            }
            let old = state.nics.get(&key).cloned();
            let private_ip = match &old {
                Some(o) if same(&o.subnet, &subnet_ref) => o.private_ip.clone(),
                _ => next_address(
                    &state,
                    &state.vnets[&vk].subnets[&sk].address_prefix,
                    &subnet_ref,
                ),
            };
            state.nics.insert(
                key.clone(),
                Nic {
                    resource_group: rg.clone(),
                    name: name.to_string(),
                    location,
                    tags: tags(&body)?.unwrap_or_default(),
                    subnet: subnet_ref,
                    private_ip,
                    nsg,
                    provisioning_state: "Updating".into(),
                    etag: etag(),
                    resource_guid: old
                        .as_ref()
                        .map(|o| o.resource_guid.clone())
                        .unwrap_or_else(arm::guid),
                },
            );
            old.is_none()
        }
        NetKind::NetworkSecurityGroup => {
            let location = super::location(&state, &body, kind.type_name())?;
            let old = state.nsgs.get(&key).cloned();
            state.nsgs.insert(
                key.clone(),
                Nsg {
                    resource_group: rg.clone(),
                    name: name.to_string(),
                    location,
                    tags: tags(&body)?.unwrap_or_default(),
                    security_rules: field(&body, &["properties", "securityRules"])
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                    provisioning_state: "Updating".into(),
                    etag: etag(),
                    resource_guid: old
                        .as_ref()
                        .map(|o| o.resource_guid.clone())
                        .unwrap_or_else(arm::guid),
                },
            );
            old.is_none()
        }
    };
    let op_key = op_key(&key, subnet);
    let op = emu.begin(
        &mut state,
        Family::Network,
        OpKind::NetworkWrite { kind, key: op_key },
        NETWORK_WRITE,
        call,
    );
    emu.save(&state)?;
    let body = render(&state, kind, &key, subnet).expect("just written");
    let reply = Reply::json(if created { 201 } else { 200 }, body).retry_after(3.0, emu.time_scale);
    Ok(emu.lro_headers(&state, &op, reply, false))
}

/// An operation's resource: the key, and for a subnet `key|subnet`.
fn op_key(key: &str, subnet: Option<&str>) -> String {
    match subnet {
        Some(s) => format!("{key}|{}", s.to_ascii_lowercase()),
        None => key.to_string(),
    }
}

fn delete(
    emu: &Emu,
    call: &Call,
    rg: &str,
    kind: NetKind,
    name: &str,
    subnet: Option<&str>,
) -> ArmResult<Reply> {
    let mut state = emu.lock();
    let rg = group(&state, rg)?.to_string();
    let key = arm::key(&rg, name);
    match kind {
        NetKind::VirtualNetwork => {
            let Some(v) = state.vnets.get(&key) else {
                return Ok(Reply::empty(204));
            };
            for s in v.subnets.values() {
                subnet_deletable(&state, v, s)?;
            }
            state.vnets.get_mut(&key).expect("found").provisioning_state = "Deleting".into();
        }
        NetKind::Subnet => {
            let sk = subnet
                .expect("a subnet route names it")
                .to_ascii_lowercase();
            let v = &state.vnets[&key];
            let Some(s) = v.subnets.get(&sk) else {
                return Ok(Reply::empty(204));
            };
            subnet_deletable(&state, v, s)?;
            let s = state
                .vnets
                .get_mut(&key)
                .expect("found")
                .subnets
                .get_mut(&sk)
                .expect("found");
            s.provisioning_state = "Deleting".into();
        }
        NetKind::NetworkInterface => {
            let Some(nic) = state.nics.get(&key) else {
                return Ok(Reply::empty(204));
            };
            if let Some(vm) = nic_owner(&state, &key) {
                // "Network Interface {id} is used by existing resource {vm id}. In order to
                // delete the network interface, it must be dissociated from the resource. To
                // learn more, see aka.ms/deletenic." (400 NicInUse: pulumi/pulumi-azure#441,
                // hashicorp/terraform-provider-azurerm#8105).
                return Err(ArmError::bad_request(
                    "NicInUse",
                    format!(
                        "Network Interface {} is used by existing resource {}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.",
                        id(&state, &nic.resource_group, NetKind::NetworkInterface, &nic.name),
                        state.vm_id(vm)
                    ),
                ));
            }
            state.nics.get_mut(&key).expect("found").provisioning_state = "Deleting".into();
        }
        NetKind::NetworkSecurityGroup => {
            let Some(n) = state.nsgs.get(&key) else {
                return Ok(Reply::empty(204));
            };
            let nid = id(&state, &n.resource_group, kind, &n.name);
            let (subnets, nics) = nsg_users(&state, &nid);
            if !subnets.is_empty() || !nics.is_empty() {
                // "Network security group {id} cannot be deleted because it is in use by the
                // following resources: {ids}. In order to delete the Network security group,
                // remove the association with the resource(s)." (400
                // InUseNetworkSecurityGroupCannotBeDeleted: pulumi/pulumi-azure-native#3051,
                // DataBiosphere/terra-workspace-manager#502).
                return Err(ArmError::bad_request(
                    "InUseNetworkSecurityGroupCannotBeDeleted",
                    format!(
                        "Network security group {nid} cannot be deleted because it is in use by the following resources: {}. In order to delete the Network security group, remove the association with the resource(s).",
                        subnets.into_iter().chain(nics).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            state.nsgs.get_mut(&key).expect("found").provisioning_state = "Deleting".into();
        }
    }
    let op = emu.begin(
        &mut state,
        Family::Network,
        OpKind::NetworkDelete {
            kind,
            key: op_key(&key, subnet),
        },
        NETWORK_DELETE,
        call,
    );
    emu.save(&state)?;
    let reply = Reply::empty(202).retry_after(10.0, emu.time_scale);
    Ok(emu.lro_headers(&state, &op, reply, true))
}

/// An operation on a network resource is done: it is settled, or gone.
pub fn complete(state: &mut State, kind: NetKind, op_key: &str, deleted: bool, failed: bool) {
    let (key, subnet) = match op_key.split_once('|') {
        Some((k, s)) => (k, Some(s)),
        None => (op_key, None),
    };
    let settle = |p: &mut String| {
        *p = if failed && !deleted {
            "Failed"
        } else {
            "Succeeded"
        }
        .into()
    };
    match (kind, deleted && !failed) {
        (NetKind::VirtualNetwork, true) => drop(state.vnets.remove(key)),
        (NetKind::Subnet, true) => {
            if let (Some(v), Some(s)) = (state.vnets.get_mut(key), subnet) {
                v.subnets.remove(s);
            }
        }
        (NetKind::NetworkInterface, true) => drop(state.nics.remove(key)),
        (NetKind::NetworkSecurityGroup, true) => drop(state.nsgs.remove(key)),
        (NetKind::VirtualNetwork | NetKind::Subnet, false) => {
            if let Some(v) = state.vnets.get_mut(key) {
                settle(&mut v.provisioning_state);
                for s in v.subnets.values_mut() {
                    settle(&mut s.provisioning_state);
                }
            }
        }
        (NetKind::NetworkInterface, false) => {
            if let Some(n) = state.nics.get_mut(key) {
                settle(&mut n.provisioning_state);
            }
        }
        (NetKind::NetworkSecurityGroup, false) => {
            if let Some(n) = state.nsgs.get_mut(key) {
                settle(&mut n.provisioning_state);
            }
        }
    }
}

fn parse_prefix(prefix: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = prefix.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((addr.parse().ok()?, len))
}

/// The lowest free address of a subnet: "Azure reserves the first four and the last IP address
/// for a total of five IP addresses within each subnet" (Microsoft's virtual-networks-faq.md), so
/// the first a NIC gets is `.4`.
fn next_address(state: &State, prefix: &str, subnet: &str) -> String {
    let Some((base, len)) = parse_prefix(prefix) else {
        return String::new();
    };
    let base = u32::from(base) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let used: Vec<String> = nics_in(state, subnet)
        .into_iter()
        .map(|(_, n)| n.private_ip.clone())
        .collect();
    (4u32..)
        .map(|i| Ipv4Addr::from(base + i).to_string())
        .find(|a| !used.contains(a))
        .expect("a free address")
}

/// Scenario VMs get what Azure gives every VM: a NIC, here `{vm}-nic` in one VNet
/// `{group}-vnet` (10.0.0.0/16, subnet `default` 10.0.0.0/24) per resource group.
pub fn seed(state: &mut State, rg: &str, vms: &[String]) {
    if vms.is_empty() {
        return;
    }
    let head: String = rg.chars().take(59).collect();
    let vnet_name = format!("{}-vnet", head.trim_end_matches(['.', '-', '_']));
    let vkey = arm::key(rg, &vnet_name);
    let mut subnets = BTreeMap::new();
    subnets.insert(
        "default".to_string(),
        Subnet {
            name: "default".into(),
            address_prefix: "10.0.0.0/24".into(),
            nsg: None,
            default_outbound_access: None,
            provisioning_state: "Succeeded".into(),
            etag: etag(),
        },
    );
    state.vnets.insert(
        vkey.clone(),
        VirtualNetwork {
            resource_group: rg.to_string(),
            name: vnet_name,
            location: state.location.clone(),
            tags: Map::new(),
            address_prefixes: vec!["10.0.0.0/16".into()],
            subnets,
            provisioning_state: "Succeeded".into(),
            etag: etag(),
            resource_guid: arm::guid(),
        },
    );
    let sid = subnet_id(state, &state.vnets[&vkey], "default");
    for vm in vms {
        let nic_name = format!("{vm}-nic");
        let nkey = arm::key(rg, &nic_name);
        let ip = next_address(state, "10.0.0.0/24", &sid);
        state.nics.insert(
            nkey.clone(),
            Nic {
                resource_group: rg.to_string(),
                name: nic_name,
                location: state.location.clone(),
                tags: Map::new(),
                subnet: sid.clone(),
                private_ip: ip,
                nsg: None,
                provisioning_state: "Succeeded".into(),
                etag: etag(),
                resource_guid: arm::guid(),
            },
        );
        if let Some(v) = state.vms.get_mut(&arm::key(rg, vm)) {
            v.nics = vec![nkey];
        }
    }
}
