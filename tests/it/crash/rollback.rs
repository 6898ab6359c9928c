//! `rescue rollback` from after the snapshot, after the attach, after the swap and after success:
//! the VM is back on its original disk and running, the rescue VM has no data disk, the lock is
//! released, created resources are deleted only as asked, the original disk is byte-identical;
//! rollback is idempotent and resumable, and a rolled-back run is not resumed.

use rescue::azure::ids::Kind;
use serde_json::Value;

use super::support::*;

struct Case {
    f: Fixture,
    run: String,
}

impl std::ops::Deref for Case {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.f
    }
}

/// A run stopped after mutation `k` (None: run to success).
fn case(k: Option<u64>) -> Option<Case> {
    let f = Fixture::new(None)?;
    let run = match k {
        Some(k) => killed_after_mutation(&f.emulator, &f.state, k),
        None => f.repaired(),
    };
    Some(Case { f, run })
}

impl Case {
    fn rescue(&self, args: &[&str]) -> std::process::Output {
        self.emulator.rescue(&self.state, args, &[])
    }

    fn rollback(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["rollback", &self.run, "--yes"];
        args.extend_from_slice(extra);
        let out = self.rescue(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "rollback {extra:?}\n{}",
            text(&out)
        );
        out
    }

    /// The VM runs its original disk again, nothing is attached to the rescue VM, no lock.
    fn assert_rolled_back(&self, copy_kept: bool, snapshot_kept: bool) {
        let vm = self.emulator.vm(VM);
        assert_eq!(os_disk(&vm), self.original, "the original disk is not back");
        assert_eq!(power(&vm), "running");
        assert_eq!(
            vm.pointer("/tags/rescue-run"),
            None,
            "the VM lock was not released"
        );
        assert!(
            data_disks(&self.emulator.vm(RESCUE_VM)).is_empty(),
            "a disk is left on the rescue VM"
        );
        assert_eq!(
            sha256(&self.emulator.image(&self.original)),
            self.original_hash,
            "the original disk was modified"
        );
        let disks = self.emulator.list(Kind::Disk);
        assert!(disks.iter().any(|d| d["name"] == self.original.as_str()));
        let copies = tagged(&disks, &self.run).len();
        let snapshots = tagged(&self.emulator.list(Kind::Snapshot), &self.run).len();
        assert!(copies <= 1 && snapshots <= 1);
        if !copy_kept {
            assert_eq!(copies, 0, "the copy was not deleted");
        }
        if !snapshot_kept {
            assert_eq!(snapshots, 0, "the snapshot was not deleted");
        }
        let journal = journal(&self.state, &self.run);
        assert_eq!(
            journal["rollback"]["status"], "succeeded",
            "{:#}",
            journal["rollback"]
        );
    }

    /// Again: nothing left to do, nothing sent; and the run cannot be resumed any more.
    fn assert_idempotent(&self) {
        let before = self
            .emulator
            .requests()
            .iter()
            .filter(|r| is_mutation(r))
            .count();
        let out = self.rollback(&["--delete-created", "--include-snapshot"]);
        let after = self
            .emulator
            .requests()
            .iter()
            .filter(|r| is_mutation(r))
            .count();
        let preview = String::from_utf8_lossy(&out.stdout);
        assert!(preview.contains("done"), "{preview}");
        let cleanup = self.rescue(&["cleanup", &self.run, "--yes"]);
        assert_eq!(
            cleanup.status.code(),
            Some(2),
            "cleanup of a rolled-back run: {}",
            text(&cleanup)
        );
        let resumed = self.rescue(&["resume", &self.run, "--yes"]);
        assert_eq!(resumed.status.code(), Some(2), "{}", text(&resumed));
        assert!(
            String::from_utf8_lossy(&resumed.stderr).contains("rolled back"),
            "{}",
            text(&resumed)
        );
        // Only undos left pending by the earlier options may act (deleting what was kept).
        assert!(
            after - before <= 2,
            "a second rollback sent {} mutations",
            after - before
        );
    }
}

#[test]
fn rollback_after_the_snapshot_keeps_the_snapshot_by_default() {
    let Some(c) = case(Some(mutation::SNAPSHOT_AND_COPY)) else {
        return;
    };
    let before = c.emulator.requests().len();
    let out = c.rescue(&["rollback", &c.run, "--dry-run", "--delete-created"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let preview = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        preview.contains("keep") && preview.contains("--include-snapshot"),
        "{preview}"
    );
    assert!(
        preview.contains("undo") && preview.contains("start VM"),
        "{preview}"
    );
    assert_eq!(
        c.emulator.requests().len(),
        before,
        "--dry-run sent requests"
    );
    let refused = c.rescue(&["rollback", &c.run]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "no terminal and no --yes: {}",
        text(&refused)
    );

    c.rollback(&["--delete-created"]);
    c.assert_rolled_back(true, true);
    assert_eq!(
        tagged(&c.emulator.list(Kind::Snapshot), &c.run).len(),
        1,
        "the snapshot is the safety copy: kept"
    );
    c.assert_idempotent();
    c.assert_rolled_back(false, false);
}

#[test]
fn rollback_after_the_attach_detaches_the_copy_and_deletes_it() {
    let Some(c) = case(Some(mutation::RUN_COMMAND)) else {
        return;
    };
    c.rollback(&["--delete-created", "--include-snapshot"]);
    c.assert_rolled_back(false, false);
    c.assert_idempotent();
}

#[test]
fn rollback_after_the_swap_swaps_the_original_back_even_when_killed_midway() {
    let Some(c) = case(Some(mutation::START)) else {
        return;
    };
    assert_ne!(
        os_disk(&c.emulator.vm(VM)),
        c.original,
        "the swap had not happened"
    );
    // Killed during its own work, rollback continues where it stopped.
    let out = c.emulator.rescue(
        &c.state,
        &["rollback", &c.run, "--yes"],
        &[("RESCUE_TEST_KILL_AFTER_MUTATION", "2".into())],
    );
    assert!(killed(&out), "{}", text(&out));
    assert_eq!(journal(&c.state, &c.run)["rollback"]["status"], "running");
    c.rollback(&[]);
    c.assert_rolled_back(true, true);
    c.assert_idempotent();
}

#[test]
fn rollback_after_success_holds_the_vm_then_gives_it_back() {
    let Some(c) = case(None) else { return };
    assert_ne!(os_disk(&c.emulator.vm(VM)), c.original);
    c.rollback(&["--delete-created", "--include-snapshot"]);
    c.assert_rolled_back(false, false);
    let undos: Vec<Value> = journal(&c.state, &c.run)["rollback"]["undos"]
        .as_array()
        .unwrap()
        .clone();
    let order: Vec<&str> = undos.iter().map(|u| u["step"].as_str().unwrap()).collect();
    assert_eq!(
        order.first(),
        Some(&"unlock"),
        "the VM is claimed again first: {order:?}"
    );
    assert_eq!(order.last(), Some(&"lock"), "and released last: {order:?}");
    c.assert_idempotent();
}
