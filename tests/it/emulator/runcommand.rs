//! Run Command runs the script for real, with the VM's data disks at Azure's device paths.

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2fsck_through_lun0_part1_repairs_the_attached_copy() {
    let emu = start(0.002).await;
    emu.copy_disk(BROKEN_OS, "broken-copy").await;
    let copy = emu.image_of("broken-copy");
    assert!(
        fsck_image(&copy) >= 4,
        "the copy carries the incident's corruption"
    );
    let r = emu.attach(RESCUE, "broken-copy", 0).await;
    assert_eq!(r.status(), 200);
    let url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");

    let msg = emu
        .run_script(
            RESCUE,
            &[
                "fdisk -l /dev/disk/azure/scsi1/lun0",
                "ls /dev/disk/azure/scsi1",
                "e2fsck -fy /dev/disk/azure/scsi1/lun0-part1; echo \"RESCUE_FSCK_EXIT=$?\"",
            ],
        )
        .await;
    assert!(msg.starts_with("Enable succeeded: \n[stdout]\n"), "{msg}");
    assert!(msg.contains("Disklabel type: gpt"), "{msg}");
    assert!(
        msg.contains("lun0\nlun0-part1\nlun0-part14\nlun0-part15\n"),
        "only the attached disk is visible: {msg}"
    );
    assert!(
        msg.contains("RESCUE_FSCK_EXIT=1"),
        "e2fsck corrected errors: {msg}"
    );
    assert_eq!(fsck_image(&copy), 0, "the image itself is repaired");
    assert!(
        !std::path::Path::new("/dev/disk/azure").exists(),
        "the device links stay in the script's namespace"
    );
    assert_ne!(
        fsck_image(&emu.image_of(BROKEN_OS)),
        0,
        "the original OS disk is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_keeps_only_the_last_4_kib_of_each_stream() {
    let emu = start(0.002).await;
    let msg = emu
        .run_script(RESCUE, &["seq 1 3000", "seq 1 2000 >&2", "exit 42"])
        .await;
    let (out, err) = msg.split_once("\n[stderr]\n").unwrap();
    let out = out.strip_prefix("Enable succeeded: \n[stdout]\n").unwrap();
    assert_eq!(out.len(), 4096, "the last 4 KiB of stdout");
    assert!(out.ends_with("2999\n3000\n"));
    assert_eq!(
        err.len(),
        4096,
        "the last 4 KiB of stderr, nothing after it"
    );
    assert!(err.ends_with("2000\n"));
}
