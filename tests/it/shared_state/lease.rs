//! The run's lease: one holder at a time, and a holder that lost it stops acting at once.

use std::time::{Duration, Instant};

use serde_json::Value;

use rescue::azure::blob::Container;
use rescue::engine::lock::Holder;

use super::*;
use crate::crash::support::{text, Fixture, Served};

/// What another engineer's `--force-unlock` does to a run's journal blob: breaks its lease,
/// takes a new one and writes their name as the holder.
async fn take_over(container: &Container, blob: &str, me: &Holder) -> azure_core::prelude::LeaseId {
    container.break_lease(blob).await.unwrap();
    let lease = container
        .acquire_lease(blob, Duration::from_secs(60))
        .await
        .unwrap();
    let metadata = [
        ("holderpid", me.pid.to_string()),
        ("holderhost", me.host.clone()),
        (
            "holderstarted",
            me.started
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v));
    container
        .set_metadata(blob, &lease, &metadata)
        .await
        .unwrap();
    lease
}

/// The run of VM `vm` in a local state dir once its snapshot and copy are both being made:
/// both side-by-side steps started (their saves are done), so the run's next save is seconds
/// away, not inside the few milliseconds between a break and a new lease, where it would
/// rightly find that nobody holds the run.
fn copying(state: &Path, vm: &str) -> String {
    let running = |journal: &Value, id: &str| {
        journal["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == id))
            .is_some_and(|s| s["status"] == "running")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the run of {vm} did not reach its snapshot"
        );
        let found = std::fs::read_dir(state.join("runs"))
            .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find_map(|e| {
                // None while it is being replaced or not there yet.
                let journal: Value = std::fs::read(e.path().join("journal.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())?;
                (journal["inputs"]["vm"] == vm
                    && running(&journal, "snapshot")
                    && running(&journal, "copy"))
                .then(|| e.file_name().to_string_lossy().into_owned())
            });
        if let Some(run) = found {
            return run;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two resumes of one run start together on two machines: exactly one holds the lease and
/// repairs; the other exits 3 naming the winner's process.
#[test]
fn racing_resumes_one_holds_the_run_and_the_other_exits_3_naming_it() {
    let Some(fx) = Fixture::new(None) else { return };
    let store = Azurite::start();
    let a = Machine::new(fx.dir.path(), "a");
    let workflow = workflow_copy(&a.cwd);
    // Stopped by a Ctrl-C right after its first change (the VM's lock): most work remains.
    let out = repair_on(&fx.emulator, &store, &a, &workflow)
        .env("RESCUE_TEST_KILL_AFTER_MUTATION", "1")
        .env("RESCUE_TEST_SIGNAL", "INT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let run = only_run(&fx.emulator, &store, &a);

    let (b, c) = (
        Machine::new(fx.dir.path(), "b"),
        Machine::new(fx.dir.path(), "c"),
    );
    let spawn = |m: &Machine| {
        rescue_on(&fx.emulator, &store, m, &["resume", &run, "--yes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pb, pc) = (spawn(&b), spawn(&c));
    let pids = (pb.id(), pc.id());
    let (ob, oc) = (
        pb.wait_with_output().unwrap(),
        pc.wait_with_output().unwrap(),
    );
    let codes = (ob.status.code(), oc.status.code());
    let (loser, winner_pid) = match codes {
        (Some(0), Some(3)) => (&oc, pids.0),
        (Some(3), Some(0)) => (&ob, pids.1),
        _ => panic!(
            "expected one 0 and one 3, got {codes:?}\n{}\n{}",
            text(&ob),
            text(&oc)
        ),
    };
    let said = String::from_utf8_lossy(&loser.stderr);
    assert!(
        said.contains(&format!("run {run} is in use by process {winner_pid} on ")),
        "the loser names the winner ({winner_pid}):\n{said}"
    );
    assert!(said.contains("--force-unlock"), "{said}");
    let end = fx.emulator.end_state(&run);
    assert_ne!(end.vm_os_disk, fx.original, "the winner repaired the VM");
    assert_eq!(end.fsck_runs, 1, "fsck ran once: only one process acted");
}

/// A holder whose lease is broken (another engineer took the run over) stops before its next
/// effect: exit 3 naming the new holder, and no Azure request from it after it noticed. The
/// new holder then finishes the run.
#[test]
fn a_holder_that_lost_its_lease_sends_no_further_azure_request() {
    if !crate::repair::images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let dir = tempfile::tempdir().unwrap();
    // Azure's latencies / 10: the repair takes long enough (~14 s) for a renewal to fall
    // inside it.
    let emulator = Served::start_scaled(&dir.path().join("emulator"), "0.1", None);
    let store = Azurite::start();
    let a = Machine::new(dir.path(), "a");
    let workflow = workflow_copy(&a.cwd);
    let child = repair_on(&emulator, &store, &a, &workflow)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Once the snapshot and the copy are being made, someone else breaks the lease and takes it.
    let container = store.container();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = copying(&a.state, crate::crash::support::VM);
    let blob = format!("runs/{run}/journal.json");
    let me = rescue::engine::lock::Holder::me();
    let broke_at = time::OffsetDateTime::now_utc();
    let lease = runtime.block_on(take_over(&container, &blob, &me));

    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        said.contains("no longer this process's")
            && said.contains(&format!("held by process {} on ", me.pid)),
        "names who holds the run now:\n{said}"
    );
    // It noticed within one renewal (5 s; a second of slack for the request itself) and sent
    // nothing after: every ARM request it made is older than that.
    let noticed_by = broke_at + Duration::from_secs(6);
    let requests = emulator.requests();
    let sent_after = |t: time::OffsetDateTime| -> Vec<&Value> {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        requests
            .iter()
            .filter(|r| {
                time::OffsetDateTime::parse(r["time"].as_str().unwrap(), rfc3339).unwrap() > t
            })
            .collect()
    };
    let late = sent_after(noticed_by);
    assert!(
        late.is_empty(),
        "requests after it lost the lease: {late:#?}"
    );
    let after_break = sent_after(broke_at).len();
    eprintln!("requests between the break and the holder noticing it: {after_break}");
    let vm = emulator.vm(crate::crash::support::VM);
    assert!(
        !crate::crash::support::os_disk(&vm).contains("-fixed-"),
        "the fenced holder did not get as far as the swap"
    );

    // The new holder lets go; anyone can finish the run, from anywhere.
    runtime
        .block_on(container.release_lease(&blob, &lease))
        .unwrap();
    let b = Machine::new(dir.path(), "b");
    let out = rescue_on(&emulator, &store, &b, &["resume", &run, "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let vm = emulator.vm(crate::crash::support::VM);
    assert!(
        crate::crash::support::os_disk(&vm).contains("-fixed-"),
        "resumed elsewhere, the run swapped in the repaired copy"
    );
}

/// In a fleet, a run taken over by someone else stops alone: its target fails with exit 3
/// naming the new holder, and the fleet's other run repairs its VM.
#[test]
fn a_fleet_run_taken_over_stops_alone_and_the_others_go_on() {
    if !crate::repair::images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("fleet.yaml");
    std::fs::write(
        &scenario,
        rescue::emulator::fleet_scenario(2, 1, "Standard_D2s_v3"),
    )
    .unwrap();
    let emulator = Served::start_scaled(&dir.path().join("emulator"), "0.1", Some(&scenario));
    let store = Azurite::start();
    let a = Machine::new(dir.path(), "a");
    let targets = a.cwd.join("targets.yaml");
    std::fs::write(
        &targets,
        "defaults: { resource_group: fleet-rg }\ntargets:\n  - vm: vm-1\n  - vm: vm-2\n",
    )
    .unwrap();
    let workflow = workflow_copy(&a.cwd);
    let fleet = rescue_on(
        &emulator,
        &store,
        &a,
        &["fleet", "run", workflow.to_str().unwrap(), "--targets"],
    )
    .arg(&targets)
    .args(["--rescue-vm", "rescue-1", "--yes"])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();

    let run = copying(&a.state, "vm-1");
    let container = store.container();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let me = Holder::me();
    runtime.block_on(take_over(
        &container,
        &format!("runs/{run}/journal.json"),
        &me,
    ));

    // Exit 3, as vm-1's run alone would: someone else holds what it needs.
    let out = fleet.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !said.contains("rescue-pool"),
        "the fleet let go of its rescue VM:\n{said}"
    );
    assert!(
        said.contains(&format!("held by process {} on ", me.pid)),
        "vm-1's failure names who holds its run now:\n{said}"
    );
    let disk = |vm: &str| crate::crash::support::os_disk(&emulator.vm_in("fleet-rg", vm));
    assert!(
        disk("vm-2").contains("-fixed-"),
        "vm-2's run went on to the swap:\n{said}"
    );
    assert!(
        !disk("vm-1").contains("-fixed-"),
        "vm-1's run stopped before it"
    );
    let status: Value = serde_json::from_slice(
        &rescue_on(
            &emulator,
            &store,
            &a,
            &["fleet", "status", "last", "-o", "json"],
        )
        .output()
        .unwrap()
        .stdout,
    )
    .unwrap();
    let exits: Vec<(Value, Value)> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].clone(), t["exit"].clone()))
        .collect();
    assert_eq!(
        exits,
        [
            (Value::from("vm-1"), Value::from(3)),
            (Value::from("vm-2"), Value::from(0))
        ],
        "{status}"
    );
}
