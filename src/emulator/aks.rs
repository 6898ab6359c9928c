//! AKS on the emulator's Azure side: the scenario's `aks_clusters`, how AKS names a pool's scale
//! set, instances and nodes, and the instances a seed or a scale-out adds.
//!
//! Naming, as AKS does it:
//! - one scale set per pool, `aks-<pool>-<8 digits>-vmss`, the same 8 digits for every pool of a
//!   cluster (e.g. `aks-system-33466352-vmss000003` and `aks-workload-33466352-vmss00000a` in
//!   one `kubectl get nodes`, public AKS incident notes; `aks-nodepool1-31415926-vm2` in this
//!   project's incident.md). The digits are a hash of the cluster (inferred: AKS does not document
//!   how it derives them), here of its resource id.
//! - instance `<vmss>_<instanceId>`, computer (= node) name `<vmss><instanceId in base 36, 6
//!   digits>`: "the computer name is the computer name prefix plus the base-36 instance ID, six
//!   characters" (Microsoft docs, virtual-machine-scale-sets-instance-ids.md);
//!   `aks-nodepool1-36421985-vmss00000a` is instance 10 in AKS's own docs' outputs.
//! - OS disk `<vmss>_<instanceId>_OsDisk_1_<32 hex>` (inferred from standalone VMs'
//!   `<vm>_OsDisk_1_<hex>`, incident.md, which Uniform instances follow with the instance's name).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::arm;
use super::generate::{self, Corruption, Tree};
use super::scenario::{GenerateSpec, GroupSpec};
use super::state::{Cluster, DataDiskRef, Member, Pool, Power, ScaleSet, State, Vm, Volume};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub resource_group: String,
    pub name: String,
    /// Default `MC_<group>_<name>_<location>`, as AKS names it ("AKS creates a second resource
    /// group, named MC_resourcegroupname_clustername_location by default", AKS FAQ).
    #[serde(default)]
    pub node_resource_group: Option<String>,
    #[serde(default = "default_version")]
    pub kubernetes_version: String,
    /// Default as `az aks create` makes it: name[:10]-group[:16]-subscription[:6]
    /// (azure-cli acs `_get_default_dns_prefix`).
    #[serde(default)]
    pub dns_prefix: Option<String>,
    pub pools: Vec<PoolSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    /// System or User.
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default = "default_vm_size")]
    pub vm_size: String,
    pub count: u64,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default = "default_os_disk_gb")]
    pub os_disk_size_gb: u64,
    /// The node image's content (`fs`, `size`, `layout`...).
    pub os_disk: GenerateSpec,
    /// Instance ids whose OS disk is the incident's corrupted ext4 (overlay2-init): their boot
    /// fails, so their agent is down.
    #[serde(default)]
    pub broken_instances: Vec<u64>,
    /// Disks of the node resource group attached to instances.
    #[serde(default)]
    pub data_disks: Vec<InstanceDiskSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceDiskSpec {
    pub instance: u64,
    pub lun: i32,
    pub disk: String,
}

fn default_version() -> String {
    "1.29.9".into()
}
fn default_mode() -> String {
    "System".into()
}
fn default_vm_size() -> String {
    "Standard_D4s_v3".into()
}
fn default_os_disk_gb() -> u64 {
    128
}

pub fn node_resource_group(c: &ClusterSpec, location: &str) -> String {
    c.node_resource_group
        .clone()
        .unwrap_or_else(|| format!("MC_{}_{}_{location}", c.resource_group, c.name))
}

