//! Pre-flight: each VM kind the OS-disk swap cannot repair (or repairs only with a go-ahead) is
//! refused with exit 2, by `plan` and by `run`, and the emulator's request log shows no request
//! that changes anything.

use serde_json::Value;

use super::images;
use super::support::*;

/// `rescue ARGS` on the kinds scenario (in-process emulator); exit code, output, and the ARM
/// requests that could change something (sign-ins and reads left out).
fn kinds(args: &[&str], vm: &str, rescue: &str) -> (Option<i32>, String, Vec<Value>) {
    let state = tempfile::tempdir().unwrap();
    let scenario = repo("examples/emulator/kinds.yaml");
    let out = rescue_cmd(state.path())
        .args(args)
        .arg("os-disk-swap")
        .arg(format!("--emulator={}", scenario.display()))
        .args([
            "--input",
            "resource_group=kinds-rg",
            "--input",
            &format!("vm={vm}"),
        ])
        .args(["--input", &format!("rescue_vm={rescue}")])
        .args(if args[0] == "run" {
            &["--yes"][..]
        } else {
            &[]
        })
        .output()
        .unwrap();
    let mut writes = Vec::new();
    if let Ok(runs) = std::fs::read_dir(state.path().join("runs")) {
        for run in runs.flatten() {
            let log = run.path().join("emulator/requests.jsonl");
            writes.extend(
                crate::support::arm_requests(&log)
                    .into_iter()
                    .filter(|q| q["method"] != "GET")
                    .filter(|q| q["operation"] != "virtualMachines.retrieveBootDiagnosticsData"),
            );
        }
    }
    (out.status.code(), text(&out), writes)
}

#[test]
fn each_kind_that_cannot_be_swapped_is_refused_before_any_change() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    for (vm, rescue, reason) in [
        ("ephemeral-node", "rescue", "ephemeral"),
        ("ade-node", "rescue", "Azure Disk Encryption"),
        ("windows-node", "rescue", "Windows"),
        ("arm-node", "rescue", "architectures differ"),
        ("aks-node", "gen1-rescue", "generations differ"),
        ("no-such-vm", "rescue", "does not exist"),
    ] {
        for command in ["plan", "run"] {
            let (code, out, writes) = kinds(&[command], vm, rescue);
            assert_eq!(code, Some(2), "{command} {vm}: {out}");
            assert!(
                out.contains(reason),
                "{command} {vm}: no `{reason}` in\n{out}"
            );
            assert!(
                writes.is_empty(),
                "{command} {vm} changed something: {writes:?}"
            );
        }
    }
}

#[test]
fn an_aks_node_needs_its_acknowledgement_and_a_healthy_vm_its_go_ahead() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let (code, out, _) = kinds(&["plan"], "aks-node", "rescue");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("aks-node-replace") && out.contains("support policy"),
        "{out}"
    );
    let (code, out, writes) = kinds(&["run"], "aks-node", "rescue");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("allow_aks_node=true") && out.contains("--allow-aks-node"),
        "{out}"
    );
    assert!(writes.is_empty(), "{writes:?}");

    let (code, out, _) = kinds(&["plan"], "healthy-node", "rescue");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("looks healthy"), "{out}");
    // --yes does not answer it, and there is no terminal to ask on.
    let (code, out, writes) = kinds(&["run"], "healthy-node", "rescue");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("force_healthy=true"), "{out}");
    assert!(writes.is_empty(), "{writes:?}");
}
