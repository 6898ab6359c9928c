//! aks-node-replace: plan, run, kill anywhere and resume; and os-disk-swap's refusal of a
//! scale-set node.

use std::time::Instant;

use super::*;
use crate::crash::support::{in_pairs, is_mutation, killed};

/// Mutations a plan may send: none but the credential read, which ARM models as a POST
/// (`Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action`).
fn writes(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| is_mutation(r))
        .filter(|r| r["operation"] != "managedClusters.listClusterAdminCredentials")
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect()
}

#[test]
fn replacing_the_dead_node_restores_service_and_keeps_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let aks = Aks::start(dir.path(), "emu", None);
    let node = aks.node_of_instance(2);
    let before = aks.kubectl(&["get", "node", &node]);
    assert!(
        before["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] != "True"),
        "the incident's node should be NotReady: {before:#}"
    );

    let args = aks.replacement("plan");
    let plan = aks.rescue(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let shown = String::from_utf8_lossy(&plan.stdout);
    for change in [
        "node pool nodepool1  count 4 -> 5",
        "spec.unschedulable = true",
        "+  snapshot",
        "power off",
        "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
        "deleteMachines",
    ] {
        assert!(
            shown.contains(change),
            "the plan lacks `{change}`:\n{shown}"
        );
    }
    assert_eq!(
        writes(&aks.served.requests()),
        Vec::<String>::new(),
        "the plan wrote"
    );

    let out = aks.replace(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = aks.run_id();
    let end = aks.end_state(&run);
    assert_restored(&end, "uninterrupted");
    assert!(
        !end.nodes.contains(&node),
        "the broken node is still registered: {:?}",
        end.nodes
    );
    // The pods did not fit on three nodes: a fifth was added, and stays as the fourth.
    let printed = text(&out);
    assert!(
        printed.contains("scaling pool nodepool1 4 -> 5") || printed.contains("4 -> 5"),
        "{printed}"
    );
    let status = aks.rescue(&["status", &run, "-o", "json"], &[]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let outputs = &status["outputs"];
    assert_eq!(
        outputs["force_detached"],
        serde_json::json!([]),
        "{status:#}"
    );
    assert!(outputs["restored_after_seconds"].is_u64(), "{status:#}");
}

#[test]
fn past_its_deadline_the_release_force_detaches_in_azure_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that Kubernetes' own detach (a CSI detach, 10 s of Azure time) is still
    // under way when the zero deadline passes.
    let aks = Aks::start_scaled(dir.path(), "emu", None, "0.02");
    let out = aks.replace_with(&["--input", "force_detach_after=0s"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("ForceDetach of pvc-"),
        "the run should say it force-detached: {said}"
    );
    let run = aks.run_id();
    let status = aks.rescue(&["status", &run, "-o", "json"], &[]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let forced = status["outputs"]["force_detached"]
        .to_string()
        .to_ascii_lowercase();
    assert!(forced.contains(&PV_DISK.to_ascii_lowercase()), "{status:#}");
    assert_restored(&aks.end_state(&run), "force-detached");
}

#[test]
fn os_disk_swap_refuses_a_scale_set_node_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let aks = Aks::start(dir.path(), "emu", None);
    let node = aks.node_of_instance(2);
    let out = aks.rescue(
        &[
            "run",
            "os-disk-swap",
            "-g",
            NODE_RG,
            "-n",
            &node,
            "--rescue-vm",
            "rescue-vm",
            "--yes",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("aks-node-replace"),
        "the refusal should name the workflow: {said}"
    );
    assert_eq!(writes(&aks.served.requests()), Vec::<String>::new());
}

/// Journal writes to kill after (each step writes at least three: intent, effect, result), one
/// every three writes so that every step of the ten is cut at one point or another.
const JOURNAL_POINTS: [u64; 10] = [2, 5, 8, 11, 14, 17, 20, 23, 26, 29];
/// Polls of the pool's and the instance's operations to kill after (every long-running
/// mutation is polled at least once).
const POLL_POINTS: [u64; 4] = [1, 2, 3, 4];

#[test]
fn killed_anywhere_the_replacement_resumes_to_the_same_end() {
    let clock = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    Aks::start(dir.path(), "pristine", None).served.stop();
    let _ = std::fs::remove_file(pristine.with_extension("requests.jsonl"));

    let reference = Aks::copy_of(&pristine, dir.path(), "reference");
    let out = reference.replace(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = reference.run_id();
    let expected = reference.end_state(&run);
    assert_restored(&expected, "uninterrupted");
    // What the kill hook counts: ARM's answers to rescue's writes (Kubernetes' are not ARM's).
    let mutations = reference
        .served
        .requests()
        .iter()
        .filter(|r| is_mutation(r) && r["status"].as_u64() < Some(300))
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/subscriptions/"))
        })
        .count() as u64;
    drop(reference);
    // The test's own credential read is one of them.
    let mut points: Vec<(&str, String)> = (1..mutations)
        .map(|k| ("RESCUE_TEST_KILL_AFTER_MUTATION", k.to_string()))
        .collect();
    points.extend(
        JOURNAL_POINTS
            .iter()
            .map(|k| ("RESCUE_TEST_KILL_AT", k.to_string())),
    );
    points.extend(
        POLL_POINTS
            .iter()
            .map(|k| ("RESCUE_TEST_KILL_AFTER_POLL", k.to_string())),
    );

    let try_point = |i: usize| {
        let (hook, k) = &points[i];
        let label = format!("{hook}={k}");
        let aks = Aks::copy_of(&pristine, dir.path(), &format!("kill-{i}"));
        eprintln!("{label}: start");
        let out = aks.replace(&[(hook, k.clone())]);
        eprintln!("{label}: killed, resuming");
        assert!(
            killed(&out),
            "{label}: not killed ({:?})\n{}",
            out.status,
            text(&out)
        );
        let run = aks.run_id();
        let out = aks.rescue(&["resume", &run, "--yes"], &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: resume failed\n{}",
            text(&out)
        );
        let end = aks.end_state(&run);
        assert_restored(&end, &label);
        assert_eq!(end, expected, "{label}: a different end state");
    };
    let same = in_pairs(points.len(), try_point);
    eprintln!(
        "aks-node-replace: {} kill points, {same} resumed to the same end state ({:.0?})",
        points.len(),
        clock.elapsed()
    );
    assert_eq!(same, points.len());
}