/// Checks the clusters against each other and the scenario's groups.
pub fn check(clusters: &[ClusterSpec], groups: &[GroupSpec], location: &str) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    for c in clusters {
        let what = format!("aks cluster {}", c.name);
        if !names.insert(arm::key(&c.resource_group, &c.name)) {
            bail!("{what}: declared twice");
        }
        if c.pools.is_empty() {
            bail!("{what}: needs at least one pool");
        }
        let node_rg = node_resource_group(c, location);
        let group = groups
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(&node_rg));
        let mut pools = BTreeSet::new();
        for p in &c.pools {
            // "Linux node pool names must be 1-12 characters, lowercase letters and numbers,
            // starting with a letter" (AKS docs, create-node-pools.md, naming limitations).
            let ok = (1..=12).contains(&p.name.len())
                && p.name.starts_with(|ch: char| ch.is_ascii_lowercase())
                && p.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit());
            if !ok {
                bail!("{what}: pool name `{}` must be 1-12 lowercase letters and digits, starting with a letter", p.name);
            }
            if !pools.insert(p.name.clone()) {
                bail!("{what}: pool {} declared twice", p.name);
            }
            if p.mode != "System" && p.mode != "User" {
                bail!(
                    "{what}: pool {}: mode `{}` must be System or User",
                    p.name,
                    p.mode
                );
            }
            if p.mode == "System" && p.count == 0 {
                bail!("{what}: system pool {} needs at least one node", p.name);
            }
            for id in &p.broken_instances {
                if *id >= p.count {
                    bail!(
                        "{what}: pool {}: broken instance {id} is not below count {}",
                        p.name,
                        p.count
                    );
                }
            }
            let mut luns = BTreeSet::new();
            for d in &p.data_disks {
                if d.instance >= p.count {
                    bail!(
                        "{what}: pool {}: data disk {} on instance {} which is not below count {}",
                        p.name,
                        d.disk,
                        d.instance,
                        p.count
                    );
                }
                if !(0..64).contains(&d.lun) || !luns.insert((d.instance, d.lun)) {
                    bail!(
                        "{what}: pool {}: LUN {} of instance {} is out of range 0-63 or used twice",
                        p.name,
                        d.lun,
                        d.instance
                    );
                }
                let Some(disk) = group.and_then(|g| {
                    g.disks
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case(&d.disk))
                }) else {
                    bail!("{what}: pool {}: disk `{}` is not a disk of the node resource group {node_rg}", p.name, d.disk);
                };
                let zone = instance_zone(&p.zones, d.instance);
                if disk.zone != zone {
                    bail!(
                        "{what}: pool {}: disk {} is in zone {:?}, instance {} in zone {zone:?}",
                        p.name,
                        d.disk,
                        disk.zone,
                        d.instance
                    );
                }
            }
        }
    }
    Ok(())
}

/// Azure spreads a zonal scale set's instances over its zones (inferred order: round robin).
fn instance_zone(zones: &[String], id: u64) -> Option<String> {
    (!zones.is_empty()).then(|| zones[id as usize % zones.len()].clone())
}

/// The 8 digits of a cluster's scale set names.
fn node_digits(subscription: &str, rg: &str, name: &str) -> String {
    let h = Sha256::digest(format!(
        "{subscription}/{}/{}",
        rg.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    ));
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % 100_000_000;
    format!("{n:08}")
}

/// A scale set's instance id as the computer name ends: 6 base-36 digits.
pub fn base36(mut id: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = digits[(id % 36) as usize];
        id /= 36;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

fn scale_set_name(pool: &str, digits: &str) -> String {
    format!("aks-{pool}-{digits}-vmss")
}

fn computer_name(scale_set: &str, id: u64) -> String {
    format!("{scale_set}{}", base36(id))
}

/// A node a pool's instance backs, as a scenario names it before anything is seeded.
pub struct PoolNode {
    pub pool: String,
    pub instance: u64,
    /// The instance's computer name, which is the node's name.
    pub name: String,
}

/// The nodes a cluster's pools give at the start: one per instance `0..count`.
pub fn pool_nodes(subscription: &str, c: &ClusterSpec) -> Vec<PoolNode> {
    let digits = node_digits(subscription, &c.resource_group, &c.name);
    c.pools
        .iter()
        .flat_map(|p| {
            let ss = scale_set_name(&p.name, &digits);
            (0..p.count).map(move |id| PoolNode {
                pool: p.name.clone(),
                instance: id,
                name: computer_name(&ss, id),
            })
        })
        .collect()
}

/// The ARM id of the managed cluster a spec declares.
pub fn cluster_id(subscription: &str, c: &ClusterSpec) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
        c.resource_group, c.name
    )
}

