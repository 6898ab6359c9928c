//! The shipped corruption lab: XFS boots, an unbootable ext4 stays Not Ready, and e2fsck
//! repairs a zeroed superblock but not a filesystem without any superblock; xfs_repair repairs
//! the XFS variant of the incident.

use serde_json::{json, Value};

use super::support::*;

const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/emulator/corruptions.yaml");

fn lab_path(kind: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/lab-rg/providers/Microsoft.Compute/{kind}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_lab_boots_and_repairs_as_named() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_with(dir, |d| rescue::emulator::Config { scenario: Some(LAB.into()), ..config(d, 0.002) }).await;
    let agent = |v: Value| v["vmAgent"]["statuses"][0]["displayStatus"].as_str().unwrap_or("").to_string();
    assert_eq!(agent(emu.get_json(&format!("{}/instanceView?{VM_API}", lab_path("virtualMachines", "xfs-node"))).await), "Ready");
    assert_eq!(agent(emu.get_json(&format!("{}/instanceView?{VM_API}", lab_path("virtualMachines", "unbootable-node"))).await), "Not Ready");

    let disks: Vec<Value> = ["ext4-superblock", "ext4-unrepairable", "xfs-overlay2-init"]
        .iter()
        .enumerate()
        .map(|(lun, d)| json!({"lun": lun, "createOption": "Attach", "managedDisk": {"id": lab_path("disks", d)}}))
        .collect();
    let done = emu
        .run("PATCH", &format!("{}?{VM_API}", lab_path("virtualMachines", "lab-rescue")), Some(json!({"properties": {"storageProfile": {"dataDisks": disks}}})))
        .await;
    assert_eq!(done["status"], "Succeeded");
    let body = json!({"commandId": "RunShellScript", "script": [
        "for lun in 0 1; do e2fsck -fy /dev/disk/azure/scsi1/lun$lun-part1 >/dev/null 2>&1; echo \"lun$lun=$?\"; done",
        "xfs_repair -n /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; echo \"xfs-check=$?\"",
        "xfs_repair /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; xfs_repair -n /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; echo \"xfs-after=$?\""
    ]});
    let r = emu.send("POST", &format!("{}/runCommand?{VM_API}", lab_path("virtualMachines", "lab-rescue")), Some(body)).await;
    assert_eq!(r.status(), 202);
    let (done, _) = emu.wait_async(r.headers()["azure-asyncoperation"].to_str().unwrap()).await;
    let msg = done["properties"]["output"]["value"][0]["message"].as_str().unwrap();
    assert!(msg.contains("lun0=1\n"), "zeroed primary superblock: repaired from a backup: {msg}");
    assert!(msg.contains("lun1=8\n"), "no superblock left: e2fsck gives up: {msg}");
    assert!(msg.contains("xfs-check=1\n") && msg.contains("xfs-after=0\n"), "XFS damage found, then repaired: {msg}");
}
