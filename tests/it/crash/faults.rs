//! os-disk-swap under each emulator fault kind at a representative step: the run completes
//! through retries, or stops with a clear message and exit 1 and `resume` finishes it once the
//! fault is gone (rules fire on one call count, so they are gone afterwards).

use super::support::*;

/// Runs the repair on the incident scenario plus `rule`; resumes when it stopped with exit 1
/// and a message containing `stop_message`. Checks that the fault fired (the request log).
fn under_fault(rule: &str, stop_message: Option<&str>) {
    let with_fault = rescue::emulator::INCIDENT_SCENARIO
        .replace("\nfaults: []", &format!("\nfaults:\n  - {rule}"));
    assert_ne!(
        with_fault,
        rescue::emulator::INCIDENT_SCENARIO,
        "the incident scenario no longer ends with `faults: []`"
    );
    let Some(f) = Fixture::new(Some(&with_fault)) else {
        return;
    };
    let (emulator, state, original, original_hash) =
        (&f.emulator, &f.state, &f.original, &f.original_hash);
    let first = emulator.repair(state, &[], &[]);
    let run = only_run(state);
    match stop_message {
        None => assert_eq!(
            first.status.code(),
            Some(0),
            "{rule}: not completed through retries\n{}",
            text(&first)
        ),
        Some(message) => {
            assert_eq!(
                first.status.code(),
                Some(1),
                "{rule}: expected a stop with exit 1\n{}",
                text(&first)
            );
            let stderr = String::from_utf8_lossy(&first.stderr);
            assert!(
                stderr.contains(message) && stderr.contains(&format!("rescue resume {run}")),
                "{rule}: unclear stop\n{stderr}"
            );
            let out = emulator.rescue(state, &["resume", &run, "--yes"], &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{rule}: resume did not finish\n{}",
                text(&out)
            );
        }
    }
    emulator.assert_invariants(state, &run, original, original_hash, rule);
    let vm = emulator.vm(VM);
    assert_eq!(
        (agent(&vm).as_str(), power(&vm).as_str()),
        ("Ready", "running"),
        "{rule}"
    );
    assert_ne!(&os_disk(&vm), original, "{rule}: not swapped");
    assert!(data_disks(&emulator.vm(RESCUE_VM)).is_empty(), "{rule}");
    assert_eq!(
        emulator.fsck_runs(RESCUE_VM),
        1,
        "{rule}: fsck did not run exactly once"
    );
    let fired: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.get("fault").is_some())
        .collect();
    assert_eq!(
        fired.len(),
        1,
        "{rule}: the fault fired {} times: {fired:?}",
        fired.len()
    );
}

#[test]
fn http_500_on_the_snapshot_is_retried() {
    under_fault(
        "{operation: snapshot.create, call: 1, kind: http_500}",
        None,
    );
}

#[test]
fn http_503_on_the_attach_is_retried() {
    // attachDetachDataDisks calls: 1 attach, 2 detach.
    under_fault(
        "{operation: vm.attachDetach, call: 1, kind: http_503}",
        None,
    );
}

#[test]
fn throttling_with_retry_after_on_the_deallocate_is_waited_out() {
    under_fault(
        "{operation: vm.deallocate, call: 1, kind: throttle(1)}",
        None,
    );
}

#[test]
fn a_failed_copy_operation_stops_the_run_and_resume_finishes_it() {
    under_fault(
        "{operation: disk.create, call: 1, kind: lro_failed}",
        Some("copy"),
    );
}

#[test]
fn a_dropped_connection_on_the_swap_is_retried() {
    // vm.update calls: 1 lock, 2 swap, 3 unlock.
    under_fault(
        "{operation: vm.update, call: 2, kind: drop_connection}",
        None,
    );
}

#[test]
fn a_slow_run_command_is_waited_for() {
    under_fault("{operation: runCommand.put, call: 1, kind: slow(20)}", None);
}

#[test]
fn a_lost_run_command_answer_never_runs_fsck_twice() {
    // The PUT of the managed Run Command reaches Azure (fsck starts), its answer does not.
    let rule = "{operation: runCommand.put, call: 1, kind: drop_connection}";
    under_fault(rule, None);
}
