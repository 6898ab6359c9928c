//! AKS's Azure side: managed clusters, agent pools and their Uniform scale sets, judged by the
//! real azure-cli (`tests/conformance/az_aks.sh`, in a loopback-only namespace) and by raw
//! requests for what azure-cli does not send.

use serde_json::{json, Value};

use super::support::*;

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/emulator/aks-cluster.yaml"
);
const NODE_RG: &str = "MC_prod-rg_prod-aks_westeurope";
const AKS_API: &str = "api-version=2026-06-01";
const VMSS_API: &str = "api-version=2024-11-01";

#[test]
fn azure_cli_shows_scales_and_deletes_aks_machines() {
    let az = crate::conformance::venv("cli", "az");
    let (out, requests, _dir) = crate::conformance::judge_on(
        Some(std::path::Path::new(SCENARIO)),
        "azure-cli 2.91.0 aks",
        "bash".into(),
        &[crate::crash::support::repo("tests/conformance/az_aks.sh")],
        &[("AZ", az.display().to_string())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("azure-cli aks: done"),
        "{}",
        crate::crash::support::text(&out)
    );
    crate::conformance::assert_clean(&requests, &[]);
    let ops: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["operation"].as_str())
        .collect();
    for op in [
        "managedClusters.get",
        "agentPools.createOrUpdate",
        "agentPools.deleteMachines",
        "operationResults.get",
        "virtualMachineScaleSets.powerOff",
        "virtualMachineScaleSetVMs.getInstanceView",
    ] {
        assert!(ops.contains(&op), "azure-cli never sent {op}: {ops:?}");
    }
}

fn cluster_path(tail: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/prod-rg/providers/Microsoft.ContainerService/managedClusters/prod-aks{tail}")
}

async fn start_aks() -> Emu {
    let dir = tempfile::tempdir().unwrap();
    start_with(dir, |d| rescue::emulator::Config {
        scenario: Some(SCENARIO.into()),
        ..config(d, 0.002)
    })
    .await
}

