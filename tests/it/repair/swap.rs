//! `rescue run workflows/os-disk-swap.yaml` end to end on the emulator: the real binary, the real
//! azure_mgmt_compute client over HTTP, real disk images, real e2fsck/xfs_repair on loop devices.

use rescue::azure::ids::Kind;
use serde_json::Value;

use super::images;
use super::support::*;

fn os_disk_name(vm: &Value) -> String {
    vm.pointer("/properties/storageProfile/osDisk/managedDisk/id")
        .and_then(Value::as_str)
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

fn agent(vm: &Value) -> String {
    vm.pointer("/properties/instanceView/vmAgent/statuses/0/displayStatus")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string()
}

fn tagged_with<'a>(list: &'a [Value], run_id: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|r| r.pointer("/tags/rescue-run").and_then(Value::as_str) == Some(run_id))
        .collect()
}

fn run_id(r: &Rehearsal) -> String {
    let runs: Vec<_> = std::fs::read_dir(r.dir.path().join("state/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The run succeeded: the VM boots a repaired copy, the original is byte-identical, exactly one
/// snapshot and one copy exist (tagged), the rescue VM is left without data disks.
fn assert_repaired(
    r: &Rehearsal,
    original: &str,
    original_hash: &str,
    out: &std::process::Output,
) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    eprintln!("{}", text(out));
    let run = run_id(r);
    let vm = r.vm(VM);
    let now = os_disk_name(&vm);
    assert_ne!(now, original, "the OS disk was not swapped");
    assert_eq!(agent(&vm), "Ready");
    assert_eq!(
        sha256(&r.image("disks", original)),
        original_hash,
        "the original disk was modified"
    );
    let rescue_vm = r.vm(RESCUE_VM);
    let data = rescue_vm
        .pointer("/properties/storageProfile/dataDisks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(
        data.is_empty(),
        "the rescue VM still has data disks: {data:?}"
    );
    let snapshots = r.list(Kind::Snapshot);
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(
        tagged_with(&snapshots, &run).len(),
        1,
        "the snapshot is not tagged with the run id"
    );
    let copies = tagged_with(&r.list(Kind::Disk), &run)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["name"], now.as_str());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(original) && stdout.contains(snapshots[0]["name"].as_str().unwrap()),
        "the old disk and the snapshot kept are not printed:\n{}",
        text(out)
    );
    now
}

#[test]
fn incident_node_is_repaired_end_to_end() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::start(None);
    let original = os_disk_name(&r.vm(VM));
    let before = sha256(&r.image("disks", &original));
    assert!(
        e2fsck_partitions(&r.image("disks", &original))
            .iter()
            .any(|&c| c >= 4),
        "the scenario's disk is not corrupted"
    );

    let out = r.repair(&["--yes"]);
    let new = assert_repaired(&r, &original, &before, &out);
    let checks = e2fsck_partitions(&r.image("disks", &new));
    assert!(
        !checks.is_empty() && checks.iter().all(|&c| c == 0),
        "e2fsck -fn on the new OS disk: {checks:?}"
    );
    // The fsck verdict is on the progress line, where the engineer looks before the swap.
    assert!(
        text(&out)
            .lines()
            .any(|l| l.contains("fsck: succeeded") && l.ends_with("(verdict: repaired)")),
        "{}",
        text(&out)
    );
}

#[test]
fn xfs_root_disk_is_repaired_end_to_end() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let build = tempfile::tempdir().unwrap();
    let disk = images::gpt_disk(build.path(), &images::damaged_xfs(build.path()));
    let r = Rehearsal::start(Some(&format!("{{ image: {} }}", disk.display())));
    let original = os_disk_name(&r.vm(VM));
    let before = sha256(&r.image("disks", &original));

    let out = r.repair(&["--yes"]);
    assert_repaired(&r, &original, &before, &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repaired"),
        "{}",
        text(&out)
    );
}

