//! The emulator's whole world, saved as one JSON file in the data dir after every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::arm::{self, ArmError};
use super::faults::FaultRule;

pub const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    pub subscription: String,
    pub location: String,
    /// Lowercase name → name as created.
    pub resource_groups: BTreeMap<String, String>,
    pub disks: BTreeMap<String, Volume>,
    pub snapshots: BTreeMap<String, Volume>,
    pub vms: BTreeMap<String, Vm>,
    pub operations: BTreeMap<String, super::operations::Operation>,
    pub faults: Vec<FaultRule>,
    /// Calls seen so far per operation name, for `call: N` fault rules.
    pub calls: BTreeMap<String, u64>,
    /// Disks being detached (disk key → VM key): still the VM's until its operation completes,
    /// as on Azure, so a workflow that does not wait for a detach fails here too.
    #[serde(default)]
    pub releasing: BTreeMap<String, String>,
    /// How long (Azure seconds, scaled like every wait) a finished operation's status URL keeps
    /// answering. No document gives Azure's figure; the RPC expects clients to lose the URL
    /// ("the Location or Azure-AsyncOperation URI will be lost if user closes the portal",
    /// async-api-reference.md) and offers a proxy resource for runs longer than a day, so a day
    /// is the default.
    #[serde(default = "default_retention")]
    pub operation_retention: f64,
    /// The Entra tenant and the service principals that may sign in.
    #[serde(default)]
    pub directory: super::entra::Directory,
    /// Items per page of a subscription-wide list.
    #[serde(default)]
    pub list_page_size: Option<usize>,
    /// Microsoft.Network, by `arm::key` (subnets live in their VNet).
    #[serde(default)]
    pub vnets: BTreeMap<String, super::resources::network::VirtualNetwork>,
    #[serde(default)]
    pub nics: BTreeMap<String, super::resources::network::Nic>,
    #[serde(default)]
    pub nsgs: BTreeMap<String, super::resources::network::Nsg>,
    /// The scenario's Kubernetes clusters, as their API servers hold them.
    #[serde(default)]
    pub kubernetes: Vec<super::kube::Cluster>,
    /// AKS managed clusters (`Microsoft.ContainerService/managedClusters`), by `arm::key`.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
    /// Uniform scale sets (an AKS pool's nodes), by `arm::key` in the node resource group; their
    /// instances live in `vms` with `scale_set` set.
    #[serde(default)]
    pub scale_sets: BTreeMap<String, ScaleSet>,
}

pub const DEFAULT_RETENTION: f64 = 24.0 * 3600.0;

fn default_retention() -> f64 {
    DEFAULT_RETENTION
}

/// A managed disk or a snapshot: both are an image file plus ARM metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub zone: Option<String>,
    pub sku: String,
    pub size_gb: u64,
    pub hyper_v_generation: Option<String>,
    pub os_type: Option<String>,
    pub creation: Creation,
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub provisioning_state: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time_created: OffsetDateTime,
    pub unique_id: String,
    /// Image file name inside `<data_dir>/images`.
    pub image: String,
    /// Snapshots only.
    pub incremental: bool,
    #[serde(default)]
    pub settings: DiskSettings,
}

/// The encryption, security, access and performance settings DiskRP keeps on a disk or
/// snapshot (the DiskRP 2024-03-02 `DiskProperties` / `SnapshotProperties` of those names).
/// `None` is "not set": rendered as DiskRP's default where the spec or a recording shows one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskSettings {
    /// `encryption.type`; `None` = EncryptionAtRestWithPlatformKey.
    pub encryption_type: Option<String>,
    pub disk_encryption_set_id: Option<String>,
    /// `securityProfile.securityType` (TrustedLaunch, ConfidentialVM_...).
    pub security_type: Option<String>,
    pub secure_vm_disk_encryption_set_id: Option<String>,
    pub network_access_policy: Option<String>,
    pub disk_access_id: Option<String>,
    pub public_network_access: Option<String>,
    /// `supportedCapabilities.architecture` (x64, Arm64).
    pub architecture: Option<String>,
    pub disk_controller_types: Option<String>,
    pub accelerated_network: Option<bool>,
    pub data_access_auth_mode: Option<String>,
    pub tier: Option<String>,
    pub bursting_enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Creation {
    pub create_option: String,
    pub source_resource_id: Option<String>,
    pub source_unique_id: Option<String>,
    pub image_reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    Starting,
    Running,
    Stopping,
    Stopped,
    Deallocating,
    Deallocated,
}

