//! A `rescue emulator serve` child (it outlives a SIGKILLed `rescue`), seeded once and copied
//! for each case (sparse images: a copy is cheap), and the normalized end state of a repair.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rescue::azure::ids::{Kind, ResourceId};
use rescue::azure::Azure;
use serde_json::Value;

pub use crate::repair::support::{e2fsck_partitions, repo, sha256, text, RESCUE_VM, RG, VM};

/// Azure-like latencies divided by 250: a repair takes a few seconds.
pub const TIME_SCALE: &str = "0.004";

pub fn bin() -> PathBuf {
    std::env::var_os("RESCUE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rescue"))
}

/// The banner of `rescue emulator serve`: one line saying where, then its `export` lines.
pub fn banner(child: &mut Child) -> Vec<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let first = lines
        .next()
        .expect("a banner line")
        .expect("read the banner");
    assert!(
        first.starts_with("rescue emulator listening on "),
        "{first:?}"
    );
    out.push(first);
    for _ in 0..7 {
        out.push(
            lines
                .next()
                .expect("an export line")
                .expect("read the banner"),
        );
    }
    out
}

/// A served emulator on `data_dir`; stopped with SIGINT (so it detaches its loop devices).
pub struct Served {
    child: Child,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub subscription: String,
    pub login: crate::support::Login,
    runtime: tokio::runtime::Runtime,
}

impl Served {
    pub fn start(data_dir: &Path, scenario: Option<&Path>) -> Served {
        Self::start_scaled(data_dir, TIME_SCALE, scenario)
    }

    /// [`Served::start`] on another time scale.
    pub fn start_scaled(data_dir: &Path, time_scale: &str, scenario: Option<&Path>) -> Served {
        Self::start_with(Command::new(bin()), time_scale, data_dir, scenario)
    }

    /// In a network namespace of its own with only loopback up: whatever runs beside it
    /// (`in_netns`) can reach nothing but 127.0.0.1.
    /// Seeded from `scenario` (None: the incident).
    pub fn start_isolated(data_dir: &Path, time_scale: &str, scenario: Option<&Path>) -> Served {
        let mut cmd = Command::new("unshare");
        cmd.args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
            .arg(bin());
        Self::start_with(cmd, time_scale, data_dir, scenario)
    }

