//! workflows/scripts/fsck-disk.sh on real images through loop devices, as Run Command runs it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::images::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/workflows/scripts/fsck-disk.sh"
);

/// Run the script for LUN 0 with `image` as the disk; its stdout and parsed status line.
fn fsck(dir: &Path, image: &Path, lun: &str) -> (String, Value, i32) {
    let links = dir.join("scsi1");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(image, links.join("lun0")).unwrap();
    let out = Command::new("bash")
        .arg(SCRIPT)
        .arg(lun)
        .arg(&links)
        .env("RESCUE_LOG_DIR", dir.join("log"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default();
    let status = last
        .strip_prefix("RESCUE-STATUS ")
        .map(|j| serde_json::from_str(j).expect("valid JSON"))
        .unwrap_or(Value::Null);
    assert!(
        !status.is_null(),
        "last line is not a status line:\n{stdout}"
    );
    (stdout, status, out.status.code().unwrap_or(-1))
}

macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root for loop devices");
            return;
        }
    };
}

#[test]
fn incident_disk_is_repaired_then_clean_and_boot_partitions_are_skipped() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let disk = gpt_disk(dir.path(), &incident_ext4(dir.path()));
    assert!(
        e2fsck_readonly(&disk, ROOT_OFFSET) >= 4,
        "the image is not corrupted to begin with"
    );

    let (stdout, status, code) = fsck(dir.path(), &disk, "0");
    assert_eq!(status["verdict"], "repaired", "{stdout}");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Disklabel type: gpt"),
        "fdisk -l is printed:\n{stdout}"
    );
    let parts = status["partitions"].as_array().unwrap();
    let result = |n: u64| {
        parts
            .iter()
            .find(|p| p["partition"] == n)
            .map(|p| p["result"].clone())
            .unwrap()
    };
    assert_eq!(result(1), "skipped", "BIOS boot");
    assert_eq!(result(2), "skipped", "EFI");
    assert_eq!(result(3), "repaired");
    assert_eq!(
        e2fsck_readonly(&disk, ROOT_OFFSET),
        0,
        "e2fsck -fn still finds errors after the repair"
    );
    let log = status["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("FILE SYSTEM WAS MODIFIED"),
        "the full log is kept"
    );

    std::fs::remove_file(dir.path().join("scsi1/lun0")).unwrap();
    let (_, again, _) = fsck(dir.path(), &disk, "0");
    assert_eq!(again["verdict"], "clean");
}

#[test]
fn xfs_is_log_replayed_and_repaired() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let xfs = damaged_xfs(dir.path());
    let (stdout, status, code) = fsck(dir.path(), &xfs, "0");
    assert_eq!(status["verdict"], "repaired", "{stdout}");
    assert_eq!(code, 0);
    assert_eq!(status["partitions"][0]["fstype"], "xfs");
    sh(&format!("xfs_repair -n {}", xfs.display()));
}

#[test]
fn unrepairable_disk_gives_a_failed_verdict_and_exit_1() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let bad = unrepairable_ext4(dir.path());
    let (stdout, status, code) = fsck(dir.path(), &bad, "0");
    assert_eq!(status["verdict"], "failed", "{stdout}");
    assert_eq!(status["partitions"][0]["exit"], 8);
    assert_eq!(code, 1);
}

#[test]
fn a_linux_partition_without_its_primary_superblock_is_rebuilt_from_a_backup() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let disk = gpt_disk(dir.path(), &no_primary_superblock_ext4(dir.path()));
    let (stdout, status, _) = fsck(dir.path(), &disk, "0");
    assert_eq!(status["verdict"], "repaired", "{stdout}");
    assert_eq!(e2fsck_readonly(&disk, ROOT_OFFSET), 0);
}

#[test]
fn a_bad_lun_parameter_is_refused_not_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, status, code) = fsck(dir.path(), Path::new("/dev/null"), "0; rm -rf /");
    assert_eq!(status["verdict"], "failed");
    assert_eq!(status["reason"], "bad LUN parameter");
    assert_eq!(code, 1);
}
