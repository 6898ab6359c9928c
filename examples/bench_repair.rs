//! Repair speed figures: `cargo run --release --example bench_repair [TIME_SCALE]` (as root: the
//! emulator runs the fsck script on loop devices).
//!
//! Runs workflows/os-disk-swap.yaml with the real release binary against an in-process emulator
//! whose Azure-like latencies are scaled by TIME_SCALE (default 0.05), then prints
//! - wall time ÷ the sum of the emulated operation times (every operation of this workflow is on
//!   the critical path: the steps are sequential); target ≤ 1.10, i.e. no idle waits beyond
//!   what the operations themselves take;
//! - ARM requests per long-running operation, from the emulator's request log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const TARGET_RATIO: f64 = 1.10;

fn main() {
    let scale: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("TIME_SCALE is a number"))
        .unwrap_or(0.05);
    let rescue = release_binary();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("requests.jsonl");
    let data = dir.path().join("emulator");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = rescue::emulator::Config {
        scenario: None,
        data_dir: data.clone(),
        port: 0,
        time_scale: scale,
        log: Some(log.clone()),
        tls: true,
    };
    let emulator = runtime
        .block_on(rescue::emulator::start(config))
        .expect("the emulator starts (are you root?)");

    let started = Instant::now();
    let out = Command::new(&rescue)
        .arg("run")
        .arg(repo.join("workflows/os-disk-swap.yaml"))
        .arg("--inputs")
        .arg(repo.join("examples/incident-inputs.yaml"))
        .arg("--yes")
        .env("RESCUE_STATE_DIR", dir.path().join("state"))
        .env(
            "RESCUE_EMULATOR_URL",
            emulator.endpoint.as_str().trim_end_matches('/'),
        )
        .env(
            "RESCUE_EMULATOR_CA",
            emulator.ca_pem.as_ref().expect("HTTPS"),
        )
        .env("AZURE_SUBSCRIPTION_ID", &emulator.subscription_id)
        .env("AZURE_TENANT_ID", &emulator.tenant_id)
        .env("AZURE_CLIENT_ID", &emulator.client_id)
        .env("AZURE_CLIENT_SECRET", &emulator.client_secret)
        .env(
            "AZURE_AUTHORITY_HOST",
            emulator.endpoint.as_str().trim_end_matches('/'),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn rescue");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the repair failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.block_on(emulator.shutdown());

    let operations = emulated_operations(&data);
    let critical: f64 = operations.iter().map(|(_, s)| s).sum();
    let requests = request_counts(&log);
    let total: usize = requests.values().sum();

    println!("os-disk-swap on the emulator, time scale {scale}");
    for (kind, seconds) in &operations {
        println!("  {kind:<24} {seconds:>7.3} s emulated");
    }
    println!("  wall time                {wall:>7.3} s (process start included)");
    println!(
        "  critical path (emulated) {critical:>7.3} s over {} operations",
        operations.len()
    );
    let ratio = wall / critical;
    println!(
        "wall / critical path: {ratio:.3} (target <= {TARGET_RATIO}) {}",
        if ratio <= TARGET_RATIO {
            "OK"
        } else {
            "OVER TARGET"
        }
    );
    let by_method: Vec<String> = requests.iter().map(|(m, n)| format!("{m} {n}")).collect();
    println!(
        "ARM requests: {total} ({}), {:.1} per operation",
        by_method.join(", "),
        total as f64 / operations.len().max(1) as f64
    );
}

/// (kind, emulated seconds) of every long-running operation the emulator ran, in start order.
fn emulated_operations(data: &Path) -> Vec<(String, f64)> {
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("state.json")).expect("emulator state"))
            .expect("JSON");
    let time = |v: &Value| OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).ok();
    let mut ops: Vec<(OffsetDateTime, String, f64)> = state["operations"]
        .as_object()
        .expect("operations")
        .values()
        .filter_map(|op| {
            let (start, end) = (time(&op["start"])?, time(&op["end"])?);
            let kind = op["kind"]
                .as_object()
                .and_then(|k| k.keys().next().cloned())
                .unwrap_or_else(|| op["kind"].to_string());
            Some((start, kind, (end - start).as_seconds_f64()))
        })
        .collect();
    ops.sort_by_key(|(start, ..)| *start);
    ops.into_iter()
        .map(|(_, kind, secs)| (kind, secs))
        .collect()
}

fn request_counts(log: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).expect("request log").lines() {
        let entry: Value = serde_json::from_str(line).expect("a JSON line");
        // Sign-in requests go to Entra, not ARM.
        if entry["operation"]
            .as_str()
            .is_some_and(|o| o.starts_with("entra."))
        {
            continue;
        }
        *counts
            .entry(entry["method"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// The release `rescue` next to this example (built here so the figure is always current);
/// `RESCUE_BENCH_BIN` measures another build instead.
fn release_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RESCUE_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "rescue"])
        .status()
        .expect("cargo build");
    assert!(built.success(), "cannot build the release binary");
    let examples = std::env::current_exe().expect("current exe");
    examples
        .parent()
        .and_then(Path::parent)
        .map(|release| release.join("rescue"))
        .filter(|b| b.is_file())
        .expect("target/release/rescue")
}