    /// `program` run in the emulator's network namespace (its pid is the emulator's: `unshare`
    /// and `sh` exec it).
    pub fn in_netns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", self.child.id()))
            .arg(program);
        cmd
    }

    fn start_with(
        mut cmd: Command,
        time_scale: &str,
        data_dir: &Path,
        scenario: Option<&Path>,
    ) -> Served {
        let log = data_dir.with_extension("requests.jsonl");
        cmd.args([
            "emulator",
            "serve",
            "--time-scale",
            time_scale,
            "--data-dir",
        ])
        .arg(data_dir)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(s) = scenario {
            cmd.arg("--scenario").arg(s);
        }
        let mut child = cmd.spawn().expect("spawn rescue emulator serve");
        let login = crate::support::Login::from_exports(&banner(&mut child));
        let subscription = login.subscription.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Served {
            child,
            data_dir: data_dir.to_path_buf(),
            log,
            subscription,
            login,
            runtime,
        }
    }

    /// A fresh emulator on a copy of `pristine` (a data dir seeded and stopped earlier).
    pub fn copy_of(pristine: &Path, data_dir: &Path) -> Served {
        let out = Command::new("cp")
            .arg("-a")
            .arg("--sparse=always")
            .arg(pristine)
            .arg(data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Served::start(data_dir, None)
    }

    /// `rescue ARGS` against this emulator with `state` as the state dir and `env` added.
    pub fn rescue(&self, state: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = self.command(state);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("spawn rescue")
    }

    /// `rescue` pointed at this emulator with `state` as its state dir, no arguments yet.
    pub fn command(&self, state: &Path) -> Command {
        let mut cmd = Command::new(bin());
        self.login
            .apply(&mut cmd)
            .env("RESCUE_STATE_DIR", state)
            .env_remove("RESCUE_TEST_KILL_AT")
            .env_remove("RESCUE_TEST_KILL_AFTER_MUTATION")
            .env_remove("RESCUE_TEST_KILL_AFTER_POLL")
            .env_remove("RESCUE_TEST_KILL_IN_WRITE")
            .stdin(Stdio::null());
        cmd
    }

    /// `rescue run workflows/os-disk-swap.yaml --yes` on the incident inputs.
    pub fn repair(&self, state: &Path, extra: &[&str], env: &[(&str, String)]) -> Output {
        let workflow = repo("workflows/os-disk-swap.yaml");
        let inputs = repo("examples/incident-inputs.yaml");
        let mut args = vec![
            "run",
            workflow.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.rescue(state, &args, env)
    }

    pub fn azure(&self) -> Azure {
        self.runtime
            .block_on(Azure::connect(self.login.target(), Default::default()))
            .expect("connect to the emulator")
    }

    pub fn vm(&self, name: &str) -> Value {
        self.vm_in(RG, name)
    }

    /// A VM of resource group `rg`, with its instance view.
    pub fn vm_in(&self, rg: &str, name: &str) -> Value {
        let id = ResourceId::new(&self.subscription, rg, Kind::VirtualMachine, name);
        self.runtime
            .block_on(self.azure().read_existing_vm(&id, true))
            .expect("GET vm")
            .resource
            .raw
    }

    pub fn list(&self, kind: Kind) -> Vec<Value> {
        self.runtime
            .block_on(self.azure().list(&self.subscription, RG, kind))
            .expect("list")
            .into_iter()
            .map(|r| r.raw)
            .collect()
    }

    /// How many times a VM ran the fsck step's script (the Run Commands that read its log back
    /// left out), from the names the emulator's state keeps of every script it executed.
    pub fn fsck_runs(&self, vm_name: &str) -> u64 {
        let key = format!(
            "{}/{}",
            RG.to_ascii_lowercase(),
            vm_name.to_ascii_lowercase()
        );
        self.emulator_state()["vms"][&key]["scripts"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|n| n.contains("-fsck-") && !n.contains("-fsck-log-"))
                    .count() as u64
            })
            .unwrap_or(0)
    }

    /// The emulator's saved state.
    fn emulator_state(&self) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.data_dir.join("state.json")).expect("emulator state"),
        )
        .unwrap()
    }

    /// The image file behind a disk, from the emulator's saved state.
    pub fn image(&self, name: &str) -> PathBuf {
        let state = self.emulator_state();
        let disk = state["disks"]
            .as_object()
            .unwrap()
            .values()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no disk {name}"));
        self.data_dir
            .join("images")
            .join(disk["image"].as_str().unwrap())
    }

    /// The logged ARM requests (sign-ins left out).
    pub fn requests(&self) -> Vec<Value> {
        crate::support::arm_requests(&self.log)
    }

    /// Waits until the request log stops growing: a request a killed client had in flight
    /// (a parallel step's) is still carried out and logged, as Azure carries it out.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = self.requests().len();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.requests().len();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    /// Stops it; its data dir is then a pristine copy source.
    pub fn stop(mut self) {
        self.interrupt();
    }

    fn interrupt(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// Mutating ARM requests in a request log (what a crash can leave half-known).
pub fn is_mutation(request: &Value) -> bool {
    let method = request["method"].as_str().unwrap_or_default();
    let operation = request["operation"].as_str().unwrap_or_default();
    method != "GET" && operation != "virtualMachines.retrieveBootDiagnosticsData"
}

pub fn is_poll(request: &Value) -> bool {
    request["operation"] == "operations.get"
}

/// The one run in a state dir.
pub fn only_run(state: &Path) -> String {
    let runs: Vec<_> = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

pub fn journal(state: &Path, run: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(state.join("runs").join(run).join("journal.json")).unwrap(),
    )
    .unwrap()
}

pub fn tagged<'a>(list: &'a [Value], run: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|r| r.pointer("/tags/rescue-run").and_then(Value::as_str) == Some(run))
        .collect()
}

pub fn name_of_id(id: &str) -> String {
    id.rsplit('/').next().unwrap_or_default().to_string()
}

