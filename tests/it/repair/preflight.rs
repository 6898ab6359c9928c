//! Pre-flight: each VM kind the OS-disk swap cannot repair (or repairs only with a go-ahead) is
//! refused with exit 2, by `plan` and by `run`, and the emulator's request log shows no request
//! that changes anything.

use serde_json::Value;

use super::images;
use super::support::*;

/// `rescue COMMAND os-disk-swap` on the kinds scenario `r` serves; exit code, output, and the
/// ARM requests it made that could change something (sign-ins and reads left out). The
/// emulator is the test's, not one inside rescue: a refused run keeps no run directory, so
/// the log of an emulator in it would be gone, and an empty list would prove nothing.
fn kinds(
    r: &Rehearsal,
    command: &str,
    vm: &str,
    rescue: &str,
) -> (Option<i32>, String, Vec<Value>) {
    let before = r.requests().len();
    let out = r.rescue(
        &[
            &[command, "os-disk-swap"][..],
            &[
                "--input",
                "resource_group=kinds-rg",
                "--input",
                &format!("vm={vm}"),
            ],
            &["--input", &format!("rescue_vm={rescue}")],
            if command == "run" {
                &["--yes"][..]
            } else {
                &[]
            },
        ]
        .concat(),
    );
    let requests = r.requests_after(before);
    // The pre-flight reads the VMs first: a log without those reads is not this run's.
    assert!(
        requests.iter().any(|q| q["method"] == "GET"),
        "{command} {vm}: the emulator logged no read\n{}",
        text(&out)
    );
    let writes = requests
        .into_iter()
        .filter(|q| q["method"] != "GET")
        .filter(|q| q["operation"] != "virtualMachines.retrieveBootDiagnosticsData")
        .collect();
    (out.status.code(), text(&out), writes)
}

#[test]
fn each_kind_that_cannot_be_swapped_is_refused_before_any_change() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::scenario(&repo("examples/emulator/kinds.yaml"));
    for (vm, rescue, reason) in [
        ("ephemeral-node", "rescue", "ephemeral"),
        ("ade-node", "rescue", "Azure Disk Encryption"),
        ("windows-node", "rescue", "Windows"),
        ("arm-node", "rescue", "architectures differ"),
        ("aks-node", "gen1-rescue", "generations differ"),
        ("no-such-vm", "rescue", "does not exist"),
    ] {
        for command in ["plan", "run"] {
            let (code, out, writes) = kinds(&r, command, vm, rescue);
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
    let r = Rehearsal::scenario(&repo("examples/emulator/kinds.yaml"));
    let (code, out, _) = kinds(&r, "plan", "aks-node", "rescue");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("aks-node-replace") && out.contains("support policy"),
        "{out}"
    );
    let (code, out, writes) = kinds(&r, "run", "aks-node", "rescue");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("allow_aks_node=true") && out.contains("--allow-aks-node"),
        "{out}"
    );
    assert!(writes.is_empty(), "{writes:?}");

    let (code, out, _) = kinds(&r, "plan", "healthy-node", "rescue");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("looks healthy"), "{out}");
    // --yes does not answer it, and there is no terminal to ask on.
    let (code, out, writes) = kinds(&r, "run", "healthy-node", "rescue");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("force_healthy=true"), "{out}");
    assert!(writes.is_empty(), "{writes:?}");
}
