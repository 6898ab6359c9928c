//! `rescue fleet`: many repairs in one process against a served emulator, judged by plain ARM
//! GETs, the emulator's request log, and the runs' own journals.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::crash::support::{is_mutation, repo, Served};

const RG: &str = "fleet-rg";

/// A served emulator seeded with `broken` broken VMs and `rescue` rescue VMs of `size`.
struct World {
    dir: tempfile::TempDir,
    served: Served,
}

impl World {
    fn new(broken: usize, rescue: usize, size: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("fleet.yaml");
        std::fs::write(
            &scenario,
            rescue::emulator::fleet_scenario(broken, rescue, size),
        )
        .unwrap();
        let served = Served::start(&dir.path().join("emu"), Some(&scenario));
        World { dir, served }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn targets(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("targets.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn rescue(&self, args: &[&str]) -> Output {
        self.served.rescue(&self.state(), args, &[])
    }

    /// `rescue fleet run os-disk-swap --targets FILE --yes ARGS`.
    fn fleet(&self, targets: &Path, args: &[&str]) -> Output {
        let workflow = repo("workflows/os-disk-swap.yaml");
        let mut all = vec![
            "fleet",
            "run",
            workflow.to_str().unwrap(),
            "--targets",
            targets.to_str().unwrap(),
            "--yes",
        ];
        all.extend_from_slice(args);
        self.rescue(&all)
    }

    fn vm(&self, name: &str) -> Value {
        self.served.vm_in(RG, name)
    }

    fn fleet_status(&self) -> Value {
        let out = self.rescue(&["fleet", "status", "last", "-o", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Reads VM `name` through a plain ARM GET every 10 ms, handing each read to `look`, until
/// the returned stop is called; the stop says how many reads there were.
fn watch(
    world: &World,
    name: &str,
    mut look: impl FnMut(&Value) + Send + 'static,
) -> impl FnOnce() -> usize {
    let done = Arc::new(AtomicBool::new(false));
    let login = world.served.login.clone();
    let path = format!(
        "/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}?api-version=2024-07-01",
        login.subscription
    );
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let token = runtime.block_on(login.token());
            let http = login.http();
            let mut looks = 0;
            while !done.load(Ordering::SeqCst) {
                look(&runtime.block_on(login.get_json(&http, &token, &path)));
                looks += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            looks
        })
    };
    move || {
        done.store(true, Ordering::SeqCst);
        watcher.join().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn os_disk(vm: &Value) -> String {
    crate::crash::support::os_disk(vm)
}

fn journal_status(state: &Path, run_id: &str) -> String {
    crate::crash::support::journal(state, run_id)["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The repaired VM runs on a copy of its disk, and its agent is Ready.
fn assert_repaired(world: &World, vm: &str) {
    let v = world.vm(vm);
    assert_ne!(
        os_disk(&v),
        format!("{vm}_OsDisk"),
        "{vm} kept its broken disk"
    );
    assert_eq!(crate::crash::support::power(&v), "running", "{vm}");
    assert_eq!(crate::crash::support::agent(&v), "Ready", "{vm}");
}

#[test]
fn fleet_repairs_three_vms_and_its_status_lists_them() {
    let world = World::new(3, 1, "Standard_D2s_v3");
    let targets = world.targets(
        "defaults: { resource_group: fleet-rg, rescue_vm: rescue-1 }\ntargets:\n  - vm: vm-1\n  - vm: vm-2\n  - { id: third, vm: vm-3 }\n",
    );
    let out = world.fleet(&targets, &["--concurrency", "3", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every run's event names its target.
    let step_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("step_"))
        .collect();
    assert!(step_events.len() > 30, "{}", step_events.len());
    for e in &step_events {
        assert!(
            ["vm-1", "vm-2", "third"].contains(&e["target"].as_str().unwrap_or("")),
            "{e}"
        );
    }
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "target_finished")
        .collect();
    assert_eq!(finished.len(), 3);
    assert!(
        finished.iter().all(|e| e["status"] == "succeeded"),
        "{finished:?}"
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "fleet_summary");
    assert_eq!(summary["exit_code"], 0);

    for vm in ["vm-1", "vm-2", "vm-3"] {
        assert_repaired(&world, vm);
    }
    assert!(crate::crash::support::data_disks(&world.vm("rescue-1")).is_empty());

    let status = world.fleet_status();
    let listed: Vec<&Value> = status["targets"].as_array().unwrap().iter().collect();
    assert_eq!(
        listed
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["vm-1", "vm-2", "third"]
    );
    for t in listed {
        assert_eq!(t["status"], "succeeded", "{t}");
        let run_id = t["run_id"].as_str().unwrap();
        assert_eq!(journal_status(&world.state(), run_id), "succeeded");
        // Each is an ordinary run: `rescue status` knows it.
        let one = world.rescue(&["status", run_id, "-o", "json"]);
        assert!(one.status.success(), "{}", text(&one.stderr));
    }
    let shown = world.rescue(&["fleet", "status", "last"]);
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("third") && shown.contains("succeeded"),
        "{shown}"
    );
}

#[test]
fn fleet_a_failing_target_does_not_stop_the_others() {
    let world = World::new(2, 1, "Standard_D2s_v3");
    let targets = world.targets(
        "defaults: { resource_group: fleet-rg, rescue_vm: rescue-1 }\ntargets:\n  - vm: vm-1\n  - vm: vm-404\n  - vm: vm-2\n",
    );
    let out = world.fleet(&targets, &["--concurrency", "2"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_repaired(&world, "vm-1");
    assert_repaired(&world, "vm-2");
    let status = world.fleet_status();
    let failed = &status["targets"][1];
    assert_eq!(failed["id"], "vm-404");
    assert_eq!(failed["status"], "failed");
    let run_id = failed["run_id"].as_str().unwrap();
    assert_eq!(journal_status(&world.state(), run_id), "failed");
    // The summary names the failed target, the command that continues it, and the fleet's.
    let fleet_id = status["fleet_id"].as_str().unwrap();
    assert!(stderr.contains("failed vm-404"), "{stderr}");
    assert!(
        stderr.contains(&format!("rescue resume {run_id}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("rescue fleet resume {fleet_id}")),
        "{stderr}"
    );

    // Resumed, the fleet goes on with the failed run only: still failing, nothing new started.
    let runs = || {
        std::fs::read_dir(world.state().join("runs"))
            .unwrap()
            .count()
    };
    assert_eq!(runs(), 3);
    let again = world.rescue(&["fleet", "resume", fleet_id, "--yes"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("failed vm-404"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(runs(), 3);
    assert_eq!(world.fleet_status()["targets"][0]["status"], "succeeded");
}

#[test]
fn fleet_a_bad_targets_file_is_a_located_error_and_changes_nothing() {
    let world = World::new(1, 1, "Standard_D2s_v3");
    let targets = world.targets(
        "defaults: { resource_group: fleet-rg }\ntargets:\n  - vm: vm-1\n  - { vm: vm-2, rescue_vn: rescue-1 }\n",
    );
    let out = world.fleet(&targets, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:", targets.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("rescue_vn") && stderr.contains("rescue_vm"),
        "{stderr}"
    );
    assert!(!world.state().join("runs").exists());
    assert!(!world.state().join("fleets").exists());
    assert!(
        !world.served.requests().iter().any(is_mutation),
        "{:?}",
        world.served.requests()
    );
}

#[test]
fn fleet_pool_never_attaches_more_copies_than_the_rescue_vm_takes() {
    // Standard_B1s takes 2 data disks; 3 targets at once share it.
    let world = World::new(3, 1, "Standard_B1s");
    let targets = world.targets(
        "defaults: { resource_group: fleet-rg }\ntargets:\n  - vm: vm-1\n  - vm: vm-2\n  - vm: vm-3\n",
    );
    // Watch the rescue VM through ARM while the fleet runs.
    let most = Arc::new(AtomicUsize::new(0));
    let stop = {
        let most = most.clone();
        watch(&world, "rescue-1", move |vm| {
            most.fetch_max(
                crate::crash::support::data_disks(vm).len(),
                Ordering::SeqCst,
            );
        })
    };
    let out = world.fleet(&targets, &["--concurrency", "3", "--rescue-vm", "rescue-1"]);
    let looks = stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(looks > 10, "{looks}");
    for vm in ["vm-1", "vm-2", "vm-3"] {
        assert_repaired(&world, vm);
    }
    let most = most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} copies attached at once");
    // Every run used the pool's VM.
    let status = world.fleet_status();
    for t in status["targets"].as_array().unwrap() {
        let j = crate::crash::support::journal(&world.state(), t["run_id"].as_str().unwrap());
        assert_eq!(j["inputs"]["rescue_vm"], "rescue-1", "{t}");
        // Runs on one VM may share an attachDetachDataDisks request; each run's journal still
        // holds it as the evidence of its own attach and detach.
        for step in ["attach", "detach"] {
            let calls = &j["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == step)
                .unwrap()["calls"];
            assert!(
                calls
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["method"] == "POST"
                        && c["path"]
                            .as_str()
                            .unwrap()
                            .ends_with("/rescue-1/attachDetachDataDisks")),
                "{step} of {}: {calls}",
                t["id"]
            );
        }
    }
}

/// Tags rescue VM `name` as another fleet's pool, through a plain ARM PATCH (as `az vm update
/// --set tags.rescue-pool=...` would).
fn claim_as_another_fleet(world: &World, name: &str, value: &str) {
    let login = world.served.login.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let token = login.token().await;
        let r = login
            .http()
            .patch(format!(
                "{}/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}?api-version=2024-07-01",
                login.url, login.subscription
            ))
            .bearer_auth(token)
            .json(&serde_json::json!({"tags": {"rescue-pool": value}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    });
    // The PATCH's operation settles before anyone else looks.
    world.served.settle();
}

fn pool_tag(world: &World, name: &str) -> Option<String> {
    world.vm(name)["tags"]["rescue-pool"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn fleet_claims_its_rescue_vms_and_refuses_those_another_fleet_holds() {
    let world = World::new(1, 1, "Standard_D2s_v3");
    let targets = world.targets("defaults: { resource_group: fleet-rg }\ntargets:\n  - vm: vm-1\n");
    claim_as_another_fleet(
        &world,
        "rescue-1",
        "F-dead host=laptop-7 started=2026-12-02T03:00:00Z",
    );
    let before = world.served.requests().len();

    // A second fleet: refused before any run, nothing changed.
    let out = world.fleet(&targets, &["--rescue-vm", "rescue-1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("fleet F-dead on laptop-7"), "{err}");
    assert!(err.contains("--force-unlock F-dead"), "{err}");
    // A single run beside it: refused at pre-flight, nothing changed.
    let single = world.rescue(&[
        "run",
        "os-disk-swap",
        "-g",
        RG,
        "-n",
        "vm-1",
        "--rescue-vm",
        "rescue-1",
        "--yes",
    ]);
    let single_err = text(&single.stderr);
    assert_eq!(single.status.code(), Some(3), "{single_err}");
    assert!(
        single_err.contains("shared out by fleet F-dead"),
        "{single_err}"
    );
    let mutations: Vec<Value> = world.served.requests()[before..]
        .iter()
        .filter(|r| is_mutation(r))
        .cloned()
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    assert_eq!(os_disk(&world.vm("vm-1")), "vm-1_OsDisk");

    // Taking the dead fleet's VMs over: the fleet holds them while it runs, lets go at its end.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = {
        let seen = seen.clone();
        watch(&world, "rescue-1", move |vm| {
            // While a copy is attached, the pool is the fleet's.
            if !crate::crash::support::data_disks(vm).is_empty() {
                let tag = vm["tags"]["rescue-pool"].as_str().unwrap_or("");
                seen.lock().unwrap().push(tag.to_string());
            }
        })
    };
    let out = world.fleet(
        &targets,
        &[
            "--rescue-vm",
            "rescue-1",
            "--force-unlock",
            "F-dead",
            "-o",
            "json",
        ],
    );
    stop();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_repaired(&world, "vm-1");
    // Not `fleet status last`: the refused fleet above may have been recorded in the same second.
    let started: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(started["event"], "fleet_started", "{started}");
    let fleet_id = started["fleet_id"].as_str().unwrap().to_string();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the watcher never saw the copy attached");
    assert!(
        seen.iter()
            .all(|t| t.starts_with(&format!("{fleet_id} host="))),
        "{seen:?}"
    );
    assert_eq!(pool_tag(&world, "rescue-1"), None);
}

#[test]
fn a_killed_fleet_keeps_its_rescue_vms_and_its_resume_lets_go_of_them() {
    let world = World::new(1, 1, "Standard_D2s_v3");
    let targets = world.targets("defaults: { resource_group: fleet-rg }\ntargets:\n  - vm: vm-1\n");
    let workflow = repo("workflows/os-disk-swap.yaml");
    // Killed after its 4th change to Azure: the claim, then the run's lock, deallocation and a
    // snapshot or copy.
    let out = world.served.rescue(
        &world.state(),
        &[
            "fleet",
            "run",
            workflow.to_str().unwrap(),
            "--targets",
            targets.to_str().unwrap(),
            "--rescue-vm",
            "rescue-1",
            "--yes",
        ],
        &[("RESCUE_TEST_KILL_AFTER_MUTATION", "4".to_string())],
    );
    assert!(crate::crash::support::killed(&out), "{}", text(&out.stderr));
    world.served.settle();
    let fleet_id = world.fleet_status()["fleet_id"]
        .as_str()
        .unwrap()
        .to_string();
    let claim = pool_tag(&world, "rescue-1").expect("the killed fleet's claim stays");
    assert!(claim.starts_with(&format!("{fleet_id} host=")), "{claim}");

    // Its resume finds the claim its own, repairs the VM and lets go.
    let again = world.rescue(&["fleet", "resume", &fleet_id, "--yes"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_repaired(&world, "vm-1");
    assert_eq!(pool_tag(&world, "rescue-1"), None);
}