pub fn os_disk(vm: &Value) -> String {
    name_of_id(
        vm.pointer("/properties/storageProfile/osDisk/managedDisk/id")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

pub fn data_disks(vm: &Value) -> Vec<String> {
    vm.pointer("/properties/storageProfile/dataDisks")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .map(|d| d["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn power(vm: &Value) -> String {
    let statuses = vm
        .pointer("/properties/instanceView/statuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    statuses
        .iter()
        .filter_map(|s| s["code"].as_str())
        .find_map(|c| c.strip_prefix("PowerState/"))
        .unwrap_or("unknown")
        .to_string()
}

pub fn agent(vm: &Value) -> String {
    vm.pointer("/properties/instanceView/vmAgent/statuses/0/displayStatus")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string()
}

/// What a finished repair left, with the run id replaced by `RUN` so that two runs compare equal.
#[derive(Debug, PartialEq, Eq)]
pub struct EndState {
    pub vm_os_disk: String,
    pub vm_power: String,
    pub vm_agent: String,
    pub vm_lock_tag: Option<String>,
    pub vm_data_disks: Vec<String>,
    pub rescue_vm_data_disks: Vec<String>,
    pub disks: Vec<String>,
    pub snapshots: Vec<String>,
    /// e2fsck -fn exit codes of the VM's OS disk partitions (0: clean).
    pub os_disk_fsck: Vec<i32>,
    /// Scripts the rescue VM ran: fsck, exactly once however the run was interrupted.
    pub fsck_runs: u64,
}

impl Served {
    pub fn end_state(&self, run: &str) -> EndState {
        let norm = |s: &str| s.replace(run, "RUN");
        let vm = self.vm(VM);
        let names = |kind| {
            let mut n: Vec<String> = self
                .list(kind)
                .iter()
                .map(|r| norm(r["name"].as_str().unwrap()))
                .collect();
            n.sort();
            n
        };
        EndState {
            vm_os_disk: norm(&os_disk(&vm)),
            vm_power: power(&vm),
            vm_agent: agent(&vm),
            vm_lock_tag: vm
                .pointer("/tags/rescue-run")
                .and_then(Value::as_str)
                .map(norm),
            vm_data_disks: data_disks(&vm),
            rescue_vm_data_disks: data_disks(&self.vm(RESCUE_VM)),
            disks: names(Kind::Disk),
            snapshots: names(Kind::Snapshot),
            os_disk_fsck: e2fsck_partitions(&self.image(&os_disk(&vm))),
            fsck_runs: self.fsck_runs(RESCUE_VM),
        }
    }

    /// The invariants every repaired run holds, interrupted or not: one snapshot and one copy
    /// of this run, both in the journal's resources; the original disk kept byte for byte.
    pub fn assert_invariants(
        &self,
        state: &Path,
        run: &str,
        original: &str,
        original_hash: &str,
        label: &str,
    ) {
        let snapshots = self.list(Kind::Snapshot);
        let disks = self.list(Kind::Disk);
        assert_eq!(
            tagged(&snapshots, run).len(),
            1,
            "{label}: snapshots of the run: {snapshots:#?}"
        );
        assert_eq!(
            tagged(&disks, run).len(),
            1,
            "{label}: disks of the run: {disks:#?}"
        );
        assert!(
            disks.iter().any(|d| d["name"] == original),
            "{label}: the original disk {original} is gone"
        );
        assert_eq!(
            sha256(&self.image(original)),
            original_hash,
            "{label}: the original disk was modified"
        );
        let journal = journal(state, run);
        let recorded: Vec<String> = journal["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        for created in tagged(&snapshots, run)
            .into_iter()
            .chain(tagged(&disks, run))
        {
            let id = created["id"].as_str().unwrap().to_ascii_lowercase();
            assert!(
                recorded.contains(&id),
                "{label}: {id} was created but is not in the journal's resources {recorded:?}"
            );
        }
    }
}

/// Seeds an emulator from `scenario` (None: the incident) in `dir/pristine`, stopped.
pub fn pristine(dir: &Path, scenario: Option<&Path>) -> (PathBuf, String, String) {
    let data = dir.join("pristine");
    let served = Served::start(&data, scenario);
    let original = os_disk(&served.vm(VM));
    let hash = sha256(&served.image(&original));
    served.stop();
    let _ = std::fs::remove_file(data.with_extension("requests.jsonl"));
    (data, original, hash)
}

pub fn killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(libc::SIGKILL)
}

/// A repair killed right after its `k`-th mutating request; its run id.
pub fn killed_after_mutation(emulator: &Served, state: &Path, k: u64) -> String {
    let out = emulator.repair(
        state,
        &[],
        &[("RESCUE_TEST_KILL_AFTER_MUTATION", k.to_string())],
    );
    assert!(
        killed(&out),
        "not killed after mutation {k}: {}",
        text(&out)
    );
    emulator.settle();
    only_run(state)
}

/// Mutating requests of os-disk-swap, in order (1-based), for killing it at a given step.
pub mod mutation {
    pub const LOCK: u64 = 1;
    /// The snapshot's and the copy's PUTs are 3 and 4 in either order: both read the deallocated
    /// disk side by side. Only after the 4th is the snapshot sure to exist.
    pub const SNAPSHOT_AND_COPY: u64 = 4;
    /// The managed Run Command's PUT (its DELETE is 7; a log too long to travel in its output
    /// is read back by more Run Commands after it).
    pub const RUN_COMMAND: u64 = 6;
    pub const START: u64 = 10;
}

/// One fresh emulator (the incident, or `scenario`) and a state dir; None (test skipped) without
/// root, which Run Command's loop devices need.
pub struct Fixture {
    pub emulator: Served,
    pub state: PathBuf,
    pub original: String,
    pub original_hash: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(scenario: Option<&str>) -> Option<Fixture> {
        if !crate::repair::images::is_root() {
            eprintln!("skipped: needs root for loop devices");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let scenario = scenario.map(|text| {
            let path = dir.path().join("scenario.yaml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let (pristine, original, original_hash) = pristine(dir.path(), scenario.as_deref());
        let emulator = Served::copy_of(&pristine, &dir.path().join("emulator"));
        Some(Fixture {
            emulator,
            state: dir.path().join("state"),
            original,
            original_hash,
            dir,
        })
    }

    /// A repair run to success; its run id.
    pub fn repaired(&self) -> String {
        let out = self.emulator.repair(&self.state, &[], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        only_run(&self.state)
    }
}

/// Runs `try_point(i)` for every i below `n`, two at a time: each kill point has its own
/// emulator and state dir, and most of a point's time is the emulator's scaled waits, so a
/// pair shares the machine's two cores well. How many returned.
pub fn in_pairs(n: usize, try_point: impl Fn(usize) + Sync) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (done, next) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                try_point(i);
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    done.into_inner()
}
