//! VMs created by PUT (from an image or on an existing disk) and deleted (their disks kept).

use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_vms_boot_from_an_image_or_from_an_attached_disk() {
    let emu = start(0.002).await;
    let nic = emu.create_nic("repair-vm-nic", &scenario_subnet()).await;
    let body = json!({
        "location": "westeurope", "zones": ["1"],
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest"},
                "osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}},
            },
            "osProfile": {"computerName": "repair-vm", "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic}]},
        },
    });
    let r = emu
        .send("PUT", &format!("{}?{VM_API}", vm("repair-vm")), Some(body))
        .await;
    assert_eq!(r.status(), 201);
    assert!(
        r.headers().get("location").is_none(),
        "VM create answers Azure-AsyncOperation only"
    );
    let url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
    assert_eq!(emu.await_ready("repair-vm").await, "Ready");
    let v = emu.get_json(&format!("{}?{VM_API}", vm("repair-vm"))).await;
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    let os = v["properties"]["storageProfile"]["osDisk"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let d = emu.get_json(&format!("{}?{DISK_API}", disk(&os))).await;
    assert_eq!(
        (
            d["properties"]["diskState"].as_str(),
            d["properties"]["hyperVGeneration"].as_str()
        ),
        (Some("Attached"), Some("V2"))
    );

    let resize = json!({"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v3"}}});
    let done = emu
        .run(
            "PATCH",
            &format!("{}?{VM_API}", vm("repair-vm")),
            Some(resize),
        )
        .await;
    assert_eq!(done["status"], "Succeeded");
    let v = emu.get_json(&format!("{}?{VM_API}", vm("repair-vm"))).await;
    assert_eq!(
        v["properties"]["hardwareProfile"]["vmSize"],
        "Standard_D4s_v3"
    );

    emu.copy_disk(BROKEN_OS, "broken-copy").await;
    let nic = emu.create_nic("clone-vm-nic", &scenario_subnet()).await;
    let body = json!({
        "location": "westeurope", "zones": ["1"],
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": disk("broken-copy")}}},
            "networkProfile": {"networkInterfaces": [{"id": nic}]},
        },
    });
    assert_eq!(
        emu.run("PUT", &format!("{}?{VM_API}", vm("clone-vm")), Some(body))
            .await["status"],
        "Succeeded"
    );
    assert_eq!(
        emu.agent_status("clone-vm").await,
        "Not Ready",
        "the copy carries the corruption"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_vm_keeps_its_disks() {
    let emu = start(0.002).await;
    let r = emu
        .send("DELETE", &format!("{}?{VM_API}", vm(BROKEN)), None)
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        emu.wait_async(r.headers()["azure-asyncoperation"].to_str().unwrap())
            .await
            .0["status"],
        "Succeeded"
    );
    assert_eq!(
        emu.send("GET", &format!("{}?{VM_API}", vm(BROKEN)), None)
            .await
            .status(),
        404
    );
    for d in [BROKEN_OS, PVC] {
        let got = emu.get_json(&format!("{}?{DISK_API}", disk(d))).await;
        assert_eq!(got["properties"]["diskState"], "Unattached", "{d}");
    }
    assert_eq!(
        emu.send("DELETE", &format!("{}?{VM_API}", vm(BROKEN)), None)
            .await
            .status(),
        204
    );
}
