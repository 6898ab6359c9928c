//! Run Command runs the script for real, with the VM's data disks at Azure's device paths.

use serde_json::{json, Value};

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

/// Stdout of a RunCommandResult message.
fn stdout_of(msg: &str) -> &str {
    let out = msg.strip_prefix("Enable succeeded: \n[stdout]\n").unwrap();
    out.split_once("\n[stderr]\n").unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_follow_a_shebang_line_and_are_lost_by_a_one_entry_shebang_script() {
    let emu = start(0.002).await;
    let params = json!([{"name": "X", "value": "a"}, {"name": "Y", "value": "b"}]);
    let show = r#"echo "1=${1:-} 2=${2:-} X=${X:-} Y=${Y:-} shell=$(readlink /proc/$$/exe) pwd=$PWD home=${HOME:-unset}""#;
    // No shebang: the prepended lines set both, and /bin/sh runs the file.
    let msg = emu.run_script_with(RESCUE, &[show], params.clone()).await;
    let out = stdout_of(&msg);
    assert!(
        out.starts_with("1=a 2=b X=a Y=b shell=/usr/bin/dash "),
        "{out}"
    );
    assert!(
        out.contains("pwd=/var/lib/waagent/run-command/download/1 home=unset"),
        "run in the agent's download dir with the agent's environment: {out}"
    );
    // A shebang as the first entry: the lines go right after it and bash runs the file.
    let msg = emu
        .run_script_with(RESCUE, &["#!/bin/bash", show], params.clone())
        .await;
    assert!(
        stdout_of(&msg).starts_with("1=a 2=b X=a Y=b shell=/usr/bin/bash "),
        "{msg}"
    );
    // A script sent as one entry that begins with a shebang (as `az vm run-command invoke
    // --scripts @file` sends it): the lines land after the whole script, which runs without them.
    let one_entry = format!("#!/bin/bash\n{show}");
    let msg = emu
        .run_script_with(RESCUE, &[one_entry.as_str()], params)
        .await;
    assert!(
        stdout_of(&msg).starts_with("1= 2= X= Y= shell=/usr/bin/bash "),
        "the parameters are lost: {msg}"
    );
    assert_eq!(emu.scripts_run(RESCUE), 3);
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_disk_sh_repairs_with_a_named_lun_and_writes_only_inside_the_data_dir() {
    let emu = start(0.002).await;
    emu.copy_disk(BROKEN_OS, "broken-copy").await;
    let r = emu.attach(RESCUE, "broken-copy", 0).await;
    assert_eq!(
        emu.wait_async(r.headers()["azure-asyncoperation"].to_str().unwrap())
            .await
            .0["status"],
        "Succeeded"
    );
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflows/scripts/fsck-disk.sh"
    ))
    .unwrap();
    // The script as rescue sends it (one entry per line), plus a line that writes to /tmp.
    let lines: Vec<&str> = script.lines().collect();
    let marker = format!("/tmp/rescue-test-{}", std::process::id());
    let touch = format!("touch {marker}");
    let mut with_tmp = vec![lines[0], touch.as_str()];
    with_tmp.extend(&lines[1..]);
    let msg = emu
        .run_script_with(RESCUE, &with_tmp, json!([{"name": "LUN", "value": "0"}]))
        .await;
    let out = stdout_of(&msg);
    let status: Value = serde_json::from_str(
        out.lines()
            .last()
            .unwrap()
            .strip_prefix("RESCUE-STATUS ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["verdict"], "repaired", "{out}");
    assert_eq!(status["lun"], 0);
    assert_eq!(fsck_image(&emu.image_of("broken-copy")), 0);

    // The script's log is in the VM's /var/log, which lives in the data dir; the host's
    // /var/log/rescue and /tmp got nothing.
    let log_in_vm = status["log"].as_str().unwrap();
    assert!(
        log_in_vm.starts_with("/var/log/rescue/fsck-lun0-"),
        "{log_in_vm}"
    );
    let root = emu.vm_root(RESCUE);
    let log = root.join(log_in_vm.trim_start_matches('/'));
    assert!(log.exists(), "{} is not in the VM's files", log.display());
    assert!(
        !std::path::Path::new(log_in_vm).exists(),
        "the script wrote the host's {log_in_vm}"
    );
    assert!(root.join(marker.trim_start_matches('/')).exists());
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the script wrote the host's /tmp"
    );

    // Owner-only: the data dir and the VM's files 0700, images, the state, the request log and
    // the script's log 0600.
    let data = emu.dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("images")), 0o700);
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&emu.image_of("broken-copy")), 0o600);
    assert_eq!(mode(&emu.image_of(BROKEN_OS)), 0o600);
    assert_eq!(mode(&data.join("state.json")), 0o600);
    assert_eq!(mode(&emu.dir.path().join("requests.jsonl")), 0o600);
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(log.parent().unwrap()), 0o700);
}
