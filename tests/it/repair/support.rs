//! A repair rehearsal: the emulator started in the test process (so the test can look at its
//! disk images before and after), the real `rescue` binary pointed at it, and the state the
//! emulator persists, read back through our own Azure client.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rescue::actions::{ActionError, Env, StepContext, StepHost};
use rescue::azure::Azure;
use serde_json::{Map, Value};

pub const RG: &str = "MC_prod-rg_prod-aks_westeurope";
pub const VM: &str = "aks-nodepool1-31415926-vm2";
pub const RESCUE_VM: &str = "rescue-vm";
/// The broken VM's disk line in the embedded scenario, to swap for other kinds of damage.
const BROKEN_DISK_CONTENT: &str = "content: { generate: { fs: ext4, corrupt: overlay2-init } }";

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub struct Rehearsal {
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    handle: Option<rescue::emulator::Handle>,
    pub subscription: String,
    pub login: crate::support::Login,
}

impl Rehearsal {
    /// The incident scenario, with the broken VM's OS disk content replaced when `content` is given
    /// (e.g. `{ generate: { fs: xfs, corrupt: overlay2-init } }`).
    pub fn start(content: Option<&str>) -> Rehearsal {
        Self::with_faults(content, &[])
    }

    /// Also with the emulator's fault rules, e.g. `{ operation: snapshot.create, call: 1, kind: "throttle(8)" }`.
    pub fn with_faults(content: Option<&str>, faults: &[&str]) -> Rehearsal {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = rescue::emulator::INCIDENT_SCENARIO.to_string();
        if let Some(c) = content {
            text = text.replace(BROKEN_DISK_CONTENT, &format!("content: {c}"));
            assert_ne!(
                text,
                rescue::emulator::INCIDENT_SCENARIO,
                "the incident scenario changed: update BROKEN_DISK_CONTENT"
            );
        }
        if !faults.is_empty() {
            let rules: String = faults.iter().map(|f| format!("\n  - {f}")).collect();
            text = text.replace("faults: []", &format!("faults:{rules}"));
        }
        let custom = content.is_some() || !faults.is_empty();
        Self::serve(dir, custom.then_some(text))
    }

    /// Another scenario file (e.g. examples/emulator/kinds.yaml), served in-process as `start`
    /// serves the incident's, with its request log.
    pub fn scenario(path: &Path) -> Rehearsal {
        let text = std::fs::read_to_string(path).expect("the scenario file");
        Self::serve(tempfile::tempdir().expect("tempdir"), Some(text))
    }

    /// The emulator on scenario `text` (None: the embedded incident) in `dir`.
    fn serve(dir: tempfile::TempDir, text: Option<String>) -> Rehearsal {
        let scenario = text.map(|text| {
            let path = dir.path().join("scenario.yaml");
            std::fs::write(&path, &text).unwrap();
            path
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = rescue::emulator::Config {
            scenario,
            data_dir: dir.path().join("emulator"),
            port: 0,
            time_scale: 0.01,
            log: Some(dir.path().join("requests.jsonl")),
            tls: true,
        };
        let handle = runtime
            .block_on(rescue::emulator::start(config))
            .expect("the emulator starts");
        Rehearsal {
            login: crate::support::Login::from_handle(&handle),
            subscription: handle.subscription_id.clone(),
            handle: Some(handle),
            runtime,
            dir,
        }
    }

    /// `rescue ARGS` against this emulator, with its own state dir, no terminal.
    /// `RESCUE_TEST_BIN` pins the binary, as in the engine tests.
    pub fn rescue(&self, args: &[&str]) -> Output {
        let bin = std::env::var_os("RESCUE_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rescue"));
        self.login
            .apply(&mut Command::new(bin))
            .args(args)
            .env("RESCUE_STATE_DIR", self.dir.path().join("state"))
            .env_remove("RESCUE_TEST_KILL_AT")
            .stdin(Stdio::null())
            .output()
            .expect("spawn rescue")
    }

    /// `rescue run workflows/os-disk-swap.yaml` on the incident inputs.
    pub fn repair(&self, extra: &[&str]) -> Output {
        self.repair_with(&repo("examples/incident-inputs.yaml"), extra)
    }

    /// `rescue run workflows/os-disk-swap.yaml --inputs INPUTS`.
    pub fn repair_with(&self, inputs: &Path, extra: &[&str]) -> Output {
        let workflow = repo("workflows/os-disk-swap.yaml");
        let mut args = vec![
            "run",
            workflow.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.rescue(&args)
    }

    pub fn azure(&self) -> Azure {
        self.runtime
            .block_on(Azure::connect(self.login.target(), Default::default()))
            .expect("connect to the emulator")
    }

    /// A GET through our client.
    pub fn get(&self, kind: rescue::azure::ids::Kind, name: &str) -> Value {
        let id = rescue::azure::ids::ResourceId::new(&self.subscription, RG, kind, name);
        self.runtime
            .block_on(self.azure().read_existing(&id))
            .unwrap_or_else(|e| panic!("GET {id}: {e}"))
            .raw
    }

    pub fn vm(&self, name: &str) -> Value {
        let id = rescue::azure::ids::ResourceId::new(
            &self.subscription,
            RG,
            rescue::azure::ids::Kind::VirtualMachine,
            name,
        );
        self.runtime
            .block_on(self.azure().read_existing_vm(&id, true))
            .expect("GET vm")
            .resource
            .raw
    }

    pub fn list(&self, kind: rescue::azure::ids::Kind) -> Vec<Value> {
        self.runtime
            .block_on(self.azure().list(&self.subscription, RG, kind))
            .expect("list")
            .into_iter()
            .map(|r| r.raw)
            .collect()
    }

    /// The emulator's image file behind a disk or snapshot, from its saved state.
    pub fn image(&self, kind: &str, name: &str) -> PathBuf {
        let data = self.dir.path().join("emulator");
        let state: Value = serde_json::from_slice(
            &std::fs::read(data.join("state.json")).expect("emulator state"),
        )
        .unwrap();
        let volume = state[kind]
            .as_object()
            .unwrap()
            .values()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} in the emulator state"));
        data.join("images").join(volume["image"].as_str().unwrap())
    }

    /// The ARM requests the emulator logged (sign-ins left out).
    pub fn requests(&self) -> Vec<Value> {
        crate::support::arm_requests(&self.dir.path().join("requests.jsonl"))
    }

    /// Requests logged after the first `skip` (the emulator keeps its log file open: it cannot
    /// be truncated under it).
    pub fn requests_after(&self, skip: usize) -> Vec<Value> {
        self.requests().into_iter().skip(skip).collect()
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown());
        }
    }
}

