//! Microsoft.Network as Azure orders it: what is in use cannot be deleted (NicInUse,
//! InUseSubnetCannotBeDeleted, InUseNetworkSecurityGroupCannotBeDeleted), VMs are created from a
//! marketplace image only as Azure validates it, and a group's resources are listed whole.

use serde_json::{json, Value};

use super::support::*;

async fn error_of(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A VNet with one subnet `sub` guarded by a new NSG; returns (vnet id, subnet id, nsg id).
async fn network(emu: &Emu, name: &str) -> (String, String, String) {
    let nsg = net(&format!("networkSecurityGroups/{name}-nsg"));
    let done = emu
        .run(
            "PUT",
            &format!("{nsg}?{NET_API}"),
            Some(json!({"location": "westeurope", "properties": {"securityRules": []}})),
        )
        .await;
    assert_eq!(done["status"], "Succeeded");
    let vnet = net(&format!("virtualNetworks/{name}"));
    let body = json!({"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.10.0.0/16"]},
        "subnets": [{"name": "sub", "properties": {"addressPrefix": "10.10.1.0/24", "networkSecurityGroup": {"id": nsg}}}]}});
    let r = emu
        .send("PUT", &format!("{vnet}?{NET_API}"), Some(body))
        .await;
    assert_eq!(r.status(), 201, "a create answers 201");
    let url = r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        url.contains("/providers/Microsoft.Network/locations/westeurope/operations/"),
        "{url}"
    );
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Updating");
    assert!(created["etag"].as_str().unwrap().starts_with("W/\""));
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
    (vnet.clone(), format!("{vnet}/subnets/sub"), nsg)
}

fn vm_body(nic: Option<&str>, image: Value, size: &str, zone: &str) -> Value {
    let mut props = json!({
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": image, "osDisk": {"createOption": "FromImage"}},
        "osProfile": {"computerName": "v", "adminUsername": "azureuser"},
    });
    if let Some(nic) = nic {
        props["networkProfile"] = json!({"networkInterfaces": [{"id": nic}]});
    }
    json!({"location": "westeurope", "zones": [zone], "properties": props})
}

