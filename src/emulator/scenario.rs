//! Scenario files: the resource groups, disks (with generated or imported content), VMs and
//! fault rules a fresh emulator starts from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::arm;
use super::faults::FaultRule;
use super::generate::{self, Corruption, Fs, Layout, Recipe, Tree};
use super::state::{Creation, DataDiskRef, DiskSettings, Power, State, Vm, VmSettings, Volume};

/// The embedded default: the incident's cluster.
pub const INCIDENT_SCENARIO: &str = include_str!("../../examples/emulator/incident.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub subscription: String,
    pub location: String,
    /// The Entra tenant (default: a random id).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Who may sign in (default: one service principal with a random secret).
    #[serde(default)]
    pub service_principals: Vec<PrincipalSpec>,
    /// The managed identity of the host the client runs on, served at `/msi/token`.
    #[serde(default)]
    pub managed_identity: Option<ManagedIdentitySpec>,
    /// Items per page of a subscription-wide list (default 100).
    #[serde(default)]
    pub list_page_size: Option<usize>,
    #[serde(default)]
    pub resource_groups: Vec<GroupSpec>,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// AKS managed clusters: their pools become scale sets of booted instances in the node
    /// resource group (created if `resource_groups` does not declare it).
    #[serde(default)]
    pub aks_clusters: Vec<super::aks::ClusterSpec>,
    /// How long a finished operation's status URL answers, in Azure time (e.g. `24h`, `10m`;
    /// scaled by the time scale like every other duration). Default 24h.
    #[serde(default)]
    pub operation_retention: Option<String>,
    /// Kubernetes clusters: their nodes and workloads, served under `/k8s/...`.
    #[serde(default)]
    pub kubernetes: Vec<super::kube::ClusterSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    pub display_name: String,
    pub client_id: String,
    pub secret: String,
    /// Workload identity federation: external tokens this app accepts as client assertions.
    #[serde(default)]
    pub federated_credentials: Vec<FederationSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSpec {
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedIdentitySpec {
    pub client_id: String,
    /// The `IDENTITY_HEADER` the platform hands the app.
    pub identity_header: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    #[serde(default)]
    pub vms: Vec<VmSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    pub name: String,
    #[serde(default = "default_size_gb")]
    pub size_gb: u64,
    #[serde(default = "default_sku")]
    pub sku: String,
    #[serde(default)]
    pub zone: Option<String>,
    /// V1 or V2 (OS disks).
    #[serde(default)]
    pub generation: Option<String>,
    #[serde(default)]
    pub os_type: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// DiskRP's encryption, security, access and performance settings, by their state names:
    /// `disk_encryption_set_id` (a customer-managed key; `encryption_type` then defaults to
    /// EncryptionAtRestWithCustomerKey), `security_type` (TrustedLaunch, ...), `architecture`
    /// (x64, Arm64), `network_access_policy`, `disk_access_id`, `public_network_access`,
    /// `disk_controller_types`, `accelerated_network`, `data_access_auth_mode`, `tier`,
    /// `bursting_enabled`, `secure_vm_disk_encryption_set_id`.
    #[serde(default)]
    pub settings: DiskSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    /// A raw or fixed-VHD image, relative to the scenario file; copied, never modified.
    #[serde(default)]
    pub image: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    pub fs: Fs,
    #[serde(default)]
    pub corrupt: Option<Corruption>,
    #[serde(default)]
    pub tree: Option<Tree>,
    /// Image file size such as `256MiB` or `1GiB` (default 256MiB; XFS needs 384MiB at least).
    #[serde(default)]
    pub size: Option<String>,
    /// gpt (default: Azure's Ubuntu layout), mbr, bare, var, lvm, lvm-boot.
    #[serde(default)]
    pub layout: Option<Layout>,
}

impl GenerateSpec {
    /// The generator's recipe, with `tree` where the spec names none.
    pub fn recipe(&self, tree: Tree) -> anyhow::Result<Recipe> {
        Ok(Recipe {
            fs: self.fs,
            tree: self.tree.unwrap_or(tree),
            corrupt: self.corrupt,
            image_mib: self
                .size
                .as_deref()
                .map(parse_size)
                .transpose()?
                .unwrap_or(256),
            layout: self.layout.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    #[serde(default = "default_vm_size")]
    pub size: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default = "default_generation")]
    pub generation: String,
    #[serde(default = "default_power")]
    pub power: String,
    pub os_disk: String,
    #[serde(default)]
    pub data_disks: Vec<DataDiskSpec>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `security_type` (TrustedLaunch, ConfidentialVM; default Standard), `architecture` (x64,
    /// Arm64), `boot_diagnostics_storage` (a storage account URI; default managed storage).
    #[serde(default)]
    pub settings: VmSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDiskSpec {
    pub lun: i32,
    pub disk: String,
}

fn default_size_gb() -> u64 {
    30
}
fn default_sku() -> String {
    "Premium_LRS".into()
}
fn default_vm_size() -> String {
    "Standard_D2s_v3".into()
}
fn default_generation() -> String {
    "V2".into()
}
fn default_power() -> String {
    "running".into()
}

pub const AKS_IMAGE: &str = "/Subscriptions/109a5e88-712a-48ae-9078-9ca8b3c81345/Providers/Microsoft.Compute/Locations/westeurope/Publishers/microsoft-aks/ArtifactTypes/VMImage/Offers/aks/Skus/aks-ubuntu-2204gen2containerd-202411.12.0/Versions/202411.12.0";

/// Parses and checks a scenario; errors name the file and, from serde_yaml, line and column.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Scenario> {
    // The same size and alias-expansion limits as every YAML file rescue reads.
    crate::workflow::yaml::check_limits(&crate::workflow::Source::new(origin, text))?;
    let s: Scenario = serde_yaml::from_str(text).with_context(|| format!("scenario {origin}"))?;
    check(&s).with_context(|| format!("scenario {origin}"))?;
    Ok(s)
}

fn check(s: &Scenario) -> anyhow::Result<()> {
    for f in &s.faults {
        f.validate().map_err(anyhow::Error::msg)?;
    }
    if let Some(r) = &s.operation_retention {
        retention(r)?;
    }
    super::kube::check_scenario(&s.kubernetes, &s.subscription, &s.aks_clusters)?;
    super::aks::check(&s.aks_clusters, &s.resource_groups, &s.location)?;
    for g in &s.resource_groups {
        let disks: BTreeMap<String, &DiskSpec> = g
            .disks
            .iter()
            .map(|d| (d.name.to_ascii_lowercase(), d))
            .collect();
        let mut used = BTreeSet::new();
        for d in &g.disks {
            if let Some(gen) = &d.generation {
                if gen != "V1" && gen != "V2" {
                    bail!("disk {}: generation `{gen}` must be V1 or V2", d.name);
                }
            }
            if let Some(c) = &d.content {
                if c.generate.is_some() == c.image.is_some() {
                    bail!(
                        "disk {}: content needs exactly one of `generate` or `image`",
                        d.name
                    );
                }
            }
        }
        for vm in &g.vms {
            parse_power(&vm.power).with_context(|| format!("vm {}", vm.name))?;
            if vm.generation != "V1" && vm.generation != "V2" {
                bail!(
                    "vm {}: generation `{}` must be V1 or V2",
                    vm.name,
                    vm.generation
                );
            }
            let mut luns = BTreeSet::new();
            let names = std::iter::once(&vm.os_disk).chain(vm.data_disks.iter().map(|d| &d.disk));
            for name in names {
                let Some(d) = disks.get(&name.to_ascii_lowercase()) else {
                    bail!(
                        "vm {}: disk `{name}` is not a disk of resource group {}",
                        vm.name,
                        g.name
                    );
                };
                if d.zone != vm.zone {
                    bail!(
                        "vm {}: disk {name} is in zone {:?}, the VM in zone {:?}",
                        vm.name,
                        d.zone,
                        vm.zone
                    );
                }
                if !used.insert(name.to_ascii_lowercase()) {
                    bail!("vm {}: disk {name} is attached twice", vm.name);
                }
            }
            let os = &disks[&vm.os_disk.to_ascii_lowercase()];
            let standard = |t: &Option<String>| {
                t.clone()
                    .filter(|t| !t.eq_ignore_ascii_case("Standard"))
                    .map(|t| t.to_ascii_lowercase())
            };
            if standard(&vm.settings.security_type) != standard(&os.settings.security_type) {
                bail!(
                    "vm {}: security_type {:?} differs from its OS disk {}'s {:?} (Azure refuses that pair)",
                    vm.name,
                    vm.settings.security_type,
                    os.name,
                    os.settings.security_type
                );
            }
            let arch = |a: &Option<String>| {
                a.clone()
                    .unwrap_or_else(|| "x64".into())
                    .to_ascii_lowercase()
            };
            if arch(&vm.settings.architecture) != arch(&os.settings.architecture) {
                bail!(
                    "vm {}: architecture {} differs from its OS disk {}'s {}",
                    vm.name,
                    arch(&vm.settings.architecture),
                    os.name,
                    arch(&os.settings.architecture)
                );
            }
            for dd in &vm.data_disks {
                if !(0..64).contains(&dd.lun) || !luns.insert(dd.lun) {
                    bail!(
                        "vm {}: LUN {} is out of range 0-63 or used twice",
                        vm.name,
                        dd.lun
                    );
                }
            }
        }
    }
    Ok(())
}

fn retention(text: &str) -> anyhow::Result<f64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .with_context(|| format!("operation_retention `{text}`: expected e.g. 24h or 10m"))
}

fn parse_power(p: &str) -> anyhow::Result<Power> {
    Ok(match p {
        "running" => Power::Running,
        "stopped" => Power::Stopped,
        "deallocated" => Power::Deallocated,
        other => bail!("power `{other}` must be running, stopped or deallocated"),
    })
}

fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("size `{text}`: expected e.g. 256MiB or 1GiB"))?;
    let mib = match unit.trim() {
        "MiB" | "M" | "MB" => n,
        "GiB" | "G" | "GB" => n * 1024,
        other => bail!("size `{text}`: unit `{other}` is not MiB or GiB"),
    };
    Ok(mib)
}

/// Reads and checks a scenario file without building anything.
pub fn check_file(path: &Path) -> anyhow::Result<()> {
    let text = crate::workflow::yaml::read_file(path, "scenario", "check the scenario's path")?;
    parse(&text, &path.display().to_string()).map(drop)
}

/// Builds the initial state and disk images in `data_dir` from a scenario.
pub fn seed(s: &Scenario, base_dir: &Path, data_dir: &Path) -> anyhow::Result<State> {
    let images = super::state::images_dir(data_dir);
    std::fs::create_dir_all(&images)?;
    let mut state = State::new(s.subscription.clone(), s.location.clone());
    state.faults = s.faults.clone();
    state.directory = directory(s);
    state.list_page_size = s.list_page_size;
    if let Some(r) = &s.operation_retention {
        state.operation_retention = retention(r)?;
    }
    let created = arm::now();
    for g in &s.resource_groups {
        state
            .resource_groups
            .insert(g.name.to_ascii_lowercase(), g.name.clone());
        for d in &g.disks {
            let file = format!("{}.img", arm::guid());
            let path = images.join(&file);
            let create_option =
                write_content(d, base_dir, &path).with_context(|| format!("disk {}", d.name))?;
            let vol = Volume {
                resource_group: g.name.clone(),
                name: d.name.clone(),
                location: s.location.clone(),
                zone: d.zone.clone(),
                sku: d.sku.clone(),
                size_gb: d.size_gb,
                hyper_v_generation: d.generation.clone(),
                os_type: d.os_type.clone(),
                creation: Creation {
                    create_option: create_option.into(),
                    source_resource_id: None,
                    source_unique_id: None,
                    image_reference: (create_option == "FromImage").then(|| AKS_IMAGE.to_string()),
                },
                tags: d
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect(),
                provisioning_state: "Succeeded".into(),
                time_created: created,
                unique_id: arm::guid(),
                image: file,
                incremental: false,
                settings: DiskSettings {
                    encryption_type: d.settings.encryption_type.clone().or_else(|| {
                        d.settings
                            .disk_encryption_set_id
                            .as_ref()
                            .map(|_| "EncryptionAtRestWithCustomerKey".to_string())
                    }),
                    ..d.settings.clone()
                },
            };
            state.disks.insert(arm::key(&g.name, &d.name), vol);
        }
        for v in &g.vms {
            let power = parse_power(&v.power)?;
            let os_key = arm::key(&g.name, &v.os_disk);
            let (agent_ready, serial_log) = if power == Power::Running {
                let img = images.join(&state.disks[&os_key].image);
                let b = super::boot::boot(&v.name, &img, data_dir)?;
                (b.ready, b.serial_log)
            } else {
                (false, String::new())
            };
            let vm = Vm {
                resource_group: g.name.clone(),
                name: v.name.clone(),
                location: s.location.clone(),
                zone: v.zone.clone(),
                size: v.size.clone(),
                generation: v.generation.clone(),
                power,
                agent_ready,
                agent_ready_at: None,
                agent_ready_since: None,
                serial_log,
                os_disk: os_key,
                os_create_option: "FromImage".into(),
                data_disks: v
                    .data_disks
                    .iter()
                    .map(|d| DataDiskRef {
                        lun: d.lun,
                        disk: arm::key(&g.name, &d.disk),
                        caching: "None".into(),
                    })
                    .collect(),
                tags: v
                    .tags
                    .iter()
                    .map(|(k, val)| (k.clone(), val.clone().into()))
                    .collect(),
                etag: 1,
                provisioning_state: "Succeeded".into(),
                vm_id: arm::guid(),
                time_created: created,
                busy: None,
                settings: v.settings.clone(),
                run_command: None,
                run_commands: Default::default(),
                scripts_run: 0,
                scripts: Vec::new(),
                run_command_seq: 0,
                nics: Vec::new(),
                scale_set: None,
            };
            state.vms.insert(arm::key(&g.name, &v.name), vm);
        }
        let vms: Vec<String> = g.vms.iter().map(|v| v.name.clone()).collect();
        super::resources::network::seed(&mut state, &g.name, &vms);
    }
    super::aks::seed(&mut state, &s.aks_clusters, data_dir)?;
    // After AKS: a cluster may take its nodes from the pools' instances.
    state.kubernetes = super::kube::seed(&s.kubernetes, &s.aks_clusters, &state);
    Ok(state)
}

/// The tenant and its service principals; a scenario that declares none gets one with a random
/// secret, which `serve` prints.
fn directory(s: &Scenario) -> super::entra::Directory {
    let random_secret = || {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..40)
            .map(|_| {
                let c = rng.gen_range(0..64u8);
                match c {
                    0..=25 => (b'a' + c) as char,
                    26..=51 => (b'A' + c - 26) as char,
                    52..=61 => (b'0' + c - 52) as char,
                    62 => '~',
                    _ => '.',
                }
            })
            .collect::<String>()
    };
    let mut principals: Vec<super::entra::Principal> = s
        .service_principals
        .iter()
        .map(|p| super::entra::Principal {
            client_id: p.client_id.clone(),
            secret: p.secret.clone(),
            display_name: p.display_name.clone(),
            object_id: arm::guid(),
            federated: p
                .federated_credentials
                .iter()
                .map(|f| super::entra::Federation {
                    issuer: f.issuer.clone(),
                    subject: f.subject.clone(),
                    audiences: f
                        .audiences
                        .clone()
                        .unwrap_or_else(|| vec!["api://AzureADTokenExchange".into()]),
                })
                .collect(),
        })
        .collect();
    if principals.is_empty() {
        principals.push(super::entra::Principal {
            client_id: arm::guid(),
            secret: random_secret(),
            display_name: "rescue-emulator".into(),
            object_id: arm::guid(),
            federated: Vec::new(),
        });
    }
    super::entra::Directory {
        tenant_id: s.tenant_id.clone().unwrap_or_else(arm::guid),
        principals,
        managed_identity: s
            .managed_identity
            .as_ref()
            .map(|m| super::entra::ManagedIdentity {
                client_id: m.client_id.clone(),
                object_id: arm::guid(),
                header: m.identity_header.clone(),
            }),
    }
}

