//! Emulator throughput, so it never becomes the bottleneck of other benchmarks:
//! requests per second for a GET-heavy load, and the time to copy a 30 GiB sparse disk.
//!
//! `cargo run --release --example bench_emulator`

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const RG: &str = "MC_prod-rg_prod-aks_westeurope";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let handle = rescue::emulator::start(rescue::emulator::Config {
        scenario: None,
        data_dir: dir.path().join("data"),
        port: 0,
        time_scale: 0.001,
        log: None,
        tls: true,
    })
    .await?;
    let base = handle.endpoint.as_str().trim_end_matches('/').to_string();
    let ca = std::fs::read(handle.ca_pem.as_ref().expect("HTTPS"))?;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
        .build()?;
    // Signed in as a client does: client credentials at the emulator's Entra endpoint.
    let login: Value = http
        .post(format!("{base}/{}/oauth2/v2.0/token", handle.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", handle.client_id.as_str()),
            ("client_secret", handle.client_secret.as_str()),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().expect("a token").to_string();
    let prefix =
        format!("{base}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute");

    // GET-heavy load: what a workflow's polling and health checks look like.
    let urls = [
        format!("{prefix}/virtualMachines/aks-nodepool1-31415926-vm2?%24expand=instanceView&api-version=2024-07-01"),
        format!("{prefix}/disks/pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40?api-version=2024-03-02"),
        format!("{prefix}/disks?api-version=2024-03-02"),
    ];
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (http, token, urls) = (http.clone(), token.clone(), urls.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                let r = http
                    .get(&urls[(n as usize + w) % urls.len()])
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("GET");
                assert!(r.status().is_success());
                r.bytes().await.expect("body");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "GET-heavy load: {:.0} requests/s ({total} requests, 8 concurrent clients, {secs:.1} s)",
        total as f64 / secs
    );

    // A 30 GiB disk with data scattered over it, like a used OS disk: snapshot = full copy.
    let disk_url = format!("{prefix}/disks/bench-30g?api-version=2024-03-02");
    let body = json!({"location": "westeurope", "zones": ["1"], "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 30}});
    let r = http
        .put(&disk_url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "disk create: {}", r.status());
    let state: Value = serde_json::from_slice(&std::fs::read(dir.path().join("data/state.json"))?)?;
    let image = state["disks"][format!("{}/bench-30g", RG.to_ascii_lowercase())]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("data/images").join(image))?;
    let chunk = vec![0xA5u8; 4 << 20];
    for i in 0..64u64 {
        file.write_all_at(&chunk, i * (30 << 30) / 64)?;
    }
    file.sync_all()?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap_url = format!("{prefix}/snapshots/bench-30g-snap?api-version=2024-03-02");
    let body = json!({"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId":
        format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/bench-30g")}}});
    let t = Instant::now();
    let r = http
        .put(&snap_url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "snapshot: {}", r.status());
    println!(
        "30 GiB sparse disk copy (256 MiB of data in 64 extents): {:.0} ms (snapshot PUT answered after the copy)",
        t.elapsed().as_secs_f64() * 1e3
    );
    handle.shutdown().await;
    Ok(())
}