fn ubuntu(sku: &str) -> Value {
    json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": sku, "version": "latest"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_azure_would_refuse_are_refused_until_the_order_is_right() {
    let emu = start(0.002).await;
    let (vnet, subnet, nsg) = network(&emu, "rescue-net").await;
    let nic = emu.create_nic("rescue-nic", &subnet).await;
    let got = emu.get_json(&format!("{nic}?{NET_API}")).await;
    assert_eq!(
        got["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"], "10.10.1.4",
        "Azure keeps the first four addresses"
    );
    let done = emu
        .run(
            "PUT",
            &format!("{}?{VM_API}", vm("rescue-new")),
            Some(vm_body(
                Some(&nic),
                ubuntu("server"),
                "Standard_D2s_v5",
                "1",
            )),
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let got = emu.get_json(&format!("{nic}?{NET_API}")).await;
    assert!(got["properties"]["virtualMachine"]["id"]
        .as_str()
        .unwrap()
        .ends_with("/virtualMachines/rescue-new"));

    // A NIC in use by a VM, the subnet of a NIC, the VNet of that subnet, the NSG of a subnet.
    let (status, code, message) =
        error_of(emu.send("DELETE", &format!("{nic}?{NET_API}"), None).await).await;
    assert_eq!((status, code.as_str()), (400, "NicInUse"));
    assert!(
        message.contains("is used by existing resource")
            && message.contains("/virtualMachines/rescue-new"),
        "{message}"
    );
    for target in [&subnet, &vnet] {
        let (status, code, message) = error_of(
            emu.send("DELETE", &format!("{target}?{NET_API}"), None)
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (400, "InUseSubnetCannotBeDeleted"),
            "{target}"
        );
        assert!(
            message.contains("/networkInterfaces/rescue-nic/ipConfigurations/ipconfig1"),
            "{message}"
        );
    }
    let dropped = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.10.0.0/16"]}, "subnets": []}});
    let (_, code, _) = error_of(
        emu.send("PUT", &format!("{vnet}?{NET_API}"), Some(dropped))
            .await,
    )
    .await;
    assert_eq!(
        code, "InUseSubnetCannotBeDeleted",
        "a VNet update that drops a subnet in use"
    );
    let (status, code, message) =
        error_of(emu.send("DELETE", &format!("{nsg}?{NET_API}"), None).await).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "InUseNetworkSecurityGroupCannotBeDeleted")
    );
    assert!(message.contains("/subnets/sub"), "{message}");

    // In Azure's order every deletion goes through: VM, NIC, VNet (with its subnet), NSG.
    for (target, api) in [
        (vm("rescue-new"), VM_API),
        (nic.clone(), NET_API),
        (vnet.clone(), NET_API),
        (nsg.clone(), NET_API),
    ] {
        let done = emu.run("DELETE", &format!("{target}?{api}"), None).await;
        assert_eq!(done["status"], "Succeeded", "{target}: {done}");
        assert_eq!(
            emu.send("GET", &format!("{target}?{api}"), None)
                .await
                .status(),
            404,
            "{target}"
        );
    }
    assert_eq!(
        emu.send("DELETE", &format!("{nic}?{NET_API}"), None)
            .await
            .status(),
        204,
        "nothing left to delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_creation_from_a_marketplace_image_is_validated_as_azure_validates_it() {
    let emu = start(0.002).await;
    let nic = emu.create_nic("probe-nic", &scenario_subnet()).await;
    let put = |body: Value| {
        let emu = &emu;
        async move {
            error_of(
                emu.send("PUT", &format!("{}?{VM_API}", vm("probe")), Some(body))
                    .await,
            )
            .await
        }
    };
    let (status, code, message) = put(vm_body(
        Some(&nic),
        ubuntu("no-such-sku"),
        "Standard_D2s_v5",
        "1",
    ))
    .await;
    assert_eq!((status, code.as_str()), (404, "PlatformImageNotFound"));
    assert!(
        message.starts_with(
            "The platform image 'Canonical:ubuntu-24_04-lts:no-such-sku:latest' is not available."
        ),
        "{message}"
    );
    let (status, code, message) =
        put(vm_body(Some(&nic), ubuntu("server"), "Standard_D2_v3", "1")).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(
        message.starts_with(
            "The selected VM size 'Standard_D2_v3' cannot boot Hypervisor Generation '2'."
        ),
        "{message}"
    );
    let (_, code, _) = put(vm_body(
        Some(&nic),
        ubuntu("server-gen1"),
        "Standard_D2ps_v5",
        "1",
    ))
    .await;
    assert_eq!(code, "BadRequest", "an Arm64 size boots no x64 Gen1 image");
    let (status, code, message) =
        put(vm_body(None, ubuntu("server"), "Standard_D2s_v5", "1")).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (
            400,
            "InvalidParameter",
            "Required parameter 'networkProfile' is missing (null)."
        )
    );
    let missing = net("networkInterfaces/not-there");
    let (_, code, _) = put(vm_body(
        Some(&missing),
        ubuntu("server"),
        "Standard_D2s_v5",
        "1",
    ))
    .await;
    assert_eq!(code, "InvalidResourceReference");
    let (_, code, _) = put(vm_body(
        Some(&nic),
        ubuntu("server"),
        "Standard_D2s_v5",
        "4",
    ))
    .await;
    assert_eq!(code, "SkuNotAvailable", "westeurope has zones 1-3");
    let used = net(&format!("networkInterfaces/{HEALTHY}-nic"));
    let (_, code, message) = put(vm_body(
        Some(&used),
        ubuntu("server"),
        "Standard_D2s_v5",
        "1",
    ))
    .await;
    assert_eq!(code, "NicInUse", "{message}");
    assert_eq!(
        emu.send("GET", &format!("{}?{VM_API}", vm("probe")), None)
            .await
            .status(),
        404,
        "nothing was created"
    );

    // Arm64 Gen2 is what an Arm64 size boots; the VM and its OS disk say so.
    let done = emu
        .run(
            "PUT",
            &format!("{}?{VM_API}", vm("probe")),
            Some(vm_body(
                Some(&nic),
                ubuntu("server-arm64"),
                "Standard_D2ps_v5",
                "1",
            )),
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert_eq!(
        emu.await_ready("probe").await,
        "Ready",
        "a generated healthy Ubuntu boots"
    );
    let v = emu
        .get_json(&format!("{}?{VM_API}&$expand=instanceView", vm("probe")))
        .await;
    assert_eq!(v["properties"]["instanceView"]["hyperVGeneration"], "V2");
    let os = v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = emu.get_json(&format!("{os}?{DISK_API}")).await;
    assert_eq!(
        d["properties"]["supportedCapabilities"]["architecture"],
        "Arm64"
    );
    assert!(d["properties"]["creationData"]["imageReference"]["id"]
        .as_str()
        .unwrap()
        .ends_with("/Offers/ubuntu-24_04-lts/Skus/server-arm64/Versions/latest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_lists_every_resource_it_holds() {
    let emu = start(0.002).await;
    let list = emu
        .get_json(&format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/resources?api-version=2024-11-01"
        ))
        .await;
    let mut types: Vec<String> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "Microsoft.Compute/disks",
            "Microsoft.Compute/virtualMachines",
            "Microsoft.Network/networkInterfaces",
            "Microsoft.Network/virtualNetworks"
        ]
    );
    let nics = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "Microsoft.Network/networkInterfaces")
        .count();
    assert_eq!(nics, 5, "one NIC per scenario VM");
    let vm = emu.get_json(&format!("{}?{VM_API}", vm(BROKEN))).await;
    let nic = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        emu.get_json(&format!("{nic}?{NET_API}")).await["properties"]["virtualMachine"]["id"],
        vm["id"]
    );
}
