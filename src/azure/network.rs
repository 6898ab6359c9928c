//! Microsoft.Network: the VNet, subnet, NSG and NIC of a rescue VM, as typed REST on azure_core's
//! pipeline (the one that already polls operations).
//!
//! Why not azure_mgmt_network 0.21: it builds (≈124,000 generated lines, about 3 minutes more
//! per clean build on these 2-core machines, twice with release), yet rescue sends four request
//! bodies to three resource types with GET, PUT and DELETE, whose long-running operations the
//! crate's `.await` does not poll as ARM answers them anyway (see the wire contract): every call
//! would be `.send()` plus our poller, as here. The bodies below are typed by the fields of the
//! Network 2024-03-01 spec (`virtualNetwork.json`, `networkInterface.json`,
//! `networkSecurityGroup.json`) that rescue sets; the api-version is azure_mgmt_network 0.21's
//! default tag (package-2024-03), the same family as azure_mgmt_compute 0.21.

use azure_core::headers::{AUTHORIZATION, CONTENT_TYPE};
use azure_core::{Method, Request};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{Error, Kind as ErrorKind, Result};
use super::ids::ResourceId;
use super::lro::{FinalVia, Started};
use super::requests::Write;
use super::Azure;

#[derive(Serialize)]
struct Ref {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VirtualNetwork {
    location: String,
    tags: Map<String, Value>,
    properties: VirtualNetworkProperties,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VirtualNetworkProperties {
    address_space: AddressSpace,
    subnets: Vec<Subnet>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressSpace {
    address_prefixes: Vec<String>,
}

#[derive(Serialize)]
struct Subnet {
    name: String,
    properties: SubnetProperties,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubnetProperties {
    address_prefix: String,
    network_security_group: Ref,
    /// "Set this property to false to disable default outbound connectivity for all VMs in the
    /// subnet" (the spec's `defaultOutboundAccess`): the rescue VM needs no internet.
    default_outbound_access: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkSecurityGroup {
    location: String,
    tags: Map<String, Value>,
    properties: NetworkSecurityGroupProperties,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkSecurityGroupProperties {
    /// None of its own: the default rules (DenyAllInBound after VNet and load-balancer traffic)
    /// are all that applies.
    security_rules: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInterface {
    location: String,
    tags: Map<String, Value>,
    properties: NetworkInterfaceProperties,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInterfaceProperties {
    ip_configurations: Vec<IpConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network_security_group: Option<Ref>,
}

#[derive(Serialize)]
struct IpConfiguration {
    name: String,
    properties: IpConfigurationProperties,
}

/// No `publicIPAddress`: the rescue VM is reached through Run Command only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IpConfigurationProperties {
    subnet: Ref,
    #[serde(rename = "privateIPAllocationMethod")]
    private_ip_allocation_method: &'static str,
    primary: bool,
}

fn value(body: impl Serialize) -> Value {
    serde_json::to_value(body).expect("network bodies serialize")
}

/// A VNet with one subnet guarded by `nsg`, no default outbound access.
pub fn vnet_body(
    location: &str,
    tags: &Map<String, Value>,
    address_prefix: &str,
    subnet: &str,
    subnet_prefix: &str,
    nsg: &ResourceId,
) -> Value {
    value(VirtualNetwork {
        location: location.into(),
        tags: tags.clone(),
        properties: VirtualNetworkProperties {
            address_space: AddressSpace {
                address_prefixes: vec![address_prefix.into()],
            },
            subnets: vec![Subnet {
                name: subnet.into(),
                properties: SubnetProperties {
                    address_prefix: subnet_prefix.into(),
                    network_security_group: Ref {
                        id: nsg.to_string(),
                    },
                    default_outbound_access: false,
                },
            }],
        },
    })
}

/// An NSG without rules of its own.
pub fn nsg_body(location: &str, tags: &Map<String, Value>) -> Value {
    value(NetworkSecurityGroup {
        location: location.into(),
        tags: tags.clone(),
        properties: NetworkSecurityGroupProperties {
            security_rules: Vec::new(),
        },
    })
}

/// A NIC with one dynamic private address in `subnet`, no public IP; guarded by `nsg` when the
/// subnet is the user's (whose own NSG, if any, rescue does not know).
pub fn nic_body(
    location: &str,
    tags: &Map<String, Value>,
    subnet: &ResourceId,
    nsg: Option<&ResourceId>,
) -> Value {
    value(NetworkInterface {
        location: location.into(),
        tags: tags.clone(),
        properties: NetworkInterfaceProperties {
            ip_configurations: vec![IpConfiguration {
                name: "ipconfig1".into(),
                properties: IpConfigurationProperties {
                    subnet: Ref {
                        id: subnet.to_string(),
                    },
                    private_ip_allocation_method: "Dynamic",
                    primary: true,
                },
            }],
            network_security_group: nsg.map(|n| Ref { id: n.to_string() }),
        },
    })
}

impl Azure {
    /// One request to a resource's own URL, with our token; an error status is an `Error`.
    pub(crate) async fn rest(
        &self,
        method: Method,
        id: &ResourceId,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<azure_core::Response> {
        self.rest_at(method, id, "", body, doing).await
    }

    /// One request to `{id}{action}` (an action such as `/deleteMachines`), with our token.
    pub(crate) async fn rest_at(
        &self,
        method: Method,
        id: &ResourceId,
        action: &str,
        body: Option<&Value>,
        doing: &str,
    ) -> Result<azure_core::Response> {
        let mut url = self.endpoint().clone();
        url.set_path(&format!("{id}{action}"));
        url.set_query(Some(&format!("api-version={}", id.kind.api_version())));
        let mut request = Request::new(url, method);
        request.insert_header(AUTHORIZATION, format!("Bearer {}", self.token().await?));
        if let Some(body) = body {
            request.insert_header(CONTENT_TYPE, "application/json");
            request.set_body(serde_json::to_vec(body).expect("JSON serializes"));
        }
        let (sent, correlation) = super::transport::with_correlation(
            self.pipeline()
                .send(&azure_core::Context::new(), &mut request),
        )
        .await;
        sent.map_err(|e| Error::from_core(&e, doing).with_correlation(correlation))
    }

    /// PUT or DELETE of a network or AKS resource, or an agent pool's `deleteMachines`: all
    /// long-running (`Azure-AsyncOperation` or `Location`), the result read from the resource;
    /// a DELETE of what is gone is done.
    pub(crate) async fn write_rest(
        &self,
        id: &ResourceId,
        write: &Write,
        label: &str,
    ) -> Result<Started> {
        let (method, action, body) = match write {
            Write::Put(body) => (Method::Put, "", Some(body)),
            Write::Delete => (Method::Delete, "", None),
            Write::DeleteMachines(body) if id.kind == super::ids::Kind::AgentPool => {
                (Method::Post, "/deleteMachines", Some(body))
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    label,
                    format!(
                        "internal error: rescue never sends {other:?} to a {}",
                        id.kind.noun()
                    ),
                ))
            }
        };
        match self.rest_at(method, id, action, body, label).await {
            Ok(response) => self.started(response, label, FinalVia::Resource).await,
            Err(e) if method == Method::Delete && e.is_not_found() => {
                Ok(Started::Done(Value::Null))
            }
            Err(e) => Err(e),
        }
    }
}