#[test]
fn unrepairable_disk_stops_before_the_swap() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::start(Some("{ generate: { fs: ext4, corrupt: unrepairable } }"));
    let original = os_disk_name(&r.vm(VM));
    let before = sha256(&r.image("disks", &original));

    let out = r.repair(&["--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("verdict failed"),
        "the fsck verdict is not shown:\n{all}"
    );
    assert_eq!(
        os_disk_name(&r.vm(VM)),
        original,
        "swapped despite the failed fsck"
    );
    assert_eq!(sha256(&r.image("disks", &original)), before);
    let journal: Value = serde_json::from_slice(
        &std::fs::read(
            r.dir
                .path()
                .join("state/runs")
                .join(run_id(&r))
                .join("journal.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let swap = journal["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "swap"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        swap.is_null() || swap["status"] == "pending",
        "the swap step ran: {swap}"
    );
}

#[test]
fn plan_reads_current_state_with_get_requests_only() {
    let r = Rehearsal::start(None);
    let before = r.requests().len();
    let workflow = repo("workflows/os-disk-swap.yaml");
    let inputs = repo("examples/incident-inputs.yaml");
    let out = r.rescue(&[
        "plan",
        workflow.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "-v",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PUT") && stdout.contains("/snapshots/"),
        "the verbose plan lists the ARM calls:\n{stdout}"
    );
    let requests = r.requests_after(before);
    assert!(
        !requests.is_empty(),
        "plan read nothing: it should make the plan concrete with GETs"
    );
    let writes: Vec<&Value> = requests.iter().filter(|q| q["method"] != "GET").collect();
    assert!(writes.is_empty(), "plan made non-GET requests: {writes:?}");
    // Several steps read the same VMs and disks to plan; with nothing done in between, Azure is
    // asked once (the read memo).
    let mut asked = std::collections::BTreeMap::new();
    for q in &requests {
        *asked
            .entry(format!("{}?{}", q["path"], q["query"]))
            .or_insert(0) += 1;
    }
    let repeated: Vec<_> = asked.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "the plan read these again: {repeated:?}"
    );
    assert!(
        stdout.contains("GiB"),
        "the plan shows facts read from the emulator:\n{stdout}"
    );

    // inspect is read at plan time, so the snapshot's plan names the real OS disk.
    let out = r.rescue(&[
        "plan",
        workflow.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    let snapshot = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "snapshot")
        .expect("snapshot step");
    let disk = snapshot["args"]["disk_id"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("disk_id not known at plan time: {snapshot}"));
    assert!(
        disk.ends_with(
            "/disks/aks-nodepool1-31415926-vm2_OsDisk_1_3a9f5c7e1d2b4a68e0f4b6d8c1a5e927"
        ),
        "{disk}"
    );
    assert!(
        r.requests_after(before)
            .iter()
            .all(|q| q["method"] == "GET"),
        "a JSON plan also only reads"
    );
}

// Without a terminal or --yes a repair does not start at all (exit 2, no mutating request):
// `cli::goahead`. Stopped at the swap prompt and resumed: `cli::pty`.

#[test]
fn a_trusted_launch_vm_on_a_customer_key_disk_is_repaired_with_both_kept() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let state = tempfile::tempdir().unwrap();
    let scenario = repo("examples/emulator/security.yaml");
    let out = rescue_cmd(state.path())
        .args(["run", repo("workflows/os-disk-swap.yaml").to_str().unwrap()])
        .arg(format!("--emulator={}", scenario.display()))
        .args([
            "--input",
            "resource_group=secure-rg",
            "--input",
            "vm=tl-node",
        ])
        .args(["--input", "rescue_vm=secure-rescue", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The in-process emulator keeps its state in the run directory.
    let run = state
        .path()
        .join("runs")
        .join(crate::crash::support::only_run(state.path()));
    let emulated: Value =
        serde_json::from_slice(&std::fs::read(run.join("emulator/state.json")).unwrap()).unwrap();
    let vm = &emulated["vms"]["secure-rg/tl-node"];
    let os_disk = vm["os_disk"].as_str().unwrap();
    let disk = &emulated["disks"][os_disk];
    assert!(
        disk["name"].as_str().unwrap().contains("-fixed-"),
        "not swapped: {disk}"
    );
    let settings = &disk["settings"];
    assert_eq!(settings["security_type"], "TrustedLaunch", "{settings}");
    assert!(
        settings["disk_encryption_set_id"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/cmk-des"),
        "the copy lost its customer key: {settings}"
    );
    assert_eq!(settings["network_access_policy"], "DenyAll", "{settings}");
    assert_eq!(settings["public_network_access"], "Disabled", "{settings}");
}
