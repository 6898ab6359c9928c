//! The judges: clients we did not write run the manual repair against `rescue emulator serve`.
//! azure-cli (`tests/conformance/az_repair.sh`) and the Python SDK with its own LRO pollers
//! (`tests/conformance/sdk_repair.py`), each against an emulator started in a network namespace
//! of its own with only loopback up, and run inside that namespace: nothing they send can leave
//! 127.0.0.1. `.ci/setup` installs them (pinned) in `$RESCUE_CONFORMANCE_VENV`
//! (default /opt/rescue-conformance). If a judge fails, the emulator is wrong.

mod login;

use std::path::PathBuf;
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

use crate::crash::support::{e2fsck_partitions, repo, text, Served, RG};

/// Azure's latencies / 50: a repair takes seconds, polling still happens.
const TIME_SCALE: &str = "0.02";

pub(crate) fn venv(which: &str, program: &str) -> PathBuf {
    let root = std::env::var_os("RESCUE_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/rescue-conformance"));
    let path = root.join(which).join("bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: run `bash .ci/setup` (it installs the pinned judges)",
        path.display()
    );
    path
}

/// Runs a judge beside an isolated emulator; returns its output, the emulator's ARM requests
/// and the emulator (for a look at its disks).
fn judge(
    name: &str,
    program: PathBuf,
    args: &[PathBuf],
    extra_env: &[(&str, String)],
) -> (Output, Vec<Value>, tempfile::TempDir) {
    judge_on(None, name, program, args, extra_env)
}

/// As `judge`, beside an emulator seeded from `scenario` (None: the incident).
pub(crate) fn judge_on(
    scenario: Option<&std::path::Path>,
    name: &str,
    program: PathBuf,
    args: &[PathBuf],
    extra_env: &[(&str, String)],
) -> (Output, Vec<Value>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start_isolated(&dir.path().join("data"), TIME_SCALE, scenario);
    let links = served
        .in_netns("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert_eq!(
        links.lines().count(),
        1,
        "the namespace has loopback only:\n{links}"
    );
    assert!(links.contains(": lo:"), "{links}");

    let started = Instant::now();
    let mut cmd = served.in_netns(program);
    cmd.args(args)
        .env("AZURE_CONFIG_DIR", dir.path().join("azure-cli"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in served
        .login
        .env()
        .into_iter()
        .chain(extra_env.iter().cloned())
    {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the judge");
    // Visible in the test's output: how long the judge took.
    eprintln!("{name}: {:.1} s wall time", started.elapsed().as_secs_f64());
    let requests = served.requests();
    served.stop();
    (out, requests, dir)
}

/// Every ARM request answered as on a healthy run: successes, and 404s only for reads (the
/// clients look before they create).
pub(crate) fn assert_clean(requests: &[Value], allowed_404: &[&str]) {
    for r in requests {
        let status = r["status"].as_u64().unwrap();
        let op = r["operation"].as_str().unwrap();
        assert!(
            status < 400 || (status == 404 && allowed_404.contains(&op)),
            "an ARM request failed: {r}"
        );
    }
}

/// The repaired copy's root filesystem is clean.
fn assert_copy_clean(dir: &std::path::Path, name: &str) {
    let data = dir.join("data");
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("state.json")).unwrap()).unwrap();
    let key = format!("{}/{}", RG.to_ascii_lowercase(), name.to_ascii_lowercase());
    let image = data.join("images").join(
        state["disks"][&key]["image"]
            .as_str()
            .expect("the copy exists"),
    );
    assert_eq!(
        e2fsck_partitions(&image),
        vec![0],
        "e2fsck -fn on the swapped-in copy"
    );
}

#[test]
fn azure_cli_runs_the_manual_repair_unchanged() {
    let az = venv("cli", "az");
    let (out, requests, dir) = judge(
        "azure-cli 2.91.0",
        "bash".into(),
        &[repo("tests/conformance/az_repair.sh")],
        &[("AZ", az.display().to_string())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("azure-cli repair: done"),
        "{}",
        text(&out)
    );
    assert_clean(&requests, &["snapshots.get", "disks.get"]);
    assert_copy_clean(dir.path(), "vm2-os-fixed");
}

#[test]
fn python_sdk_runs_the_repair_through_its_own_pollers() {
    let python = venv("sdk", "python");
    let (out, requests, dir) = judge(
        "azure-mgmt-compute 39.0.0",
        python,
        &[repo("tests/conformance/sdk_repair.py")],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok: restarted"),
        "{}",
        text(&out)
    );
    let count: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sdk_arm_requests="))
        .expect("the script prints sdk_arm_requests=N")
        .parse()
        .unwrap();
    eprintln!("sdk_arm_requests={count}");
    // The SDK counted what the emulator saw (the repair is the first part of the script).
    assert!(
        count > 20 && count < requests.len(),
        "{count} of {}",
        requests.len()
    );
    assert_clean(&requests, &["virtualMachines.get"]);
    assert_copy_clean(dir.path(), "vm2-os-sdk-fixed");
}
