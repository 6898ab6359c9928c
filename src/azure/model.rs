//! Typed views of the ARM resources rescue reads, parsed once from the JSON Azure sends, so that
//! callers ask `vm.power` rather than digging through `properties.instanceView.statuses`.
//! Only what rescue reasons about is modelled; `raw` keeps the whole body for what is not.

use serde_json::Value;

/// `properties.provisioningState`, which says whether an operation is still changing the
/// resource. ARM documents Succeeded, Failed and Canceled as terminal; anything else
/// (Creating, Updating, Deleting, Migrating, ...) means "wait".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provisioning {
    Succeeded,
    Failed,
    Canceled,
    /// Still changing: Creating, Updating, Deleting, ...
    InProgress(String),
    /// Not reported (e.g. a resource type without one).
    Unknown,
}

impl Provisioning {
    pub fn parse(state: Option<&str>) -> Provisioning {
        match state.map(str::to_ascii_lowercase).as_deref() {
            Some("succeeded") => Provisioning::Succeeded,
            Some("failed") => Provisioning::Failed,
            Some("canceled") | Some("cancelled") => Provisioning::Canceled,
            Some("") | None => Provisioning::Unknown,
            Some(_) => Provisioning::InProgress(state.unwrap_or_default().to_string()),
        }
    }

    pub fn is_settled(&self) -> bool {
        !matches!(self, Provisioning::InProgress(_))
    }
}

/// Any ARM resource as read: its body, its ETag and its provisioning state.
#[derive(Clone, Debug)]
pub struct Resource {
    pub raw: Value,
    /// The `ETag` header, else the body's `etag` (VMs carry it in the body).
    pub etag: Option<String>,
    pub provisioning: Provisioning,
}

impl Resource {
    pub fn new(raw: Value, etag_header: Option<String>) -> Resource {
        let etag =
            etag_header.or_else(|| raw.get("etag").and_then(Value::as_str).map(str::to_string));
        let provisioning = Provisioning::parse(
            raw.pointer("/properties/provisioningState")
                .and_then(Value::as_str),
        );
        Resource {
            raw,
            etag,
            provisioning,
        }
    }

    pub fn id(&self) -> &str {
        self.str("/id").unwrap_or_default()
    }

    pub fn str(&self, pointer: &str) -> Option<&str> {
        self.raw.pointer(pointer).and_then(Value::as_str)
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        self.raw
            .get("tags")
            .and_then(|t| t.get(name))
            .and_then(Value::as_str)
    }

    pub fn tags(&self) -> serde_json::Map<String, Value> {
        self.raw
            .get("tags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn location(&self) -> &str {
        self.str("/location").unwrap_or_default()
    }

    pub fn zone(&self) -> Option<&str> {
        self.raw
            .get("zones")
            .and_then(Value::as_array)
            .and_then(|z| z.first())
            .and_then(Value::as_str)
    }
}

/// A data disk in a VM's storage profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDisk {
    pub lun: u32,
    pub disk_id: String,
    /// Marked for detach: a detach is in flight or was requested.
    pub to_be_detached: bool,
}

/// What rescue reads of a VM (with `$expand=instanceView` when power and agent matter).
#[derive(Clone, Debug)]
pub struct Vm {
    pub resource: Resource,
    pub os_disk_id: String,
    pub data_disks: Vec<DataDisk>,
    /// `PowerState/...` code without its prefix ("running", "deallocated"), when read.
    pub power: Option<String>,
    /// The VM agent's display status ("Ready", "Not Ready"), when read.
    pub agent: Option<String>,
}

