//! The Azure Disk CSI driver's controller side (ControllerPublishVolume /
//! ControllerUnpublishVolume, kubernetes-sigs/azuredisk-csi-driver pkg/azuredisk
//! controllerserver.go and azure_controller_common.go) on the emulator's own ARM: a volume
//! attached to a node backed by a scale set instance becomes a data disk of that instance.

use super::kinds;
use super::nodes;
use super::store::Cluster;
use crate::emulator::aks;
use crate::emulator::state::{DataDiskRef, State};

/// Disks of this size or more get no host cache ("Disk Caching is not supported for disks
/// 4 TiB and larger", azure_controller_common.go `diskCachingLimit`).
const CACHING_LIMIT_GB: u64 = 4096;

/// The disk's key and the node's instance key, when ARM has both.
fn locate(arm: &State, c: &Cluster, handle: &str, node: &str) -> Option<(String, String)> {
    let disk = arm.disk_key_by_id(handle)?;
    let node = c.get(kinds::NODES, node)?;
    let (vm, _) = aks::instance_key_by_provider_id(arm, nodes::provider_id(node))?;
    Some((disk, vm.clone()))
}

/// Whether the node's instance holds the disk in ARM; `None` when the volume or the node has no
/// ARM side here (a node declared only in `kubernetes:`).
pub fn held(arm: &State, c: &Cluster, handle: &str, node: &str) -> Option<bool> {
    let (disk, vm) = locate(arm, c, handle, node)?;
    Some(arm.vms[&vm].data_disks.iter().any(|d| d.disk == disk))
}

fn set_data_disks(arm: &mut State, vm: &str, next: Vec<DataDiskRef>) {
    arm.set_disks(vm, None, Some(next));
    // The CSI driver's VM update has completed by the time its call returns.
    arm.released(vm);
    if let Some(v) = arm.vms.get_mut(vm) {
        v.etag += 1;
    }
}

fn remove_disk(arm: &mut State, vm: &str, disk: &str) {
    let next: Vec<DataDiskRef> = arm.vms[vm]
        .data_disks
        .iter()
        .filter(|d| d.disk != disk)
        .cloned()
        .collect();
    set_data_disks(arm, vm, next);
}

/// ControllerUnpublishVolume: the disk leaves the node's instance. Azure detaches a data disk
/// from a stopped VM as from a running one (the VM update that removes it from
/// `storageProfile.dataDisks` needs no running guest; only a deallocated VM's disks are merely
/// Reserved), and a disk already gone from the instance is "already detached" (the driver's
/// ErrDiskNotFound path).
pub fn detach(arm: &mut State, c: &Cluster, handle: &str, node: &str) {
    if let Some((disk, vm)) = locate(arm, c, handle, node) {
        remove_disk(arm, &vm, &disk);
    }
}

