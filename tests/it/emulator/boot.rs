//! Booting checks the OS disk: the incident's VM comes up Not Ready with the filesystem error in
//! its serial log; after the OS-disk swap procedure with a repaired copy it comes up Ready.

use serde_json::json;

use super::support::*;

async fn serial_log(emu: &Emu, name: &str) -> String {
    let r = emu
        .send(
            "POST",
            &format!("{}/retrieveBootDiagnosticsData?{VM_API}", vm(name)),
            None,
        )
        .await;
    let uri = r.json::<serde_json::Value>().await.unwrap()["serialConsoleLogBlobUri"]
        .as_str()
        .unwrap()
        .to_string();
    emu.http
        .get(uri)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_vm_boots_ready_after_its_disk_is_repaired_and_swapped_in() {
    let emu = start(0.002).await;
    // A restart does not help, as in the incident.
    assert_eq!(
        emu.run("POST", &format!("{}/restart?{VM_API}", vm(BROKEN)), None)
            .await["status"],
        "Succeeded"
    );
    assert_eq!(emu.agent_status(BROKEN).await, "Not Ready");
    let log = serial_log(&emu, BROKEN).await;
    assert!(
        log.contains("UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY"),
        "{log}"
    );
    assert!(log.contains("structure needs cleaning"), "{log}");
    assert!(log.contains("/var/lib/docker/overlay2/"), "{log}");
    assert!(log.contains("start-limit-hit"), "{log}");

    // The manual procedure: deallocate, snapshot, copy, attach to the rescue VM, fsck, detach,
    // swap, start.
    assert_eq!(
        emu.run("POST", &format!("{}/deallocate?{VM_API}", vm(BROKEN)), None)
            .await["status"],
        "Succeeded"
    );
    emu.copy_disk(BROKEN_OS, "vm2-os-fixed").await;
    let r = emu.attach(RESCUE, "vm2-os-fixed", 0).await;
    assert_eq!(
        emu.wait_async(r.headers()["azure-asyncoperation"].to_str().unwrap())
            .await
            .0["status"],
        "Succeeded"
    );
    let msg = emu
        .run_script(
            RESCUE,
            &["e2fsck -fy /dev/disk/azure/scsi1/lun0-part1; echo \"EXIT=$?\""],
        )
        .await;
    assert!(msg.contains("EXIT=1"), "{msg}");
    let body = json!({"dataDisksToDetach": [{"diskId": disk("vm2-os-fixed")}]});
    assert_eq!(
        emu.run(
            "POST",
            &format!("{}/attachDetachDataDisks?{VM_API}", vm(RESCUE)),
            Some(body)
        )
        .await["status"],
        "Succeeded"
    );
    let body = json!({"properties": {"storageProfile": {"osDisk": {"name": "vm2-os-fixed", "managedDisk": {"id": disk("vm2-os-fixed")}}}}});
    assert_eq!(
        emu.run("PATCH", &format!("{}?{VM_API}", vm(BROKEN)), Some(body))
            .await["status"],
        "Succeeded"
    );

    let old = emu
        .get_json(&format!("{}?{DISK_API}", disk(BROKEN_OS)))
        .await;
    assert_eq!(
        old["properties"]["diskState"], "Unattached",
        "the original disk is kept, detached"
    );
    let new = emu
        .get_json(&format!("{}?{DISK_API}", disk("vm2-os-fixed")))
        .await;
    assert_eq!(new["properties"]["diskState"], "Reserved");
    assert_eq!(new["managedBy"], vm(BROKEN));

    assert_eq!(
        emu.run("POST", &format!("{}/start?{VM_API}", vm(BROKEN)), None)
            .await["status"],
        "Succeeded"
    );
    assert_eq!(emu.await_ready(BROKEN).await, "Ready");
    let log = serial_log(&emu, BROKEN).await;
    assert!(log.contains(&format!("{BROKEN} login:")), "{log}");
    let new = emu
        .get_json(&format!("{}?{DISK_API}", disk("vm2-os-fixed")))
        .await;
    assert_eq!(new["properties"]["diskState"], "Attached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_boot_diagnostics_hand_out_expiring_sas_uris() {
    let emu = start(0.002).await;
    let v = emu
        .get_json(&format!("{}?$expand=instanceView&{VM_API}", vm(BROKEN)))
        .await;
    assert_eq!(
        v["properties"]["diagnosticsProfile"]["bootDiagnostics"],
        json!({"enabled": true})
    );
    assert!(
        v["properties"]["instanceView"]["bootDiagnostics"].is_null(),
        "managed storage: no blob URI in the instance view"
    );
    // 10 minutes of validity at time scale 0.002 is 1.2 s.
    let r = emu
        .send(
            "POST",
            &format!(
                "{}/retrieveBootDiagnosticsData?sasUriExpirationTimeInMinutes=10&{VM_API}",
                vm(BROKEN)
            ),
            None,
        )
        .await;
    let uris: serde_json::Value = r.json().await.unwrap();
    let log = uris["serialConsoleLogBlobUri"].as_str().unwrap();
    let shot = uris["consoleScreenshotBlobUri"].as_str().unwrap();
    assert!(log.contains("sr=b&sp=r&se="), "{log}");
    let text = emu.http.get(log).send().await.unwrap();
    assert_eq!(text.status(), 200);
    assert!(text
        .text()
        .await
        .unwrap()
        .contains("structure needs cleaning"));
    let img = emu.http.get(shot).send().await.unwrap();
    assert_eq!(img.headers()["content-type"], "image/bmp");
    assert!(img.bytes().await.unwrap().starts_with(b"BM"));
    let forged = emu
        .http
        .get(log.replace("sig=", "sig=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("<Code>AuthenticationFailed</Code>"));
    let mut expired = None;
    for _ in 0..300 {
        let r = emu.http.get(log).send().await.unwrap();
        if r.status() == 403 {
            expired = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(expired
        .expect("the SAS URI expires")
        .contains("Signature not valid in the specified time frame"));
}