/// Writes a disk's image; returns the createOption Azure would report for it.
fn write_content(d: &DiskSpec, base_dir: &Path, path: &Path) -> anyhow::Result<&'static str> {
    let Some(content) = &d.content else {
        super::images::create_sparse(path, d.size_gb << 30)?;
        return Ok("Empty");
    };
    if let Some(img) = &content.image {
        let src = if img.is_absolute() {
            img.clone()
        } else {
            base_dir.join(img)
        };
        super::images::import(&src, path)?;
        return Ok("Import");
    }
    let g = content
        .generate
        .as_ref()
        .expect("checked: generate or image");
    let tree = g.tree.unwrap_or(if d.os_type.is_some() {
        Tree::Os
    } else {
        Tree::Data
    });
    let cached = generate::cached(&g.recipe(tree)?)?;
    super::images::copy_image(&cached, path)?;
    Ok(if tree == Tree::Os {
        "FromImage"
    } else {
        "Empty"
    })
}

/// A generated scenario for fleets: `broken` VMs `vm-1`... with the incident's damage on their
/// OS disk, and `rescue` healthy rescue VMs `rescue-1`... of `rescue_size`, all in resource
/// group `fleet-rg`, zone 1. Every disk shares one recipe, so its image is generated once.
pub fn fleet(broken: usize, rescue: usize, rescue_size: &str) -> String {
    let mut disks = String::new();
    let mut vms = String::new();
    let mut vm = |name: &str, size: &str, corrupt: bool| {
        let content = if corrupt {
            "{ generate: { fs: ext4, corrupt: overlay2-init } }"
        } else {
            "{ generate: { fs: ext4 } }"
        };
        disks.push_str(&format!(
            "      - {{ name: {name}_OsDisk, size_gb: 30, zone: \"1\", generation: V2, os_type: Linux, content: {content} }}\n"
        ));
        vms.push_str(&format!(
            "      - {{ name: {name}, size: {size}, zone: \"1\", generation: V2, power: running, os_disk: {name}_OsDisk }}\n"
        ));
    };
    for n in 1..=broken {
        vm(&format!("vm-{n}"), "Standard_D2s_v3", true);
    }
    for n in 1..=rescue {
        vm(&format!("rescue-{n}"), rescue_size, false);
    }
    format!(
        "subscription: 00000000-0000-0000-0000-000000000001\nlocation: westeurope\nresource_groups:\n  - name: fleet-rg\n    disks:\n{disks}    vms:\n{vms}faults: []\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_scenario_parses() {
        let s = parse(INCIDENT_SCENARIO, "incident.yaml").unwrap();
        assert_eq!(s.subscription, "00000000-0000-0000-0000-000000000001");
        assert_eq!(s.resource_groups[0].vms.len(), 5);
    }

    #[test]
    fn errors_name_the_line_and_the_vm() {
        let err = parse("subscription: s\nlocation: l\nresource_groups:\n  - name: rg\n    vms:\n      - name: v\n        os_disk: nope\n", "x.yaml").unwrap_err();
        assert!(format!("{err:#}").contains("vm v: disk `nope`"), "{err:#}");
        let err = parse("subscription: s\nlocation: l\nbogus: 1\n", "x.yaml").unwrap_err();
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB").unwrap(), 256);
        assert_eq!(parse_size("1GiB").unwrap(), 1024);
        assert!(parse_size("1TB").is_err());
    }
}
