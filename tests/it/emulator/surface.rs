//! ARM's surface around the compute resources: metadata (no token), subscriptions, locations,
//! resource groups, and subscription-wide lists paged with nextLink.

use serde_json::{json, Value};

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_endpoints_are_served_without_a_token() {
    let emu = start(0.01).await;
    let (status, m) = emu
        .get_anonymous("/metadata/endpoints?api-version=2022-09-01")
        .await;
    assert_eq!(status, 200);
    assert_eq!(m["resourceManager"], format!("{}/", emu.base));
    assert_eq!(
        m["authentication"]["loginEndpoint"],
        format!("{}/", emu.base)
    );
    assert_eq!(
        m["authentication"]["audiences"][0],
        "https://management.core.windows.net/"
    );
    let (status, _) = emu.get_anonymous("/metadata/endpoints").await;
    assert_eq!(status, 400, "api-version is required here too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_locations_and_resource_groups() {
    let emu = start(0.01).await;
    let subs = emu.get_json("/subscriptions?api-version=2022-12-01").await;
    assert_eq!(subs["value"][0]["subscriptionId"], SUB);
    assert_eq!(subs["value"][0]["tenantId"], emu.login.tenant.as_str());
    assert_eq!(subs["value"][0]["state"], "Enabled");
    let sub = emu
        .get_json(&format!("/subscriptions/{SUB}?api-version=2022-12-01"))
        .await;
    assert_eq!(sub["id"], format!("/subscriptions/{SUB}"));
    let locs = emu
        .get_json(&format!(
            "/subscriptions/{SUB}/locations?api-version=2022-12-01"
        ))
        .await;
    assert_eq!(locs["value"][0]["name"], "westeurope");
    assert_eq!(locs["value"][0]["displayName"], "West Europe");

    let rg = emu
        .get_json(&format!(
            "/subscriptions/{SUB}/resourcegroups/{RG}?api-version=2024-11-01"
        ))
        .await;
    assert_eq!(rg["type"], "Microsoft.Resources/resourceGroups");
    assert_eq!(rg["properties"]["provisioningState"], "Succeeded");
    let head = emu
        .send(
            "HEAD",
            &format!("/subscriptions/{SUB}/resourcegroups/nope?api-version=2024-11-01"),
            None,
        )
        .await;
    assert_eq!(head.status(), 404);
    let path = format!("/subscriptions/{SUB}/resourcegroups/new-rg?api-version=2024-11-01");
    let put = emu
        .send("PUT", &path, Some(json!({"location": "westeurope"})))
        .await;
    assert_eq!(put.status(), 201);
    assert_eq!(
        emu.send("PUT", &path, Some(json!({"location": "westeurope"})))
            .await
            .status(),
        200
    );
    assert_eq!(emu.send("HEAD", &path, None).await.status(), 204);
    let list = emu
        .get_json(&format!(
            "/subscriptions/{SUB}/resourcegroups?api-version=2024-11-01"
        ))
        .await;
    let names: Vec<&str> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"new-rg") && names.contains(&RG),
        "{names:?}"
    );
    let other = emu
        .send(
            "GET",
            "/subscriptions/00000000-0000-0000-0000-00000000ffff?api-version=2022-12-01",
            None,
        )
        .await;
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_wide_lists_page_with_next_link() {
    let emu = start(0.01).await;
    let mut url = emu.url(&format!(
        "/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version=2026-04-01"
    ));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = emu.get_url(&url).await.json().await.unwrap();
        pages += 1;
        names.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string()),
        );
        match page["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    // The incident scenario pages by 3: 5 VMs in 2 pages, each once.
    assert_eq!((pages, names.len()), (2, 5), "{names:?}");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5);
}
