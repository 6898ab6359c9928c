//! What Azure refuses, refused with Azure's status and code.

use serde_json::{json, Value};

use super::support::*;

async fn refused(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap().into(),
        body["error"]["message"].as_str().unwrap().into(),
    )
}

fn swap_body(disk_name: &str) -> Value {
    json!({"properties": {"storageProfile": {"osDisk": {"name": disk_name, "managedDisk": {"id": disk(disk_name)}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_and_vm_rules_are_refused_with_azure_codes() {
    let emu = start(0.002).await;
    let vm_url = |n: &str| format!("{}?{VM_API}", vm(n));
    emu.copy_disk(BROKEN_OS, "fixed").await;

    // OS-disk swap only on a deallocated VM.
    let (s, code, msg) = refused(
        emu.send("PATCH", &vm_url(BROKEN), Some(swap_body("fixed")))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert!(msg.contains("since the VM is not deallocated"), "{msg}");

    // Deleting an attached disk.
    let (s, code, msg) = refused(
        emu.send("DELETE", &format!("{}?{DISK_API}", disk(PVC)), None)
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert!(
        msg.contains(&format!("Disk {PVC} is attached to VM")),
        "{msg}"
    );

    // Attaching a disk another VM owns.
    let (s, code, _) = refused(emu.attach(RESCUE, PVC, 1).await).await;
    assert_eq!((s, code.as_str()), (409, "ConflictingUserInput"));

    // A LUN that is taken (vm2 has its database disk at LUN 0).
    let (s, code, msg) = refused(emu.attach(BROKEN, "fixed", 0).await).await;
    assert_eq!((s, code.as_str()), (400, "InvalidParameter"));
    assert_eq!(msg, "A disk at LUN 0 already exists.");

    // Another zone.
    let body = json!({"location": "westeurope", "zones": ["2"], "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 8}});
    assert_eq!(
        emu.run("PUT", &format!("{}?{DISK_API}", disk("zone2")), Some(body))
            .await["status"],
        "Succeeded"
    );
    let (s, code, msg) = refused(emu.attach(RESCUE, "zone2", 3).await).await;
    assert_eq!((s, code.as_str()), (400, "BadRequest"));
    assert!(msg.contains("not in the same zone as the VM"), "{msg}");

    // Changing osDisk.createOption.
    let body = json!({"properties": {"storageProfile": {"osDisk": {"createOption": "Attach"}}}});
    let (s, code, _) = refused(emu.send("PATCH", &vm_url(BROKEN), Some(body)).await).await;
    assert_eq!((s, code.as_str()), (409, "PropertyChangeNotAllowed"));

    // A stale ETag.
    let r = emu.send("GET", &vm_url(RESCUE), None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let tagged = emu
        .http
        .patch(emu.url(&vm_url(RESCUE)))
        .bearer_auth(&emu.token)
        .header("If-Match", &etag)
        .json(&json!({"tags": {"rescue-lock": "run-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    assert_eq!(
        tagged.json::<Value>().await.unwrap()["tags"]["rescue-lock"],
        "run-1"
    );
    let stale = emu
        .http
        .patch(emu.url(&vm_url(RESCUE)))
        .bearer_auth(&emu.token)
        .header("If-Match", &etag)
        .json(&json!({"tags": {"rescue-lock": "run-2"}}))
        .send()
        .await
        .unwrap();
    let (s, code, _) = refused(stale).await;
    assert_eq!((s, code.as_str()), (412, "PreconditionFailed"));

    // Run Command where the agent is down (the broken VM), then on a deallocated VM.
    let body = json!({"commandId": "RunShellScript", "script": ["true"]});
    let (s, code, _) = refused(
        emu.send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(BROKEN)),
            Some(body.clone()),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "VMAgentStatusCommunicationError"));
    assert_eq!(
        emu.run(
            "POST",
            &format!("{}/deallocate?{VM_API}", vm(HEALTHY)),
            None
        )
        .await["status"],
        "Succeeded"
    );
    let (s, code, _) = refused(
        emu.send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(HEALTHY)),
            Some(body),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_at_a_time_per_vm() {
    let emu = start(0.05).await;
    let r = emu
        .send(
            "POST",
            &format!("{}/deallocate?{VM_API}", vm(HEALTHY)),
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let (s, code, msg) = refused(
        emu.send("POST", &format!("{}/start?{VM_API}", vm(HEALTHY)), None)
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "OperationNotAllowed"));
    assert!(msg.ends_with("another operation is in progress."), "{msg}");
    let v = emu
        .get_json(&format!("{}/instanceView?{VM_API}", vm(HEALTHY)))
        .await;
    assert_eq!(v["statuses"][1]["code"], "PowerState/deallocating");
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");

    // Run Command: one at a time, and it holds the VM.
    let body = json!({"commandId": "RunShellScript", "script": ["sleep 0.3"]});
    let first = emu
        .send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(RESCUE)),
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status(), 202);
    let (s, code, _) = refused(
        emu.send(
            "POST",
            &format!("{}/runCommand?{VM_API}", vm(RESCUE)),
            Some(body),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "Conflict"));
    let url = first.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
}
