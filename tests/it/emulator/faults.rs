//! Scenario fault rules make failures reproducible: a given call answers 503 or 429, an LRO ends
//! Failed, a connection drops after the effect.

use serde_json::{json, Value};

use super::support::*;

const FAULTS: &str = "faults:
  - { operation: snapshot.create, call: 1, kind: http_503 }
  - { operation: disks.get, call: 2, kind: throttle(3) }
  - { operation: disks.get, call: 4, kind: drop_connection }
  - { operation: virtualMachines.deallocate, call: 1, kind: lro_failed }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_fire_on_the_calls_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("faulty.yaml");
    std::fs::write(
        &scenario,
        rescue::emulator::INCIDENT_SCENARIO.replace("faults: []\n", FAULTS),
    )
    .unwrap();
    let emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, 0.002)
    })
    .await;

    let body = json!({"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk(BROKEN_OS)}}});
    let url = format!("{}?{DISK_API}", snapshot("s1"));
    assert_eq!(
        emu.send("PUT", &url, Some(body.clone())).await.status(),
        503
    );
    assert_eq!(
        emu.send("GET", &url, None).await.status(),
        404,
        "a 503 has no effect"
    );
    assert_eq!(
        emu.send("PUT", &url, Some(body)).await.status(),
        202,
        "the retry succeeds"
    );

    let get = format!("{}?{DISK_API}", disk(PVC));
    assert_eq!(emu.send("GET", &get, None).await.status(), 200);
    let throttled = emu.send("GET", &get, None).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers()["x-ms-ratelimit-remaining-resource"]
        .to_str()
        .unwrap()
        .contains("LowCostGet3Min;0"));
    assert_eq!(
        throttled.headers()["retry-after"],
        "1",
        "3 s at time scale 0.002, rounded up to Retry-After's whole seconds"
    );
    assert_eq!(throttled.headers()["retry-after-ms"], "6");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "OperationNotAllowed");
    assert_eq!(body["error"]["details"][0]["code"], "TooManyRequests");
    assert_eq!(body["error"]["details"][0]["target"], "LowCostGet3Min");
    assert_eq!(emu.send("GET", &get, None).await.status(), 200);
    let dropped = emu
        .http
        .get(emu.url(&get))
        .bearer_auth(&emu.token)
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the fourth GET loses its connection");

    let done = emu
        .run(
            "POST",
            &format!("{}/deallocate?{VM_API}", vm(HEALTHY)),
            None,
        )
        .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "InternalOperationError");
    let v = emu
        .get_json(&format!("{}/instanceView?{VM_API}", vm(HEALTHY)))
        .await;
    assert_eq!(
        v["statuses"][1]["code"], "PowerState/running",
        "a failed deallocate leaves the VM running"
    );

    let log = emu.request_log();
    let faults: Vec<&str> = log.iter().filter_map(|l| l["fault"].as_str()).collect();
    assert_eq!(
        faults,
        vec!["http_503", "throttle(3)", "drop_connection", "lro_failed"]
    );
    assert!(log
        .iter()
        .all(|l: &Value| l["duration_ms"].is_number() && l["operation"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_throttle_asks_its_whole_wait_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("throttled.yaml");
    std::fs::write(
        &scenario,
        rescue::emulator::INCIDENT_SCENARIO.replace(
            "faults: []\n",
            "faults:\n  - { operation: disks.get, call: 1, kind: throttle(600) }\n",
        ),
    )
    .unwrap();
    let emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(scenario),
        ..config(d, 0.05)
    })
    .await;
    let r = emu
        .send("GET", &format!("{}?{DISK_API}", disk(PVC)), None)
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30", "600 s at time scale 0.05");
    assert_eq!(r.headers()["retry-after-ms"], "30000");
    let body: Value = r.json().await.unwrap();
    let detail: Value =
        serde_json::from_str(body["error"]["details"][0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(detail["operationGroup"], "LowCostGet3Min");
}

/// ARM's subscription token bucket (250 reads, 25 a second back) empties under a burst and
/// answers as ARM does; writes have a bucket of their own. Unscaled, so the burst outruns the
/// refill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reads_empties_arms_subscription_bucket() {
    let emu = start(1.0).await;
    let get = format!("{}?{DISK_API}", disk(PVC));
    let first = emu.send("GET", &get, None).await;
    assert_eq!(
        first.headers()["x-ms-ratelimit-remaining-subscription-reads"],
        "249"
    );
    let mut throttled = None;
    for _ in 0..400 {
        let r = emu.send("GET", &get, None).await;
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("400 reads in a burst outran 25 a second");
    assert_eq!(
        r.headers()["x-ms-ratelimit-remaining-subscription-reads"],
        "0"
    );
    assert_eq!(
        r.headers()["retry-after"],
        "1",
        "the next token is under a second away"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SubscriptionRequestsThrottled");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Number of 'read' requests for subscription ")
            && message.contains("https://aka.ms/arm-throttling"),
        "{message}"
    );
    // A write is counted apart: its bucket is full.
    let tag = emu
        .send(
            "PATCH",
            &format!("{}?{DISK_API}", disk(PVC)),
            Some(json!({"tags": {"a": "b"}})),
        )
        .await;
    assert_eq!(
        tag.headers()["x-ms-ratelimit-remaining-subscription-writes"],
        "199"
    );
}