impl Power {
    pub fn code(self) -> &'static str {
        match self {
            Power::Starting => "PowerState/starting",
            Power::Running => "PowerState/running",
            Power::Stopping => "PowerState/stopping",
            Power::Stopped => "PowerState/stopped",
            Power::Deallocating => "PowerState/deallocating",
            Power::Deallocated => "PowerState/deallocated",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Power::Starting => "VM starting",
            Power::Running => "VM running",
            Power::Stopping => "VM stopping",
            Power::Stopped => "VM stopped",
            Power::Deallocating => "VM deallocating",
            Power::Deallocated => "VM deallocated",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vm {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub zone: Option<String>,
    pub size: String,
    /// "V1" or "V2".
    pub generation: String,
    pub power: Power,
    pub agent_ready: bool,
    /// A booting guest's agent reports Ready from then on.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub agent_ready_at: Option<OffsetDateTime>,
    /// When its agent last became Ready (the end of the boot), for benchmarks to measure by.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub agent_ready_since: Option<OffsetDateTime>,
    pub serial_log: String,
    /// Key of the OS disk in `State::disks`.
    pub os_disk: String,
    pub os_create_option: String,
    pub data_disks: Vec<DataDiskRef>,
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub etag: u64,
    pub provisioning_state: String,
    pub vm_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time_created: OffsetDateTime,
    /// The VM operation in flight; a newer one preempts it, as CRP does.
    pub busy: Option<String>,
    #[serde(default)]
    pub settings: VmSettings,
    /// The action Run Command in flight (one at a time per VM).
    #[serde(default)]
    pub run_command: Option<String>,
    /// Managed Run Commands (`virtualMachines/{vm}/runCommands/{name}`) by lowercase name.
    #[serde(default)]
    pub run_commands: BTreeMap<String, super::runcommand::Managed>,
    /// Scripts this VM has executed (action and managed Run Command), for tests to count.
    #[serde(default)]
    pub scripts_run: u64,
    /// What each executed script was: the managed Run Command's name, or `RunShellScript`.
    #[serde(default)]
    pub scripts: Vec<String>,
    /// RunCommandLinux's sequence number: one per action Run Command.
    #[serde(default)]
    pub run_command_seq: u64,
    /// Keys of its network interfaces in `State::nics`, the primary first.
    #[serde(default)]
    pub nics: Vec<String>,
    /// Set on a scale set's instance: Azure serves it under the scale set, never as a VM.
    #[serde(default)]
    pub scale_set: Option<Member>,
}

/// What makes a VM a Uniform scale set's instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Key of the scale set in `State::scale_sets`.
    pub scale_set: String,
    pub instance_id: u64,
    /// `osProfile.computerName`, which is also the AKS node's name.
    pub computer_name: String,
}

/// An AKS managed cluster and its agent pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub node_resource_group: String,
    pub kubernetes_version: String,
    pub dns_prefix: String,
    /// The 8 digits AKS puts in every pool's scale set name (`aks-<pool>-<digits>-vmss`).
    pub node_digits: String,
    pub pools: Vec<Pool>,
    pub provisioning_state: String,
    /// The pool operation in flight (AKS runs one at a time per cluster).
    #[serde(default)]
    pub busy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    /// System or User.
    pub mode: String,
    pub vm_size: String,
    pub count: u64,
    pub os_disk_size_gb: u64,
    pub zones: Vec<String>,
    pub provisioning_state: String,
    /// Key of its scale set in `State::scale_sets`.
    pub scale_set: String,
    /// The clean node image file (in `images/`) a new instance's OS disk is copied from.
    pub node_image: String,
}

/// A Uniform VMSS: what its instances share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleSet {
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub size: String,
    pub zones: Vec<String>,
    pub unique_id: String,
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// Instance ids are never reused: the next one scaling out gets this.
    pub next_instance_id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time_created: OffsetDateTime,
}

/// A VM's security type, architecture and boot diagnostics storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VmSettings {
    /// `securityProfile.securityType` (TrustedLaunch, ConfidentialVM); `None` = Standard.
    pub security_type: Option<String>,
    /// The CPU architecture of its size and OS disk; `None` = x64.
    pub architecture: Option<String>,
    /// `bootDiagnostics.storageUri`; `None` = managed boot diagnostics storage.
    pub boot_diagnostics_storage: Option<String>,
    /// `storageProfile.diskControllerType` (SCSI, NVMe); `None` = SCSI.
    pub disk_controller: Option<String>,
    /// `storageProfile.osDisk.diffDiskSettings.placement` of an ephemeral OS disk (CacheDisk,
    /// ResourceDisk, NvmeDisk); `None` = a managed OS disk.
    pub ephemeral_os: Option<String>,
    /// VM extensions, as `Publisher.Type` (e.g. `Microsoft.Azure.Security.AzureDiskEncryptionForLinux`).
    pub extensions: Vec<String>,
}