/// (vCPUs, GiB of memory) of the VM sizes a pool's nodes may have here (Microsoft docs, the
/// size series pages: Dsv3 "Standard_D4s_v3 | 4 | 16", Dsv5, Ddsv5, DSv2, Bs).
pub fn vm_size_capacity(size: &str) -> Option<(u64, u64)> {
    const SIZES: &[(&str, u64, u64)] = &[
        ("Standard_B2s", 2, 4),
        ("Standard_B2ms", 2, 8),
        ("Standard_DS2_v2", 2, 7),
        ("Standard_DS3_v2", 4, 14),
        ("Standard_D2s_v3", 2, 8),
        ("Standard_D4s_v3", 4, 16),
        ("Standard_D8s_v3", 8, 32),
        ("Standard_D16s_v3", 16, 64),
        ("Standard_D2s_v5", 2, 8),
        ("Standard_D4s_v5", 4, 16),
        ("Standard_D8s_v5", 8, 32),
        ("Standard_D2ds_v5", 2, 8),
        ("Standard_D4ds_v5", 4, 16),
        ("Standard_D8ds_v5", 8, 32),
    ];
    SIZES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(size))
        .map(|(_, cpu, gib)| (*cpu, *gib))
}

/// A node's `spec.providerID`: `azure://` and its instance's id with the resource group in
/// lowercase ("for historical reasons Azure providerID has the resource group name in lower
/// case", cloud-provider-azure pkg/provider azure_wrap.go convertResourceGroupNameToLower).
pub fn provider_id(state: &State, vm: &Vm) -> String {
    let rg = &vm.resource_group;
    let id = state.vm_id(vm).replacen(
        &format!("/resourceGroups/{rg}/"),
        &format!("/resourceGroups/{}/", rg.to_ascii_lowercase()),
        1,
    );
    format!("azure://{id}")
}

/// The key and instance a node's provider id names, if one exists.
pub fn instance_key_by_provider_id<'a>(
    state: &'a State,
    provider_id: &str,
) -> Option<(&'a String, &'a Vm)> {
    let id = provider_id.strip_prefix("azure://")?;
    state
        .vms
        .iter()
        .filter(|(_, vm)| vm.scale_set.is_some())
        .find(|(_, vm)| state.vm_id(vm).eq_ignore_ascii_case(id))
}

/// Seeds the clusters: their groups, scale sets and booted instances.
pub fn seed(state: &mut State, clusters: &[ClusterSpec], data_dir: &Path) -> anyhow::Result<()> {
    let images = super::state::images_dir(data_dir);
    for c in clusters {
        let node_rg = node_resource_group(c, &state.location);
        for g in [&c.resource_group, &node_rg] {
            state
                .resource_groups
                .entry(g.to_ascii_lowercase())
                .or_insert_with(|| g.clone());
        }
        let digits = node_digits(&state.subscription, &c.resource_group, &c.name);
        let dns_prefix = c.dns_prefix.clone().unwrap_or_else(|| {
            let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
            format!(
                "{}-{}-{}",
                cut(&c.name, 10),
                cut(&c.resource_group, 16),
                cut(&state.subscription, 6)
            )
        });
        let mut cluster = Cluster {
            resource_group: c.resource_group.clone(),
            name: c.name.clone(),
            location: state.location.clone(),
            node_resource_group: node_rg.clone(),
            kubernetes_version: c.kubernetes_version.clone(),
            dns_prefix,
            node_digits: digits.clone(),
            pools: Vec::new(),
            provisioning_state: "Succeeded".into(),
            busy: None,
        };
        let cluster_key = arm::key(&c.resource_group, &c.name);
        for p in &c.pools {
            let clean = generate::cached(&p.os_disk.recipe(Tree::Os)?)
                .with_context(|| format!("aks cluster {} pool {}: node image", c.name, p.name))?;
            let node_image = format!("{}.img", arm::guid());
            super::images::copy_image(&clean, &images.join(&node_image))?;
            let broken = p.broken_instances.is_empty().then_some(Ok(clean.clone()));
            let broken = match broken {
                Some(b) => b,
                None => generate::cached(&generate::Recipe {
                    corrupt: Some(Corruption::Overlay2Init),
                    ..p.os_disk.recipe(Tree::Os)?
                }),
            }
            .with_context(|| {
                format!("aks cluster {} pool {}: broken node image", c.name, p.name)
            })?;
            let ss_name = scale_set_name(&p.name, &digits);
            let ss_key = arm::key(&node_rg, &ss_name);
            let mut tags = serde_json::Map::new();
            // The tags AKS puts on its scale sets (incident.yaml's nodes carry the same).
            tags.insert("aks-managed-poolName".into(), p.name.clone().into());
            tags.insert(
                "aks-managed-orchestrator".into(),
                format!("Kubernetes:{}", c.kubernetes_version).into(),
            );
            state.scale_sets.insert(
                ss_key.clone(),
                ScaleSet {
                    resource_group: node_rg.clone(),
                    name: ss_name,
                    location: state.location.clone(),
                    size: p.vm_size.clone(),
                    zones: p.zones.clone(),
                    unique_id: arm::guid(),
                    tags,
                    next_instance_id: 0,
                    time_created: arm::now(),
                },
            );
            for id in 0..p.count {
                let src = if p.broken_instances.contains(&id) {
                    &broken
                } else {
                    &clean
                };
                let key = add_instance(state, &ss_key, src, p.os_disk_size_gb, &images)?;
                let disks = p.data_disks.iter().filter(|d| d.instance == id);
                let refs: Vec<DataDiskRef> = disks
                    .map(|d| DataDiskRef {
                        lun: d.lun,
                        disk: arm::key(&node_rg, &d.disk),
                        caching: "None".into(),
                    })
                    .collect();
                let vm = state.vms.get_mut(&key).expect("just added");
                vm.data_disks = refs;
                let img = images.join(&state.disks[&state.vms[&key].os_disk].image);
                let b = super::boot::boot(&state.vms[&key].name, &img, data_dir)?;
                let vm = state.vms.get_mut(&key).expect("just added");
                vm.power = Power::Running;
                vm.agent_ready = b.ready;
                vm.agent_ready_since = b.ready.then(arm::now);
                vm.serial_log = b.serial_log;
            }
            cluster.pools.push(Pool {
                name: p.name.clone(),
                mode: p.mode.clone(),
                vm_size: p.vm_size.clone(),
                count: p.count,
                os_disk_size_gb: p.os_disk_size_gb,
                zones: p.zones.clone(),
                provisioning_state: "Succeeded".into(),
                scale_set: ss_key,
                node_image,
            });
        }
        state.clusters.insert(cluster_key, cluster);
    }
    Ok(())
}

