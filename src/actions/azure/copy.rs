//! What a copy of a disk (its snapshot, and the disk made from that snapshot) must keep of the
//! source, so that Azure accepts the copy as the VM's OS disk and it is protected as the
//! original was. A copy made with `createOption: Copy` takes the source's bytes; most other
//! properties are what the request says, or Azure's defaults: a copy that leaves out
//! `encryption` is encrypted with a platform key instead of the customer's key, and one that
//! leaves out `hyperVGeneration` is a V1 disk (Azure/azure-cli#16321), which Azure then refuses
//! to swap in after the VM has been down for the whole repair. So those are sent explicitly.
//! The security type is the exception: a copy inherits it from its source, and a Copy that
//! names one is refused (Azure/azure-cli#22561), so `securityProfile` is never sent.
//! (DiskRP 2024-03-02 `DiskProperties` / `SnapshotProperties`.)

use serde_json::{json, Map, Value};

use super::*;

/// Properties both snapshots and disks take, copied from the source when it has them.
const SHARED: &[&str] = &[
    "osType",
    "hyperVGeneration",
    "supportedCapabilities",
    "encryption",
    "networkAccessPolicy",
    "diskAccessId",
    "publicNetworkAccess",
    "dataAccessAuthMode",
    "supportsHibernation",
    "purchasePlan",
];

/// Properties only a disk takes (a snapshot has no performance tier or bursting).
const DISK_ONLY: &[&str] = &["diskSizeGB", "tier", "burstingEnabled"];

/// Why a copy of this disk would not be what the source is; None when it can be copied.
/// Checked at plan time, before anything changes.
pub(crate) fn refusal(source: &Resource) -> Option<String> {
    let name = source.str("/name").unwrap_or("the disk");
    if source
        .raw
        .pointer("/properties/encryptionSettingsCollection/enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Some(format!(
            "{name} is encrypted with Azure Disk Encryption (BitLocker/dm-crypt keys in Key Vault): \
             a copy cannot be checked without those keys"
        ));
    }
    let security = source
        .str("/properties/securityProfile/securityType")
        .unwrap_or_default();
    if security.starts_with("ConfidentialVM") {
        return Some(format!(
            "{name} is a confidential VM disk ({security}): its guest state cannot be carried to a copy"
        ));
    }
    None
}

/// The body of a copy of `source` made from `from` (the source itself, or its snapshot).
pub(crate) fn body(
    source: &Resource,
    kind: Kind,
    from: &ResourceId,
    tags: Value,
    extra: Map<String, Value>,
) -> Value {
    let props = source.raw.get("properties").cloned().unwrap_or(Value::Null);
    let mut properties = Map::new();
    properties.insert(
        "creationData".into(),
        json!({"createOption": "Copy", "sourceResourceId": from.to_string()}),
    );
    let wanted = SHARED
        .iter()
        .chain(if kind == Kind::Disk { DISK_ONLY } else { &[] });
    for key in wanted {
        if let Some(v) = props.get(*key).filter(|v| !v.is_null()) {
            properties.insert((*key).to_string(), v.clone());
        }
    }
    properties.extend(extra);
    let mut body = json!({
        "location": source.location(),
        "tags": tags,
        "properties": properties,
    });
    if kind == Kind::Disk {
        body["sku"] = source
            .raw
            .get("sku")
            .cloned()
            .unwrap_or(json!({"name": "Standard_LRS"}));
        if let Some(zones) = source
            .raw
            .get("zones")
            .filter(|z| z.as_array().is_some_and(|a| !a.is_empty()))
        {
            body["zones"] = zones.clone();
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmk_trusted_launch_disk() -> Resource {
        Resource::new(
            json!({
                "name": "os", "location": "westeurope", "zones": ["1"], "sku": {"name": "Premium_LRS"},
                "properties": {
                    "osType": "Linux", "hyperVGeneration": "V2", "diskSizeGB": 30, "tier": "P4",
                    "encryption": {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": "/x/diskEncryptionSets/des"},
                    "securityProfile": {"securityType": "TrustedLaunch"},
                    "supportedCapabilities": {"architecture": "x64", "diskControllerTypes": "SCSI, NVMe"},
                    "networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled",
                    "dataAccessAuthMode": "AzureActiveDirectory", "burstingEnabled": true,
                    "diskState": "Reserved", "uniqueId": "u"
                }
            }),
            None,
        )
    }

    #[test]
    fn a_copy_keeps_encryption_security_and_access_settings() {
        let src = cmk_trusted_launch_disk();
        let from = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/sn",
        )
        .unwrap();
        let disk = body(&src, Kind::Disk, &from, json!({}), Map::new());
        let p = &disk["properties"];
        assert_eq!(
            p["encryption"]["diskEncryptionSetId"],
            "/x/diskEncryptionSets/des"
        );
        assert!(
            p.get("securityProfile").is_none(),
            "a Copy inherits its security type; naming one is refused"
        );
        assert_eq!(p["supportedCapabilities"]["architecture"], "x64");
        assert_eq!(p["networkAccessPolicy"], "DenyAll");
        assert_eq!(p["tier"], "P4");
        assert_eq!(disk["zones"][0], "1");
        assert!(p.get("diskState").is_none() && p.get("uniqueId").is_none());
        let snap = body(&src, Kind::Snapshot, &from, json!({}), Map::new());
        assert!(snap["properties"].get("tier").is_none() && snap.get("sku").is_none());
        assert_eq!(
            snap["properties"]["encryption"]["type"],
            "EncryptionAtRestWithCustomerKey"
        );
        // The SDK's typed models (which carry the body to Azure) keep every field.
        let typed: azure_mgmt_compute::models::Disk = serde_json::from_value(disk.clone()).unwrap();
        let back = serde_json::to_value(&typed).unwrap();
        for key in [
            "encryption",
            "securityProfile",
            "supportedCapabilities",
            "networkAccessPolicy",
            "publicNetworkAccess",
            "dataAccessAuthMode",
            "tier",
            "burstingEnabled",
        ] {
            assert_eq!(
                back["properties"][key], disk["properties"][key],
                "{key} lost by the SDK model"
            );
        }
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let mut ade = cmk_trusted_launch_disk();
        ade.raw["properties"]["encryptionSettingsCollection"] = json!({"enabled": true});
        assert!(refusal(&ade).unwrap().contains("Azure Disk Encryption"));
        let mut cvm = cmk_trusted_launch_disk();
        cvm.raw["properties"]["securityProfile"]["securityType"] =
            json!("ConfidentialVM_DiskEncryptedWithPlatformKey");
        assert!(refusal(&cvm).is_some());
        assert!(refusal(&cmk_trusted_launch_disk()).is_none());
    }
}
