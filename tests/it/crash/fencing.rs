//! Runs that meet lost answers or each other (issue: correct under lost answers and rival runs):
//! a lost detach answer, a pre-flight that fails before any lock, a holder whose lock was taken
//! over, a run that lost the race and is resumed after the winner repaired the VM, and
//! throttling past `--max-wait`.

use super::support::*;

/// Mutating requests in the emulator's log from index `from` on.
fn mutations_since(emulator: &Served, from: usize) -> Vec<serde_json::Value> {
    emulator.requests()[from..]
        .iter()
        .filter(|r| is_mutation(r))
        .cloned()
        .collect()
}

#[test]
fn a_lost_detach_answer_is_not_taken_for_done() {
    // attachDetachDataDisks calls: 1 attach, 2 detach; the detach happens, its answer is lost.
    let rule = "{operation: vm.attachDetach, call: 2, kind: drop_connection}";
    let scenario = rescue::emulator::INCIDENT_SCENARIO
        .replace("\nfaults: []", &format!("\nfaults:\n  - {rule}"));
    let Some(f) = Fixture::new(Some(&scenario)) else {
        return;
    };
    let out = f.emulator.repair(&f.state, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = only_run(&f.state);
    f.emulator
        .assert_invariants(&f.state, &run, &f.original, &f.original_hash, rule);
    assert!(data_disks(&f.emulator.vm(RESCUE_VM)).is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading the resource to see whether it took effect"),
        "the lost answer was not checked against Azure:\n{stderr}"
    );
    let detaches = f
        .emulator
        .requests()
        .iter()
        .filter(|r| r["operation"] == "virtualMachines.attachDetachDataDisks")
        .count();
    assert_eq!(
        detaches, 2,
        "attach once, detach once: the detach was sent again"
    );
}

#[test]
fn a_failed_pre_flight_takes_no_lock_and_exits_2() {
    let Some(f) = Fixture::new(None) else { return };
    let before = f.emulator.requests().len();
    let out = f
        .emulator
        .repair(&f.state, &["--input", "rescue_vm=rescue-vm-typo"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rescue-vm-typo") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        mutations_since(&f.emulator, before).is_empty(),
        "a refused run changed Azure"
    );
    assert_eq!(
        f.emulator.vm(VM).pointer("/tags/rescue-run"),
        None,
        "a refused run left a lock"
    );
}

#[test]
fn a_holder_whose_lock_was_taken_over_stops_before_its_next_change() {
    let Some(f) = Fixture::new(None) else { return };
    let dir = f.dir.path();
    // A holds the VM, deallocated it and took the snapshot, then its machine went away.
    let a = killed_after_mutation(&f.emulator, &dir.join("a"), mutation::SNAPSHOT_AND_COPY);
    // B takes the VM over and is itself interrupted right after claiming it.
    let b_state = dir.join("b");
    let out = f.emulator.repair(
        &b_state,
        &["--force-unlock", &a],
        &[("RESCUE_TEST_KILL_AFTER_MUTATION", "1".into())],
    );
    assert!(killed(&out), "{}", text(&out));
    let b = only_run(&b_state);
    let vm_before = f.emulator.vm(VM);
    assert!(vm_before
        .pointer("/tags/rescue-run")
        .and_then(|t| t.as_str())
        .is_some_and(|t| t.starts_with(&b)));

    // A comes back: it must see that the VM is B's now and change nothing.
    let before = f.emulator.requests().len();
    let out = f
        .emulator
        .rescue(&dir.join("a"), &["resume", &a, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("held by run {b}")),
        "the new holder is not named:\n{stderr}"
    );
    assert!(
        mutations_since(&f.emulator, before).is_empty(),
        "the old holder changed Azure"
    );
    let vm_after = f.emulator.vm(VM);
    assert_eq!(os_disk(&vm_after), os_disk(&vm_before));
    assert_eq!(power(&vm_after), power(&vm_before));
    assert_eq!(
        vm_after.pointer("/tags/rescue-run"),
        vm_before.pointer("/tags/rescue-run")
    );
}

#[test]
fn a_run_resumed_after_another_run_repaired_the_vm_does_not_repair_it_again() {
    let Some(f) = Fixture::new(None) else { return };
    let dir = f.dir.path();
    let a = killed_after_mutation(&f.emulator, &dir.join("a"), mutation::LOCK);
    // B starts while A holds the VM: refused, exit 3.
    let b_state = dir.join("b");
    let out = f.emulator.repair(&b_state, &[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let b = only_run(&b_state);
    // A finishes the repair.
    let out = f
        .emulator
        .rescue(&dir.join("a"), &["resume", &a, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let repaired = f.emulator.vm(VM);
    // B follows the advice it was given and resumes: it must not deallocate and swap again.
    let before = f.emulator.requests().len();
    let out = f.emulator.rescue(&b_state, &["resume", &b, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("repaired by run {a}")), "{stderr}");
    assert!(
        mutations_since(&f.emulator, before).is_empty(),
        "the VM was touched again"
    );
    let now = f.emulator.vm(VM);
    assert_eq!(os_disk(&now), os_disk(&repaired));
    assert_eq!(
        (power(&now).as_str(), agent(&now).as_str()),
        ("running", "Ready")
    );
}

#[test]
fn throttling_past_max_wait_fails_resumably_and_resume_finishes() {
    // Retry-After 600 s at Azure's pace (scaled by the emulator's time scale).
    let rule = "{operation: vm.deallocate, call: 1, kind: throttle(600)}";
    let scenario = rescue::emulator::INCIDENT_SCENARIO
        .replace("\nfaults: []", &format!("\nfaults:\n  - {rule}"));
    let Some(f) = Fixture::new(Some(&scenario)) else {
        return;
    };
    let out = f.emulator.repair(&f.state, &["--max-wait", "1s"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let run = only_run(&f.state);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("throttling this subscription until") && stderr.contains("--max-wait"),
        "the throttle and the limit are not said:\n{stderr}"
    );
    assert!(stderr.contains(&format!("rescue resume {run}")), "{stderr}");
    // Later, within the limit: the run finishes.
    let out = f.emulator.rescue(&f.state, &["resume", &run, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    f.emulator
        .assert_invariants(&f.state, &run, &f.original, &f.original_hash, rule);
}

#[test]
fn a_long_throttle_is_waited_out_in_full_and_shown() {
    let rule = "{operation: snapshot.create, call: 1, kind: throttle(600)}";
    let scenario = rescue::emulator::INCIDENT_SCENARIO
        .replace("\nfaults: []", &format!("\nfaults:\n  - {rule}"));
    let Some(f) = Fixture::new(Some(&scenario)) else {
        return;
    };
    let started = std::time::Instant::now();
    let out = f.emulator.repair(&f.state, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("throttled by Azure until"), "{stderr}");
    // 600 s scaled by the time scale, honoured in full (not cut to a cap).
    let scaled = 600.0 * TIME_SCALE.parse::<f64>().unwrap();
    assert!(
        started.elapsed().as_secs_f64() >= scaled,
        "waited less than Azure asked"
    );
}

#[test]
fn two_repairs_sharing_one_rescue_vm_leave_each_other_alone() {
    // vm3's disk is broken too; both repairs use the one rescue VM at the same time.
    let vm3_disk = "aks-nodepool1-31415926-vm3_OsDisk_1_e4b1d8a6c3f94b27a1e5d0c8b2f76a93";
    let healthy = format!("      - name: {vm3_disk}\n        size_gb: 128\n        zone: \"1\"\n        generation: V2\n        os_type: Linux\n        content: {{ generate: {{ fs: ext4 }} }}");
    assert!(
        rescue::emulator::INCIDENT_SCENARIO.contains(&healthy),
        "the incident scenario changed"
    );
    let scenario = rescue::emulator::INCIDENT_SCENARIO.replace(
        &healthy,
        &healthy.replace("{ fs: ext4 }", "{ fs: ext4, corrupt: overlay2-init }"),
    );
    let Some(f) = Fixture::new(Some(&scenario)) else {
        return;
    };
    let dir = f.dir.path();
    let spawn = |state: &str, vm: &str| {
        let mut cmd = f.emulator.command(&dir.join(state));
        cmd.args([
            "run",
            repo("workflows/os-disk-swap.yaml").to_str().unwrap(),
            "--inputs",
        ])
        .arg(repo("examples/incident-inputs.yaml"))
        .args(["--input", &format!("vm={vm}"), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (spawn("a", VM), spawn("b", "aks-nodepool1-31415926-vm3"));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for out in &outs {
        assert_eq!(out.status.code(), Some(0), "{}", text(out));
    }
    for (state, vm) in [("a", VM), ("b", "aks-nodepool1-31415926-vm3")] {
        let run = only_run(&dir.join(state));
        let now = f.emulator.vm(vm);
        assert_eq!(agent(&now), "Ready", "{vm} did not come back");
        assert!(
            name_of_id(&os_disk(&now)).contains(&format!("fixed-{run}")),
            "{vm} runs {}",
            os_disk(&now)
        );
    }
    assert!(
        data_disks(&f.emulator.vm(RESCUE_VM)).is_empty(),
        "a copy was left on the rescue VM"
    );
    assert_eq!(sha256(&f.emulator.image(&f.original)), f.original_hash);
}

#[test]
fn an_expired_operation_url_is_dropped_and_the_resource_read_instead() {
    // ARM forgets finished operations after a while; the emulator's retention is scaled.
    let scenario = rescue::emulator::INCIDENT_SCENARIO
        .replace("\nfaults: []", "\noperation_retention: 1s\nfaults: []");
    let Some(f) = Fixture::new(Some(&scenario)) else {
        return;
    };
    // Killed while polling: the journal holds an operation URL.
    let out = f.emulator.repair(
        &f.state,
        &[],
        &[("RESCUE_TEST_KILL_AFTER_POLL", "3".into())],
    );
    assert!(killed(&out), "{}", text(&out));
    let run = only_run(&f.state);
    // Long past the retention (1 s of Azure time), the URL answers 404.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = f.emulator.requests().len();
    let out = f.emulator.rescue(&f.state, &["resume", &run, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let expired = f.emulator.requests()[before..]
        .iter()
        .filter(|r| r["operation"] == "operations.get" && r["status"] == 404)
        .count();
    assert!(
        expired >= 1,
        "the resumed run never met the expired operation URL"
    );
    f.emulator
        .assert_invariants(&f.state, &run, &f.original, &f.original_hash, "expired URL");
}
