//! State lives in the data dir: a restarted emulator carries on, including operations that were
//! running when it stopped.

use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_the_data_dir_keeps_resources_and_running_operations() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().to_path_buf();
    let mut emu = start_with(dir, |d| config(d, 0.05)).await;
    let body = json!({"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk(BROKEN_OS)}}});
    let r = emu
        .send(
            "PUT",
            &format!("{}?{DISK_API}", snapshot("before-restart")),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 202);
    let op_path = operation_path(&r);
    let r = emu
        .send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(RESCUE)),
            Some(json!({"commandId": "RunShellScript", "script": ["sleep 31.7 & sleep 31.8"]})),
        )
        .await;
    assert_eq!(r.status(), 202);
    let rc_path = operation_path(&r);
    assert!(eventually(|| running("sleep 31.8")), "the script runs");
    emu.stop().await;
    assert!(
        eventually(|| !running("sleep 31.7") && !running("sleep 31.8")),
        "stopping the emulator kills the script and its children"
    );
    // As if the emulator had been SIGKILLed mid-command: a loop device left on one of its images.
    let leaked = LeakedLoop::attach(&emu.image_of(PVC));

    // Same data dir, a new process's worth of emulator (and a new port).
    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    assert_eq!(dir.path(), keep);
    let emu2 = start_with(dir, |d| config(d, 0.05)).await;
    assert!(
        !leaked.still_attached(),
        "the restart detached the loop device left on its image"
    );
    let (done, _) = emu2
        .wait_async(&emu2.url(&format!("/subscriptions/{op_path}")))
        .await;
    assert_eq!(done["status"], "Succeeded");
    assert_eq!(done["properties"]["output"]["name"], "before-restart");
    let (rc, _) = emu2
        .wait_async(&emu2.url(&format!("/subscriptions/{rc_path}")))
        .await;
    // RunCommandLinux, enabled again for a run it had started and whose process is gone,
    // reports success with "Last script execution didn't finish." (cmds.go enablePre).
    assert_eq!(rc["status"], "Succeeded", "{rc}");
    assert_eq!(
        rc["properties"]["output"]["value"][0]["message"],
        "Enable succeeded: Last script execution didn't finish.",
        "the script's process died with the emulator: {rc}"
    );
    let msg = emu2.run_script(RESCUE, &["echo again"]).await;
    assert!(msg.contains("again"), "the VM is free again: {msg}");
    let pvc = emu2.get_json(&format!("{}?{DISK_API}", disk(PVC))).await;
    assert_eq!(pvc["managedBy"], vm(BROKEN));
}

/// The path of a mutation's operation URL, to poll it on a restarted emulator.
fn operation_path(r: &reqwest::Response) -> String {
    r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .split_once("/subscriptions/")
        .unwrap()
        .1
        .to_string()
}

/// A loop device on an emulator image; detached at the end whatever happens.
struct LeakedLoop(String);

impl LeakedLoop {
    fn attach(image: &std::path::Path) -> Self {
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LeakedLoop(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn still_attached(&self) -> bool {
        let out = std::process::Command::new("losetup")
            .arg(&self.0)
            .output()
            .unwrap();
        out.status.success()
    }
}

impl Drop for LeakedLoop {
    fn drop(&mut self) {
        if self.still_attached() {
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(&self.0)
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_interrupted_before_its_boot_check_boots_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("stopped.yaml");
    let text = rescue::emulator::INCIDENT_SCENARIO.replacen(
        "power: running\n        os_disk: aks-nodepool1-31415926-vm3",
        "power: deallocated\n        os_disk: aks-nodepool1-31415926-vm3",
        1,
    );
    assert_ne!(text, rescue::emulator::INCIDENT_SCENARIO);
    std::fs::write(&scenario, text).unwrap();
    let mut emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, 1.0)
    })
    .await;
    let vm3 = "aks-nodepool1-31415926-vm3";
    let r = emu
        .send("POST", &format!("{}/start?{VM_API}", vm(vm3)), None)
        .await;
    assert_eq!(r.status(), 202);
    let op_url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let op_path = op_url.split_once("/subscriptions/").unwrap().1.to_string();
    emu.stop().await;

    // As if killed between accepting the start and its boot check, with the start now due.
    let state_file = emu.dir.path().join("data/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    for op in state["operations"].as_object_mut().unwrap().values_mut() {
        if let Some(power) = op["kind"].get_mut("VmPower") {
            power["boot"] = serde_json::Value::Null;
            op["due"] = op["start"].clone();
        }
    }
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();

    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    // Faster now: the boot that follows takes a scaled boot time.
    let emu2 = start_with(dir, |d| config(d, 0.01)).await;
    let (done, _) = emu2
        .wait_async(&emu2.url(&format!("/subscriptions/{op_path}")))
        .await;
    assert_eq!(done["status"], "Succeeded");
    assert_eq!(emu2.await_ready(vm3).await, "Ready");
}

/// Whether a process with exactly this command line exists (read from /proc).
fn running(cmdline: &str) -> bool {
    let wanted: Vec<u8> = cmdline
        .split(' ')
        .flat_map(|w| w.bytes().chain(std::iter::once(0)))
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
}

/// Polls a condition for up to 5 s (processes start and die asynchronously).
fn eventually(check: impl Fn() -> bool) -> bool {
    (0..100).any(|_| {
        check() || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_run_command_cut_by_a_restart_reads_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut emu = start_with(dir, |d| config(d, 0.01)).await;
    let rc = format!("{}/runCommands/long?{VM_API}", vm(RESCUE));
    let r = emu
        .send(
            "PUT",
            &rc,
            Some(json!({"location": "westeurope", "properties": {"source": {"script": "sleep 41.3"}}})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let op_path = operation_path(&r);
    assert!(eventually(|| running("sleep 41.3")), "the script runs");
    emu.stop().await;
    assert!(eventually(|| !running("sleep 41.3")));
    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    let emu2 = start_with(dir, |d| config(d, 0.01)).await;
    let (done, _) = emu2
        .wait_async(&emu2.url(&format!("/subscriptions/{op_path}")))
        .await;
    assert_eq!(done["status"], "Succeeded");
    let got = emu2
        .get_json(&format!(
            "{}/runCommands/long?$expand=instanceView&{VM_API}",
            vm(RESCUE)
        ))
        .await;
    let view = &got["properties"]["instanceView"];
    assert_eq!(view["executionState"], "Unknown", "{got}");
    assert_eq!(view["executionMessage"], "The script has been executed. However, the instanceView's execution state, output, error are unknown.");
    assert_eq!(
        emu2.scripts_run(RESCUE),
        1,
        "not run again after the restart"
    );
}