/// Adds the scale set's next instance with its own copy of `image` as OS disk, deallocated and
/// provisioned; the caller boots it. Returns its key in `State::vms`.
pub fn add_instance(
    state: &mut State,
    ss_key: &str,
    image: &Path,
    os_disk_gb: u64,
    images: &Path,
) -> anyhow::Result<String> {
    let ss = state
        .scale_sets
        .get_mut(ss_key)
        .expect("caller found the scale set");
    let id = ss.next_instance_id;
    ss.next_instance_id += 1;
    let ss = ss.clone();
    let name = format!("{}_{id}", ss.name);
    let zone = instance_zone(&ss.zones, id);
    let file = format!("{}.img", arm::guid());
    super::images::copy_image(image, &images.join(&file))?;
    let disk_name = format!("{name}_OsDisk_1_{}", arm::guid().replace('-', ""));
    let disk_key = arm::key(&ss.resource_group, &disk_name);
    let now = arm::now();
    state.disks.insert(
        disk_key.clone(),
        Volume {
            resource_group: ss.resource_group.clone(),
            name: disk_name,
            location: ss.location.clone(),
            zone: zone.clone(),
            sku: "Premium_LRS".into(),
            size_gb: os_disk_gb,
            hyper_v_generation: Some("V2".into()),
            os_type: Some("Linux".into()),
            creation: super::state::Creation {
                create_option: "FromImage".into(),
                source_resource_id: None,
                source_unique_id: None,
                image_reference: Some(super::scenario::AKS_IMAGE.into()),
            },
            tags: Default::default(),
            provisioning_state: "Succeeded".into(),
            time_created: now,
            unique_id: arm::guid(),
            image: file,
            incremental: false,
            settings: Default::default(),
        },
    );
    let key = arm::key(&ss.resource_group, &name);
    state.vms.insert(
        key.clone(),
        Vm {
            resource_group: ss.resource_group.clone(),
            name,
            location: ss.location.clone(),
            zone,
            size: ss.size.clone(),
            generation: "V2".into(),
            power: Power::Deallocated,
            agent_ready: false,
            agent_ready_at: None,
            agent_ready_since: None,
            serial_log: String::new(),
            os_disk: disk_key,
            os_create_option: "FromImage".into(),
            data_disks: Vec::new(),
            tags: ss.tags.clone(),
            etag: 1,
            provisioning_state: "Succeeded".into(),
            vm_id: arm::guid(),
            time_created: now,
            busy: None,
            settings: Default::default(),
            run_command: None,
            run_commands: Default::default(),
            scripts_run: 0,
            scripts: Vec::new(),
            run_command_seq: 0,
            nics: Vec::new(),
            scale_set: Some(Member {
                scale_set: ss_key.to_string(),
                instance_id: id,
                computer_name: computer_name(&ss.name, id),
            }),
        },
    );
    Ok(key)
}

