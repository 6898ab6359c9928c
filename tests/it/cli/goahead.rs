//! The go-ahead: a run that would change Azure asks first. With no terminal and no `--yes` it
//! is refused with exit 2 before any request that changes Azure, and no run is recorded; the
//! repair by name, with azure-cli-shaped flags, works from outside the repository.

use super::support::*;
use crate::crash::support::{is_mutation, Served};

#[test]
fn no_terminal_and_no_yes_is_exit_2_with_no_mutating_request() {
    if !is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let dir = tempfile::tempdir().unwrap();
    let emulator = Served::start(&dir.path().join("emulator"), None);
    let state = dir.path().join("state");
    let mut args = vec!["run", "os-disk-swap"];
    args.extend_from_slice(INCIDENT);
    let out = emulator.rescue(&state, &args, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--yes") && stderr.contains("nothing was started"),
        "{stderr}"
    );
    let mutations: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(is_mutation)
        .collect();
    assert!(mutations.is_empty(), "mutating requests: {mutations:?}");
    assert!(runs(&state).is_empty(), "a refused run is not recorded");
}

#[test]
fn the_repair_by_name_with_azure_cli_flags_works_outside_the_repository() {
    if !is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "os-disk-swap"];
    args.extend_from_slice(INCIDENT);
    args.extend(["--emulator", "--yes"]);
    let out = run(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The go-ahead's plan names where it acts, then the end says what matters.
    for needle in [
        "Target: the emulator inside rescue at https://127.0.0.1:",
        "\"rescue emulator\"",
        "Plan: 2 to add",
        "downtime:",
        "original      ",
        ORIGINAL_DISK,
        "repaired copy",
        "fsck verdict (step fsck): repaired",
        "report:  ",
        "next: rescue cleanup ",
    ] {
        assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
    }
    let run_dir = runs(&dir.path().join("state")).pop().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert!(report["downtime"]["ms"].as_u64().unwrap() > 0, "{report}");
    let roles: Vec<&str> = report["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["original", "snapshot", "repaired copy"]);
    // Each mutating step's Azure requests carry their correlation ids.
    let timeline = report["timeline"].as_array().unwrap();
    let deallocate = timeline.iter().find(|s| s["id"] == "deallocate").unwrap();
    let call = &deallocate["calls"][0];
    assert_eq!(call["method"], "POST", "{deallocate}");
    assert!(
        call["correlation_id"]
            .as_str()
            .is_some_and(|c| c.len() > 10),
        "{call}"
    );
    assert!(call["operation_id"].is_string(), "{call}");
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        md.contains("| VM downtime |") && md.contains("## Timeline"),
        "{md}"
    );
}
