//! The repair under Azure's transient failures: throttling, 5xx, dropped connections are retried
//! visibly by our own retry policy; an operation that ends Failed stops the step with Azure's error
//! and `rescue resume` finishes the run once the fault is gone.

use rescue::azure::ids::Kind;
use serde_json::Value;

use super::images;
use super::support::*;

#[test]
fn throttling_5xx_and_a_lost_answer_are_retried_and_shown() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::with_faults(
        None,
        &[
            r#"{ operation: snapshot.create, call: 1, kind: "throttle(8)" }"#,
            r#"{ operation: disk.create, call: 1, kind: http_503 }"#,
            r#"{ operation: disk.create, call: 2, kind: drop_connection }"#,
        ],
    );
    // JSON events: the plain reporter shows at most one status line per second per step.
    let out = r.repair(&["--yes", "--output", "json"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("throttled by Azure until") && all.contains("HighCostSnapshotCreateHydrate"),
        "the throttle wait and its bucket are not shown:\n{all}"
    );
    assert!(
        all.contains("Azure answered 503")
            && all.contains("reading the resource to see whether it took effect"),
        "a refused write is not re-read:\n{all}"
    );
    assert!(
        all.contains("Azure did not answer"),
        "the lost answer is not shown:\n{all}"
    );
    assert_eq!(
        r.list(Kind::Snapshot).len(),
        1,
        "a retried PUT made a second snapshot"
    );
    let copies = r
        .list(Kind::Disk)
        .into_iter()
        .filter(|d| d.pointer("/tags/rescue-run").is_some())
        .count();
    assert_eq!(
        copies, 1,
        "the step re-run after the lost answer made a second copy"
    );
}

#[test]
fn a_failed_operation_stops_the_step_with_azure_error_and_resume_finishes() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::with_faults(
        None,
        &[r#"{ operation: disk.create, call: 1, kind: lro_failed }"#],
    );
    let out = r.repair(&["--yes"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("the operation ended Failed"),
        "Azure's operation error is not shown:\n{all}"
    );
    let vm: Value = r.vm(VM);
    assert!(
        vm.pointer("/properties/storageProfile/osDisk/name")
            .and_then(Value::as_str)
            .unwrap()
            .ends_with("927"),
        "swapped after a failure"
    );

    let runs = std::fs::read_dir(r.dir.path().join("state/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let resumed = r.rescue(&["resume", runs.to_str().unwrap(), "--yes"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let copies: Vec<Value> = r
        .list(Kind::Disk)
        .into_iter()
        .filter(|d| d.pointer("/tags/rescue-run").is_some())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
}