impl VmSettings {
    pub fn nvme(&self) -> bool {
        self.disk_controller
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("NVMe"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataDiskRef {
    pub lun: i32,
    /// Key of the disk in `State::disks`.
    pub disk: String,
    pub caching: String,
}

impl State {
    pub fn new(subscription: String, location: String) -> Self {
        State {
            format_version: FORMAT_VERSION,
            subscription,
            location,
            resource_groups: BTreeMap::new(),
            disks: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            vms: BTreeMap::new(),
            operations: BTreeMap::new(),
            faults: Vec::new(),
            calls: BTreeMap::new(),
            releasing: BTreeMap::new(),
            directory: Default::default(),
            list_page_size: None,
            operation_retention: DEFAULT_RETENTION,
            vnets: BTreeMap::new(),
            nics: BTreeMap::new(),
            nsgs: BTreeMap::new(),
            kubernetes: Vec::new(),
            clusters: BTreeMap::new(),
            scale_sets: BTreeMap::new(),
        }
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<Option<State>> {
        let path = data_dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an emulator state file", path.display()))?;
        anyhow::ensure!(
            state.format_version == FORMAT_VERSION,
            "{} has format_version {}, this rescue reads {}",
            path.display(),
            state.format_version,
            FORMAT_VERSION
        );
        Ok(Some(state))
    }

    /// Writes the state atomically (temp file + rename) so a kill never leaves half a file.
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = data_dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, data_dir.join(STATE_FILE))?;
        Ok(())
    }

    pub fn check_group(&self, rg: &str) -> Result<(), ArmError> {
        if self.resource_groups.contains_key(&rg.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(ArmError::new(
                404,
                "ResourceGroupNotFound",
                format!("Resource group '{rg}' could not be found."),
            ))
        }
    }

    /// A VM's id, or a scale set instance's (`.../virtualMachineScaleSets/{ss}/virtualMachines/{id}`).
    pub fn vm_id(&self, vm: &Vm) -> String {
        if let Some(m) = &vm.scale_set {
            let ss = &self.scale_sets[&m.scale_set];
            return format!(
                "{}/virtualMachines/{}",
                arm::resource_id(
                    &self.subscription,
                    &ss.resource_group,
                    "virtualMachineScaleSets",
                    &ss.name
                ),
                m.instance_id
            );
        }
        arm::resource_id(
            &self.subscription,
            &vm.resource_group,
            "virtualMachines",
            &vm.name,
        )
    }

    /// The id a VM has (or will have, once created).
    pub fn vm_id_of(&self, rg: &str, name: &str) -> String {
        arm::resource_id(&self.subscription, rg, "virtualMachines", name)
    }

    pub fn disk_id(&self, d: &Volume) -> String {
        arm::resource_id(&self.subscription, &d.resource_group, "disks", &d.name)
    }

    /// Looks a disk up by resource id.
    pub fn disk_key_by_id(&self, id: &str) -> Option<String> {
        let (rg, kind, name) = arm::parse_resource_id(id)?;
        let k = arm::key(&rg, &name);
        (kind == "disks" && self.disks.contains_key(&k)).then_some(k)
    }

    /// The VM whose key owns this disk, if any.
    pub fn owner_of(&self, disk_key: &str) -> Option<&Vm> {
        self.vms
            .values()
            .find(|vm| vm.os_disk == disk_key || vm.data_disks.iter().any(|d| d.disk == disk_key))
            .or_else(|| self.releasing.get(disk_key).and_then(|vm| self.vms.get(vm)))
    }

    /// Gives a VM a new OS disk and/or data-disk list; the disks it lets go stay its own
    /// until `released` is called when the operation completes.
    pub fn set_disks(&mut self, vm_key: &str, os: Option<String>, data: Option<Vec<DataDiskRef>>) {
        let vm = self.vms.get_mut(vm_key).expect("caller found the VM");
        let before: Vec<String> = std::iter::once(vm.os_disk.clone())
            .chain(vm.data_disks.iter().map(|d| d.disk.clone()))
            .collect();
        if let Some(os) = os {
            vm.os_disk = os;
        }
        if let Some(data) = data {
            vm.data_disks = data;
        }
        let vm = &self.vms[vm_key];
        for disk in before {
            if vm.os_disk != disk && !vm.data_disks.iter().any(|d| d.disk == disk) {
                self.releasing.insert(disk, vm_key.to_string());
            }
        }
    }

    /// The VM's operation completed: the disks it let go are free.
    pub fn released(&mut self, vm_key: &str) {
        self.releasing.retain(|_, vm| vm != vm_key);
    }

    /// Azure's diskState, derived so it can never disagree with the VMs.
    pub fn disk_state(&self, disk_key: &str) -> &'static str {
        match self.owner_of(disk_key) {
            None => "Unattached",
            Some(vm) if vm.power == Power::Deallocated => "Reserved",
            Some(_) => "Attached",
        }
    }
}

/// The data dir and its images are the owner's only (0700): they hold disk contents and what
/// root scripts wrote.
pub fn secure(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    super::runcommand::private_dir(&images_dir(data_dir))?;
    std::fs::set_permissions(images_dir(data_dir), std::fs::Permissions::from_mode(0o700))
}

pub fn images_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

/// A VM's own files (what its Run Command scripts write to `/var/lib`, `/var/log`, `/tmp`).
pub fn vm_root(data_dir: &Path, vm: &Vm) -> PathBuf {
    data_dir.join("vms").join(&vm.vm_id)
}