async fn scale_set(emu: &Emu) -> String {
    let list = emu
        .get_json(&format!("/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/virtualMachineScaleSets?{VMSS_API}"))
        .await;
    list["value"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aks_routes_answer_as_arm_does() {
    let emu = start_aks().await;
    // An api-version AKS does not serve: the provider's NoRegisteredProviderFound.
    let r = emu
        .send("GET", &cluster_path("?api-version=2099-01-01"), None)
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NoRegisteredProviderFound", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("managedClusters"));

    let ss = scale_set(&emu).await;
    let name = ss.rsplit('/').next().unwrap().to_string();
    assert!(
        name.starts_with("aks-nodepool1-")
            && name.ends_with("-vmss")
            && name.len() == "aks-nodepool1-12345678-vmss".len(),
        "{name}"
    );
    // The node group lists its scale set among its resources, and no instance as a VM.
    let resources = emu
        .get_json(&format!(
            "/subscriptions/{SUB}/resourceGroups/{NODE_RG}/resources?api-version=2024-11-01"
        ))
        .await;
    let types: Vec<&str> = resources["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    assert!(
        types.contains(&"Microsoft.Compute/virtualMachineScaleSets")
            && !types.contains(&"Microsoft.Compute/virtualMachines"),
        "{types:?}"
    );
    // The instance is no VM to the virtualMachines API.
    let r = emu
        .send(
            "GET",
            &format!("{}?{VM_API}", vm(&format!("{name}_0"))),
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    // Its OS disk is a managed disk of the node group, owned by the instance.
    let inst = emu
        .get_json(&format!(
            "{ss}/virtualMachines/2?{VMSS_API}&$expand=instanceView"
        ))
        .await;
    assert_eq!(
        inst["properties"]["osProfile"]["computerName"],
        format!("{name}000002")
    );
    assert_eq!(
        inst["properties"]["instanceView"]["vmAgent"]["statuses"][0]["displayStatus"],
        "Not Ready"
    );
    let os = inst["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let disk = emu.get_json(&format!("{os}?{DISK_API}")).await;
    assert_eq!(disk["managedBy"], inst["id"]);
    assert_eq!(disk["properties"]["diskState"], "Attached");

    // A scale: 200, Scaling, Azure-AsyncOperation, then Succeeded with one more instance.
    let r = scale(&emu, 5).await;
    assert_eq!(r.status(), 200);
    let op = async_operation(&r);
    assert!(op.contains("/providers/Microsoft.ContainerService/locations/westeurope/operations/"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["properties"]["provisioningState"], "Scaling");
    assert_eq!(body["properties"]["count"], 5, "the answer shows the goal");
    // One operation at a time per cluster.
    let r = scale(&emu, 6).await;
    assert_eq!(r.status(), 409);
    let (status, _) = emu.wait_async(&op).await;
    assert_eq!(status["status"], "Succeeded");
    let pool = emu
        .get_json(&cluster_path(&format!("/agentPools/nodepool1?{AKS_API}")))
        .await;
    assert_eq!(pool["properties"]["count"], 5);
    assert_eq!(pool["properties"]["provisioningState"], "Succeeded");

    // deleteMachines refuses a machine the pool does not have, and changes nothing.
    let r = emu
        .send(
            "POST",
            &cluster_path(&format!("/agentPools/nodepool1/deleteMachines?{AKS_API}")),
            Some(json!({ "machineNames": ["aks-nodepool1-00000000-vmss000009"] })),
        )
        .await;
    assert_eq!(r.status(), 400);

    // ForceDetach of the database disk from the broken instance.
    let mut put = inst.clone();
    put["properties"]["storageProfile"]["dataDisks"][0]["toBeDetached"] = json!(true);
    put["properties"]["storageProfile"]["dataDisks"][0]["detachOption"] = json!("ForceDetach");
    let r = emu
        .send(
            "PUT",
            &format!("{ss}/virtualMachines/2?{VMSS_API}"),
            Some(put),
        )
        .await;
    assert_eq!(r.status(), 200);
    let op = async_operation(&r);
    let (status, _) = emu.wait_async(&op).await;
    assert_eq!(status["status"], "Succeeded");
    let pvc = emu
        .get_json(&format!("{}?{DISK_API}", disk_in_node_rg(PVC)))
        .await;
    assert_eq!(pvc["properties"]["diskState"], "Unattached", "{pvc}");
    let inst = emu
        .get_json(&format!("{ss}/virtualMachines/2?{VMSS_API}"))
        .await;
    assert_eq!(inst["properties"]["storageProfile"]["dataDisks"], json!([]));
}

async fn scale(emu: &Emu, count: u64) -> reqwest::Response {
    let pool = cluster_path(&format!("/agentPools/nodepool1?{AKS_API}"));
    let body = json!({ "properties": { "count": count } });
    emu.send("PUT", &pool, Some(body)).await
}

fn async_operation(r: &reqwest::Response) -> String {
    r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string()
}

fn disk_in_node_rg(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/{name}"
    )
}

#[test]
fn bad_aks_scenarios_name_the_cluster_and_pool() {
    for (from, to, says) in [
        (
            "broken_instances: [2]",
            "broken_instances: [7]",
            "broken instance 7",
        ),
        (
            "- name: nodepool1",
            "- name: Node_Pool",
            "pool name `Node_Pool`",
        ),
        ("mode: System", "mode: Spot", "mode `Spot`"),
        (
            "disk: pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40 }",
            "disk: nope }",
            "disk `nope`",
        ),
        ("count: 4", "count: 4\n        colour: blue", "colour"),
        (
            "zones: [\"1\"]",
            "zones: [\"2\"]",
            "instance 2 in zone Some(\"2\")",
        ),
    ] {
        let err = scenario_error(SCENARIO, from, to);
        assert!(err.contains(says), "{says}: {err}");
    }
}
