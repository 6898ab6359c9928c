//! What Azure refuses, refused with Azure's status, code and text; what Azure accepts (a newer
//! operation preempting one in flight, an OS-disk swap on a running VM) accepted.

use serde_json::{json, Value};

use super::support::*;

async fn refused(r: reqwest::Response) -> (u16, String, String, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().into(),
        body["error"]["message"].as_str().unwrap().into(),
        body["error"].clone(),
    )
}

fn swap_body(disk_name: &str) -> Value {
    json!({"properties": {"storageProfile": {"osDisk": {"name": disk_name, "managedDisk": {"id": disk(disk_name)}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_and_vm_rules_are_refused_with_azure_codes() {
    let emu = start(0.002).await;
    let vm_url = |n: &str| format!("{}?{VM_API}", vm(n));
    // A copy made without naming the generation is a V1 disk (DiskRP does not copy it).
    emu.copy_disk_with(BROKEN_OS, "gen1", json!({"osType": "Linux"}))
        .await;
    let (s, code, msg, _) = refused(
        emu.send("PATCH", &vm_url(BROKEN), Some(swap_body("gen1")))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "PropertyChangeNotAllowed"));
    assert_eq!(msg, "Swapping OS Disk is not supported since HyperVisor property on the OSDisk and VM do not match. Please make sure the HyperVisor property on the OSDisk is HyperVisor Generation 'V2'");

    // Deleting an attached disk.
    let (s, code, msg, _) = refused(
        emu.send("DELETE", &format!("{}?{DISK_API}", disk(PVC)), None)
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert_eq!(msg, format!("Disk {PVC} is attached to VM {}.", vm(BROKEN)));

    // Attaching a disk another VM owns.
    let (s, code, msg, err) = refused(emu.attach(RESCUE, PVC, 1).await).await;
    assert_eq!((s, code.as_str()), (409, "ConflictingUserInput"));
    assert!(
        msg.ends_with(&format!(
            "because it is already attached to VM {}. A disk can be attached to only one VM at a time.",
            vm(BROKEN)
        )),
        "{msg}"
    );
    assert_eq!(err["target"], disk(PVC));

    // A LUN that is taken (vm2 has its database disk at LUN 0).
    emu.copy_disk(BROKEN_OS, "fixed").await;
    let (s, code, msg, _) = refused(emu.attach(BROKEN, "fixed", 0).await).await;
    assert_eq!((s, code.as_str()), (400, "InvalidParameter"));
    assert_eq!(msg, "A disk at LUN 0 already exists.");

    // Another zone.
    let body = json!({"location": "westeurope", "zones": ["2"], "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 8}});
    assert_eq!(
        emu.run("PUT", &format!("{}?{DISK_API}", disk("zone2")), Some(body))
            .await["status"],
        "Succeeded"
    );
    let (s, code, msg, _) = refused(emu.attach(RESCUE, "zone2", 3).await).await;
    assert_eq!((s, code.as_str()), (400, "BadRequest"));
    assert_eq!(msg, format!("Disk {} cannot be attached to the VM because it is not in the same zone as the VM. VM zone: '1'. Disk zone: '2'.", disk("zone2")));

    // Changing osDisk.createOption.
    let body = json!({"properties": {"storageProfile": {"osDisk": {"createOption": "Attach"}}}});
    let (s, code, msg, _) = refused(emu.send("PATCH", &vm_url(BROKEN), Some(body)).await).await;
    assert_eq!((s, code.as_str()), (409, "PropertyChangeNotAllowed"));
    assert_eq!(
        msg,
        "Changing property 'osDisk.createOption' is not allowed."
    );

    // Growing the OS disk of a running VM, through the disk or through the VM.
    let (s, code, msg, err) = refused(
        emu.send(
            "PATCH",
            &format!("{}?{DISK_API}", disk(BROKEN_OS)),
            Some(json!({"properties": {"diskSizeGB": 256}})),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert!(msg.starts_with(&format!("Cannot resize disk {BROKEN_OS} while it is attached to running VM {}. Resizing a disk of an Azure Virtual Machine requires the virtual machine to be deallocated.", vm(BROKEN))), "{msg}");
    assert_eq!(
        err["innererror"]["internalErrorCode"],
        "ChangeDiskSizeWhileAttachedNotAllowed"
    );
    let body = json!({"properties": {"storageProfile": {"osDisk": {"diskSizeGB": 256}}}});
    let (s, code, _, _) = refused(emu.send("PATCH", &vm_url(BROKEN), Some(body)).await).await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    // ... while a data disk may grow in place, and no disk may shrink.
    let grown = emu
        .run(
            "PATCH",
            &format!("{}?{DISK_API}", disk(PVC)),
            Some(json!({"properties": {"diskSizeGB": 64}})),
        )
        .await;
    assert_eq!(grown["status"], "Succeeded");
    let (s, code, msg, _) = refused(
        emu.send(
            "PATCH",
            &format!("{}?{DISK_API}", disk(PVC)),
            Some(json!({"properties": {"diskSizeGB": 16}})),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "BadRequest"));
    assert!(
        msg.starts_with(&format!("The disk {PVC} cannot be resized down.")),
        "{msg}"
    );

    // A stale ETag, and If-None-Match: * on a VM that exists.
    let r = emu.send("GET", &vm_url(RESCUE), None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let write = |header: &'static str, value: String, tag: &'static str| {
        emu.http
            .patch(emu.url(&vm_url(RESCUE)))
            .bearer_auth(&emu.token)
            .header(header, value)
            .json(&json!({"tags": {"rescue-lock": tag}}))
            .send()
    };
    let tagged = write("If-Match", etag.clone(), "run-1").await.unwrap();
    assert_eq!(tagged.status(), 200);
    let new_etag = tagged.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        tagged.json::<Value>().await.unwrap()["tags"]["rescue-lock"],
        "run-1"
    );
    let (s, code, msg, _) = refused(write("If-Match", etag.clone(), "run-2").await.unwrap()).await;
    assert_eq!((s, code.as_str()), (412, "PreconditionFailed"));
    assert_eq!(
        msg,
        format!(
            "Etag provided in if-match header {etag} does not match etag {new_etag} of resource."
        )
    );
    let (s, code, _, _) = refused(write("If-None-Match", "*".into(), "run-3").await.unwrap()).await;
    assert_eq!((s, code.as_str()), (412, "PreconditionFailed"));

    // Run Command on a deallocated VM is refused at once ...
    let body = json!({"commandId": "RunShellScript", "script": ["true"]});
    emu.deallocate(&vm(HEALTHY)).await;
    let (s, code, msg, _) = refused(
        emu.send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(HEALTHY)),
            Some(body.clone()),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert_eq!(
        msg,
        "The operation requires the VM to be running (or set to run)."
    );
    // ... where the agent is down (the broken VM) it is accepted and fails once CRP gives up on
    // the agent.
    let done = emu
        .run(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(BROKEN)),
            Some(body),
        )
        .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "VMAgentStatusCommunicationError");
    assert_eq!(done["error"]["message"], format!("VM '{BROKEN}' has not reported status for VM agent or extensions. Please verify the VM has a running VM agent, and can establish outbound connections to Azure storage."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_operations_preempt_the_one_in_flight() {
    let emu = start(0.05).await;
    let r = emu
        .send(
            "POST",
            &format!("{}/deallocate?{VM_API}", vm(HEALTHY)),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let deallocate = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let v = emu
        .get_json(&format!("{}/instanceView?{VM_API}", vm(HEALTHY)))
        .await;
    assert_eq!(v["statuses"][1]["code"], "PowerState/deallocating");
    let r = emu
        .send("POST", &format!("{}/start?{VM_API}", vm(HEALTHY)), None)
        .await;
    assert_eq!(r.status(), 202, "CRP takes the newer operation");
    let start = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let (preempted, _) = emu.wait_async(&deallocate).await;
    assert_eq!(preempted["status"], "Canceled");
    assert_eq!(preempted["error"]["code"], "OperationPreempted");
    assert_eq!(
        preempted["error"]["message"],
        "Operation execution has been preempted by a more recent operation."
    );
    assert_eq!(emu.wait_async(&start).await.0["status"], "Succeeded");
    assert_eq!(emu.await_ready(HEALTHY).await, "Ready");

    // A VM being deleted takes nothing but the delete.
    let r = emu
        .send("DELETE", &format!("{}?{VM_API}", vm(HEALTHY)), None)
        .await;
    assert_eq!(r.status(), 202);
    let r = emu
        .send("POST", &format!("{}/start?{VM_API}", vm(HEALTHY)), None)
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        format!("Operation 'start' is not allowed on VM '{HEALTHY}' since the VM is marked for deletion. You can only retry the Delete operation (or wait for an ongoing one to complete).")
    );

    // Action Run Command: one at a time.
    let body = json!({"commandId": "RunShellScript", "script": ["sleep 0.3"]});
    let first = emu
        .send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(RESCUE)),
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status(), 202);
    let second = emu
        .send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(RESCUE)),
            Some(body),
        )
        .await;
    assert_eq!(second.status(), 409);
    let e: Value = second.json().await.unwrap();
    assert_eq!(e["error"]["code"], "Conflict");
    assert_eq!(
        e["error"]["message"],
        "Run command extension execution is in progress. Please wait for completion before invoking a run command."
    );
    let url = first.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_restarts_on_a_swapped_os_disk() {
    let emu = start(0.002).await;
    emu.copy_disk(HEALTHY_OS, "clean-copy").await;
    assert_eq!(emu.agent_status(BROKEN).await, "Not Ready");
    let done = emu
        .run(
            "PATCH",
            &format!("{}?{VM_API}", vm(BROKEN)),
            Some(swap_body("clean-copy")),
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let v = emu.get_json(&format!("{}?{VM_API}", vm(BROKEN))).await;
    assert_eq!(
        v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"],
        disk("clean-copy")
    );
    assert_eq!(
        emu.await_ready(BROKEN).await,
        "Ready",
        "booted from the clean disk"
    );
    let old = emu
        .get_json(&format!("{}?{DISK_API}", disk(BROKEN_OS)))
        .await;
    assert_eq!(old["properties"]["diskState"], "Unattached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_operation_urls_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("short-retention.yaml");
    std::fs::write(
        &scenario,
        format!(
            "operation_retention: 30m\n{}",
            rescue::emulator::INCIDENT_SCENARIO
        ),
    )
    .unwrap();
    // Half an hour of Azure time at time scale 0.001 is 1.8 s: time to see the operation done.
    let emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, 0.001)
    })
    .await;
    let r = emu
        .send("POST", &format!("{}/restart?{VM_API}", vm(HEALTHY)), None)
        .await;
    let url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
    assert_eq!(emu.get_url(&location).await.status(), 200, "kept for now");
    let mut gone = None;
    for _ in 0..500 {
        let r = emu.get_url(&url).await;
        if r.status() == 404 {
            gone = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let gone = gone.expect("the operation URL expires");
    assert_eq!(gone["error"]["code"], "NotFound");
    assert_eq!(
        gone["error"]["message"],
        "The entity was not found in this Azure location."
    );
    assert_eq!(emu.get_url(&location).await.status(), 404);
}
