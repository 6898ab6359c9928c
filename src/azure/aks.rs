//! AKS on the ARM side: a cluster's admin kubeconfig, its node pools, and the scale-set
//! instance behind a node. Typed REST on azure_core's pipeline, as the network calls are: the
//! 0.21 family's azure_mgmt_containerservice would add a generated crate of the size
//! azure_mgmt_network has for three requests whose operations our poller follows anyway.
//! Instances themselves (read, power off, a data disk's ForceDetach) go through
//! azure_mgmt_compute's `virtual_machine_scale_set_v_ms` client like any VM.

use azure_core::Method;
use serde_json::{json, Value};

use super::error::{Error, Kind as ErrorKind, Result};
use super::ids::ResourceId;
use super::lro::collect;
use super::model::Resource;
use super::Azure;

/// The scale-set instance a node's `spec.providerID` names: AKS writes
/// `azure:///subscriptions/.../virtualMachineScaleSets/VMSS/virtualMachines/ID` (cloud-provider-azure
/// `pkg/provider/azure_vmss.go`, `getVmssMachineID`); a standalone VM's id reads as a VM.
pub fn provider_id(provider_id: &str) -> Result<ResourceId> {
    let id = provider_id.strip_prefix("azure://").ok_or_else(|| {
        Error::new(
            ErrorKind::Invalid,
            "read the node's provider id",
            format!("`{provider_id}` is not an Azure provider id (azure:///subscriptions/...)"),
        )
    })?;
    ResourceId::parse(id)
}

/// The body of `deleteMachines`: the nodes' machine names (AgentPoolDeleteMachinesParameter).
pub fn delete_machines_body(names: &[String]) -> Value {
    json!({ "machineNames": names })
}

/// The PUT that scales a pool: the pool as read, with its count changed, as `az aks nodepool
/// scale` sends it (azure-cli `aks_agentpool_scale`: get, set `count`, create_or_update).
/// What ARM computes (provisioning state, power state, ids) is not sent back.
pub fn scaled_pool_body(pool: &Resource, count: u64) -> Value {
    let mut properties = pool.raw.get("properties").cloned().unwrap_or(json!({}));
    if let Some(p) = properties.as_object_mut() {
        for read_only in [
            "provisioningState",
            "powerState",
            "nodeImageVersion",
            "currentOrchestratorVersion",
        ] {
            p.remove(read_only);
        }
        p.insert("count".into(), json!(count));
    }
    json!({ "properties": properties })
}

impl Azure {
    /// The cluster admin's kubeconfig (`listClusterAdminCredential`, what `az aks
    /// get-credentials --admin` fetches), as YAML text.
    pub async fn admin_kubeconfig(&self, cluster: &ResourceId) -> Result<String> {
        let doing = format!("get the admin credentials of AKS cluster {}", cluster.name);
        let response = self
            .rest_at(
                Method::Post,
                cluster,
                "/listClusterAdminCredential",
                None,
                &doing,
            )
            .await?;
        let (_, _, body) = collect(response, &doing).await?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::protocol(&doing, format!("Azure sent invalid JSON ({e})")))?;
        let encoded = body
            .pointer("/kubeconfigs/0/value")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::protocol(&doing, "the answer has no kubeconfig"))?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| Error::protocol(&doing, format!("the kubeconfig is not base64 ({e})")))?;
        String::from_utf8(bytes)
            .map_err(|_| Error::protocol(&doing, "the kubeconfig is not UTF-8 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ids::Kind;

    #[test]
    fn a_provider_id_names_the_instance() {
        let id = provider_id("azure:///subscriptions/s/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-np-1-vmss/virtualMachines/2").unwrap();
        assert_eq!(id.kind, Kind::ScaleSetVm);
        assert_eq!(id.parent_and_child(), Some(("aks-np-1-vmss", "2")));
        assert!(provider_id("aws:///eu-west-1a/i-0abc").is_err());
    }

    #[test]
    fn a_scaled_pool_keeps_its_settings_and_drops_what_arm_computes() {
        let pool = Resource::new(
            json!({"id": "x", "properties": {"count": 4, "vmSize": "Standard_D4s_v3",
                "provisioningState": "Succeeded", "powerState": {"code": "Running"}}}),
            None,
        );
        let body = scaled_pool_body(&pool, 5);
        assert_eq!(
            body,
            json!({"properties": {"count": 5, "vmSize": "Standard_D4s_v3"}})
        );
    }
}