/// ControllerPublishVolume: the disk's LUN on the node's instance, `Ok(None)` when there is no
/// ARM side to mirror, or the error the external-attacher records in the VolumeAttachment's
/// `status.attachError`.
///
/// A disk ARM shows attached elsewhere (`managedBy` set) is a DanglingAttachError. To a node of
/// the cluster without a VolumeAttachment the driver detaches it first and attaches again;
/// with one it refuses ("volume %s still has VolumeAttachments on node %s, refusing dangling
/// detach"); a VM that is no node of the cluster cannot be detached by the driver (its cloud
/// provider treats an unknown instance as "already detached"), so the second attach fails the
/// same way: "Attach volume %s to instance %s failed with disk(%s) already attached to
/// node(%s), could not be attached to node(%s)" (controllerserver.go ControllerPublishVolume,
/// azure_controller_common.go AttachDisk).
pub fn attach(
    arm: &mut State,
    c: &Cluster,
    handle: &str,
    node: &str,
) -> Result<Option<i32>, String> {
    let Some((disk, vm)) = locate(arm, c, handle, node) else {
        return Ok(None);
    };
    if let Some(d) = arm.vms[&vm].data_disks.iter().find(|d| d.disk == disk) {
        return Ok(Some(d.lun));
    }
    let owner = arm
        .vms
        .iter()
        .find(|(_, v)| v.os_disk == disk || v.data_disks.iter().any(|d| d.disk == disk))
        .map(|(k, _)| k.clone())
        .or_else(|| arm.releasing.get(&disk).cloned());
    let disk_name = handle.rsplit('/').next().unwrap_or(handle);
    if let Some(owner) = owner {
        let owner_id = arm.vm_id(&arm.vms[&owner]);
        let owner_node = c
            .list(kinds::NODES)
            .find(|n| {
                nodes::provider_id(n)
                    .strip_prefix("azure://")
                    .is_some_and(|id| id.eq_ignore_ascii_case(&owner_id))
            })
            .and_then(|n| n["metadata"]["name"].as_str())
            .map(String::from);
        let Some(owner_node) = owner_node else {
            return Err(format!(
                "rpc error: code = Internal desc = Attach volume {disk_name} to instance {node} failed with disk({handle}) already attached to node({owner_id}), could not be attached to node({node})"
            ));
        };
        let has_va = c.list(kinds::VOLUMEATTACHMENTS).any(|va| {
            va["spec"]["nodeName"] == owner_node.as_str()
                && va["spec"]["source"]["persistentVolumeName"]
                    .as_str()
                    .and_then(|pv| c.get(kinds::PVS, pv))
                    .and_then(|pv| pv["spec"]["csi"]["volumeHandle"].as_str())
                    .is_some_and(|h| h.eq_ignore_ascii_case(handle))
        });
        if has_va {
            return Err(format!(
                "rpc error: code = FailedPrecondition desc = volume {handle} still has VolumeAttachments on node {owner_node}, refusing dangling detach"
            ));
        }
        remove_disk(arm, &owner, &disk);
    }
    let used: Vec<i32> = arm.vms[&vm].data_disks.iter().map(|d| d.lun).collect();
    let Some(lun) = (0..64).find(|l| !used.contains(l)) else {
        return Err(format!(
            "rpc error: code = Internal desc = Attach volume {disk_name} to instance {node} failed with all LUNs are used, cannot attach volume ({disk_name}, {handle}) to instance {node}"
        ));
    };
    // The driver's default cachingMode is ReadOnly (docs/driver-parameters.md: cachingMode
    // "None, ReadOnly, ReadWrite", default ReadOnly; AKS's managed-csi class sets none).
    let caching = if arm.disks[&disk].size_gb >= CACHING_LIMIT_GB {
        "None"
    } else {
        "ReadOnly"
    };
    let mut next = arm.vms[&vm].data_disks.clone();
    next.push(DataDiskRef {
        lun,
        disk,
        caching: caching.into(),
    });
    set_data_disks(arm, &vm, next);
    Ok(Some(lun))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::arm;
    use serde_json::json;

    const RG: &str = "MC_rg_c_westeurope";
    const PV: &str = "pvc-1";

    /// Two nodes backed by instances 0 and 1, a VM outside the cluster, and a PV of the disk
    /// `pvc-1` of the node group.
    fn world(dir: &std::path::Path) -> (State, Cluster, String) {
        let (mut state, ss_key, image) = aks::tests::scale_set_world(dir, 0);
        let mut c = Cluster {
            arm_id: String::new(),
            subscription: "sub".into(),
            resource_group: "rg".into(),
            name: "c".into(),
            token: String::new(),
            version: "v1.29.9".into(),
            revision: 0,
            objects: Default::default(),
            tombstones: Vec::new(),
            agents: Default::default(),
            timers: Default::default(),
            aks: None,
        };
        for node in ["node-0", "node-1"] {
            let key = aks::add_instance(&mut state, &ss_key, &image, 128, dir).unwrap();
            let pid = aks::provider_id(&state, &state.vms[&key]);
            c.put(
                kinds::NODES,
                json!({"metadata": {"name": node}, "spec": {"providerID": pid}}),
            );
        }
        let some_instance = state.vms.values().next().unwrap().clone();
        let mut disk = state.disks[&some_instance.os_disk].clone();
        disk.name = PV.into();
        let handle = state.disk_id(&disk);
        state.disks.insert(arm::key(RG, PV), disk);
        let outsider = crate::emulator::state::Vm {
            name: "rescue-vm".into(),
            resource_group: "ops-rg".into(),
            scale_set: None,
            ..some_instance
        };
        state.vms.insert(arm::key("ops-rg", "rescue-vm"), outsider);
        c.put(
            kinds::PVS,
            json!({"metadata": {"name": PV}, "spec": {"csi": {"volumeHandle": handle}}}),
        );
        (state, c, handle)
    }

    fn hold(state: &mut State, vm: &str, lun: i32) {
        state.vms.get_mut(vm).unwrap().data_disks = vec![DataDiskRef {
            lun,
            disk: arm::key(RG, PV),
            caching: "None".into(),
        }];
    }

    #[test]
    fn a_disk_attaches_to_a_node_only_once_arm_lets_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let (mut state, mut c, handle) = world(dir.path());
        let rescue = arm::key("ops-rg", "rescue-vm");
        let inst0 = arm::key(RG, "aks-np-12345678-vmss_0");
        let inst1 = arm::key(RG, "aks-np-12345678-vmss_1");

        // On a VM that is no node of the cluster: refused, and ARM is left alone.
        hold(&mut state, &rescue, 3);
        let err = attach(&mut state, &c, &handle, "node-1").unwrap_err();
        let rescue_id = state.vm_id(&state.vms[&rescue]);
        assert!(
            err.contains(&format!(
                "failed with disk({handle}) already attached to node({rescue_id}), could not be attached to node(node-1)"
            )),
            "{err}"
        );
        assert_eq!(held(&state, &c, &handle, "node-1"), Some(false));
        assert_eq!(state.vms[&rescue].data_disks.len(), 1);

        // On another node that still has its VolumeAttachment: refused too.
        state.vms.get_mut(&rescue).unwrap().data_disks.clear();
        hold(&mut state, &inst0, 0);
        c.put(
            kinds::VOLUMEATTACHMENTS,
            json!({"metadata": {"name": "va-0"}, "spec": {"nodeName": "node-0", "source": {"persistentVolumeName": PV}}}),
        );
        let err = attach(&mut state, &c, &handle, "node-1").unwrap_err();
        assert!(err.contains("refusing dangling detach"), "{err}");

        // Without it, the driver detaches the dangling disk and attaches it at the first free
        // LUN, read-only cached.
        c.remove(kinds::VOLUMEATTACHMENTS, "va-0");
        assert_eq!(attach(&mut state, &c, &handle, "node-1"), Ok(Some(0)));
        assert!(state.vms[&inst0].data_disks.is_empty());
        assert_eq!(state.vms[&inst1].data_disks[0].caching, "ReadOnly");
        assert_eq!(
            state.owner_of(&arm::key(RG, PV)).unwrap().name,
            "aks-np-12345678-vmss_1"
        );
        // Attaching again is the LUN it has; a detach lets it go.
        assert_eq!(attach(&mut state, &c, &handle, "node-1"), Ok(Some(0)));
        detach(&mut state, &c, &handle, "node-1");
        assert_eq!(held(&state, &c, &handle, "node-1"), Some(false));
        assert_eq!(state.disk_state(&arm::key(RG, PV)), "Unattached");
        // A node with no instance behind it has no ARM side.
        c.put(
            kinds::NODES,
            json!({"metadata": {"name": "hand"}, "spec": {"providerID": "azure:///nowhere"}}),
        );
        assert_eq!(attach(&mut state, &c, &handle, "hand"), Ok(None));
    }
}
