//! Disks keep their security settings as DiskRP does, a swap must match the VM's security type,
//! generation and architecture, and managed Run Command is not there on Arm64 (the security
//! scenario: a Trusted Launch node on a CMK-encrypted disk, an Arm64 node, a Standard rescue VM).

use serde_json::{json, Value};

use super::support::*;

const SRG: &str = "secure-rg";
const DES: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/secure-rg/providers/Microsoft.Compute/diskEncryptionSets/cmk-des";

fn sdisk(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{SRG}/providers/Microsoft.Compute/disks/{name}")
}

fn ssnap(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{SRG}/providers/Microsoft.Compute/snapshots/{name}"
    )
}

fn svm(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{SRG}/providers/Microsoft.Compute/virtualMachines/{name}")
}

async fn secure(scale: f64) -> Emu {
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/emulator/security.yaml");
    start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, scale)
    })
    .await
}

/// A Standard x64 V2 disk: a copy of the rescue VM's OS disk.
async fn copy_of_the_rescue_disk(emu: &Emu, name: &str) {
    let body = json!({"location": "westeurope", "zones": ["1"], "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": sdisk("secure-rescue-os")}, "hyperVGeneration": "V2", "osType": "Linux"}});
    let done = emu
        .run("PUT", &format!("{}?{DISK_API}", sdisk(name)), Some(body))
        .await;
    assert_eq!(done["status"], "Succeeded");
}

fn swap(disk_id: &str, name: &str) -> Value {
    json!({"properties": {"storageProfile": {"osDisk": {"name": name, "managedDisk": {"id": disk_id}}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_keep_what_diskrp_keeps_and_swaps_check_the_security_type() {
    let emu = secure(0.002).await;
    let source = emu
        .get_json(&format!("{}?{DISK_API}", sdisk("tl-node-os")))
        .await;
    let p = &source["properties"];
    assert_eq!(p["securityProfile"]["securityType"], "TrustedLaunch");
    assert_eq!(p["encryption"]["type"], "EncryptionAtRestWithCustomerKey");
    assert_eq!(p["encryption"]["diskEncryptionSetId"], DES);
    assert_eq!(p["networkAccessPolicy"], "DenyAll");
    assert_eq!(p["publicNetworkAccess"], "Disabled");
    assert_eq!(p["supportedCapabilities"]["diskControllerTypes"], "SCSI");
    assert_eq!(p["tier"], "P6", "a 64 GiB Premium SSD");

    // An incremental snapshot keeps the security type and the customer-managed key.
    let body = json!({"location": "westeurope", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": sdisk("tl-node-os")}, "incremental": true, "hyperVGeneration": "V2", "osType": "Linux"}});
    let done = emu
        .run(
            "PUT",
            &format!("{}?{DISK_API}", ssnap("tl-snap")),
            Some(body),
        )
        .await;
    let snap = &done["properties"]["output"]["properties"];
    assert_eq!(snap["securityProfile"]["securityType"], "TrustedLaunch");
    assert_eq!(snap["encryption"]["diskEncryptionSetId"], DES);
    assert_eq!(snap["networkAccessPolicy"], "AllowAll", "not inherited");

    // A disk copied from it: the security type follows the bits, the key only if asked for.
    let copy = |extra: Value| {
        let mut props = json!({"creationData": {"createOption": "Copy", "sourceResourceId": ssnap("tl-snap")}, "hyperVGeneration": "V2", "osType": "Linux"});
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        json!({"location": "westeurope", "zones": ["1"], "sku": {"name": "Premium_LRS"}, "properties": props})
    };
    let plain = emu
        .run(
            "PUT",
            &format!("{}?{DISK_API}", sdisk("plain-copy")),
            Some(copy(json!({}))),
        )
        .await;
    let pp = &plain["properties"]["output"]["properties"];
    assert_eq!(pp["securityProfile"]["securityType"], "TrustedLaunch");
    assert_eq!(pp["encryption"]["type"], "EncryptionAtRestWithPlatformKey");
    let kept = emu
        .run(
            "PUT",
            &format!("{}?{DISK_API}", sdisk("cmk-copy")),
            Some(copy(json!({"encryption": {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": DES},
                       "networkAccessPolicy": "DenyAll", "publicNetworkAccess": "Disabled"}),
            )),
        )
        .await;
    let kp = &kept["properties"]["output"]["properties"];
    assert_eq!(kp["encryption"]["diskEncryptionSetId"], DES);
    assert_eq!(kp["networkAccessPolicy"], "DenyAll");
    // Naming a security type on Copy is refused.
    let r = emu
        .send(
            "PUT",
            &format!("{}?{DISK_API}", sdisk("named")),
            Some(copy(
                json!({"securityProfile": {"securityType": "TrustedLaunch"}}),
            )),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["message"], "Security Type 'TrustedLaunch' is not supported for CreateOption 'Copy'. Supported create options are FromImage, Import, ImportSecure, UploadPreparedSecure.");

    // The Trusted Launch VM takes the Trusted Launch copy, not a Standard disk; the Standard VM
    // does not take the Trusted Launch copy.
    emu.deallocate(&svm("tl-node")).await;
    copy_of_the_rescue_disk(&emu, "std-copy").await;
    let r = emu
        .send(
            "PATCH",
            &format!("{}?{VM_API}", svm("tl-node")),
            Some(swap(&sdisk("std-copy"), "std-copy")),
        )
        .await;
    assert_eq!(r.status(), 400, "a Standard disk under a Trusted Launch VM");
    let r = emu
        .send(
            "PATCH",
            &format!("{}?{VM_API}", svm("secure-rescue")),
            Some(swap(&sdisk("cmk-copy"), "cmk-copy")),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "Security type of VM is not compatible with the security type of attached OS Disk."
    );
    let done = emu
        .run(
            "PATCH",
            &format!("{}?{VM_API}", svm("tl-node")),
            Some(swap(&sdisk("cmk-copy"), "cmk-copy")),
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm64_vm_takes_only_arm64_disks_and_has_no_managed_run_command() {
    let emu = secure(0.002).await;
    copy_of_the_rescue_disk(&emu, "x64-copy").await;
    let r = emu
        .send(
            "PATCH",
            &format!("{}?{VM_API}", svm("arm-node")),
            Some(swap(&sdisk("x64-copy"), "x64-copy")),
        )
        .await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(msg, "Cannot create a VM of size 'Standard_D2pls_v5' because this VM size only supports a CPU Architecture of 'Arm64', but an image or disk with CPU Architecture 'x64' was given. Please check that the CPU Architecture of the image or disk is compatible with that of the VM size.");

    let r = emu
        .send(
            "PUT",
            &format!("{}/runCommands/fsck?{VM_API}", svm("arm-node")),
            Some(json!({"location": "westeurope", "properties": {"source": {"script": "true"}}})),
        )
        .await;
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "ExtensionNotFoundForCPUArchitecture");
    // Action Run Command is there on Arm64.
    let body = json!({"commandId": "RunShellScript", "script": ["uname -s"]});
    let r = emu
        .send(
            "POST",
            &format!("{}/runCommand?{VM_API}", svm("arm-node")),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 202);
}
