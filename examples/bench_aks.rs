//! Time to restore service on AKS: `cargo run --release --example bench_aks [TIME_SCALE]`.
//!
//! Runs the built-in aks-node-replace with the real release binary against an in-process
//! emulator seeded with examples/emulator/aks-incident.yaml (the incident as it would be today:
//! a 4-node pool, one node dead with PostgreSQL's disk on it, pods that do not fit on three),
//! its Azure and Kubernetes latencies scaled by TIME_SCALE (default 0.1), then prints
//! - the time from the run's start until every displaced pod served again (the `moved` step's
//!   end), in wall seconds and in emulated Azure seconds (÷ TIME_SCALE);
//! - the critical path of the waits that time cannot beat: the pool's scale-out and the new
//!   node's boot (or the snapshot, if longer), the power-off, then the volume's detach, its
//!   attach to the new node and the container start (the emulator's documented latencies);
//! - the same time set against AKS auto-repair, which "can take up to an hour" per node
//!   (reboot → reimage → redeploy, Microsoft docs "Azure Kubernetes Service (AKS) node
//!   auto-repair") and reimages the disk that holds the evidence.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use rescue::emulator::kube::controllers::{CSI_ATTACH, KUBELET_START};
use support::{release_binary, scale_and_runtime, Emulated};

/// AKS auto-repair's documented ceiling per node.
const AUTO_REPAIR_SECONDS: f64 = 3600.0;

fn main() {
    let (scale, runtime) = scale_and_runtime();
    let rescue = release_binary();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let emu = Emulated::start(
        &runtime,
        scale,
        Some(repo.join("examples/emulator/aks-incident.yaml")),
    );
    let node = dead_node(&emu.data);
    let state_dir = emu.dir.path().join("state");
    let started = Instant::now();
    let out = Command::new(&rescue)
        .args([
            "run",
            "aks-node-replace",
            "-g",
            "prod-rg",
            "--cluster-name",
            "prod-aks",
        ])
        .args(["--node", &node, "--yes"])
        .env("RESCUE_STATE_DIR", &state_dir)
        .envs(emu.env())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn rescue");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the replacement failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.block_on(emu.handle.shutdown());

    let journal = only_journal(&state_dir);
    let at = |v: &Value| OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).ok();
    let step_end = |id: &str| {
        journal["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == id))
            .and_then(|s| at(&s["ended"]))
            .unwrap_or_else(|| panic!("step {id} has no end"))
    };
    let run_start = at(&journal["created"]).expect("the run's start");
    let restored = (step_end("moved") - run_start).as_seconds_f64();

    let ops = operations(&emu.data);
    // The first of each kind: the scale-out (deleteMachines is a pool operation too, after
    // service is back), the snapshot, the power-off.
    let of = |kind: &str| -> f64 {
        ops.iter()
            .filter(|(k, _, _)| k == kind)
            .min_by_key(|(_, _, end)| *end)
            .map_or(0.0, |(_, s, _)| *s)
    };
    let boot = new_node_boot(&emu.data, &ops);
    let kubernetes = (2.0 * CSI_ATTACH + KUBELET_START) * scale;
    let critical = (of("PoolScale") + boot).max(of("VolumeCreate")) + of("VmPower") + kubernetes;
    println!("aks-node-replace on examples/emulator/aks-incident.yaml, time scale {scale}");
    println!(
        "  whole run (wall)                 {wall:>7.2} s (delete-machine and the pool's count after service is back)"
    );
    println!(
        "  service restored after           {restored:>7.2} s wall = {:>6.0} s in Azure time",
        restored / scale
    );
    println!(
        "  critical path of the waits       {critical:>7.2} s: scale-out {:.2} + new node boot {boot:.2} (snapshot {:.2} beside), power-off {:.2}, detach + attach + container start {kubernetes:.2}",
        of("PoolScale"),
        of("VolumeCreate"),
        of("VmPower")
    );
    println!(
        "  restored / critical path         {:>7.3}",
        restored / critical
    );
    println!(
        "  AKS auto-repair's documented     {:>7.0} s per node (and it reimages the evidence): rescue restores service {:.0}x sooner",
        AUTO_REPAIR_SECONDS,
        AUTO_REPAIR_SECONDS / (restored / scale)
    );
}

/// The node of the scenario's broken instance (2), as the emulator named it.
fn dead_node(data: &Path) -> String {
    let state = read_state(data);
    state["vms"]
        .as_object()
        .expect("vms")
        .values()
        .find_map(|v| {
            let m = v.get("scale_set")?;
            (m["instance_id"] == 2).then(|| m["computer_name"].as_str().map(str::to_string))?
        })
        .expect("instance 2 of the pool")
}

fn read_state(data: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data.join("state.json")).expect("emulator state"))
        .expect("JSON")
}

fn only_journal(state: &Path) -> Value {
    let runs = state.join("runs");
    let run = std::fs::read_dir(&runs)
        .expect("runs")
        .next()
        .expect("one run")
        .expect("run dir");
    serde_json::from_slice(&std::fs::read(run.path().join("journal.json")).expect("journal"))
        .expect("journal JSON")
}

/// Every operation the emulator ran: (kind, seconds, end).
fn operations(data: &Path) -> Vec<(String, f64, OffsetDateTime)> {
    let state = read_state(data);
    let time = |v: &Value| OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).ok();
    state["operations"]
        .as_object()
        .expect("operations")
        .values()
        .filter_map(|op| {
            let (start, end) = (time(&op["start"])?, time(&op["end"])?);
            let kind = op["kind"].as_object()?.keys().next()?.clone();
            Some((kind, (end - start).as_seconds_f64(), end))
        })
        .collect()
}

/// From the scale-out's end to its new node's agent Ready: the guest's boot, which the pods
/// that did not fit wait for.
fn new_node_boot(data: &Path, ops: &[(String, f64, OffsetDateTime)]) -> f64 {
    let state = read_state(data);
    let time = |v: &Value| OffsetDateTime::parse(v.as_str().unwrap_or_default(), &Rfc3339).ok();
    let scaled = ops
        .iter()
        .filter(|(k, _, _)| k == "PoolScale")
        .map(|(_, _, end)| *end)
        .min();
    let ready = state["vms"]
        .as_object()
        .expect("vms")
        .values()
        .filter(|v| v["scale_set"]["instance_id"].as_u64() >= Some(4))
        .filter_map(|v| time(&v["agent_ready_since"]).or_else(|| time(&v["agent_ready_at"])))
        .min();
    match (scaled, ready) {
        (Some(s), Some(r)) if r > s => (r - s).as_seconds_f64(),
        _ => 0.0,
    }
}
