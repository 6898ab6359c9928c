//! Kill anywhere on the Blob store, resume from another machine: os-disk-swap SIGKILLed right
//! after each mutating ARM request and after journal writes, its workflow copy then deleted,
//! and the run resumed from a fresh state dir and working directory with
//! `--force-unlock RUN_ID` (the killed holder's lease would otherwise take up to 15 s to lapse).

use std::time::Instant;

use super::*;
use crate::crash::kill::JOURNAL_POINTS;
use crate::crash::support::*;

#[test]
fn killed_on_the_blob_store_resumes_elsewhere_to_the_same_end_state() {
    if !crate::repair::images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let clock = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (pristine, original, original_hash) = pristine(dir.path(), None);
    let store = Azurite::start();

    let reference = Served::copy_of(&pristine, &dir.path().join("reference"));
    let a = Machine::new(dir.path(), "reference");
    let workflow = workflow_copy(&a.cwd);
    let out = repair_on(&reference, &store, &a, &workflow)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = super::only_run(&reference, &store, &a);
    reference.assert_invariants(&a.state, &run, &original, &original_hash, "uninterrupted");
    let expected = reference.end_state(&run);
    assert_ne!(
        expected.vm_os_disk, original,
        "the reference run swapped the disk"
    );
    let mutations = reference
        .requests()
        .iter()
        .filter(|r| is_mutation(r))
        .count() as u64;
    drop(reference);

    let mut points: Vec<(&str, String)> = (1..=mutations)
        .map(|k| ("RESCUE_TEST_KILL_AFTER_MUTATION", k.to_string()))
        .collect();
    points.extend(
        JOURNAL_POINTS
            .iter()
            .map(|k| ("RESCUE_TEST_KILL_AT", k.to_string())),
    );
    let try_point = |i: usize| {
        let (hook, k) = &points[i];
        let label = format!("{hook}={k}");
        let emulator = Served::copy_of(&pristine, &dir.path().join(format!("kill-{i}")));
        // Each point its own container: runs of other points are not this one's.
        let a = Machine::new(dir.path(), &format!("kill-{i}-a"));
        let workflow = workflow_copy(&a.cwd);
        let container = format!("kill-{i}");
        let out = repair_on(&emulator, &store, &a, &workflow)
            .env("RESCUE_STATE", format!("azblob://{ACCOUNT}/{container}"))
            .env(hook, k)
            .output()
            .unwrap();
        assert!(
            killed(&out),
            "{label}: not killed (exit {:?})\n{}",
            out.status,
            text(&out)
        );
        std::fs::remove_dir_all(&a.cwd).unwrap();
        let b = Machine::new(dir.path(), &format!("kill-{i}-b"));
        let mut list = rescue_on(&emulator, &store, &b, &["runs", "-o", "json"]);
        let listed = list
            .env("RESCUE_STATE", format!("azblob://{ACCOUNT}/{container}"))
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&listed.stdout)
            .unwrap_or_else(|_| panic!("{label}: {}", text(&listed)));
        let run = doc["runs"][0]["id"].as_str().expect("one run").to_string();
        let out = rescue_on(
            &emulator,
            &store,
            &b,
            &["resume", &run, "--yes", "--force-unlock", &run],
        )
        .env("RESCUE_STATE", format!("azblob://{ACCOUNT}/{container}"))
        .output()
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: resume failed\n{}",
            text(&out)
        );
        emulator.assert_invariants(&b.state, &run, &original, &original_hash, &label);
        assert_eq!(
            emulator.end_state(&run),
            expected,
            "{label}: a different end state"
        );
    };
    let same = in_pairs(points.len(), try_point);
    let line = format!(
        "blob store: {} kill points, {same} resumed to the same end state ({:.0?})",
        points.len(),
        clock.elapsed()
    );
    println!("{line}");
    eprintln!("{line}");
}
