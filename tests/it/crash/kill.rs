//! Kill anywhere, resume, same end: os-disk-swap on a served emulator (it outlives the kill),
//! `rescue` SIGKILLed right after each mutating ARM request, in the middle of polling, right after
//! journal writes and in the middle of one (the documented hooks RESCUE_TEST_KILL_AFTER_MUTATION,
//! RESCUE_TEST_KILL_AFTER_POLL, RESCUE_TEST_KILL_AT, RESCUE_TEST_KILL_IN_WRITE), then
//! `rescue resume RUN_ID --yes`.

use std::time::Instant;

use super::support::*;

/// Crash points after journal writes tried (every step writes at least three; these land on
/// different steps, among them intent written / execute returned / result written).
pub(crate) const JOURNAL_POINTS: [u64; 4] = [4, 13, 24, 37];
/// Journal writes killed midway (new content in the temporary file, not yet renamed).
const IN_WRITE_POINTS: [u64; 3] = [7, 19, 31];
/// Poll kills tried. How often an operation is polled depends on timing, but every
/// long-running mutation is polled at least once, so these early polls always happen.
const POLL_POINTS: [u64; 4] = [2, 4, 6, 8];

/// The polls (1-based, among all polls) of the managed Run Command's operation: its first and its
/// last, so the run is killed while fsck runs and right after it finished, before the verdict
/// is journaled.
fn run_command_polls(requests: &[serde_json::Value]) -> Vec<u64> {
    let mut polls = 0u64;
    let mut during = Vec::new();
    let mut running = false;
    for r in requests {
        if is_poll(r) {
            polls += 1;
            if running {
                during.push(polls);
            }
        } else if r["operation"] == "virtualMachineRunCommands.createOrUpdate" {
            running = true;
        } else if is_mutation(r) {
            running = false;
        }
    }
    assert!(!during.is_empty(), "the Run Command was not polled");
    let mut ends = vec![during[0], *during.last().unwrap()];
    ends.dedup();
    ends
}

#[test]
fn killed_at_every_mutation_resumes_to_the_same_end_state() {
    if !crate::repair::images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let clock = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (pristine, original, original_hash) = pristine(dir.path(), None);

    // The uninterrupted run: the end state every interrupted one must reach, and its requests.
    let reference = Served::copy_of(&pristine, &dir.path().join("reference"));
    let state = dir.path().join("reference-state");
    let out = reference.repair(&state, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = only_run(&state);
    reference.assert_invariants(&state, &run, &original, &original_hash, "uninterrupted");
    let expected = reference.end_state(&run);
    assert_ne!(
        expected.vm_os_disk, original,
        "the reference run did not swap the disk"
    );
    assert_eq!(
        (expected.vm_agent.as_str(), expected.vm_lock_tag.as_ref()),
        ("Ready", None)
    );
    assert_eq!(expected.fsck_runs, 1, "the uninterrupted run ran fsck once");
    let requests = reference.requests();
    drop(reference);
    let mutations = requests.iter().filter(|r| is_mutation(r)).count() as u64;
    let polls = requests.iter().filter(|r| is_poll(r)).count() as u64;
    assert!(
        mutations >= 10,
        "lock, deallocate, snapshot, copy, attach, fsck (create, delete), detach, swap, start, unlock: {mutations}"
    );

    let mut points: Vec<(&str, String)> = (1..=mutations)
        .map(|k| ("RESCUE_TEST_KILL_AFTER_MUTATION", k.to_string()))
        .collect();
    assert!(polls >= *POLL_POINTS.last().unwrap(), "only {polls} polls");
    points.extend(
        POLL_POINTS
            .iter()
            .chain(&run_command_polls(&requests))
            .map(|k| ("RESCUE_TEST_KILL_AFTER_POLL", k.to_string())),
    );
    points.extend(
        JOURNAL_POINTS
            .iter()
            .map(|k| ("RESCUE_TEST_KILL_AT", k.to_string())),
    );
    points.extend(
        IN_WRITE_POINTS
            .iter()
            .map(|k| ("RESCUE_TEST_KILL_IN_WRITE", k.to_string())),
    );

    let try_point = |i: usize| {
        let (hook, k) = &points[i];
        let label = format!("{hook}={k}");
        let emulator = Served::copy_of(&pristine, &dir.path().join(format!("kill-{i}")));
        let state = dir.path().join(format!("kill-{i}-state"));
        let out = emulator.repair(&state, &[], &[(hook, k.clone())]);
        assert!(
            killed(&out),
            "{label}: rescue was not killed (exit {:?})\n{}",
            out.status,
            text(&out)
        );
        let run = only_run(&state);
        if *hook == "RESCUE_TEST_KILL_IN_WRITE" {
            let partial = std::fs::read_dir(state.join("runs").join(&run))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".journal-")
                })
                .count();
            assert_eq!(
                partial, 1,
                "{label}: killed mid-write, the new journal should be left in its temporary file"
            );
        }
        let out = emulator.rescue(&state, &["resume", &run, "--yes"], &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: resume failed\n{}",
            text(&out)
        );
        emulator.assert_invariants(&state, &run, &original, &original_hash, &label);
        assert_eq!(
            emulator.end_state(&run),
            expected,
            "{label}: a different end state"
        );
    };
    let same = in_pairs(points.len(), try_point);
    println!(
        "{} kill points, {same} resumed to the same end state ({:.0?})",
        points.len(),
        clock.elapsed()
    );
    eprintln!(
        "{} kill points, {same} resumed to the same end state ({:.0?})",
        points.len(),
        clock.elapsed()
    );
}