/// sha256sum(1): hashing hundreds of MiB in an unoptimized test build would dominate the test.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `e2fsck -fn` exit code of every ext* partition of a disk image (read-only loop devices,
/// always detached).
pub fn e2fsck_partitions(image: &Path) -> Vec<i32> {
    let out = Command::new("bash")
        .arg("-cu")
        .arg(format!(
            r#"img={i}
            sfdisk -d "$img" | sed -n 's/.*start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p' | while read start size; do
              L=$(losetup -r -f --show -o $((start*512)) --sizelimit $((size*512)) "$img")
              if [ "$(blkid -p -o value -s TYPE $L)" = ext4 ]; then e2fsck -fn $L >/dev/null 2>&1; echo $?; fi
              losetup -d $L
            done"#,
            i = image.display()
        ))
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// The real `rescue` binary with its own state dir and no terminal, pointed at nothing yet.
pub fn rescue_cmd(state: &Path) -> Command {
    let bin = std::env::var_os("RESCUE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rescue"));
    let mut cmd = Command::new(bin);
    cmd.env("RESCUE_STATE_DIR", state)
        .env_remove("RESCUE_EMULATOR_URL")
        .env_remove("RESCUE_TEST_KILL_AT")
        .stdin(Stdio::null());
    cmd
}

pub fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A StepHost for driving actions directly: records statuses and checkpoints in memory.
#[derive(Default)]
pub struct TestHost {
    pub statuses: std::sync::Mutex<Vec<String>>,
    pub checkpoints: std::sync::Mutex<Map<String, Value>>,
}

#[async_trait::async_trait]
impl StepHost for TestHost {
    fn status(&self, _step_id: &str, message: String) {
        self.statuses.lock().unwrap().push(message);
    }

    async fn checkpoint(&self, _step_id: &str, key: &str, value: Value) -> Result<(), ActionError> {
        self.checkpoints
            .lock()
            .unwrap()
            .insert(key.to_string(), value);
        Ok(())
    }
}

impl Rehearsal {
    /// A step context for `run_id`, with the checkpoints `host` holds.
    pub fn step(&self, host: &Arc<TestHost>, run_id: &str, step_id: &str) -> StepContext {
        StepContext {
            run_id: run_id.into(),
            step_id: step_id.into(),
            attempt: 1,
            run_started: time::OffsetDateTime::now_utc(),
            env: Env {
                azure: Some(Arc::new(self.azure())),
                // Scripts are read beside the repository's workflows.
                files: Some(Arc::new(rescue::workflow::Origin::File(repo(
                    "workflows/os-disk-swap.yaml",
                )))),
                ..Env::default()
            },
            checkpoints: host.checkpoints.lock().unwrap().clone(),
            host: host.clone(),
        }
    }
}
