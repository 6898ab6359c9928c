//! Header- and body-level behaviour of the wire protocol, with raw HTTP.

use serde_json::{json, Value};

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_put_is_a_202_lro_ending_with_the_snapshot_in_output() {
    let emu = start(0.01).await;
    let body = json!({
        "location": "westeurope",
        "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk(BROKEN_OS)}, "incremental": true}
    });
    let r = emu
        .send(
            "PUT",
            &format!("{}?{DISK_API}", snapshot("snap1")),
            Some(body),
        )
        .await;
    assert_eq!(r.status(), 202);
    let h = r.headers().clone();
    let async_url = h["azure-asyncoperation"].to_str().unwrap().to_string();
    assert!(
        async_url.contains("/providers/Microsoft.Compute/locations/westeurope/DiskOperations/"),
        "{async_url}"
    );
    assert!(async_url.contains("api-version=2024-03-02"));
    assert_eq!(
        h["location"].to_str().unwrap(),
        format!("{async_url}&monitor=true")
    );
    assert!(h.contains_key("retry-after"));
    assert!(h["x-ms-ratelimit-remaining-resource"]
        .to_str()
        .unwrap()
        .contains("Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;"));
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Updating");

    let (done, seen) = emu.wait_async(&async_url).await;
    assert_eq!(
        seen,
        vec!["InProgress", "Succeeded"],
        "snapshot takes 30 s × 0.01 = 0.3 s"
    );
    assert!(done["endTime"].is_string());
    let out = &done["properties"]["output"];
    assert_eq!(out["name"], "snap1");
    assert_eq!(out["properties"]["provisioningState"], "Succeeded");
    assert_eq!(out["properties"]["incremental"], true);
    assert_eq!(
        out["properties"]["creationData"]["sourceResourceId"],
        disk(BROKEN_OS)
    );
    assert!(
        out["properties"]["hyperVGeneration"].is_null(),
        "DiskRP does not copy the generation: the client names it"
    );
    assert_eq!(
        out["properties"]["osType"], "Linux",
        "kept from the source disk"
    );

    let loc = emu.get_url(h["location"].to_str().unwrap()).await;
    assert_eq!(loc.status(), 200);
    assert_eq!(loc.json::<Value>().await.unwrap()["name"], "snap1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_get_arm_401() {
    let emu = start(0.01).await;
    let url = emu.url(&format!("{}?{DISK_API}", disk(BROKEN_OS)));
    let r = emu.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "AuthenticationFailed"
    );
    let r = emu
        .http
        .get(&url)
        .bearer_auth("someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationToken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_are_checked_per_resource_type() {
    let emu = start(0.01).await;
    // Every version the judged clients send is served (see routes.rs for their sources).
    let disk_versions = [
        "2023-04-02",
        "2023-10-02",
        "2024-03-02",
        "2025-01-02",
        "2026-03-02",
    ];
    let vm_versions = [
        "2022-11-01",
        "2024-07-01",
        "2024-11-01",
        "2025-11-01",
        "2026-04-01",
    ];
    let served = disk_versions
        .map(|v| (disk(BROKEN_OS), v))
        .into_iter()
        .chain(vm_versions.map(|v| (vm(BROKEN), v)));
    for (path, v) in served {
        let r = emu
            .send("GET", &format!("{path}?api-version={v}"), None)
            .await;
        assert_eq!(r.status(), 200, "{path} at {v}");
    }
    // A provider's type at an unknown version: NoRegisteredProviderFound, listing what is.
    let r = emu
        .send("GET", &format!("{}?{VM_API}", disk(BROKEN_OS)), None)
        .await;
    assert_eq!(r.status(), 400);
    let e = r.json::<Value>().await.unwrap()["error"].clone();
    assert_eq!(e["code"], "NoRegisteredProviderFound");
    assert_eq!(
        e["message"],
        "No registered resource provider found for location 'westeurope' and API version '2024-07-01' for type \
         'disks'. The supported api-versions are '2026-03-02, 2025-01-02, 2024-03-02, 2023-10-02, 2023-04-02'. \
         The supported locations are 'westeurope'."
    );
    // ARM's own types answer InvalidApiVersionParameter.
    let r = emu
        .send(
            "GET",
            &format!("/subscriptions/{SUB}/resourcegroups/{RG}?api-version=2019-01-01"),
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidApiVersionParameter"
    );
    let r = emu.send("GET", &vm(BROKEN), None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "MissingApiVersionParameter"
    );
    let r = emu
        .send("GET", &format!("{}?{VM_API}", vm("no-such-vm")), None)
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "ResourceNotFound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_expand_returns_the_instance_view() {
    let emu = start(0.01).await;
    let v = emu
        .get_json(&format!("{}?%24expand=instanceView&{VM_API}", vm(BROKEN)))
        .await;
    let view = &v["properties"]["instanceView"];
    assert_eq!(view["statuses"][1]["code"], "PowerState/running");
    assert_eq!(
        view["vmAgent"]["statuses"][0]["displayStatus"], "Not Ready",
        "the incident VM's agent is down"
    );
    let v = emu
        .get_json(&format!("{}?%24expand=instanceView&{VM_API}", vm(HEALTHY)))
        .await;
    assert_eq!(
        v["properties"]["instanceView"]["vmAgent"]["statuses"][0]["displayStatus"],
        "Ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_delete_is_202_then_location_answers_200_empty() {
    let emu = start(0.01).await;
    let body = json!({"location": "westeurope", "zones": ["1"], "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4}});
    let done = emu
        .run(
            "PUT",
            &format!("{}?{DISK_API}", disk("scratch")),
            Some(body),
        )
        .await;
    assert_eq!(done["status"], "Succeeded");
    let r = emu
        .send("DELETE", &format!("{}?{DISK_API}", disk("scratch")), None)
        .await;
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("retry-after").is_none());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let first = emu.get_url(&location).await;
    assert_eq!(first.status(), 202, "still deleting");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let last = emu.get_url(&location).await;
    assert_eq!(last.status(), 200);
    assert!(last.bytes().await.unwrap().is_empty());
    let gone = emu
        .send("GET", &format!("{}?{DISK_API}", disk("scratch")), None)
        .await;
    assert_eq!(gone.status(), 404);
    let log = emu.request_log();
    assert!(
        log.iter()
            .any(|l| l["operation"] == "disks.delete" && l["status"] == 202),
        "{log:?}"
    );
}