/// A scale set's instances, by instance id.
pub fn members<'a>(
    state: &'a State,
    ss_key: &str,
) -> impl Iterator<Item = (&'a String, &'a Vm)> + 'a {
    let ss_key = ss_key.to_string();
    state
        .vms
        .iter()
        .filter(move |(_, vm)| vm.scale_set.as_ref().is_some_and(|m| m.scale_set == ss_key))
}

/// (running, agent ready) of the scale set instance an AKS node's `spec.providerID` names
/// (`azure:///subscriptions/.../virtualMachineScaleSets/<vmss>/virtualMachines/<id>`, the
/// cloud provider's form); `None` when no such instance exists (any more).
pub fn instance_by_provider_id(state: &State, provider_id: &str) -> Option<(bool, bool)> {
    let (_, vm) = instance_key_by_provider_id(state, provider_id)?;
    Some((
        vm.power == Power::Running,
        vm.power == Power::Running && vm.agent_ready,
    ))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A state with the scale set `aks-np-12345678-vmss` of group `MC_rg_c_westeurope`, whose
    /// next instance id is `next`, and a node image in `dir`; returns the scale set's key and
    /// the image.
    pub fn scale_set_world(dir: &Path, next: u64) -> (State, String, std::path::PathBuf) {
        let image = dir.join("node.img");
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        let mut state = State::new("sub".into(), "westeurope".into());
        let ss_key = arm::key("MC_rg_c_westeurope", "aks-np-12345678-vmss");
        state.scale_sets.insert(
            ss_key.clone(),
            ScaleSet {
                resource_group: "MC_rg_c_westeurope".into(),
                name: "aks-np-12345678-vmss".into(),
                location: "westeurope".into(),
                size: "Standard_D4s_v3".into(),
                zones: vec![],
                unique_id: arm::guid(),
                tags: Default::default(),
                next_instance_id: next,
                time_created: arm::now(),
            },
        );
        (state, ss_key, image)
    }

    #[test]
    fn a_node_is_found_by_its_provider_id() {
        let dir = tempfile::tempdir().unwrap();
        let (mut state, ss_key, image) = scale_set_world(dir.path(), 10);
        let key = add_instance(&mut state, &ss_key, &image, 128, dir.path()).unwrap();
        let vm = &state.vms[&key];
        assert_eq!(vm.name, "aks-np-12345678-vmss_10");
        assert_eq!(
            vm.scale_set.as_ref().unwrap().computer_name,
            "aks-np-12345678-vmss00000a"
        );
        let id = "azure:///subscriptions/sub/resourceGroups/MC_rg_c_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-np-12345678-vmss/virtualMachines/10";
        assert_eq!(instance_by_provider_id(&state, id), Some((false, false)));
        let vm = state.vms.get_mut(&key).unwrap();
        vm.power = Power::Running;
        vm.agent_ready = true;
        // AKS's providerID lowercases the group (cloud-provider-azure); ARM ids match regardless.
        assert_eq!(
            instance_by_provider_id(&state, &id.to_ascii_lowercase()),
            Some((true, true))
        );
        // The Kubernetes side's node lifecycle reads its node's health from this instance.
        assert_eq!(
            super::super::kube::node_agent(&state, &Default::default(), id),
            Some((true, true))
        );
        state.vms.get_mut(&key).unwrap().power = Power::Deallocated;
        assert_eq!(
            super::super::kube::node_agent(&state, &Default::default(), id),
            Some((false, false)),
            "a node whose instance is off is not ready"
        );
        let vm = state.vms.get_mut(&key).unwrap();
        vm.power = Power::Running;
        assert_eq!(
            instance_by_provider_id(&state, &id.replace("/10", "/11")),
            None
        );
        assert_eq!(
            instance_by_provider_id(&state, "aks-np-12345678-vmss00000a"),
            None
        );
    }

    #[test]
    fn computer_names_end_in_six_base36_digits() {
        assert_eq!(base36(0), "000000");
        assert_eq!(base36(10), "00000a");
        assert_eq!(base36(36), "000010");
    }
}