impl Vm {
    pub fn parse(resource: Resource) -> Vm {
        let raw = &resource.raw;
        let os_disk_id = raw
            .pointer("/properties/storageProfile/osDisk/managedDisk/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let data_disks = raw
            .pointer("/properties/storageProfile/dataDisks")
            .and_then(Value::as_array)
            .map(|disks| {
                disks
                    .iter()
                    .filter_map(|d| {
                        Some(DataDisk {
                            lun: u32::try_from(d.get("lun")?.as_u64()?).ok()?,
                            disk_id: d.pointer("/managedDisk/id")?.as_str()?.to_string(),
                            to_be_detached: d
                                .get("toBeDetached")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let view = raw.pointer("/properties/instanceView");
        let power = view.and_then(|v| status_code(v, "PowerState/"));
        let agent = view
            .and_then(|v| v.pointer("/vmAgent/statuses/0/displayStatus"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Vm {
            resource,
            os_disk_id,
            data_disks,
            power,
            agent,
        }
    }

    pub fn name(&self) -> &str {
        self.resource.str("/name").unwrap_or_default()
    }

    /// The LUN `disk_id` is attached at, unless it is on its way out.
    pub fn lun_of(&self, disk_id: &str) -> Option<u32> {
        self.data_disks
            .iter()
            .find(|d| same_id(&d.disk_id, disk_id))
            .map(|d| d.lun)
    }

    /// A status code of the instance view (`ProvisioningState/updating`, ...), without prefix.
    pub fn status(&self, prefix: &str) -> Option<String> {
        self.resource
            .raw
            .pointer("/properties/instanceView")
            .and_then(|v| status_code(v, prefix))
    }
}

fn status_code(view: &Value, prefix: &str) -> Option<String> {
    view.get("statuses")?
        .as_array()?
        .iter()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .find_map(|c| c.strip_prefix(prefix).map(str::to_string))
}

/// ARM ids compare case-insensitively (resource group and provider names are not case-sensitive).
pub fn same_id(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_vm_is_read_once_into_what_rescue_asks() {
        let raw = json!({"name": "vm1", "etag": "\"3\"", "properties": {
            "provisioningState": "Updating",
            "storageProfile": {"osDisk": {"managedDisk": {"id": "/x/disks/os"}},
                "dataDisks": [{"lun": 2, "managedDisk": {"id": "/X/DISKS/copy"}, "toBeDetached": true}]},
            "instanceView": {"statuses": [{"code": "ProvisioningState/updating"}, {"code": "PowerState/running"}],
                "vmAgent": {"statuses": [{"displayStatus": "Ready"}]}}}});
        let vm = Vm::parse(Resource::new(raw, None));
        assert_eq!(vm.resource.etag.as_deref(), Some("\"3\""));
        assert_eq!(
            vm.resource.provisioning,
            Provisioning::InProgress("Updating".into())
        );
        assert_eq!(vm.power.as_deref(), Some("running"));
        assert_eq!(vm.agent.as_deref(), Some("Ready"));
        assert_eq!(vm.lun_of("/x/disks/COPY"), Some(2));
        assert!(vm.data_disks[0].to_be_detached);
    }
}

/// The most data disks a VM of `size` takes, from Microsoft's size pages ("Max data disks":
/// Dv3/Dsv3 learn.microsoft.com/azure/virtual-machines/dv3-dsv3-series, Dv5/Dsv5
/// .../dv5-dsv5-series, Dpsv5 .../dpsv5-dpdsv5-series, Dadsv6 .../dadsv6-series: 2 vCPUs 4,
/// 4 vCPUs 8, 8 vCPUs 16, 16 and more 32; Dv2 .../dv2-dsv2-series: D1_v2 4, D2_v2 8, D3_v2
/// 16, D4_v2 32; B-series .../sizes-b-series-burstable: B1s 2, B2s 4, B2ms 4, B4ms 8).
/// None for a size this table does not know.
pub fn max_data_disks(size: &str) -> Option<u32> {
    let size = size.to_ascii_lowercase();
    let name = size.strip_prefix("standard_")?;
    match name {
        "b1s" | "b1ms" => return Some(2),
        "b2s" | "b2ms" => return Some(4),
        "b4ms" => return Some(8),
        "d1_v2" => return Some(4),
        "d2_v2" => return Some(8),
        "d3_v2" => return Some(16),
        "d4_v2" => return Some(32),
        _ => {}
    }
    // D{vCPUs}{features}_v{3,5,6}: the count after `d`, then letters, then the version.
    let rest = name.strip_prefix('d')?;
    let (vcpus, tail) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit())?);
    let version = tail.rsplit_once("_v")?.1;
    if !matches!(version, "3" | "5" | "6")
        || !tail[..tail.len() - version.len() - 2]
            .chars()
            .all(|c| "adlps".contains(c))
    {
        return None;
    }
    Some(match vcpus.parse::<u32>().ok()? {
        0 | 1 => return None,
        2 => 4,
        4 => 8,
        8 => 16,
        _ => 32,
    })
}

#[cfg(test)]
mod max_data_disks_tests {
    use super::max_data_disks;

    #[test]
    fn sizes_take_what_their_pages_say() {
        assert_eq!(max_data_disks("Standard_D2s_v3"), Some(4));
        assert_eq!(max_data_disks("Standard_D4s_v3"), Some(8));
        assert_eq!(max_data_disks("standard_d8ps_v5"), Some(16));
        assert_eq!(max_data_disks("Standard_D64s_v5"), Some(32));
        assert_eq!(max_data_disks("Standard_D2_v2"), Some(8));
        assert_eq!(max_data_disks("Standard_B2s"), Some(4));
        assert_eq!(max_data_disks("Standard_M128s"), None);
        assert_eq!(max_data_disks("Standard_D2s_v4x"), None);
    }
}
