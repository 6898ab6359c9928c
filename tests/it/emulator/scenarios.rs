//! The shipped corruption lab: XFS boots, an unbootable ext4 stays Not Ready, and e2fsck
//! repairs a zeroed superblock but not a filesystem without any superblock; xfs_repair repairs
//! the XFS variant of the incident.

use serde_json::{json, Value};

use super::support::*;

const LAB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/emulator/corruptions.yaml"
);

fn lab_path(kind: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/lab-rg/providers/Microsoft.Compute/{kind}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_lab_boots_and_repairs_as_named() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_with(dir, |d| rescue::emulator::Config {
        scenario: Some(LAB.into()),
        ..config(d, 0.002)
    })
    .await;
    let agent = |v: Value| {
        v["vmAgent"]["statuses"][0]["displayStatus"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        agent(
            emu.get_json(&format!(
                "{}/instanceView?{VM_API}",
                lab_path("virtualMachines", "xfs-node")
            ))
            .await
        ),
        "Ready"
    );
    assert_eq!(
        agent(
            emu.get_json(&format!(
                "{}/instanceView?{VM_API}",
                lab_path("virtualMachines", "unbootable-node")
            ))
            .await
        ),
        "Not Ready"
    );

    let disks: Vec<Value> = ["ext4-superblock", "ext4-unrepairable", "xfs-overlay2-init"]
        .iter()
        .enumerate()
        .map(|(lun, d)| json!({"lun": lun, "createOption": "Attach", "managedDisk": {"id": lab_path("disks", d)}}))
        .collect();
    let done = emu
        .run(
            "PATCH",
            &format!("{}?{VM_API}", lab_path("virtualMachines", "lab-rescue")),
            Some(json!({"properties": {"storageProfile": {"dataDisks": disks}}})),
        )
        .await;
    assert_eq!(done["status"], "Succeeded");
    let msg = emu
        .run_script_at(&lab_path("virtualMachines", "lab-rescue"), &[
            "for lun in 0 1; do e2fsck -fy /dev/disk/azure/scsi1/lun$lun-part1 >/dev/null 2>&1; echo \"lun$lun=$?\"; done",
            "xfs_repair -n /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; echo \"xfs-check=$?\"",
            "xfs_repair /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; xfs_repair -n /dev/disk/azure/scsi1/lun2-part1 >/dev/null 2>&1; echo \"xfs-after=$?\"",
        ])
        .await;
    assert!(
        msg.contains("lun0=1\n"),
        "zeroed primary superblock: repaired from a backup: {msg}"
    );
    assert!(
        msg.contains("lun1=8\n"),
        "no superblock left: e2fsck gives up: {msg}"
    );
    assert!(
        msg.contains("xfs-check=1\n") && msg.contains("xfs-after=0\n"),
        "XFS damage found, then repaired: {msg}"
    );
}

/// A user's own images: a raw disk and the same disk as a fixed VHD, both copied, never modified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_images_are_imported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("mine.img");
    // A whole-disk root filesystem that says what it mounts, as a booting Linux needs.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    let uuid = "5e0c0de4-1b2c-4d3e-9f40-5a6b7c8d9e0f";
    std::fs::write(
        tree.join("etc/fstab"),
        format!("UUID={uuid} / ext4 defaults 0 1\n"),
    )
    .unwrap();
    let out = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-U", uuid, "-d"])
        .arg(&tree)
        .arg(&raw)
        .arg("32M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut vhd_bytes = std::fs::read(&raw).unwrap();
    let mut footer = vec![0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    footer[60..64].copy_from_slice(&2u32.to_be_bytes());
    vhd_bytes.extend_from_slice(&footer);
    std::fs::write(dir.path().join("mine.vhd"), &vhd_bytes).unwrap();
    let before = (std::fs::read(&raw).unwrap(), vhd_bytes);
    std::fs::write(
        dir.path().join("mine.yaml"),
        "subscription: 00000000-0000-0000-0000-000000000001\nlocation: westeurope\nresource_groups:\n  - name: mine-rg\n    disks:\n      \
         - { name: raw-os, os_type: Linux, content: { image: mine.img } }\n      \
         - { name: vhd-data, content: { image: mine.vhd } }\n    vms:\n      \
         - { name: mine-vm, os_disk: raw-os, data_disks: [ { lun: 0, disk: vhd-data } ] }\n",
    )
    .unwrap();
    let scenario = dir.path().join("mine.yaml");
    let emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, 0.002)
    })
    .await;
    let mine = |kind: &str, name: &str| {
        format!(
            "/subscriptions/{SUB}/resourceGroups/mine-rg/providers/Microsoft.Compute/{kind}/{name}"
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v = loop {
        let v = emu
            .get_json(&format!(
                "{}/instanceView?{VM_API}",
                mine("virtualMachines", "mine-vm")
            ))
            .await;
        if v["vmAgent"]["statuses"][0]["displayStatus"] == "Ready"
            || std::time::Instant::now() > deadline
        {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        v["vmAgent"]["statuses"][0]["displayStatus"], "Ready",
        "a whole-disk ext4 boots clean: {v}"
    );
    let msg = emu
        .run_script_at(
            &mine("virtualMachines", "mine-vm"),
            &[
                "blockdev --getsize64 /dev/disk/azure/scsi1/lun0",
                "e2fsck -fn /dev/disk/azure/scsi1/lun0 >/dev/null 2>&1; echo fsck=$?",
            ],
        )
        .await;
    assert!(
        msg.contains("33554432\nfsck=0\n"),
        "the VHD arrives as the raw 32 MiB disk without its footer: {msg}"
    );
    let after = (
        std::fs::read(emu.dir.path().join("mine.img")).unwrap(),
        std::fs::read(emu.dir.path().join("mine.vhd")).unwrap(),
    );
    assert!(after == before, "the user's images are never modified");
}
